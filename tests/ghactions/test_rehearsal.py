"""Workflow rehearsal: batch-submit and batch-reconcile run step by step with bash, as a runner would.

The API is the sandbox, GitHub is the fake (alerts), origin is a bare repository, and `uses:` steps
are their local equivalents (see ``batch_ops.testing.rehearsal``). One scenario, in order:
a scheduled submit; a reconcile that completes the jobs and commits (over someone else's push);
new work; a reconcile during a provider outage (paused, one alert issue); a second outage run
(a comment on it); the recovery run (resume, reconcile: the outage issue closes, and the
request the provider rejected meanwhile opens the failed-items issue).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from batch_ops.sandbox import SandboxServer
from batch_ops.testing.fake_github import FakeGitHub
from batch_ops.testing.rehearsal import Rehearsal, WorkflowRun
from tests.conftest import SAMPLE, TEST_KEY
from tests.ghactions.gitutil import git, make_remote, push_change, remote_file, remote_log
from tests.ghactions.state import GH_TOKEN, REPO

PROJECT = Path(__file__).resolve().parents[2]
SUBMIT = ".github/workflows/batch-submit.yml"
RECONCILE = ".github/workflows/batch-reconcile.yml"
BOT = "github-actions[bot] <41898282+github-actions[bot]@users.noreply.github.com>"
QUEUE = ".backlog-ops/batch-queue.jsonl"
PAUSE = ".backlog-ops/paused.json"


@pytest.fixture
def world(tmp_path: Path) -> Iterator[dict[str, Any]]:
    src = tmp_path / "src"
    shutil.copytree(SAMPLE, src, ignore=shutil.ignore_patterns("README.md"))
    config = json.loads((src / "backlog.config.json").read_text())
    config["llmOps"]["batchPolicy"]["retryPolicy"].update(initialDelaySeconds=0.01, maxDelaySeconds=0.05)
    # One phase keeps the workflow arithmetic readable; refinement would also (rightly) edit tickets,
    # which makes the next run see new validation work. tests/test_phases.py covers all four.
    config["llmOps"]["batchPolicy"]["eligiblePhases"] = ["bulk-ticket-validation"]
    # Even one request goes through the batch path (the scenario below needs a batch to reject it);
    # interactive mode is dispatched explicitly at the end of the second test.
    config["llmOps"]["batchPolicy"]["forceBatchWhenQueueOver"] = 1
    (src / "backlog.config.json").write_text(json.dumps(config, indent=2) + "\n")
    (src / ".gitignore").write_text(".backlog-ops/.lock\n")
    os.environ.setdefault("GIT_CONFIG_NOSYSTEM", "1")
    bare = make_remote(tmp_path, src)
    with SandboxServer(processing_seconds=0.4) as sandbox, FakeGitHub(token=GH_TOKEN, repos=[REPO]) as gh:
        env = {
            "PATH": os.environ["PATH"],
            "LANG": "C.UTF-8",
            "GIT_CONFIG_GLOBAL": os.devnull,
            "GIT_CONFIG_NOSYSTEM": "1",
            "ANTHROPIC_BASE_URL": sandbox.url,
            "BATCH_OPS_HTTP_TIMEOUT": "10",
            "GITHUB_API_URL": gh.url,
            "GITHUB_SERVER_URL": gh.root,
            "BATCH_OPS_GITHUB_BACKOFF": "0.01",
        }
        rehearsal = Rehearsal(
            project=PROJECT, remote=bare, root=tmp_path / "runner", env=env,
            secrets={"ANTHROPIC_API_KEY": TEST_KEY}, token=GH_TOKEN, repository=REPO,
        )  # fmt: skip
        yield {"bare": bare, "sandbox": sandbox, "gh": gh, "r": rehearsal, "other": tmp_path / "person"}


def describe(run: WorkflowRun) -> str:
    return "\n".join(f"{s.name}: {s.exit_code} {s.stdout[-800:]} {s.stderr[-1500:]}" for s in run.steps)


def no_secrets(run: WorkflowRun) -> None:
    for text in (run.log, run.summary):
        assert TEST_KEY not in text and GH_TOKEN not in text


def jobs_on_remote(bare: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in remote_file(bare, QUEUE).splitlines()]


def wait_for_batches(sandbox: SandboxServer, limit: float = 10.0) -> None:
    end = time.monotonic() + limit
    while time.monotonic() < end:
        if all(b.get("processing_status") == "ended" for b in sandbox.batch_summaries()):
            return
        time.sleep(0.1)
    raise AssertionError("sandbox batches did not end")


def test_rehearsal_submit_reconcile_outage_recovery(world: dict[str, Any]) -> None:
    r: Rehearsal = world["r"]
    bare: Path = world["bare"]
    gh: FakeGitHub = world["gh"]
    sandbox: SandboxServer = world["sandbox"]

    # 1. A scheduled submit: triage, enqueue, submit, commit; nothing to alert.
    run = r.run(SUBMIT)
    assert run.status == "success", describe(run)
    assert run.ran() == ["Check out", "Set up batch-ops", "Triage (zero tokens)", "Enqueue (zero tokens)",
                         "Submit", "Job summary", "Commit state", "Sync alerts"]  # fmt: skip
    assert remote_log(bare)[0] == f"{BOT} | batch-ops: enqueued 2 jobs, submitted 2 batches"
    assert [j["status"] for j in jobs_on_remote(bare)] == ["submitted", "submitted"]
    assert sandbox.calls["create"] == 2
    assert "### Jobs" in run.summary and "| submitted |" in run.summary.replace("**", "")
    assert gh.issues(REPO) == []
    no_secrets(run)
    print(_timings(run))

    # 2. A reconcile that completes the jobs; someone else pushes just before the commit step.
    wait_for_batches(sandbox)

    def person_pushes(step: str, _run: WorkflowRun) -> None:
        if step == "Commit state":
            push_change(bare, world["other"], {"NOTES.md": "a person was here\n"}, "notes: a person")

    r.before_step = person_pushes
    run = r.run(RECONCILE)
    r.before_step = None
    assert run.status == "success", describe(run)
    log = remote_log(bare)
    assert log[0].startswith(f"{BOT} | batch-ops: completed 2 jobs, settled 11 requests")
    assert log[1].endswith("notes: a person")
    assert remote_file(bare, "NOTES.md") == "a person was here\n"
    assert [j["status"] for j in jobs_on_remote(bare)] == ["completed", "completed"]
    assert len(remote_file(bare, ".backlog-ops/usage-ledger.jsonl").splitlines()) == 11
    assert remote_file(bare, ".backlog-ops/reports/validation.md")
    assert "| requests settled | 11 (succeeded 11) |" in run.summary
    assert "saved against interactive" in run.summary
    assert "after 2 attempt(s), 1 rebase(s)" in run.step("Commit state / Commit and push state").stdout
    assert gh.issues(REPO) == []
    no_secrets(run)
    print(_timings(run))

    # 3. New work: a person changes a ticket; the next scheduled submit sends one new job (whose one
    #    request the provider will reject as invalid, to be listed by the failed-items alert later).
    sandbox.set_scenario({"requests": {"invalid_every": 1}})
    ticket = "backlog/data/pending/FEAT-026-expense-receipts.md"
    push_change(bare, world["other"], {ticket: remote_file(bare, ticket) + "\nOne more line.\n"}, "edit ticket")
    run = r.run(SUBMIT)
    assert run.status == "success", describe(run)
    assert remote_log(bare)[0] == f"{BOT} | batch-ops: enqueued 1 job, submitted 1 batch"
    wait_for_batches(sandbox)

    # 4. A reconcile during a provider outage: the queue pauses, the state is committed, one issue opens.
    sandbox.set_scenario({"endpoints": {"retrieve": ["500"]}})
    run = r.run(RECONCILE)
    assert run.status == "failure"
    assert run.step("Reconcile and apply").exit_code == 3
    assert run.ran() == ["Check out", "Set up batch-ops", "Reconcile and apply", "Job summary", "Commit state",
                         "Alert on failure"]  # fmt: skip
    assert remote_log(bare)[0] == f"{BOT} | batch-ops: queue paused (outage)", describe(run)
    assert json.loads(remote_file(bare, PAUSE))["kind"] == "outage"
    assert any(a.startswith("::error title=batch-ops%3A queue paused::") for a in run.annotations)
    assert "[!WARNING]" in run.summary and "paused" in run.summary
    (issue,) = gh.issues(REPO)
    assert issue["state"] == "open" and issue["title"] == "batch-ops: provider outage, queue paused"
    assert "<!-- batch-ops-alert-key: provider-outage -->" in issue["body"]
    assert f"/{REPO}/actions/runs/{run.run_id}" in issue["body"]
    assert "HTTP 500" in issue["body"] and "batch-ops resume" in issue["body"]
    no_secrets(run)
    print(_timings(run))

    # 5. The outage goes on: the next scheduled reconcile comments on the same issue.
    run = r.run(RECONCILE)
    assert run.status == "failure" and run.step("Reconcile and apply").exit_code == 3
    (issue,) = gh.issues(REPO)
    assert len(issue["comments"]) == 1 and f"/actions/runs/{run.run_id}" in issue["comments"][0]

    # 6. Recovery: the provider is back; the operator dispatches reconcile with resume.
    sandbox.set_scenario(None)
    run = r.run(RECONCILE, event="workflow_dispatch", inputs={"resume": True})
    assert run.status == "success", describe(run)
    assert "Resume the queue" in run.ran() and "Close cleared alerts" in run.ran()
    assert remote_log(bare)[0].startswith(f"{BOT} | batch-ops: queue resumed, failed 1 job, settled 1 request")
    assert PAUSE not in git(bare, "ls-tree", "-r", "--name-only", "main")
    outage, failed = gh.issues(REPO)
    assert outage["state"] == "closed" and "Resolved" in outage["comments"][-1]
    assert f"/actions/runs/{run.run_id}" in outage["comments"][-1]
    # The job that ended in this run had a rejected request: listed with its error, for the operator.
    assert failed["state"] == "open" and failed["title"] == "batch-ops: requests failed"
    assert "FEAT-026" in failed["body"] and "invalid_request_error" in failed["body"]
    assert any("failed request" in a and "FEAT-026" in a for a in run.annotations)
    no_secrets(run)
    print(_timings(run))

    # Nothing secret ever reached the repository or the issues.
    history = git(bare, "log", "-p", "--all")
    assert TEST_KEY not in history and GH_TOKEN not in history
    everything = json.dumps(gh.issues(REPO))
    assert TEST_KEY not in everything and GH_TOKEN not in everything


def test_rehearsal_dry_run_and_a_failing_step(world: dict[str, Any]) -> None:
    r: Rehearsal = world["r"]
    bare: Path = world["bare"]
    gh: FakeGitHub = world["gh"]
    before = remote_log(bare)

    run = r.run(SUBMIT, event="workflow_dispatch", inputs={"dry_run": True, "phases": "bulk-ticket-validation"})
    assert run.status == "success", describe(run)
    assert "Submit" not in run.ran() and "Commit state" not in run.ran()
    assert remote_log(bare) == before and world["sandbox"].calls.get("create", 0) == 0

    # A phase the policy does not allow is refused with exit 2; the failure opens the workflow's alert issue.
    run = r.run(SUBMIT, event="workflow_dispatch", inputs={"phases": "refinement"})
    assert run.status == "failure" and run.step("Enqueue (zero tokens)").exit_code == 2
    assert "not in llmOps.batchPolicy.eligiblePhases" in run.step("Enqueue (zero tokens)").stderr
    (issue,) = gh.issues(REPO)
    assert issue["title"] == "batch-ops: the batch-submit workflow failed"
    assert f"/actions/runs/{run.run_id}" in issue["body"]
    assert remote_log(bare) == before  # nothing changed: no commit

    # The next good run of that workflow closes it; asked for interactive mode, it runs the requests
    # through the Messages API at once and commits them completed.
    run = r.run(SUBMIT, event="workflow_dispatch", inputs={"mode": "interactive"})
    assert run.status == "success", describe(run)
    assert gh.issues(REPO)[0]["state"] == "closed"
    sandbox: SandboxServer = world["sandbox"]
    assert sandbox.calls["messages"] == 11 and sandbox.calls["create"] == 0
    assert [(j["mode"], j["status"]) for j in jobs_on_remote(bare)] == [("interactive", "completed")] * 2


def _timings(run: WorkflowRun) -> str:
    return ", ".join(f"{s.name}={s.seconds:.1f}" for s in run.steps if s.seconds)
