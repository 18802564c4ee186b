"""`batch-ops summary`: the run's job summary table and annotations, for a GitHub Actions step.

When it acts: any time; it only reads. It renders the run (from the `--json` output of submit /
reconcile / cycle passed with `--run FILE`, repeatable; a missing file — a step that died before
writing it — is noted, not fatal), the queue (jobs, states, requests settled, cost and savings per
job from the ledger), the pause if any, the budget if configured, and the outstanding failed
requests. The Markdown is appended to `--output`, else to `$GITHUB_STEP_SUMMARY`, else printed.
Inside GitHub Actions (`GITHUB_ACTIONS=true`) it also prints `::error::` annotations for failed
requests of this run and for a pause, and `::warning::` for a budget threshold. Exit 0.
"""

from __future__ import annotations

import argparse
import os

from batch_ops.commands._common import add_repo_arg, load
from batch_ops.github.conditions import read_run_records
from batch_ops.github.summary import render


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("summary", help="write the run's job summary (GITHUB_STEP_SUMMARY) and annotations")
    add_repo_arg(p)
    p.add_argument("--run", action="append", default=[], metavar="FILE", help="a step's --json output")
    p.add_argument("--title", default="batch-ops", help="heading of the summary")
    p.add_argument("--output", help="file to append the Markdown to (default: $GITHUB_STEP_SUMMARY)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    layout, config = load(args)
    rendered = render(layout, config, read_run_records(args.run), title=args.title)
    target = args.output or os.environ.get("GITHUB_STEP_SUMMARY")
    if target:
        with open(target, "a", encoding="utf-8") as fh:
            fh.write(rendered.markdown + "\n")
    else:
        print(rendered.markdown)
    if os.environ.get("GITHUB_ACTIONS") == "true":
        for line in rendered.annotations:
            print(line)
    return 0
