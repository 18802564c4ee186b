"""`batch-ops merge-state queue|ledger BASE CURRENT OTHER`: the git merge driver commit-state installs.

Git calls it (``%O %A %B``) only when both sides changed the queue or the ledger; it writes the
merged file over CURRENT and exits 0, or prints why and exits 1 (git then reports a conflict).
See ``batch_ops.github.commit_state`` for the rules.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from batch_ops.commands._common import warn
from batch_ops.github.commit_state import MergeConflict, merge_ledger_texts, merge_queue_texts
from batch_ops.queue import atomic_write_text


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("merge-state", help="git merge driver for the queue and the ledger (used by commit-state)")
    p.add_argument("kind", choices=("queue", "ledger"))
    p.add_argument("base")
    p.add_argument("current", help="the file git merges into (overwritten with the result)")
    p.add_argument("other")
    p.set_defaults(func=run)


def _read(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return ""


def run(args: argparse.Namespace) -> int:
    merge = merge_queue_texts if args.kind == "queue" else merge_ledger_texts
    try:
        merged = merge(_read(args.base), _read(args.current), _read(args.other))
    except MergeConflict as exc:
        warn(f"{args.kind} merge: {exc}")
        return 1
    atomic_write_text(Path(args.current), merged)
    return 0
