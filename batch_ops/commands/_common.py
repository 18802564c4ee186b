"""What every command shares: finding the repository, loading config, printing, the provider."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from batch_ops.config import Config, load_config
from batch_ops.engine import Engine
from batch_ops.markdown import neutralise_workflow_commands
from batch_ops.paths import Layout
from batch_ops.phases import all_phases
from batch_ops.providers.base import Provider
from batch_ops.secrets import redact


def add_repo_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--repo", default=".", help="repository root (default: current directory)")


def add_json_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON on stdout")


def add_budget_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--time-budget",
        type=float,
        default=float(os.environ.get("BATCH_OPS_TIME_BUDGET", "600")),
        help="seconds this run may spend waiting on retries before leaving work for the next run",
    )


def add_mode_args(parser: argparse.ArgumentParser) -> None:
    """``--mode auto|batch|interactive`` (auto: by ``forceBatchWhenQueueOver``), with ``--batch`` and
    ``--interactive`` as shorthands."""
    parser.add_argument(
        "--mode",
        choices=("auto", "batch", "interactive"),
        default="auto",
        help="auto (default): batch at or above forceBatchWhenQueueOver requests, interactive below; "
        "batch: half price within 24 h; interactive: full price, now",
    )
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--batch", dest="mode", action="store_const", const="batch",
        help="same as --mode batch: the batch API even below forceBatchWhenQueueOver",
    )  # fmt: skip
    group.add_argument(
        "--interactive", dest="mode", action="store_const", const="interactive",
        help="same as --mode interactive: the Messages API at once (full price)",
    )  # fmt: skip


def warn(message: str) -> None:
    print(f"batch-ops: {neutralise_workflow_commands(redact(message))}", file=sys.stderr)


def say(message: str) -> None:
    """A line for a person on stdout. On a runner stdout is a log too: text from tickets, models or
    the provider inside ``message`` must not act as a workflow command."""
    print(neutralise_workflow_commands(redact(message)))


def emit_json(data: Any) -> None:
    if isinstance(data, BaseModel):
        data = data.model_dump(mode="json")
    print(json.dumps(data, indent=2, ensure_ascii=False, default=str))


def repo_root(args: argparse.Namespace) -> Path:
    return Path(getattr(args, "repo", ".") or ".").resolve()


def load(args: argparse.Namespace) -> tuple[Layout, Config]:
    root = repo_root(args)
    config = load_config(root)
    return Layout(root=root, data_dir=config.backlog.data_dir), config


def default_provider() -> Provider:
    from batch_ops.providers.anthropic import AnthropicProvider

    return AnthropicProvider()


def make_engine(
    args: argparse.Namespace,
    layout: Layout,
    config: Config,
    provider: Provider | None = None,
) -> Engine:
    budget = getattr(args, "time_budget", None)
    deadline = time.monotonic() + budget if budget else None
    return Engine(
        layout,
        config,
        all_phases(),
        (lambda: provider) if provider is not None else default_provider,
        deadline=deadline,
        warn=warn,
    )
