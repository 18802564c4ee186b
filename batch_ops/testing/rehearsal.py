"""A small, local stand-in for a GitHub Actions runner: enough to rehearse batch-ops' own workflows.

It reads a workflow file and runs its one job's steps in order with bash, the way a runner does:
``bash --noprofile --norc -eo pipefail`` per ``run:`` step, in a fresh clone of a bare remote,
with ``GITHUB_OUTPUT``, ``GITHUB_ENV`` and ``GITHUB_STEP_SUMMARY`` files per step and the usual
``GITHUB_*`` / ``RUNNER_*`` variables. ``${{ }}`` expressions (contexts ``inputs``, ``github``,
``secrets``, ``vars``, ``runner``, ``env``, ``steps``; ``success()``, ``failure()``, ``always()``,
``cancelled()``; ``!``, ``&&``, ``||``, ``==``, ``!=``) are evaluated in ``if:``, ``env:`` and
``with:``; a step's ``if:`` without a status function means ``success() && (…)``, as on GitHub.

``uses:`` steps are replaced by their local equivalents:

* ``actions/checkout@…`` — a shallow clone (``--depth 1``) of the bare remote: the workspace;
* ``actions/setup-python@…`` and ``./actions/setup`` — nothing: the current interpreter's
  ``bin`` directory (with ``batch-ops``) is first on ``PATH``;
* ``./actions/NAME`` — the composite action ``actions/NAME/action.yml`` of the project, whose
  steps run the same way with its ``inputs`` (defaults, then ``with:``) and whose ``outputs``
  become the step's outputs.

Anything else is refused, so a workflow cannot silently depend on an action the rehearsal skips.
It is a test harness, not a runner: one job, no matrix, no services, no containers.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

# ---- expressions

_TOKEN = re.compile(
    r"\s*(?:(?P<str>'(?:[^']|'')*')|(?P<num>-?\d+(?:\.\d+)?)|(?P<op>&&|\|\||==|!=|<=|>=|[!()<>,])"
    r"|(?P<name>[A-Za-z_][A-Za-z0-9_.\-*]*))"
)
_STATUS_FUNCS = ("success(", "failure(", "always(", "cancelled(")


class ExpressionError(ValueError):
    pass


def _tokens(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    text = text.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            raise ExpressionError(f"cannot parse expression at {text[pos:]!r}")
        kind = m.lastgroup
        assert kind is not None
        out.append((kind, m.group(kind)))
        pos = m.end()
        while pos < len(text) and text[pos].isspace():
            pos += 1
    return out


def truthy(value: Any) -> bool:
    if value is None or value is False:
        return False
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value != 0
    if isinstance(value, str):
        return value != ""
    return True


def _number(value: Any) -> float:
    if value is None:
        return 0.0
    if isinstance(value, bool | int | float):
        return float(value)
    text = str(value).strip()
    if not text:
        return 0.0
    try:
        return float(text)
    except ValueError:
        return float("nan")


def _loose_eq(a: Any, b: Any) -> bool:
    """GitHub's ``==``: strings case-insensitively; other mixed types compared as numbers."""
    if isinstance(a, str) and isinstance(b, str):
        return a.lower() == b.lower()
    if type(a) is type(b):
        return bool(a == b)
    return _number(a) == _number(b)


class _Parser:
    def __init__(self, tokens: list[tuple[str, str]], ctx: Mapping[str, Any], funcs: Mapping[str, Callable[[], Any]]):
        self.t = tokens
        self.i = 0
        self.ctx = ctx
        self.funcs = funcs

    def peek(self) -> tuple[str, str] | None:
        return self.t[self.i] if self.i < len(self.t) else None

    def take(self, value: str | None = None) -> tuple[str, str]:
        tok = self.peek()
        if tok is None or (value is not None and tok[1] != value):
            raise ExpressionError(f"expected {value or 'a token'}, got {tok}")
        self.i += 1
        return tok

    def parse(self) -> Any:
        value = self.or_()
        if self.peek() is not None:
            raise ExpressionError(f"unexpected {self.peek()}")
        return value

    def or_(self) -> Any:
        left = self.and_()
        while self.peek() == ("op", "||"):
            self.take()
            right = self.and_()
            left = left if truthy(left) else right
        return left

    def and_(self) -> Any:
        left = self.cmp()
        while self.peek() == ("op", "&&"):
            self.take()
            right = self.cmp()
            left = right if truthy(left) else left
        return left

    def cmp(self) -> Any:
        left = self.unary()
        while self.peek() in (("op", "=="), ("op", "!=")):
            op = self.take()[1]
            right = self.unary()
            left = _loose_eq(left, right) if op == "==" else not _loose_eq(left, right)
        return left

    def unary(self) -> Any:
        if self.peek() == ("op", "!"):
            self.take()
            return not truthy(self.unary())
        return self.atom()

    def atom(self) -> Any:
        kind, value = self.take()
        if kind == "str":
            return value[1:-1].replace("''", "'")
        if kind == "num":
            return float(value) if "." in value else int(value)
        if kind == "op" and value == "(":
            inner = self.or_()
            self.take(")")
            return inner
        if kind == "name":
            if value in ("true", "false"):
                return value == "true"
            if value == "null":
                return None
            if self.peek() == ("op", "("):
                self.take("(")
                self.take(")")
                fn = self.funcs.get(value)
                if fn is None:
                    raise ExpressionError(f"unknown function {value}()")
                return fn()
            return self.lookup(value)
        raise ExpressionError(f"unexpected {value!r}")

    def lookup(self, dotted: str) -> Any:
        node: Any = self.ctx
        for part in dotted.split("."):
            if isinstance(node, Mapping):
                node = node.get(part)
            else:
                return None
        return node


def evaluate(expr: str, ctx: Mapping[str, Any], funcs: Mapping[str, Callable[[], Any]] | None = None) -> Any:
    text = expr.strip()
    if text.startswith("${{") and text.endswith("}}"):
        text = text[3:-2]
    return _Parser(_tokens(text), ctx, funcs or {}).parse()


def _as_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def interpolate(value: Any, ctx: Mapping[str, Any], funcs: Mapping[str, Callable[[], Any]] | None = None) -> str:
    text = _as_text(value)
    return re.sub(r"\$\{\{(.*?)\}\}", lambda m: _as_text(evaluate(m.group(1), ctx, funcs)), text)


# ---- the runner


@dataclass
class StepRun:
    name: str
    id: str | None
    uses: str | None = None
    skipped: bool = False
    exit_code: int | None = None
    stdout: str = ""
    stderr: str = ""
    outputs: dict[str, str] = field(default_factory=dict)
    summary: str = ""
    parent: str | None = None  # the composite step this one ran inside
    seconds: float = 0.0

    @property
    def outcome(self) -> str:
        if self.skipped:
            return "skipped"
        return "success" if not self.exit_code else "failure"


@dataclass
class WorkflowRun:
    workflow: str
    run_id: str
    status: str
    steps: list[StepRun]
    workspace: Path

    @property
    def summary(self) -> str:
        return "".join(s.summary for s in self.steps)

    @property
    def log(self) -> str:
        return "".join(s.stdout + s.stderr for s in self.steps)

    @property
    def annotations(self) -> list[str]:
        return [line for s in self.steps for line in s.stdout.splitlines() if line.startswith("::")]

    def step(self, name: str) -> StepRun:
        for s in self.steps:
            if s.name == name:
                return s
        raise KeyError(name)

    def ran(self) -> list[str]:
        return [s.name for s in self.steps if not s.skipped and s.parent is None]


def _parse_env_file(path: Path) -> dict[str, str]:
    """``name=value`` lines and ``name<<DELIM`` blocks, as GitHub reads GITHUB_OUTPUT / GITHUB_ENV."""
    out: dict[str, str] = {}
    if not path.exists():
        return out
    lines = path.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            name, delim = line.split("<<", 1)
            block: list[str] = []
            i += 1
            while i < len(lines) and lines[i] != delim:
                block.append(lines[i])
                i += 1
            out[name] = "\n".join(block)
        elif "=" in line:
            name, value = line.split("=", 1)
            out[name] = value
        i += 1
    return out


def _on(workflow: Mapping[Any, Any]) -> Mapping[str, Any]:
    # PyYAML reads the bare key `on` as the boolean True (YAML 1.1).
    value = workflow.get("on", workflow.get(True))
    if isinstance(value, Mapping):
        return value
    return {str(value): {}} if value else {}


@dataclass
class Rehearsal:
    project: Path  # the project whose actions/ and .github/workflows/ are rehearsed
    remote: Path  # bare repository: origin of every checkout
    root: Path  # where workspaces and runner temp folders are made
    env: dict[str, str]  # the machine's environment (ANTHROPIC_BASE_URL, GITHUB_API_URL, …)
    secrets: dict[str, str]
    token: str  # github.token
    vars: dict[str, str] = field(default_factory=dict)
    repository: str = "octo/app"
    branch: str = "main"
    step_timeout: float = 120.0
    before_step: Callable[[str, WorkflowRun], None] | None = None
    _runs: int = 0
    _steps_run: int = 0

    def run(
        self, workflow_file: str | Path, *, event: str = "schedule", inputs: Mapping[str, Any] | None = None
    ) -> WorkflowRun:
        path = self.project / workflow_file
        workflow = yaml.safe_load(path.read_text(encoding="utf-8"))
        self._runs += 1
        run_id = str(1000 + self._runs)
        run_dir = self.root / f"run-{run_id}"
        workspace = run_dir / "workspace"
        temp = run_dir / "runner-temp"
        temp.mkdir(parents=True)
        (run_dir / "home").mkdir()
        given = dict(inputs or {})
        declared = (_on(workflow).get("workflow_dispatch") or {}).get("inputs") or {}
        resolved_inputs: dict[str, Any] = {}
        if event == "workflow_dispatch":
            for name, spec in declared.items():
                resolved_inputs[name] = given.get(name, (spec or {}).get("default"))
        elif given:
            raise ValueError("inputs exist only for workflow_dispatch")
        (job_name, job), *rest = workflow["jobs"].items()
        if rest:
            raise ValueError("the rehearsal runs single-job workflows")
        bin_dir = str(Path(sys.executable).parent)
        base = {
            **self.env,
            "PATH": bin_dir + os.pathsep + self.env.get("PATH", os.environ.get("PATH", "")),
            "HOME": str(run_dir / "home"),
            "CI": "true",
            "GITHUB_ACTIONS": "true",
            "GITHUB_WORKFLOW": str(workflow.get("name") or path.name),
            "GITHUB_JOB": job_name,
            "GITHUB_RUN_ID": run_id,
            "GITHUB_RUN_NUMBER": str(self._runs),
            "GITHUB_RUN_ATTEMPT": "1",
            "GITHUB_EVENT_NAME": event,
            "GITHUB_REPOSITORY": self.repository,
            "GITHUB_REF": f"refs/heads/{self.branch}",
            "GITHUB_REF_NAME": self.branch,
            "GITHUB_REF_TYPE": "branch",
            "GITHUB_WORKSPACE": str(workspace),
            "RUNNER_TEMP": str(temp),
            "RUNNER_OS": "Linux",
        }
        base.pop("GITHUB_TOKEN", None)  # only the steps that ask for it get it
        result = WorkflowRun(str(workflow.get("name")), run_id, "success", [], workspace)
        ctx: dict[str, Any] = {
            "inputs": resolved_inputs,
            "github": {
                "token": self.token,
                "event_name": event,
                "repository": self.repository,
                "ref": base["GITHUB_REF"],
                "ref_name": self.branch,
                "run_id": run_id,
                "workspace": str(workspace),
                "workflow": base["GITHUB_WORKFLOW"],
            },
            "secrets": {**self.secrets, "GITHUB_TOKEN": self.token},
            "vars": dict(self.vars),
            "runner": {"temp": str(temp), "os": "Linux"},
            "steps": {},
            "job": {"status": "success"},
        }
        env: dict[str, str] = dict(base)
        for scope in (workflow.get("env") or {}, job.get("env") or {}):
            for k, v in scope.items():
                env[k] = interpolate(v, {**ctx, "env": env})
        for index, step in enumerate(job.get("steps") or []):
            name = str(step.get("name") or step.get("uses") or step.get("run", "")[:40])
            if self.before_step is not None:
                self.before_step(name, result)
            self._step(step, name, index, ctx, env, result, workspace, temp, parent=None)
        return result

    # -- one step

    def _funcs(self, status: Callable[[], str]) -> dict[str, Callable[[], Any]]:
        return {
            "success": lambda: status() == "success",
            "failure": lambda: status() == "failure",
            "always": lambda: True,
            "cancelled": lambda: False,
        }

    def _should_run(self, step: Mapping[str, Any], ctx: Mapping[str, Any], status: Callable[[], str]) -> bool:
        cond = step.get("if")
        if cond is None:
            return status() == "success"
        text = _as_text(cond).strip()
        if text.startswith("${{") and text.endswith("}}"):
            text = text[3:-2]
        if not any(f in text for f in _STATUS_FUNCS):
            text = f"success() && ({text})"
        return truthy(evaluate(text, ctx, self._funcs(status)))

    def _step(
        self,
        step: Mapping[str, Any],
        name: str,
        index: int,
        ctx: dict[str, Any],
        env: dict[str, str],
        result: WorkflowRun,
        workspace: Path,
        temp: Path,
        *,
        parent: str | None,
        local_status: list[str] | None = None,
    ) -> StepRun:
        def status() -> str:
            if result.status != "success":
                return result.status
            if local_status and "failure" in local_status:
                return "failure"
            return "success"

        record = StepRun(name=name, id=step.get("id"), uses=step.get("uses"), parent=parent)
        result.steps.append(record)
        if not self._should_run(step, {**ctx, "env": env}, status):
            record.skipped = True
            self._record(ctx, record)
            return record
        step_env = dict(env)
        for k, v in (step.get("env") or {}).items():
            step_env[k] = interpolate(v, {**ctx, "env": env}, self._funcs(status))
        uses = step.get("uses")
        if uses:
            self._uses(str(uses), step, record, ctx, step_env, result, workspace, temp)
        else:
            self._run(str(step["run"]), record, step_env, workspace, temp, index, env)
        if record.exit_code and not step.get("continue-on-error"):
            if local_status is not None:
                local_status.append("failure")
            result.status = "failure"
        self._record(ctx, record)
        return record

    @staticmethod
    def _record(ctx: dict[str, Any], record: StepRun) -> None:
        if record.id:
            ctx["steps"][record.id] = {"outputs": dict(record.outputs), "outcome": record.outcome,
                                       "conclusion": record.outcome}

    def _run(
        self, script: str, record: StepRun, env: dict[str, str], workspace: Path, temp: Path, index: int,
        job_env: dict[str, str],
    ) -> None:
        if "${{" in script:
            raise ExpressionError(f"step {record.name!r}: `${{{{ }}}}` inside run: (inputs must come through env:)")
        self._steps_run += 1
        stem = temp / f"step-{self._steps_run}"
        files = {k: Path(f"{stem}.{k.lower()}") for k in ("GITHUB_OUTPUT", "GITHUB_ENV", "GITHUB_STEP_SUMMARY")}
        for p in files.values():
            p.write_text("", encoding="utf-8")
        script_path = Path(f"{stem}.sh")
        script_path.write_text(script, encoding="utf-8")
        full_env = {**env, **{k: str(v) for k, v in files.items()}}
        cwd = workspace if workspace.exists() else temp
        started = time.monotonic()
        proc = subprocess.run(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script_path)],
            cwd=cwd, env=full_env, capture_output=True, encoding="utf-8", errors="replace",
            timeout=self.step_timeout, check=False,
        )
        record.seconds = time.monotonic() - started
        record.exit_code = proc.returncode
        record.stdout, record.stderr = proc.stdout, proc.stderr
        record.outputs = _parse_env_file(files["GITHUB_OUTPUT"])
        record.summary = files["GITHUB_STEP_SUMMARY"].read_text(encoding="utf-8")
        job_env.update(_parse_env_file(files["GITHUB_ENV"]))

    def _uses(
        self, uses: str, step: Mapping[str, Any], record: StepRun, ctx: dict[str, Any], env: dict[str, str],
        result: WorkflowRun, workspace: Path, temp: Path,
    ) -> None:
        with_raw = step.get("with") or {}
        if uses.startswith("actions/checkout@"):
            proc = subprocess.run(
                ["git", "clone", "-q", "--depth", "1", "--branch", self.branch, f"file://{self.remote}",
                 str(workspace)],
                env={**env, "GIT_CONFIG_NOSYSTEM": "1"}, capture_output=True, text=True, check=False,
            )
            record.exit_code, record.stdout, record.stderr = proc.returncode, proc.stdout, proc.stderr
            return
        if uses.startswith("actions/setup-python@") or uses == "./actions/setup":
            record.exit_code = 0
            record.stdout = f"(rehearsal) {uses}: using {sys.executable}\n"
            return
        if not uses.startswith("./actions/"):
            raise ValueError(f"the rehearsal has no local equivalent for {uses}")
        action_path = self.project / uses[2:] / "action.yml"
        action = yaml.safe_load(action_path.read_text(encoding="utf-8"))
        runs = action.get("runs") or {}
        if runs.get("using") != "composite":
            raise ValueError(f"{uses}: only composite actions are rehearsed")
        inputs: dict[str, Any] = {}
        for name, spec in (action.get("inputs") or {}).items():
            default = (spec or {}).get("default")
            inputs[name] = interpolate(default, {**ctx, "env": env}) if default is not None else ""
        for name, value in with_raw.items():
            inputs[name] = interpolate(value, {**ctx, "env": env})
        inner_ctx = {**ctx, "inputs": inputs, "steps": {}}
        local: list[str] = []
        inner_steps: list[StepRun] = []
        for index, inner in enumerate(runs.get("steps") or []):
            if inner.get("uses"):
                raise ValueError(f"{uses}: nested uses: in a composite is not rehearsed")
            if inner.get("shell") != "bash":
                raise ValueError(f"{uses}: composite run steps must say shell: bash")
            name = f"{record.name} / {inner.get('name') or index}"
            inner_steps.append(self._step(inner, name, index, inner_ctx, dict(env), result, workspace, temp,
                                          parent=record.name, local_status=local))
        ran = [s for s in inner_steps if not s.skipped]
        record.exit_code = next((s.exit_code for s in ran if s.exit_code), 0)
        outputs = {}
        for name, spec in (action.get("outputs") or {}).items():
            outputs[name] = interpolate((spec or {}).get("value", ""), {**inner_ctx, "env": env})
        record.outputs = outputs
        # The composite's own failure already marked the job; the record carries the code.
        if record.exit_code:
            result.status = "failure"

