"""`batch-ops submit`: send queued jobs to the provider within the policy; safe to repeat.

Exit codes: 0 done, 2 a job was refused by the policy, 3 provider outage (queue paused),
4 authentication or billing stop. While the queue is paused nothing is sent and the pause's
code is returned, so a scheduled run keeps signalling until an operator runs `batch-ops resume`.
"""

from __future__ import annotations

import argparse

from batch_ops.commands._common import (
    add_budget_arg,
    add_json_arg,
    add_repo_arg,
    load,
    make_engine,
)
from batch_ops.commands._summary import print_summary
from batch_ops.commands.reconcile import exit_code_after
from batch_ops.engine import RunSummary


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("submit", help="submit queued jobs as provider batches")
    add_repo_arg(p)
    add_json_arg(p)
    add_budget_arg(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    layout, config = load(args)
    summary = RunSummary()
    try:
        make_engine(args, layout, config).submit(summary)
    finally:
        print_summary(summary, as_json=args.json)
    return exit_code_after(layout, summary)
