"""`batch-ops retry JOB`: re-queue a failed job once, after the operator fixed its payload."""

from __future__ import annotations

import argparse

from batch_ops.commands._common import add_repo_arg, load, warn
from batch_ops.queue import QueueStore


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("retry", help="re-queue a failed job (once)")
    add_repo_arg(p)
    p.add_argument("job_id")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    layout, _ = load(args)
    with QueueStore(layout).locked() as queue:
        job = queue.get(args.job_id)
        if job.status != "failed":
            warn(f"{job.id} is {job.status}, not failed: nothing to retry")
            return 1
        if job.retried_by_operator:
            warn(f"{job.id} was already retried once; enqueue the tickets again instead")
            return 1
        job.retried_by_operator = True
        job.batches = []
        job.round = 1
        job.round_submitted = False
        job.settled = {}
        job.result_path = None
        job.transition("queued", error=None)
        job.error = None
        queue.save()
    print(f"re-queued {args.job_id}; `batch-ops submit` sends it")
    return 0
