"""`batch-ops retry JOB`: re-queue a failed job once, after the operator fixed its payload.

For a completed job some of whose requests failed, the failed requests go into a new job instead.
"""

from __future__ import annotations

import argparse

from batch_ops.commands._common import add_repo_arg, load, make_engine


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("retry", help="re-queue a failed job (once)")
    add_repo_arg(p)
    p.add_argument("job_id")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    layout, config = load(args)
    print(make_engine(args, layout, config).retry_job(args.job_id))
    return 0
