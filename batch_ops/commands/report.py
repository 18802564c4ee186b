"""`batch-ops report`: the cost numbers from the ledger (zero tokens); writes reports/cost.md too."""

from __future__ import annotations

import argparse

from batch_ops.commands._common import add_json_arg, add_repo_arg, load, warn
from batch_ops.phases.cost_report import (
    json_indented,
    latest_analysis,
    plain_summary,
    report_data,
    report_jobs,
    write_cost_report,
)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("report", help="cost report from the usage ledger (zero tokens); writes reports/cost.md")
    add_repo_arg(p)
    add_json_arg(p)
    p.set_defaults(func=run)


def _usd(value: float) -> str:
    return f"${value:.4f}"


def run(args: argparse.Namespace) -> int:
    layout, config = load(args)
    jobs = report_jobs(layout)  # once: the analysis, the caching decisions and the budget share it
    analysis = latest_analysis(layout, jobs)
    summary, state = report_data(layout, config, jobs)
    path = write_cost_report(layout, config, analysis, (summary, state))
    for prob in summary.ledger_problems:
        warn(f"usage-ledger.jsonl line {prob.line_number}: {prob.reason}")
    unlisted = summary.ledger_problem_count - len(summary.ledger_problems)
    if unlisted > 0:
        warn(f"usage-ledger.jsonl: {unlisted} more unparseable line(s) not listed")
    if args.json:
        # What emit_json prints for summary.model_dump(mode="json"), without copying every job's
        # row through pydantic and json.dumps's indented Python path (seconds for 10,000 jobs).
        budget_state = state.model_dump() if state else None
        print(json_indented({**plain_summary(summary), "budget": budget_state, "report_path": path}))
        return 0
    t = summary.totals
    ratio = t["cost_ratio_vs_uncached_interactive"]
    hit = t["cache_hit_rate"]
    print(
        f"{t['requests']} request(s): paid {_usd(t['cost_usd'])}; interactive {_usd(t['interactive_cost_usd'])} "
        f"(saved {_usd(t['savings_usd'])}); interactive without cache {_usd(t['uncached_interactive_cost_usd'])}"
        + (f" — paid {ratio:.1%} of it" if ratio is not None else "")
        + (f"; cache hit rate {hit:.0%}" if hit is not None else "")
    )
    for title, rows, key in (
        ("day", summary.by_day, "day"),
        ("phase", summary.by_phase, "phase"),
        ("model", summary.by_model, "model_alias"),
        ("mode", summary.by_mode, "mode"),
    ):
        for row in rows:
            rate = row["cache_hit_rate"]
            print(
                f"  {title:<6} {row[key]:<24} {row['requests']:>6} req  cost {_usd(row['cost_usd'])}  "
                f"saved {_usd(row['savings_usd'])}  cache {'-' if rate is None else f'{rate:.0%}'}"
            )
    if state is not None:
        print(state.line())
    print(f"report: {path}")
    return 0
