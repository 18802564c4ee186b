"""The fake GitHub, driven by real PyGithub over HTTP (no mocks)."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import github
import pytest
import requests
from github import Auth, Github
from github.GithubRetry import GithubRetry

from batch_ops.testing.fake_github import FakeGitHub

TOKEN = "ghs_fake_token"
REPO = "octo/app"


@pytest.fixture
def srv() -> Iterator[FakeGitHub]:
    with FakeGitHub(token=TOKEN, repos=[REPO]) as server:
        yield server


def client(srv: FakeGitHub, token: str = TOKEN, **kwargs: Any) -> Github:
    # PyGithub waits 0.25 s between requests and 1 s between writes by default; a local fake needs neither.
    kwargs.setdefault("seconds_between_requests", 0)
    kwargs.setdefault("seconds_between_writes", 0)
    return Github(auth=Auth.Token(token), base_url=srv.url, **kwargs)


def no_retry(srv: FakeGitHub) -> Github:
    return client(srv, retry=None)


def test_get_repo(srv: FakeGitHub) -> None:
    repo = client(srv).get_repo(REPO)
    assert repo.full_name == REPO
    assert repo.default_branch == "main"
    assert repo.owner.login == "octo"
    assert repo.url == f"{srv.url}/repos/{REPO}"
    assert ("GET", f"/repos/{REPO}") in srv.requests


def test_unknown_repo_is_404(srv: FakeGitHub) -> None:
    with pytest.raises(github.UnknownObjectException):
        client(srv).get_repo("octo/missing")


def test_create_issue_with_label_then_find_it_by_label_and_state(srv: FakeGitHub) -> None:
    repo = client(srv).get_repo(REPO)
    with pytest.raises(github.UnknownObjectException):
        _ = repo.get_label("batch-ops-alert").name
    repo.create_label("batch-ops-alert", "d73a4a", "Raised by batch-ops")
    assert repo.get_label("batch-ops-alert").description == "Raised by batch-ops"

    alert = repo.create_issue("batch-ops: queue paused", body="alert-key: outage", labels=["batch-ops-alert"])
    other = repo.create_issue("Unrelated bug")
    assert alert.number == 1 and other.number == 2
    assert [lb.name for lb in alert.labels] == ["batch-ops-alert"]
    assert alert.user.login == "github-actions[bot]"
    assert alert.html_url == f"{srv.root}/{REPO}/issues/1"

    found = list(repo.get_issues(state="open", labels=["batch-ops-alert"]))
    assert [i.number for i in found] == [1]
    assert [i.number for i in repo.get_issues(state="open")] == [2, 1]  # newest first, as GitHub
    assert list(repo.get_issues(state="closed")) == []
    assert srv.issues(REPO)[0]["labels"] == ["batch-ops-alert"]


def test_labels_set_on_an_issue_are_created_and_added(srv: FakeGitHub) -> None:
    repo = client(srv).get_repo(REPO)
    issue = repo.create_issue("x", labels=["new-label"])
    issue.add_to_labels("alert:outage")
    assert [lb.name for lb in repo.get_issue(issue.number).labels] == ["new-label", "alert:outage"]
    assert {lb["name"] for lb in srv.labels(REPO)} == {"new-label", "alert:outage"}
    with pytest.raises(github.GithubException) as err:
        repo.create_label("new-label", "ffffff")
    assert err.value.status == 422


def test_comment_and_close_via_edit(srv: FakeGitHub) -> None:
    repo = client(srv).get_repo(REPO)
    issue = repo.create_issue("batch-ops: provider outage", labels=["batch-ops-alert"])
    comment = issue.create_comment("Still failing at 03:00 UTC")
    assert comment.body == "Still failing at 03:00 UTC"
    assert comment.html_url.startswith(f"{srv.root}/{REPO}/issues/1#issuecomment-")
    assert [c.body for c in issue.get_comments()] == ["Still failing at 03:00 UTC"]

    issue.edit(state="closed")
    fresh = repo.get_issue(issue.number)
    assert fresh.state == "closed" and fresh.state_reason == "completed"
    assert fresh.closed_by is not None and fresh.closed_by.login == "github-actions[bot]"
    assert fresh.closed_at is not None
    assert [i.number for i in repo.get_issues(state="closed", labels=["batch-ops-alert"])] == [1]
    assert list(repo.get_issues(state="open", labels=["batch-ops-alert"])) == []

    (recorded,) = srv.issues(REPO)
    assert recorded == {
        "number": 1, "title": "batch-ops: provider outage", "body": None, "state": "closed",
        "state_reason": "completed", "labels": ["batch-ops-alert"],
        "comments": ["Still failing at 03:00 UTC"], "created_at": recorded["created_at"],
        "closed_at": recorded["closed_at"],
    }


def test_pagination_over_35_issues(srv: FakeGitHub) -> None:
    for n in range(35):
        srv.seed_issue(REPO, f"issue {n}", labels=["bulk"], state="closed" if n % 5 == 0 else "open")
    repo = client(srv, per_page=10).get_repo(REPO)
    issues = list(repo.get_issues(state="all"))
    assert len(issues) == 35
    assert [i.number for i in issues] == list(range(35, 0, -1))
    pages = [r.query.get("page", ["1"])[0] for r in srv.request_log if r.path == f"/repos/{REPO}/issues"]
    assert pages == ["1", "2", "3", "4"]
    assert len(list(repo.get_issues(state="open", labels=["bulk"]))) == 28
    assert repo.get_issues(state="all").totalCount == 35


def test_bad_token_is_bad_credentials(srv: FakeGitHub) -> None:
    with pytest.raises(github.BadCredentialsException):
        client(srv, token="ghs_wrong").get_repo(REPO)


def test_missing_authorization_is_401(srv: FakeGitHub) -> None:
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(f"{srv.url}/repos/{REPO}", timeout=5)
    assert err.value.code == 401
    request = urllib.request.Request(f"{srv.url}/repos/{REPO}", headers={"Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.status == 200


def test_fail_next_502_then_success(srv: FakeGitHub) -> None:
    repo = no_retry(srv).get_repo(REPO)
    srv.fail_next("POST", rf"/repos/{REPO}/issues", 502)
    with pytest.raises(github.GithubException) as err:
        repo.create_issue("first try")
    assert err.value.status == 502
    assert srv.issues(REPO) == []
    repo.create_issue("second try")
    assert [i["title"] for i in srv.issues(REPO)] == ["second try"]


def test_pygithub_default_retry_rides_over_one_502(srv: FakeGitHub) -> None:
    # PyGithub's default GithubRetry retries 5xx, POST included: one failure is invisible to the caller.
    repo = client(srv, retry=GithubRetry(backoff_factor=0)).get_repo(REPO)
    srv.fail_next("POST", rf"/repos/{REPO}/issues", 502)
    repo.create_issue("created on the retry")
    assert len(srv.issues(REPO)) == 1
    assert srv.requests.count(("POST", f"/repos/{REPO}/issues")) == 2


def test_after_effect_performs_the_action_but_answers_the_error(srv: FakeGitHub) -> None:
    repo = no_retry(srv).get_repo(REPO)
    srv.fail_next("POST", rf"/repos/{REPO}/issues", 502, after_effect=True)
    with pytest.raises(github.GithubException):
        repo.create_issue("alert")
    assert [i["title"] for i in srv.issues(REPO)] == ["alert"]  # the create happened anyway


def test_after_effect_under_client_retries_duplicates_a_create(srv: FakeGitHub) -> None:
    # Why alert code must look before it creates: a blind retry of a non-idempotent POST makes two issues.
    repo = client(srv, retry=GithubRetry(backoff_factor=0)).get_repo(REPO)
    srv.fail_next("POST", rf"/repos/{REPO}/issues", 502, after_effect=True)
    repo.create_issue("alert")
    assert [i["title"] for i in srv.issues(REPO)] == ["alert", "alert"]


def test_timeout_after_the_create_happened(srv: FakeGitHub) -> None:
    repo = client(srv, retry=None, timeout=1).get_repo(REPO)
    srv.fail_next("POST", rf"/repos/{REPO}/issues", 201, after_effect=True, delay=1.5)
    with pytest.raises(requests.exceptions.Timeout):
        repo.create_issue("slow create")
    assert [i["title"] for i in srv.issues(REPO)] == ["slow create"]


def test_secondary_rate_limit(srv: FakeGitHub) -> None:
    repo = no_retry(srv).get_repo(REPO)
    srv.fail_next("GET", rf"/repos/{REPO}/issues", 403, headers={"Retry-After": "30"})
    with pytest.raises(github.RateLimitExceededException) as err:
        list(repo.get_issues())
    assert err.value.status == 403
    assert err.value.headers is not None and err.value.headers["retry-after"] == "30"
    assert "secondary rate limit" in str(err.value.data)
    assert list(repo.get_issues()) == []  # only `times` requests fail


def test_dropped_connection(srv: FakeGitHub) -> None:
    repo = no_retry(srv).get_repo(REPO)
    srv.fail_next("GET", rf"/repos/{REPO}/issues/\d+", 0)
    srv.seed_issue(REPO, "x")
    with pytest.raises(requests.exceptions.ConnectionError):
        repo.get_issue(1)
    assert repo.get_issue(1).title == "x"


def test_search_lags_behind(srv: FakeGitHub) -> None:
    gh = client(srv)
    gh.get_repo(REPO).create_issue("batch-ops: outage", labels=["batch-ops-alert"])
    assert list(gh.search_issues(f"repo:{REPO} is:issue is:open label:batch-ops-alert")) == []
    srv.search_lag_seconds = 0
    found = list(gh.search_issues(f"repo:{REPO} is:issue is:open label:batch-ops-alert outage"))
    assert [i.number for i in found] == [1]


def test_enterprise_style_path_prefix() -> None:
    with FakeGitHub(token=TOKEN, repos=[REPO], path_prefix="/api/v3") as server:
        assert server.url.endswith("/api/v3")
        repo = client(server).get_repo(REPO)
        issue = repo.create_issue("on GHES")
        issue.create_comment("hello")
        assert [c.body for c in repo.get_issue(1).get_comments()] == ["hello"]
        assert ("POST", f"/repos/{REPO}/issues/1/comments") in server.requests


def test_missing_issue_and_bad_input(srv: FakeGitHub) -> None:
    repo = no_retry(srv).get_repo(REPO)
    with pytest.raises(github.UnknownObjectException):
        repo.get_issue(99)
    with pytest.raises(github.GithubException) as err:
        repo.create_issue("")
    assert err.value.status == 422
