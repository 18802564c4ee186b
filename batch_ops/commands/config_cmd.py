"""`batch-ops config validate|schema`: check backlog.config.json, or print its JSON Schema."""

from __future__ import annotations

import argparse

from batch_ops.commands._common import add_repo_arg, emit_json, repo_root
from batch_ops.config import CONFIG_FILE, config_json_schema, load_config
from batch_ops.errors import ConfigError


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("config", help="validate the configuration or print its schema")
    verbs = p.add_subparsers(dest="verb", required=True)
    v = verbs.add_parser("validate", help="one line per problem, with its key path; exit 1 if any")
    add_repo_arg(v)
    v.set_defaults(func=validate)
    s = verbs.add_parser("schema", help="print the JSON Schema of the parts batch-ops reads")
    s.set_defaults(func=schema)


def validate(args: argparse.Namespace) -> int:
    root = repo_root(args)
    try:
        config = load_config(root)
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"{exc.path}: {problem}")
        return 1
    source = root / CONFIG_FILE
    where = str(source) if source.exists() else f"{source} (absent: defaults)"
    print(f"{where}: ok ({len(config.policy.eligible_phases)} eligible phase(s))")
    return 0


def schema(_args: argparse.Namespace) -> int:
    emit_json(config_json_schema())
    return 0
