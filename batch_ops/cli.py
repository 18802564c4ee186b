"""`batch-ops`: one sub-command per module under ``commands/``, each returning an exit code."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from batch_ops.commands import (
    alert,
    commit_state,
    config_cmd,
    cycle,
    demo,
    duplicates,
    enqueue,
    merge_state,
    reconcile,
    report,
    resume,
    retry,
    sandbox_cmd,
    status,
    submit,
    summary,
    triage,
)
from batch_ops.commands._common import warn
from batch_ops.errors import BatchOpsError, ConfigError

COMMANDS = (
    triage,
    enqueue,
    submit,
    reconcile,
    status,
    cycle,
    resume,
    retry,
    config_cmd,
    sandbox_cmd,
    demo,
    summary,
    alert,
    commit_state,
    merge_state,
    report,
    duplicates,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="batch-ops",
        description="Run a repository's non-interactive LLM backlog work through batch APIs.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMANDS:
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.func(args)
    except ConfigError as exc:
        for problem in exc.problems:
            warn(f"{exc.path}: {problem}")
        return exc.exit_code
    except BatchOpsError as exc:
        warn(str(exc))
        return exc.exit_code
    except KeyboardInterrupt:
        warn("interrupted")
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
