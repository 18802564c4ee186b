"""`batch-ops commit-state`: commit `.backlog-ops/` and ticket changes as github-actions[bot], and push.

When it acts: always safe to run at the end of a workflow job. If nothing under `.backlog-ops/`
or the backlog's data directory changed, it makes no commit and exits 0. Otherwise it commits once
with a message computed from the change (jobs enqueued, batches submitted, jobs completed or
failed, requests settled, tickets refined, pause or resume) and pushes to `--branch` with bounded
fetch-rebase-retry; queue and ledger conflicts are merged by record, never by text (see
`batch_ops.github.commit_state`). Exit 1 if the push still fails after `--attempts`.

With `GITHUB_OUTPUT` set it writes `committed`, `pushed` and `sha` outputs.
"""

from __future__ import annotations

import argparse
import os

from batch_ops.commands._common import add_repo_arg, warn
from batch_ops.commands._lenient import load_lenient
from batch_ops.github.commit_state import commit_state, current_branch
from batch_ops.github.env import DEFAULT_SERVER_URL, run_url_from
from batch_ops.github.git import Git
from batch_ops.github.outputs import write_outputs


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("commit-state", help="commit and push the queue, ledger, reports and ticket changes")
    add_repo_arg(p)
    p.add_argument("--remote", default="origin", help="remote to push to (default: origin)")
    p.add_argument("--branch", help="branch to push to (default: GITHUB_REF_NAME, else the current branch)")
    p.add_argument("--attempts", type=int, default=5, help="push attempts, each after a fetch and rebase")
    p.add_argument("--backoff", type=float, default=2.0, help="seconds before the 2nd attempt; doubles")
    p.add_argument("--no-push", action="store_true", help="commit only")
    p.set_defaults(func=run)


def _branch(args: argparse.Namespace, git: Git) -> str:
    if args.branch:
        return str(args.branch)
    ref = os.environ.get("GITHUB_REF", "")
    if ref.startswith("refs/heads/"):
        return ref[len("refs/heads/") :]
    return current_branch(git)


def run(args: argparse.Namespace) -> int:
    layout, config = load_lenient(args)
    git = Git(
        layout.root,
        token=os.environ.get("GITHUB_TOKEN") or None,
        server_url=os.environ.get("GITHUB_SERVER_URL") or DEFAULT_SERVER_URL,
    )
    branch = _branch(args, git)
    result = commit_state(
        git,
        data_dir=config.backlog.data_dir,
        branch=branch,
        remote=args.remote,
        attempts=args.attempts,
        backoff=args.backoff,
        push=not args.no_push,
        run_url=run_url_from(),
        workflow=os.environ.get("GITHUB_WORKFLOW") or None,
    )
    for note in result.notes:
        warn(note)
    write_outputs(
        committed=str(result.committed).lower(), pushed=str(result.pushed).lower(), sha=result.sha or ""
    )
    if not result.committed:
        print("nothing to commit: state and tickets unchanged")
        return 0
    where = f"; pushed to {args.remote}/{branch}" if result.pushed else "; not pushed (--no-push)"
    tries = f" after {result.attempts} attempt(s), {result.rebased} rebase(s)" if result.rebased else ""
    print(f"committed {result.sha[:12] if result.sha else '?'} {result.subject}{where}{tries}")
    return 0
