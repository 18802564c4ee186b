"""`batch-ops cycle`: enqueue, submit and reconcile; with ``--wait``, until every job is terminal."""

from __future__ import annotations

import argparse
import time

from batch_ops.commands._common import add_budget_arg, add_json_arg, add_mode_args, add_repo_arg, load, make_engine
from batch_ops.commands._summary import print_summary
from batch_ops.commands.enqueue import phases_to_run
from batch_ops.config import Config
from batch_ops.engine import Engine, RunSummary
from batch_ops.errors import PolicyRefusal
from batch_ops.paths import Layout
from batch_ops.providers.base import Provider
from batch_ops.queue import read_queue


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("cycle", help="one full cycle: enqueue, submit, reconcile")
    add_repo_arg(p)
    add_json_arg(p)
    add_budget_arg(p)
    p.add_argument(
        "--phase", action="append", help="phase to run (repeatable; default: every eligible phase)"
    )
    p.add_argument("--wait", action="store_true", help="poll until every job is completed or failed")
    p.add_argument(
        "--timeout", type=float, default=3600.0, help="with --wait: give up after this many seconds"
    )
    p.add_argument("--poll", type=float, default=10.0, help="with --wait: seconds between polls")
    add_mode_args(p)
    p.set_defaults(func=run)


def run_cycle(
    args: argparse.Namespace, layout: Layout, config: Config, provider: Provider | None = None
) -> tuple[RunSummary, bool]:
    """Returns the merged summary and whether every job ended (completed or failed).

    A job the budget refuses does not stop the others: the cycle runs what was queued, then raises
    the refusal (exit 2).
    """
    summary = RunSummary()
    done = cycle_into(summary, args, layout, config, provider)
    return summary, done


def cycle_into(
    summary: RunSummary, args: argparse.Namespace, layout: Layout, config: Config, provider: Provider | None = None
) -> bool:
    engine = make_engine(args, layout, config, provider)
    names = phases_to_run(getattr(args, "phase", None), config.policy.eligible_phases)
    # With --wait, phases that read the others' output (the cost report) go once those have ended.
    late = [n for n in names if args.wait and n in engine.phases and engine.phases[n].runs_last]
    refusals: list[str] = []
    give_up = time.monotonic() + args.timeout
    done = False
    for group in ([n for n in names if n not in late], late):
        if group is late and not late:
            break
        try:
            engine.enqueue(group, summary, mode=getattr(args, "mode", "auto"))
        except PolicyRefusal as exc:
            refusals.append(str(exc))
        engine.submit(summary)
        done = _settle_all(engine, layout, summary, args, give_up)
        if not done:
            break
    if refusals:
        raise PolicyRefusal("; ".join(refusals))
    return done


def _settle_all(engine: Engine, layout: Layout, summary: RunSummary, args: argparse.Namespace, give_up: float) -> bool:
    while True:
        step = RunSummary()
        engine.reconcile(step)
        summary.merge(step)
        jobs, _ = read_queue(layout)
        done = all(j.terminal for j in jobs)
        if done or not args.wait or time.monotonic() >= give_up:
            return done
        time.sleep(args.poll)


def run(args: argparse.Namespace) -> int:
    layout, config = load(args)
    summary = RunSummary()
    try:
        done = cycle_into(summary, args, layout, config)
    finally:
        print_summary(summary, as_json=args.json)
    if args.wait and not done:
        print(
            f"timed out after {args.timeout:.0f}s with jobs still in flight; run `batch-ops reconcile` later"
        )
        return 1
    return 0
