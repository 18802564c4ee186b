"""The workflows and composite actions: schemas, zizmor, conventions, and every run: line is a real command."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from batch_ops.cli import build_parser

PROJECT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
WORKFLOWS = sorted((PROJECT / ".github/workflows").glob("*.yml"))
ACTIONS = sorted((PROJECT / "actions").glob("*/action.yml"))
STATE_WORKFLOWS = [p for p in WORKFLOWS if p.name.startswith("batch-")]
SHA_PIN = re.compile(r"^\s*(?:-\s+)?uses:\s+([\w.-]+/[\w./-]+)@([0-9a-f]{40})\s+#\s+v\d+(?:\.\d+)*\s*$")
# Sample values for the variables run: lines read (each must be declared in the step's env).
SAMPLES = {
    "PHASES": "refinement,bulk-ticket-validation",
    "MODE": "batch",
    "RUNNER_TEMP": "/tmp/runner",
    "ATTEMPTS": "5",
    "KIND": "check",
    "MESSAGE": "a message",
    "RUN_FILES": "/tmp/a.json,/tmp/b.json",
    "PACKAGE": "batch-ops==0.1.0",
}
RUNNER_VARS = {"RUNNER_TEMP"}
NOT_BATCH_OPS = {
    # (file, command): the only run: lines that are not batch-ops commands, and why.
    ("ci.yml", "make test"): "the project's own test suite",
    ("setup/action.yml", 'python -m pip install --disable-pip-version-check "$PACKAGE"'): "installs batch-ops",
}


def load(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def tool_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("GITHUB_TOKEN", "GH_TOKEN", "ZIZMOR_GITHUB_TOKEN")}
    return env


def test_workflows_match_the_github_workflow_schema() -> None:
    result = subprocess.run(
        [str(BIN / "check-jsonschema"), "--builtin-schema", "vendor.github-workflows", *map(str, WORKFLOWS)],
        capture_output=True, text=True, env=tool_env(), check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_actions_match_the_github_action_schema() -> None:
    result = subprocess.run(
        [str(BIN / "check-jsonschema"), "--builtin-schema", "vendor.github-actions", *map(str, ACTIONS)],
        capture_output=True, text=True, env=tool_env(), check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_zizmor_offline_has_no_findings() -> None:
    result = subprocess.run(
        [str(BIN / "zizmor"), "--offline", "--config", str(PROJECT / ".github/zizmor.yml"),
         str(PROJECT / ".github/workflows"), str(PROJECT / "actions")],
        capture_output=True, text=True, env=tool_env(), check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "No findings to report" in result.stdout + result.stderr


def test_every_zizmor_ignore_carries_a_reason() -> None:
    lines = (PROJECT / ".github/zizmor.yml").read_text().splitlines()
    for i, line in enumerate(lines):
        if line.strip().startswith("disable:") or line.strip().startswith("ignore:"):
            assert lines[i - 1].strip().startswith("#") and len(lines[i - 1].strip()) > 20, line
    for path in [*WORKFLOWS, *ACTIONS]:
        for line in path.read_text().splitlines():
            if "zizmor: ignore" in line:
                assert re.search(r"zizmor: ignore\[[\w-]+\]\s+\S.{10,}", line), f"{path.name}: {line}"


def test_third_party_actions_are_pinned_by_sha_with_a_version_comment() -> None:
    for path in [*WORKFLOWS, *ACTIONS]:
        for line in path.read_text().splitlines():
            if re.match(r"^\s*(-\s+)?uses:", line) and "./actions/" not in line:
                assert SHA_PIN.match(line), f"{path.name}: {line.strip()}"


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_workflow_conventions(path: Path) -> None:
    wf = load(path)
    assert wf["permissions"] == {}
    for name, job in wf["jobs"].items():
        assert isinstance(job.get("timeout-minutes"), int), f"{name}: timeout-minutes"
        assert set(job.get("permissions", {})) <= {"contents", "issues"}
    if path in STATE_WORKFLOWS:
        assert wf["concurrency"] == {"group": "batch-ops-state", "cancel-in-progress": False}
        on = wf.get("on", wf.get(True))
        assert on["schedule"] and "workflow_dispatch" in on
        for entry in on["schedule"]:
            minutes = entry["cron"].split()[0].split(",")
            assert all(m.isdigit() and int(m) % 15 for m in minutes), f"{entry}: schedule off the hour"
        (job,) = wf["jobs"].values()
        assert job["permissions"] == {"contents": "write", "issues": "write"}


def _steps() -> list[tuple[str, dict[str, Any]]]:
    out = []
    for path in WORKFLOWS:
        for job in load(path)["jobs"].values():
            out += [(path.name, s) for s in job["steps"]]
    for path in ACTIONS:
        out += [(f"{path.parent.name}/action.yml", s) for s in load(path)["runs"]["steps"]]
    return out


def test_secrets_and_tokens_only_where_they_are_needed() -> None:
    for where, step in _steps():
        env = step.get("env") or {}
        text = yaml.safe_dump(step)
        if "secrets.ANTHROPIC_API_KEY" in text:
            assert set(env) == {"ANTHROPIC_API_KEY"}, where
            assert re.match(r"batch-ops (submit|reconcile|cycle)\b", step["run"]), (where, step["run"])
        if "GITHUB_TOKEN" in env:
            assert re.match(r"batch-ops (alert|commit-state)\b", step["run"]), (where, step["run"])
        assert "secrets." not in str(step.get("run", "")), where
        assert "${{" not in str(step.get("run", "")), f"{where}: an expression inside run:"


def _commands(script: str) -> list[str]:
    return [line.strip() for line in script.replace("\\\n", " ").splitlines() if line.strip()]


def _argv(command: str) -> list[str]:
    words = shlex.split(command, posix=True)
    argv: list[str] = []
    skip = False
    for word in words:
        if skip:
            skip = False
            continue
        if word in (">", ">>", "2>", "2>>", "<"):
            skip = True
            continue
        argv.append(word)
    return argv


def _substitute(word: str, declared: set[str]) -> str:
    def repl(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(2)
        assert name in declared or name in RUNNER_VARS, f"${name} is not declared in the step's env"
        return SAMPLES[name]

    return re.sub(r"\$\{(\w+)\}|\$(\w+)", repl, word)


def test_every_run_line_is_a_batch_ops_command_the_cli_accepts() -> None:
    parser = build_parser()
    seen = set()
    for where, step in _steps():
        if "run" not in step:
            continue
        declared = set(step.get("env") or {})
        for command in _commands(step["run"]):
            if (where, command) in NOT_BATCH_OPS:
                continue
            raw = shlex.split(command)
            assert raw[0] == "batch-ops", f"{where}: {command}"
            argv = [_substitute(w, declared) for w in _argv(command)][1:]
            try:
                args = parser.parse_args(argv)
            except SystemExit:
                pytest.fail(f"{where}: the CLI refuses {command!r}")
            assert callable(args.func)
            seen.add(argv[0])
    assert {"triage", "enqueue", "submit", "reconcile", "resume", "summary", "commit-state", "alert"} <= seen
