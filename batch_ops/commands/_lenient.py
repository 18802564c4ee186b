"""Loading for the commands that must still work when the config is what broke the run."""

from __future__ import annotations

import argparse

from batch_ops.commands._common import load, repo_root, warn
from batch_ops.config import Config, parse_config
from batch_ops.errors import ConfigError
from batch_ops.paths import Layout


def load_lenient(args: argparse.Namespace) -> tuple[Layout, Config]:
    """Like ``load``, but an invalid config is reported (one line per problem) and defaults are used."""
    try:
        return load(args)
    except ConfigError as exc:
        for problem in exc.problems:
            warn(f"{exc.path}: {problem}")
        warn("configuration invalid: carrying on with the defaults")
        return Layout(root=repo_root(args)), parse_config({})
