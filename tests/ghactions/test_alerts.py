"""`batch-ops alert` against the fake GitHub, through real PyGithub over HTTP."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from batch_ops.cli import main
from batch_ops.github.alerts import ALERT_LABEL
from batch_ops.testing.fake_github import FakeGitHub
from tests.ghactions.state import GH_TOKEN, REPO, job, pause, write_jobs, write_results

ISSUES = rf"/repos/{REPO}/issues"


@pytest.fixture
def gh() -> Iterator[FakeGitHub]:
    with FakeGitHub(token=GH_TOKEN, repos=[REPO]) as srv:
        yield srv


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    return root


@pytest.fixture
def alert(gh: FakeGitHub, repo: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Any:
    for name, value in {
        "GITHUB_TOKEN": GH_TOKEN,
        "GITHUB_REPOSITORY": REPO,
        "GITHUB_API_URL": gh.url,
        "GITHUB_SERVER_URL": gh.root,
        "GITHUB_RUN_ID": "4242",
        "GITHUB_WORKFLOW": "batch-reconcile",
        "BATCH_OPS_GITHUB_BACKOFF": "0.01",
        "BATCH_OPS_GITHUB_TIMEOUT": "2",
    }.items():
        monkeypatch.setenv(name, value)

    def run(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = main(["alert", "--repo", str(repo), *args])
        out = capsys.readouterr()
        assert GH_TOKEN not in out.out + out.err
        return code, out.out, out.err

    return run


def only_issue(gh: FakeGitHub) -> dict[str, Any]:
    issues = gh.issues(REPO)
    assert len(issues) == 1, issues
    return issues[0]


def test_outage_opens_one_issue_a_repeat_comments_and_recovery_closes(alert: Any, gh: FakeGitHub, repo: Path) -> None:
    pause(repo)
    code, out, _ = alert("provider-outage")
    assert code == 0 and "opened #1" in out
    issue = only_issue(gh)
    assert issue["labels"] == [ALERT_LABEL] and issue["state"] == "open"
    assert "<!-- batch-ops-alert-key: provider-outage -->" in issue["body"]
    assert "batch-ops resume" in issue["body"] and "resume** ticked" in issue["body"]
    assert f"{gh.root}/{REPO}/actions/runs/4242" in issue["body"]
    assert "HTTP 500 api_error" in issue["body"]

    code, out, _ = alert("provider-outage", "--message", "second run")
    assert code == 0 and "commented #1" in out
    issue = only_issue(gh)
    assert len(issue["comments"]) == 1
    assert "Seen again" in issue["comments"][0] and "/actions/runs/4242" in issue["comments"][0]

    code, out, _ = alert("provider-outage", "--resolved", "--message", "provider is back")
    assert code == 0 and "closed #1" in out
    issue = only_issue(gh)
    assert issue["state"] == "closed" and "Resolved" in issue["comments"][-1]
    assert "provider is back" in issue["comments"][-1]

    code, out, _ = alert("provider-outage", "--resolved")
    assert code == 0 and "no open issue" in out
    assert len(gh.issues(REPO)) == 1
    # Found with the issue-list endpoint, never with Search (which lags).
    assert not any(path.startswith("/search") for _, path in gh.requests)


def test_a_new_occurrence_after_recovery_opens_a_new_issue(alert: Any, gh: FakeGitHub) -> None:
    assert alert("auth-billing")[0] == 0
    assert alert("auth-billing", "--resolved")[0] == 0
    assert alert("auth-billing")[0] == 0
    assert [i["state"] for i in gh.issues(REPO)] == ["closed", "open"]


@pytest.mark.parametrize(
    ("status", "headers", "after_effect"),
    [
        (502, {}, True),  # created, then the answer was lost
        (502, {}, False),
        (403, {"Retry-After": "0"}, True),  # secondary rate limit after the create happened
        (403, {"Retry-After": "0"}, False),
        (429, {}, False),
    ],
)
def test_failure_during_create_makes_no_duplicate(
    alert: Any, gh: FakeGitHub, status: int, headers: dict[str, str], after_effect: bool
) -> None:
    gh.fail_next("POST", ISSUES, status, headers=headers, after_effect=after_effect)
    code, _out, err = alert("workflow-failure", "--message", "reconcile exited 1")
    assert code == 0, err
    issue = only_issue(gh)
    assert issue["title"] == "batch-ops: the batch-reconcile workflow failed"
    assert "<!-- batch-ops-alert-key: workflow-failure:batch-reconcile -->" in issue["body"]
    posts = gh.requests.count(("POST", f"/repos/{REPO}/issues"))
    assert posts == (1 if after_effect else 2)


def test_timeout_after_the_create_happened_makes_no_duplicate(alert: Any, gh: FakeGitHub) -> None:
    gh.fail_next("POST", ISSUES, 201, after_effect=True, delay=2.5)
    code, _, err = alert("failed-items")
    assert code == 0, err
    only_issue(gh)


def test_rate_limit_on_the_list_is_waited_out(alert: Any, gh: FakeGitHub) -> None:
    gh.fail_next("GET", ISSUES, 403, headers={"Retry-After": "0"}, times=2)
    assert alert("provider-outage")[0] == 0
    only_issue(gh)


def test_github_outage_is_bounded_and_says_so(alert: Any, gh: FakeGitHub) -> None:
    gh.fail_next("GET", ISSUES, 503, times=100)
    code, _, err = alert("workflow-failure")
    assert code == 1
    assert "alert not delivered" in err and "HTTP 503" in err and "4 attempt(s)" in err
    assert gh.requests.count(("GET", f"/repos/{REPO}/issues")) == 4
    assert gh.issues(REPO) == []


def test_long_rate_limit_is_not_waited_for(alert: Any, gh: FakeGitHub, monkeypatch: pytest.MonkeyPatch) -> None:
    gh.fail_next("GET", ISSUES, 403, headers={"Retry-After": "3600"})
    code, _, err = alert("provider-outage")
    assert code == 1 and "rate-limited" in err and "3600s" in err


def test_no_token_is_a_clear_error(alert: Any, gh: FakeGitHub, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GITHUB_TOKEN")
    code, _, err = alert("provider-outage")
    assert code == 1
    assert err.strip().splitlines() == [
        "batch-ops: GITHUB_TOKEN is not set: alerts need it. In a workflow, give the step "
        "`env: GITHUB_TOKEN: ${{ github.token }}` and the job `permissions: issues: write`"
    ]
    assert gh.requests == []


def test_bad_token_is_refused_without_retries(alert: Any, gh: FakeGitHub, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GITHUB_TOKEN", "ghs_wrong_token")
    code, _, err = alert("provider-outage")
    assert code == 1 and "HTTP 401 Bad credentials" in err and "check GITHUB_TOKEN" in err
    assert "ghs_wrong_token" not in err
    assert len(gh.requests) == 1


def test_workflow_failure_while_paused_is_the_pause_alert(alert: Any, gh: FakeGitHub, repo: Path) -> None:
    pause(repo, "auth-billing", "create: HTTP 401 authentication_error: invalid x-api-key")
    code, out, _ = alert("workflow-failure", "--message", "batch-submit failed")
    assert code == 0 and "raising auth-billing instead" in out
    issue = only_issue(gh)
    assert "<!-- batch-ops-alert-key: auth-billing -->" in issue["body"]
    assert "ANTHROPIC_API_KEY" in issue["body"] and "batch-submit failed" in issue["body"]


def test_failed_items_lists_each_request_with_its_error_and_escapes_it(alert: Any, gh: FakeGitHub, repo: Path) -> None:
    rel = write_results(repo, "job-1", [
        ("val-FEAT-001", "succeeded", "FEAT-001", None),
        ("val-FEAT-002", "failed", "FEAT-002", "errored: invalid_request_error: bad | pipe @octocat\n::set-output"),
    ])  # fmt: skip
    write_jobs(repo, [job("job-1", result_path=rel, request_count=2), job("job-2", "failed", error="rejected")])
    code, _, err = alert("failed-items")
    assert code == 0, err
    body = only_issue(gh)["body"]
    assert "| job-1 | val-FEAT-002 | FEAT-002 |" in body
    assert "bad \\| pipe @\u200boctocat ::set-output" in body
    assert "| job-2 | (whole job) | - | rejected |" in body
    assert "val-FEAT-001" not in body
    assert "batch-ops retry JOB" in body


def _check(alert: Any, repo: Path, run: dict[str, Any] | None = None) -> tuple[int, str, str]:
    args = ["check"]
    if run is not None:
        path = repo.parent / "run.json"
        path.write_text(json.dumps(run))
        args += ["--run", str(path)]
    return alert(*args)  # type: ignore[no-any-return]


def test_check_follows_the_state(alert: Any, gh: FakeGitHub, repo: Path) -> None:
    assert "nothing to open or close" in _check(alert, repo)[1]
    pause(repo)
    assert "provider-outage: opened #1" in _check(alert, repo)[1]
    assert "provider-outage: already open #1" in _check(alert, repo)[1]  # a failing run comments, not check
    Path(repo / ".backlog-ops/paused.json").unlink()
    code, out, _ = _check(alert, repo)
    assert code == 0 and "provider-outage: closed #1" in out
    assert "queue is not paused" in gh.issues(REPO)[0]["comments"][-1]

    # failed items: raised only for jobs that ended in this run, closed when none is outstanding
    rel = write_results(repo, "job-1", [("val-X", "failed", "X-1", "errored: invalid_request_error: no")])
    write_jobs(repo, [job("job-1", result_path=rel, request_count=1)])
    assert "nothing to open" in _check(alert, repo, {"completed_jobs": []})[1]
    assert "failed-items: opened #2" in _check(alert, repo, {"completed_jobs": ["job-1"]})[1]
    rel2 = write_results(repo, "job-2", [("val-X", "succeeded", "X-1", None)])
    write_jobs(repo, [job("job-1", result_path=rel, request_count=1),
                      job("job-2", result_path=rel2, request_count=1, created_at="2026-02-19T00:00:00Z")])
    assert "failed-items: closed #2" in _check(alert, repo, {"completed_jobs": ["job-2"]})[1]

    # a workflow-failure alert of this workflow closes after a successful run; another workflow's stays
    alert("workflow-failure")
    alert("workflow-failure", "--scope", "batch-submit")
    out = _check(alert, repo)[1]
    assert "workflow-failure:batch-reconcile: closed" in out and "batch-submit" not in out


def test_budget_alert_opens_once_a_month_and_closes_under_the_threshold(alert: Any, gh: FakeGitHub, repo: Path) -> None:
    from tests.ghactions.state import append_ledger, ledger_line

    month = dt.datetime.now(dt.UTC).strftime("%Y-%m")
    (repo / "backlog.config.json").write_text(json.dumps({"llmOps": {"budget": {"monthlyUsd": 10, "warnRatio": 0.5}}}))
    append_ledger(repo, ledger_line("job-1", "a", 6.0, f"{month}-01T00:00:00Z"), ledger_line("job-0", "b", 50.0))
    assert f"budget-warning:{month}: opened #1" in _check(alert, repo)[1]
    assert "nothing to open" in _check(alert, repo)[1]  # no comment on repeats
    body = gh.issues(REPO)[0]["body"]
    assert "$6.00 spent" in body and "monthlyUsd" in body
    alert("budget-warning", "--resolved")  # closed by hand: stays closed this month
    assert "nothing to open" in _check(alert, repo)[1]
    assert len(gh.issues(REPO)) == 1

    append_ledger(repo, ledger_line("job-2", "c", 5.0, f"{month}-02T00:00:00Z"))
    assert f"budget-hard-stop:{month}: opened #2" in _check(alert, repo)[1]
    (repo / "backlog.config.json").write_text(json.dumps({"llmOps": {"budget": {"monthlyUsd": 1000}}}))
    assert f"budget-hard-stop:{month}: closed #2" in _check(alert, repo)[1]
