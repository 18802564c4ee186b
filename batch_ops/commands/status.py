"""`batch-ops status`: the queue, a pause if any, and the ledger's totals. Reads only.

The totals come from the ledger's summary file plus any lines appended past it, so a ledger of a
million lines costs no more than a small one (see ``ledger.read_summary``).
"""

from __future__ import annotations

import argparse
from typing import Any

from batch_ops import budget
from batch_ops.commands._common import add_json_arg, add_repo_arg, emit_json, load, say, warn
from batch_ops.config import Config
from batch_ops.engine import read_pause
from batch_ops.ledger import LedgerSummary, read_summary
from batch_ops.paths import Layout
from batch_ops.queue import JobRecord, read_queue


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("status", help="show jobs, pause state and usage totals")
    add_repo_arg(p)
    add_json_arg(p)
    p.set_defaults(func=run)


def collect(args: argparse.Namespace) -> dict[str, Any]:
    layout, config = load(args)
    jobs, bad = read_queue(layout)
    summary = read_summary(layout.ledger_file, cells=False)  # the report's cells are not needed here
    all_totals = summary.totals()
    totals = {k: all_totals[k] for k in ("requests", "cost_usd", "interactive_cost_usd", "savings_usd")}
    pause = read_pause(layout)
    counts: dict[str, int] = {}
    for job in jobs:
        counts[job.status] = counts.get(job.status, 0) + 1
    return {
        "paused": pause.model_dump() if pause else None,
        "counts": counts,
        "jobs": [
            {
                "id": j.id,
                "phase": j.phase,
                "model_alias": j.model_alias,
                "mode": j.mode,
                "status": j.status,
                "requests": j.request_count,
                "round": j.round,
                "attempts": j.attempts,
                "batches": [b.id for b in j.batches if b.id],
                "in_flight": len(j.in_flight()),
                "creates_in_doubt": sum(1 for b in j.batches if b.status == "creating" and b.doubt),
                "settled": j.settled,
                "next_attempt_at": j.next_attempt_at,
                "error": j.error,
                "updated_at": j.updated_at,
            }
            for j in jobs
        ],
        "quarantined_queue_lines": [b.model_dump() for b in bad],
        "ledger": totals,
        "ledger_problems": [p.model_dump() for p in summary.problems],
        "ledger_problem_count": summary.problem_count,
        "budget": _budget(config, layout, jobs, summary),
    }


def _budget(config: Config, layout: Layout, jobs: list[JobRecord], ledger: LedgerSummary) -> dict[str, Any] | None:
    current = budget.state(config, layout, jobs, ledger=ledger)
    return current.model_dump() | {"line": current.line()} if current is not None else None


def run(args: argparse.Namespace) -> int:
    data = collect(args)
    for bad in data["quarantined_queue_lines"]:
        warn(f"batch-queue.jsonl line {bad['line_number']}: {bad['reason']} (kept aside by the next write)")
    for prob in data["ledger_problems"]:
        warn(f"usage-ledger.jsonl line {prob['line_number']}: {prob['reason']}")
    unlisted = data["ledger_problem_count"] - len(data["ledger_problems"])
    if unlisted > 0:
        warn(f"usage-ledger.jsonl: {unlisted} more unparseable line(s) not listed")
    if args.json:
        emit_json(data)
        return 0
    if data["paused"]:
        p = data["paused"]
        say(f"PAUSED ({p['kind']}) since {p['since']}: {p['reason']}")
        say("  nothing is submitted until `batch-ops resume` (run it once the cause is fixed)")
    if not data["jobs"]:
        say("no jobs")
    for job in data["jobs"]:
        settled = ", ".join(f"{k} {v}" for k, v in sorted(job["settled"].items())) or "-"
        say(
            f"{job['id']}  {job['phase']:<24} {job['model_alias']:<9} {job['mode']:<11} {job['status']:<10} "
            f"requests {job['requests']:<6} round {job['round']}  attempts {job['attempts']}  settled: {settled}"
        )
        if job["creates_in_doubt"]:
            say(f"    {job['creates_in_doubt']} create(s) in doubt: the next submit looks for them before creating")
        if job["next_attempt_at"] and job["status"] not in ("completed", "failed"):
            say(f"    next attempt at {job['next_attempt_at']}")
        if job["error"]:
            say(f"    error: {job['error']}")
    t = data["ledger"]
    say(
        f"ledger: {t['requests']} request(s), cost ${t['cost_usd']:.4f}, "
        f"interactive equivalent ${t['interactive_cost_usd']:.4f}, saved ${t['savings_usd']:.4f}"
    )
    if data["budget"]:
        say(data["budget"]["line"])
    return 0
