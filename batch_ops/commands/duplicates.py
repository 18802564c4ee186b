"""`batch-ops duplicates`: the zero-token candidate pairs (`--candidates`), or the last judged report."""

from __future__ import annotations

import argparse
import json

from batch_ops.backlog import scan_backlog
from batch_ops.commands._common import add_json_arg, add_repo_arg, emit_json, load, warn
from batch_ops.similarity import Params, ticket_candidates


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("duplicates", help="duplicate candidates (zero tokens) or the latest duplicates report")
    add_repo_arg(p)
    add_json_arg(p)
    p.add_argument("--candidates", action="store_true", help="compute the zero-token candidate pairs now (no model)")
    # The defaults are the duplicate-detection phase's: the list printed is the list the model judges.
    default = Params()
    p.add_argument(
        "--per-ticket",
        type=int,
        default=default.per_ticket,
        help=f"with --candidates: pairs kept per ticket (default {default.per_ticket}, as the phase)",
    )
    p.add_argument(
        "--min-score",
        type=float,
        default=default.min_score,
        help=f"with --candidates: lowest similarity kept (default {default.min_score:g}, as the phase)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    layout, config = load(args)
    if not args.candidates:
        path = layout.reports_dir / "duplicates.json"
        if not path.exists():
            warn("no duplicates report yet: run the duplicate-detection phase, or use --candidates")
            return 1
        rows = json.loads(path.read_text(encoding="utf-8"))
        if args.json:
            emit_json(rows)
        else:
            for r in rows:
                verdict = r.get("verdict") or r.get("status")
                conf = f" {r['confidence']:.2f}" if r.get("confidence") is not None else ""
                print(f"{r['a']:<12} {r['b']:<12} {r['similarity']:.3f}  {verdict}{conf}")
        return 0
    scan = scan_backlog(layout.root, config.backlog.data_dir)
    for problem in scan.problems:
        warn(f"skipped ticket {problem}")
    pairs = ticket_candidates(scan.pending, Params(per_ticket=args.per_ticket, min_score=args.min_score))
    if args.json:
        emit_json([{"a": c.a, "b": c.b, "score": c.score, "shared_terms": list(c.shared)} for c in pairs])
        return 0
    for c in pairs:
        print(f"{c.a:<12} {c.b:<12} {c.score:.3f}  {', '.join(c.shared)}")
    print(f"{len(pairs)} candidate pair(s) among {len(scan.pending)} pending ticket(s); zero tokens")
    return 0
