"""`batch-ops submit`: send queued jobs to the provider within the policy; safe to repeat."""

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
    return 0
