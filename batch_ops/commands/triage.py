"""`batch-ops triage`: bucket pending tickets by how much LLM they need, with zero tokens."""

from __future__ import annotations

import argparse

from batch_ops.commands._common import add_repo_arg, emit_json, load, warn
from batch_ops.triage import buckets, triage_backlog


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("triage", help="classify pending tickets: no-llm, cheap-llm, requires-frontier")
    add_repo_arg(p)
    p.add_argument("--explain", action="store_true", help="add the reasons per ticket")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    layout, config = load(args)
    # Streamed: each ticket is triaged as it is read, and none is kept (``triage_backlog``).
    results, problems, _tickets = triage_backlog(layout.root, config.backlog.data_dir, config.ticket_validation)
    for problem in problems:
        warn(f"skipped ticket {problem}")
    out: dict[str, object] = {str(k): v for k, v in buckets(results).items()}
    if args.explain:
        out["reasons"] = {tid: res.reasons for tid, res in sorted(results.items())}
        out["findings"] = {
            tid: [f.model_dump() for f in res.findings]
            for tid, res in sorted(results.items())
            if res.findings
        }
    emit_json(out)
    return 0
