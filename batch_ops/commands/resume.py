"""`batch-ops resume`: lift a pause (outage or auth/billing stop) once the cause is fixed."""

from __future__ import annotations

import argparse

from batch_ops.commands._common import add_repo_arg, load
from batch_ops.engine import clear_pause, read_pause


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("resume", help="unpause the queue")
    add_repo_arg(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    layout, _ = load(args)
    pause = read_pause(layout)
    if pause is None:
        print("queue is not paused")
        return 0
    clear_pause(layout)
    print(f"resumed (was paused since {pause.since} for {pause.kind}: {pause.reason})")
    print("the next `batch-ops submit` sends the queued jobs")
    return 0
