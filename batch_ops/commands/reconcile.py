"""`batch-ops reconcile`: poll in-flight batches; settle, follow up, apply and close ended ones.

Results of batches already in flight are collected even while the queue is paused; follow-up
batches are not sent then. Exit codes as for `batch-ops submit`.
"""

from __future__ import annotations

import argparse

from batch_ops.commands._common import add_budget_arg, add_json_arg, add_repo_arg, load, make_engine, warn
from batch_ops.commands._summary import print_summary
from batch_ops.engine import RunSummary, read_pause
from batch_ops.errors import PolicyRefusal
from batch_ops.paths import Layout
from batch_ops.policy import pause_exit_code


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("reconcile", help="poll submitted jobs and settle the ones whose batches ended")
    add_repo_arg(p)
    add_json_arg(p)
    add_budget_arg(p)
    p.set_defaults(func=run)


def exit_code_after(layout: Layout, summary: RunSummary) -> int:
    """A paused queue wins (3 or 4, with a line an alert can carry), then a policy refusal (2)."""
    pause = read_pause(layout)
    if pause is not None:
        warn(f"queue paused ({pause.kind}) since {pause.since}: {pause.reason}")
        return pause_exit_code(pause.kind)
    if summary.refused:
        warn(f"refused by the policy: {', '.join(summary.refused)} (see the notes above)")
        return PolicyRefusal.exit_code
    return 0


def run(args: argparse.Namespace) -> int:
    layout, config = load(args)
    summary = RunSummary()
    try:
        make_engine(args, layout, config).reconcile(summary)
    finally:
        print_summary(summary, as_json=args.json)
    return exit_code_after(layout, summary)
