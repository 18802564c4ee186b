"""`batch-ops enqueue`: turn the tickets of eligible phases into queued jobs (zero tokens)."""

from __future__ import annotations

import argparse
import re

from batch_ops.commands._common import add_json_arg, add_mode_args, add_repo_arg, emit_json, load, make_engine, say
from batch_ops.engine import RunSummary
from batch_ops.phases import all_phases


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("enqueue", help="write payloads and queue records for a phase's tickets")
    add_repo_arg(p)
    add_json_arg(p)
    p.add_argument(
        "--phase",
        action="append",
        help="phase to enqueue (repeatable, or comma/space separated; empty or absent: every eligible phase)",
    )
    add_mode_args(p)
    p.set_defaults(func=run)


def phases_to_run(requested: list[str] | None, eligible: list[str]) -> list[str]:
    """Requested phases as given, or every eligible phase this version implements, in config order."""
    names = [p for item in requested or [] for p in re.split(r"[\s,]+", item) if p]
    if names:
        return names
    known = all_phases()
    return [p for p in eligible if p in known]


def run(args: argparse.Namespace) -> int:
    layout, config = load(args)
    engine = make_engine(args, layout, config)
    summary = RunSummary()
    try:
        engine.enqueue(phases_to_run(args.phase, config.policy.eligible_phases), summary, mode=args.mode)
    finally:
        if args.json:
            emit_json(summary)
        else:
            for job_id in summary.enqueued:
                say(f"queued {job_id}")
            for note in summary.skipped:
                say(f"skipped {note}")
            for note in summary.notes:
                say(f"note: {note}")
    return 0
