"""Part 4 of #7: a sentinel API key and GitHub token never show up anywhere batch-ops writes.

The whole cycle and its failure paths (auth error on submit and on reconcile, an outage) run as
separate processes, as a workflow would run them, with the SDK's debug logging on and a sandbox
that quotes the key back in its error messages. Then stdout, stderr, the job summary, every file
in the repository and every object in its git history are searched for the sentinels.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import anthropic
import httpx2 as httpx
import pytest

from batch_ops.providers.anthropic import translate
from batch_ops.sandbox import SandboxServer
from batch_ops.secrets import REDACTED, redact
from batch_ops.testing.fake_github import FakeGitHub

SENTINEL_KEY = "sk-ant-api03-SENTINELKEY-" + "a1B2c3D4" * 5
SENTINEL_GH = "ghp_SENTINELGH" + "Z9y8X7w6" * 4
FRAGMENTS = (SENTINEL_KEY, SENTINEL_GH, "SENTINELKEY", "SENTINELGH", "a1B2c3D4a1B2", "Z9y8X7w6Z9y8")


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True, errors="replace"
    ).stdout


def _commit(repo: Path, message: str) -> None:
    _git(repo, "add", "-A")
    if _git(repo, "status", "--porcelain"):
        _git(repo, "-c", "user.name=github-actions[bot]", "-c", "user.email=bot@example.invalid",
             "commit", "-q", "-m", message)  # fmt: skip


def _leaks(text: str) -> list[str]:
    return [f for f in FRAGMENTS if f in text]


GH_REPO = "acme/invoices"


class Runner:
    def __init__(self, repo: Path, sandbox: SandboxServer, gh: FakeGitHub, tmp: Path) -> None:
        self.repo = repo
        self.tmp = tmp
        self.summary = tmp / "step-summary.md"
        self.output = tmp / "github-output"
        self.env = {
            **os.environ,
            "ANTHROPIC_API_KEY": SENTINEL_KEY,
            "ANTHROPIC_BASE_URL": sandbox.url,
            "ANTHROPIC_LOG": "debug",  # the SDK's own logging, as a user debugging a run might set it
            "GITHUB_ACTIONS": "true",  # annotations are printed too
            "GITHUB_TOKEN": SENTINEL_GH,
            "GITHUB_REPOSITORY": GH_REPO,
            "GITHUB_API_URL": gh.url,
            "GITHUB_SERVER_URL": gh.root,
            "GITHUB_RUN_ID": "777",
            "GITHUB_WORKFLOW": "batch-reconcile",
            "GITHUB_STEP_SUMMARY": str(self.summary),
            "GITHUB_OUTPUT": str(self.output),
            "BATCH_OPS_HTTP_TIMEOUT": "10",
            "BATCH_OPS_GITHUB_BACKOFF": "0.01",
            "BATCH_OPS_GITHUB_ATTEMPTS": "2",
        }
        self.seen: list[str] = []
        self.runs = 0

    def __call__(self, *args: str) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [sys.executable, "-m", "batch_ops", *args, "--repo", str(self.repo)],
            env=self.env, capture_output=True, text=True, timeout=120, errors="replace",
        )
        self.seen.append(f"$ batch-ops {' '.join(args)} -> {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
        return proc

    def step(self, *args: str) -> tuple[int, str]:
        """A workflow step: ``--json`` output kept in a run file, then the job summary and an alert check."""
        proc = self(*args, "--json")
        self.runs += 1
        record = self.tmp / f"run-{self.runs}.json"
        record.write_text(proc.stdout)
        assert self("summary", "--run", str(record)).returncode == 0
        alert = self("alert", "check", "--run", str(record))
        assert alert.returncode == 0, alert.stderr
        return proc.returncode, str(record)


def test_no_sentinel_anywhere_after_the_cycle_and_every_failure_path(
    sample_repo: Path, sandbox: SandboxServer, tmp_path: Path
) -> None:
    repo = sample_repo
    (repo / "backlog.config.json").write_text(
        json.dumps(
            {"llmOps": {"batchPolicy": {"forceBatchWhenQueueOver": 0,
                                        "retryPolicy": {"maxRetries": 1, "initialDelaySeconds": 0}}}}
        )
    )
    _git(repo, "init", "-q")
    _commit(repo, "sample backlog")
    with FakeGitHub(token=SENTINEL_GH, repos=[GH_REPO]) as gh:
        run = Runner(repo, sandbox, gh, tmp_path)
        _every_path(run, repo, sandbox, gh)
        issues = gh.issues(GH_REPO)

    # The alerts were really raised, commented on and (auth, outage) closed on recovery.
    assert len(issues) >= 3 and any(i["state"] == "closed" for i in issues)
    bodies = json.dumps(issues)
    assert "auth" in bodies.lower() and "outage" in bodies.lower()
    assert not _leaks(bodies), "a sentinel reached an issue on GitHub"

    printed = "\n".join(run.seen)
    assert not _leaks(printed), [s for s in run.seen if _leaks(s)][:1]
    assert run.summary.exists() and "Jobs" in run.summary.read_text()
    for path in (run.summary, run.output, *tmp_path.glob("run-*.json")):
        assert not path.exists() or not _leaks(path.read_text(errors="replace")), path
    files = [p for p in repo.rglob("*") if p.is_file()]
    assert any(".backlog-ops" in p.parts for p in files)
    for path in files:
        assert not _leaks(path.read_bytes().decode("latin-1")), path
    history = subprocess.run(
        ["git", "-C", str(repo), "cat-file", "--batch-all-objects", "--batch"], capture_output=True, check=True
    ).stdout.decode("latin-1")
    assert "auth-billing" in history or "outage" in history  # the pause states were committed
    assert not _leaks(history)
    assert not _leaks(_git(repo, "log", "--all", "-p"))


def _every_path(run: Runner, repo: Path, sandbox: SandboxServer, gh: FakeGitHub) -> None:
    # 1. The happy path.
    code, _ = run.step("cycle", "--wait", "--poll", "0.2", "--timeout", "30")
    assert code == 0
    assert run("status").returncode == 0
    _commit(repo, "cycle")

    def touch_ticket(n: int) -> None:
        path = repo / "backlog/data/pending/FEAT-026-expense-receipts.md"
        path.write_bytes(path.read_bytes() + f"\nChange {n}.\n".encode())

    # 2. Auth error on submit, the provider quoting the key back: paused, alert opened.
    touch_ticket(1)
    sandbox.set_scenario({"endpoints": {"create": ["401"]}, "echo_credentials": True})
    assert run("enqueue", "--batch").returncode == 0
    auth = run("submit")
    assert auth.returncode == 4 and REDACTED in auth.stderr  # the echo arrived and was scrubbed
    assert run("alert", "auth-billing").returncode == 0
    assert run("status").returncode == 0
    _commit(repo, "auth stop")
    assert run("resume").returncode == 0

    # 3. An outage: 5xx on every call; the alert, then a GitHub error that quotes the token.
    sandbox.set_scenario({"endpoints": {"create": ["500"]}, "echo_credentials": True})
    code, _ = run.step("submit")
    assert code == 3
    gh.fail_next("POST", rf"/repos/{GH_REPO}/issues(/\d+/comments)?", 500, times=2,
                 message=f"Bad credentials: token {SENTINEL_GH} (Authorization: Bearer {SENTINEL_GH})")  # fmt: skip
    failed_alert = run("alert", "provider-outage", "--message", "still down")
    assert failed_alert.returncode == 1 and "alert not delivered" in failed_alert.stderr
    _commit(repo, "outage")
    assert run("resume").returncode == 0

    # 4. Auth error while reconciling.
    sandbox.set_scenario({})
    assert run("submit").returncode == 0
    sandbox.set_scenario({"endpoints": {"retrieve": ["403"]}, "echo_credentials": True})
    code, _ = run.step("reconcile")
    assert code == 4
    _commit(repo, "auth stop on reconcile")
    assert run("resume").returncode == 0
    sandbox.set_scenario({})
    code, _ = run.step("cycle", "--wait", "--poll", "0.2", "--timeout", "30")  # recovery closes the alerts
    assert code == 0
    _commit(repo, "recovered")

    # 5. A bad config is reported, with the key in the environment all along.
    (repo / "backlog.config.json").write_text('{"llmOps": {"batchPolicy": {"maxConcurrentBatchJobs": 0}}}')
    assert run("config", "validate").returncode == 1
    assert run("submit").returncode == 1
    assert run("alert", "workflow-failure", "--message", "submit failed").returncode == 0


def _status_error(body: dict[str, Any], status: int = 401) -> anthropic.APIStatusError:
    request = httpx.Request(
        "POST", "https://api.anthropic.com/v1/messages/batches",
        headers={"x-api-key": SENTINEL_KEY, "authorization": f"Bearer {SENTINEL_KEY}"},
        content=json.dumps({"requests": [{"custom_id": "a", "params": {"api_key": SENTINEL_KEY}}]}).encode(),
    )  # fmt: skip
    response = httpx.Response(status, json=body, request=request, headers={"set-cookie": SENTINEL_GH})
    cls = {401: anthropic.AuthenticationError, 500: anthropic.InternalServerError}.get(status, anthropic.APIStatusError)
    return cls(f"Error code: {status} - {json.dumps(body)}", response=response, body=body)


@pytest.mark.parametrize(
    "exc",
    [
        _status_error({"type": "error", "error": {"type": "authentication_error",
                                                  "message": f"invalid x-api-key: {SENTINEL_KEY}"}}),
        _status_error({"type": "error", "error": {"type": "api_error", "message": f"Bearer {SENTINEL_KEY}"}}, 500),
        _status_error({"type": "error", "error": {"type": "x", "message": "token " + SENTINEL_GH}}, 418),
        anthropic.APIConnectionError(request=httpx.Request("GET", "https://x", headers={"x-api-key": SENTINEL_KEY})),
    ],
    ids=["401-echoing-key", "500-echoing-bearer", "418-echoing-github-token", "connection"],
)  # fmt: skip
def test_sdk_exceptions_are_rendered_without_headers_bodies_or_keys(
    exc: Exception, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", SENTINEL_KEY)
    err = translate(exc, "create batch")
    for text in (err.message, str(err), repr(err.args)):
        assert not _leaks(text), text
    assert err.message.startswith("create batch: ")
    assert "api_key" not in err.message and "custom_id" not in err.message  # no request body


def test_redact_knows_the_environment_and_token_shapes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GITHUB_TOKEN", "plain-looking-token-value")
    assert redact("got plain-looking-token-value back") == f"got {REDACTED} back"
    assert redact("x-api-key: abc123xyz") == REDACTED
    assert redact("github_pat_11ABCDEFG0123456789_abcdef") == REDACTED
    assert redact("the key sk-ant-admin01-abcdef is wrong") == f"the key {REDACTED} is wrong"
    assert redact("nothing here") == "nothing here"


def test_github_exceptions_are_rendered_without_headers_or_bodies() -> None:
    from github import GithubException

    from batch_ops.github.alerts import describe_error

    exc = GithubException(
        401,
        {"message": "Bad credentials", "documentation_url": "https://docs", "request": {"token": SENTINEL_GH}},
        {"authorization": f"token {SENTINEL_GH}", "x-github-request-id": "1"},
    )
    assert SENTINEL_GH in str(exc)  # PyGithub's own str() carries the body: never print it
    text = describe_error(exc)
    assert text == "HTTP 401 Bad credentials" and not _leaks(text)
