"""Each row of DESIGN.md §5's failure table, driven through sandbox scenarios and the real CLI.

The sample backlog enqueues two jobs: ``cheap`` with 7 requests and ``frontier`` with 4, created
in that order, so the cheap job's batch is always the first one the sandbox sees.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path
from typing import Any

import anthropic
import pytest

from batch_ops.paths import Layout
from batch_ops.sandbox import SandboxServer
from tests.conftest import TEST_KEY
from tests.policy_support import (  # validation_only_in_batch: autouse, active where imported
    CHEAP,
    FRONTIER,
    assert_ledger_once,
    assert_no_duplicate_batches,
    batch_sizes,
    configure,
    job_by_alias,
    jobs,
    ledger,
    reconcile_until_done,
    results,
    validation_only_in_batch,  # noqa: F401
)


@pytest.fixture
def repo(sample_repo: Path, cli: Any) -> Path:
    configure(sample_repo)
    assert cli(sample_repo, "enqueue", "--phase", "bulk-ticket-validation").code == 0
    assert [(j.model_alias, j.request_count) for j in jobs(sample_repo)] == [("cheap", CHEAP), ("frontier", FRONTIER)]
    return sample_repo


# -- transient ----------------------------------------------------------------------------------


def test_rate_limit_waits_at_least_retry_after_then_succeeds(cli: Any, repo: Path, sandbox: SandboxServer) -> None:
    sandbox.set_scenario({"endpoints": {"create": ["429:0.4", "429:0.4", "ok"]}})
    started = time.monotonic()
    res = cli(repo, "submit")
    elapsed = time.monotonic() - started
    assert res.code == 0, res.err
    # Backoff alone would be ~0.01 s per retry: only retry-after explains the wait.
    assert elapsed >= 0.8
    assert sandbox.calls["create"] == 4  # 2 refused + 1 for each job
    assert sandbox.calls["list"] == 0  # a 429 is an answer that nothing was created: no search needed
    assert job_by_alias(repo, "cheap").attempts == 3 and job_by_alias(repo, "frontier").attempts == 1
    reconcile_until_done(cli, repo)
    assert all(j.status == "completed" and j.error is None for j in jobs(repo))
    assert_no_duplicate_batches(repo, sandbox)
    assert len(assert_ledger_once(repo)) == CHEAP + FRONTIER


def test_server_errors_and_overload_are_retried_then_succeed(cli: Any, repo: Path, sandbox: SandboxServer) -> None:
    sandbox.set_scenario(
        {"endpoints": {"create": ["500", "529", "ok"], "retrieve": ["503", "ok"], "results": ["reset", "500", "ok"]}}
    )
    assert cli(repo, "submit").code == 0
    assert sandbox.calls["create"] == 4
    # After an error status the batch list is searched once before each new create.
    assert sandbox.calls["list"] == 2
    assert batch_sizes(sandbox) == [CHEAP, FRONTIER]
    reconcile_until_done(cli, repo)
    assert all(j.status == "completed" for j in jobs(repo))
    assert_no_duplicate_batches(repo, sandbox)
    lines = assert_ledger_once(repo)
    assert len(lines) == CHEAP + FRONTIER and {line.status for line in lines} == {"succeeded"}


def test_created_then_timeout_is_adopted_not_created_again(
    cli: Any, repo: Path, sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BATCH_OPS_HTTP_TIMEOUT", "0.4")
    sandbox.set_scenario({"endpoints": {"create": ["created-then-timeout", "ok"]}, "timeout_seconds": 1.0})
    res = cli(repo, "submit", "--json")
    assert res.code == 0, res.err
    summary = json.loads(res.out)
    assert len(summary["adopted_batches"]) == 1 and len(summary["submitted_batches"]) == 1
    assert sandbox.calls["create"] == 2  # one per job: the timed-out create was found, not repeated
    assert job_by_alias(repo, "cheap").batches[0].id == summary["adopted_batches"][0]
    assert_no_duplicate_batches(repo, sandbox)
    reconcile_until_done(cli, repo)
    assert len(assert_ledger_once(repo)) == CHEAP + FRONTIER


def test_adoption_prefers_the_batch_made_by_this_create(
    cli: Any, repo: Path, sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another client's batch of the same size, made just before ours, is not taken for ours."""
    client = anthropic.Anthropic(api_key=TEST_KEY, base_url=sandbox.url, max_retries=0)
    payload = Layout(repo).resolve_ops_path(job_by_alias(repo, "cheap").payload_path)
    requests = [json.loads(line) for line in payload.read_text().splitlines()]
    foreign = client.messages.batches.create(
        requests=[{"custom_id": r["custom_id"], "params": r["params"]} for r in requests]
    )
    time.sleep(1.5)
    monkeypatch.setenv("BATCH_OPS_HTTP_TIMEOUT", "0.4")
    sandbox.set_scenario({"endpoints": {"create": ["created-then-timeout", "ok"]}, "timeout_seconds": 1.0})
    res = cli(repo, "submit", "--json")
    assert res.code == 0, res.err
    adopted = json.loads(res.out)["adopted_batches"]
    assert len(adopted) == 1 and adopted[0] != foreign.id
    assert job_by_alias(repo, "cheap").batches[0].id == adopted[0]
    assert len(sandbox.batch_summaries()) == 3  # the foreign one, ours, the frontier job's


def test_a_create_whose_batch_appears_late_is_waited_for(
    cli: Any, repo: Path, sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``timeout`` makes the sandbox create the batch only after the client gave up: the window."""
    monkeypatch.setenv("BATCH_OPS_HTTP_TIMEOUT", "0.3")
    monkeypatch.setenv("BATCH_OPS_ADOPT_GRACE", "2.5")
    sandbox.set_scenario({"endpoints": {"create": ["timeout", "ok"]}, "timeout_seconds": 1.0})
    res = cli(repo, "submit", "--json")
    assert res.code == 0, res.err
    assert len(json.loads(res.out)["adopted_batches"]) == 1
    assert sandbox.calls["create"] == 2
    assert_no_duplicate_batches(repo, sandbox)


def test_without_the_grace_a_late_batch_would_be_created_twice(
    cli: Any, repo: Path, sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same scenario with no grace: proof that the wait is what prevents the duplicate."""
    monkeypatch.setenv("BATCH_OPS_HTTP_TIMEOUT", "0.3")
    monkeypatch.setenv("BATCH_OPS_ADOPT_GRACE", "0")
    sandbox.set_scenario({"endpoints": {"create": ["timeout", "ok"]}, "timeout_seconds": 0.8})
    assert cli(repo, "submit").code == 0
    time.sleep(1.0)
    assert len(sandbox.batch_summaries()) == 3  # two jobs, one of them created twice
    with pytest.raises(AssertionError, match="orphaned"):
        assert_no_duplicate_batches(repo, sandbox)


def test_a_dropped_connection_is_searched_for_then_created_once(
    cli: Any, repo: Path, sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BATCH_OPS_ADOPT_GRACE", "0.3")
    sandbox.set_scenario({"endpoints": {"create": ["reset", "ok"]}})
    assert cli(repo, "submit").code == 0
    assert sandbox.calls["create"] == 3 and sandbox.calls["list"] >= 2
    assert_no_duplicate_batches(repo, sandbox)
    assert batch_sizes(sandbox) == [CHEAP, FRONTIER]


def test_time_budget_leaves_the_job_queued_with_its_next_attempt(
    cli: Any, repo: Path, sandbox: SandboxServer
) -> None:
    sandbox.set_scenario({"endpoints": {"create": ["429:1.5", "ok"]}})
    started = time.monotonic()
    res = cli(repo, "submit", "--time-budget", "0.5")
    assert time.monotonic() - started < 1.4  # did not sit out the 1.5 s retry-after
    assert res.code == 0, res.err
    assert "time budget" in res.out
    cheap = job_by_alias(repo, "cheap")
    assert cheap.status == "queued" and cheap.next_attempt_at is not None
    assert "time budget" in (cheap.error or "")
    assert job_by_alias(repo, "frontier").status == "queued"  # the run's budget was spent
    assert "next attempt at" in cli(repo, "status").out
    # The next run: too early for the cheap job, which is left alone; the frontier job goes out.
    assert cli(repo, "submit").code == 0 and sandbox.calls["create"] == 2
    assert job_by_alias(repo, "cheap").status == "queued"
    due = dt.datetime.strptime(cheap.next_attempt_at, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
    time.sleep(max(0.0, (due - dt.datetime.now(dt.UTC)).total_seconds()) + 0.1)
    assert cli(repo, "submit").code == 0
    assert sandbox.calls["create"] == 3
    assert all(j.status == "submitted" and j.next_attempt_at is None and j.error is None for j in jobs(repo))


def test_time_budget_env_is_the_default(cli: Any, repo: Path, sandbox: SandboxServer, monkeypatch: Any) -> None:
    monkeypatch.setenv("BATCH_OPS_TIME_BUDGET", "0.3")
    sandbox.set_scenario({"endpoints": {"create": ["429:5", "ok"]}})
    started = time.monotonic()
    assert cli(repo, "submit").code == 0
    assert time.monotonic() - started < 2
    assert job_by_alias(repo, "cheap").next_attempt_at is not None


# -- persistent ---------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [400, 413, 422])
def test_persistent_rejection_fails_the_job_with_the_fix(
    cli: Any, repo: Path, sandbox: SandboxServer, status: int
) -> None:
    sandbox.set_scenario({"endpoints": {"create": [str(status)]}})
    assert cli(repo, "submit").code == 0
    assert sandbox.calls["create"] == 2 and sandbox.calls["list"] == 0  # once per job, never retried
    assert sandbox.batch_summaries() == []
    for job in jobs(repo):
        assert job.status == "failed" and job.attempts == 1
        error = job.error or ""
        assert f"HTTP {status}" in error and "rejected at creation" in error
        assert f"batch-ops retry {job.id}" in error and "fix the payload" in error
        assert [r.status for r in results(repo, job)] == ["failed"] * job.request_count
    assert ledger(repo) == []  # nothing was processed, nothing billed
    status_out = cli(repo, "status").out
    assert "failed" in status_out and f"HTTP {status}" in status_out

    # The operator fixes the payload (here: the provider recovers) and retries, once.
    cheap = job_by_alias(repo, "cheap")
    sandbox.set_scenario(None)
    res = cli(repo, "retry", cheap.id)
    assert res.code == 0 and "re-queued" in res.out
    assert job_by_alias(repo, "cheap").status == "queued"
    assert cli(repo, "submit").code == 0
    reconcile_until_done(cli, repo)
    cheap = job_by_alias(repo, "cheap")
    assert cheap.status == "completed" and cheap.error is None
    again = cli(repo, "retry", cheap.id)
    assert again.code == 2 and "already retried" in again.err
    frontier = job_by_alias(repo, "frontier")
    assert cli(repo, "retry", frontier.id).code == 0
    assert cli(repo, "retry", frontier.id).code == 2


def test_a_broken_payload_fails_locally_without_a_call(cli: Any, repo: Path, sandbox: SandboxServer) -> None:
    cheap = job_by_alias(repo, "cheap")
    payload = Layout(repo).resolve_ops_path(cheap.payload_path)
    lines = payload.read_text(encoding="utf-8").splitlines()
    lines[1] = lines[1].replace(json.loads(lines[1])["custom_id"], "has spaces!", 1)
    payload.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert cli(repo, "submit").code == 0
    cheap = job_by_alias(repo, "cheap")
    assert cheap.status == "failed" and "line 2" in (cheap.error or "") and "has spaces!" in (cheap.error or "")
    assert f"batch-ops retry {cheap.id}" in (cheap.error or "")
    assert sandbox.calls["create"] == 1  # only the frontier job went out
    refused = cli(repo, "retry", cheap.id)
    assert refused.code == 2 and "fix it first" in refused.err
    assert job_by_alias(repo, "cheap").status == "failed"


# -- outage -------------------------------------------------------------------------------------


def test_outage_pauses_the_queue_until_resume(cli: Any, repo: Path, sandbox: SandboxServer) -> None:
    configure(repo, retryPolicy={"maxRetries": 2})
    sandbox.set_scenario({"endpoints": {"create": ["500"]}})
    res = cli(repo, "submit")
    assert res.code == 3
    assert "provider outage" in res.err and "batch-ops resume" in res.err
    assert sandbox.calls["create"] == 3  # maxRetries + 1, and the second job never tried
    pause = json.loads(Layout(repo).pause_file.read_text())
    assert pause["kind"] == "outage" and "HTTP 500" in pause["reason"]
    assert all(j.status == "queued" for j in jobs(repo))

    again = cli(repo, "submit")
    assert again.code == 3 and "queue paused (outage)" in again.err
    started = time.monotonic()
    cycle = cli(repo, "cycle", "--wait", "--poll", "0.1", "--timeout", "20")
    assert cycle.code == 3 and time.monotonic() - started < 5  # refuses at once, does not wait it out
    assert sandbox.calls["create"] == 3  # nothing further submitted while paused
    human = cli(repo, "status")
    assert "PAUSED (outage)" in human.out and "batch-ops resume" in human.out
    assert json.loads(cli(repo, "status", "--json").out)["paused"]["kind"] == "outage"

    sandbox.set_scenario(None)
    resumed = cli(repo, "resume")
    assert resumed.code == 0 and "resumed" in resumed.out
    assert not Layout(repo).pause_file.exists()
    assert json.loads(cli(repo, "status", "--json").out)["paused"] is None
    assert cli(repo, "submit").code == 0
    reconcile_until_done(cli, repo)
    assert all(j.status == "completed" for j in jobs(repo))
    assert_no_duplicate_batches(repo, sandbox)
    assert len(assert_ledger_once(repo)) == CHEAP + FRONTIER


def test_outage_while_polling_pauses_and_keeps_the_batches(cli: Any, repo: Path, sandbox: SandboxServer) -> None:
    assert cli(repo, "submit").code == 0
    sandbox.set_scenario({"endpoints": {"retrieve": ["529"]}})
    res = cli(repo, "reconcile")
    assert res.code == 3 and "overloaded_error" in res.err
    assert sandbox.calls["retrieve"] == 4  # maxRetries + 1 for the first job; the second not polled
    assert all(j.status != "failed" and j.batches[0].id for j in jobs(repo))
    sandbox.set_scenario(None)
    assert cli(repo, "resume").code == 0
    reconcile_until_done(cli, repo)
    assert_no_duplicate_batches(repo, sandbox)


def test_every_call_failing_within_the_budget_is_an_outage(cli: Any, repo: Path, sandbox: SandboxServer) -> None:
    """The budget cuts the retries short, but every call of the run failed with 5xx: still an outage."""
    configure(repo, retryPolicy={"initialDelaySeconds": 0.2, "backoffMultiplier": 10.0, "maxDelaySeconds": 5})
    sandbox.set_scenario({"endpoints": {"create": ["503"]}})
    res = cli(repo, "submit", "--time-budget", "1.0")
    assert res.code == 3, res.out
    assert sandbox.calls["create"] == 2
    assert json.loads(Layout(repo).pause_file.read_text())["kind"] == "outage"


# -- auth / billing -----------------------------------------------------------------------------


@pytest.mark.parametrize("fault", ["401", "403", "402", "429"])
def test_auth_and_billing_stop_at_once_without_retries(
    cli: Any, repo: Path, sandbox: SandboxServer, fault: str
) -> None:
    sandbox.set_scenario({"endpoints": {"create": [fault]}})
    res = cli(repo, "submit")
    assert res.code == 4
    assert "authentication or billing stop" in res.err and "ANTHROPIC_API_KEY" in res.err
    assert TEST_KEY not in res.err + res.out
    assert sandbox.calls["create"] == 1 and sandbox.calls["list"] == 0  # zero retries
    pause = json.loads(Layout(repo).pause_file.read_text())
    assert pause["kind"] == "auth-billing" and f"HTTP {fault}" in pause["reason"]
    assert TEST_KEY not in Layout(repo).pause_file.read_text() + Layout(repo).queue_file.read_text()
    assert cli(repo, "submit").code == 4
    assert sandbox.calls["create"] == 1
    assert "PAUSED (auth-billing)" in cli(repo, "status").out
    # Resumed with the key fixed, the job goes out once.
    sandbox.set_scenario(None)
    assert cli(repo, "resume").code == 0
    assert cli(repo, "submit").code == 0
    assert batch_sizes(sandbox) == [CHEAP, FRONTIER]


def test_auth_failure_while_polling_stops_without_retries(cli: Any, repo: Path, sandbox: SandboxServer) -> None:
    assert cli(repo, "submit").code == 0
    sandbox.set_scenario({"endpoints": {"retrieve": ["401"]}})
    assert cli(repo, "reconcile").code == 4
    assert sandbox.calls["retrieve"] == 1
    assert json.loads(Layout(repo).pause_file.read_text())["kind"] == "auth-billing"


# -- inside an ended batch -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "requests",
    [
        {"errored_every": 3, "errored_type": "overloaded_error"},
        {"errored_every": 3, "errored_type": "api_error"},
        {"expired_every": 3},
        {"canceled_every": 3},
    ],
    ids=["overloaded", "api_error", "expired", "canceled"],
)
def test_unsettled_requests_go_alone_into_a_follow_up_batch(
    cli: Any, repo: Path, sandbox: SandboxServer, requests: dict[str, Any]
) -> None:
    sandbox.set_scenario({"requests": requests})
    assert cli(repo, "submit").code == 0
    sandbox.set_scenario(None)  # the scenario at creation governs a batch: follow-ups come back clean
    reconcile_until_done(cli, repo)
    # Every third request of each batch: 2 of the cheap job's 7, 1 of the frontier job's 4.
    assert batch_sizes(sandbox) == [CHEAP, FRONTIER, 2, 1]
    assert_no_duplicate_batches(repo, sandbox)
    for job in jobs(repo):
        assert job.status == "completed" and job.error is None and job.round == 2
        rounds = {r.custom_id: r.attempts for r in results(repo, job)}
        assert sorted(rounds.values()).count(2) == (2 if job.model_alias == "cheap" else 1)
    lines = assert_ledger_once(repo)
    assert len(lines) == CHEAP + FRONTIER
    assert sorted(line.attempts for line in lines) == [1] * 8 + [2] * 3
    assert {line.status for line in lines} == {"succeeded"}


def test_invalid_requests_fail_alone_and_are_not_resent(cli: Any, repo: Path, sandbox: SandboxServer) -> None:
    sandbox.set_scenario({"requests": {"invalid_every": 3}})
    assert cli(repo, "submit").code == 0
    reconcile_until_done(cli, repo)
    assert batch_sizes(sandbox) == [CHEAP, FRONTIER]  # no follow-up
    for job in jobs(repo):
        failed = [r for r in results(repo, job) if r.status == "failed"]
        assert len(failed) == (2 if job.model_alias == "cheap" else 1)
        # Not every request failed: the job completes, its error says which ones and what to fix.
        assert job.status == "completed"
        error = job.error or ""
        assert f"{len(failed)} of {job.request_count} request(s) failed" in error
        assert "invalid request" in error and "fix the ticket" in error
        for res in failed:
            assert res.custom_id in error and (res.meta.ticket_id or "?") in error
            assert (res.error or "").startswith("invalid request: errored (invalid_request_error)")
    lines = assert_ledger_once(repo)
    assert sorted(line.status for line in lines) == ["failed"] * 3 + ["succeeded"] * 8


def test_exhausted_retries_fail_with_their_history(cli: Any, repo: Path, sandbox: SandboxServer) -> None:
    configure(repo, retryPolicy={"maxRetries": 2})
    sandbox.set_scenario({"requests": {"errored_every": 1, "errored_type": "overloaded_error"}})
    assert cli(repo, "submit").code == 0
    reconcile_until_done(cli, repo)
    # Round 1 and maxRetries=2 follow-ups, each holding every request of its job.
    assert batch_sizes(sandbox) == [CHEAP, FRONTIER] * 3
    assert_no_duplicate_batches(repo, sandbox)
    for job in jobs(repo):
        assert job.status == "failed" and job.round == 3
        error = job.error or ""
        assert f"{job.request_count} of {job.request_count} request(s) failed" in error
        assert "gave up" in error and f"batch-ops retry {job.id}" in error
        for res in results(repo, job):
            assert res.status == "failed" and res.attempts == 3
            assert (res.error or "").startswith("gave up after 3 attempt(s): attempt 1 (msgbatch_")
            assert (res.error or "").count("errored (overloaded_error)") == 3
    lines = assert_ledger_once(repo)
    assert len(lines) == CHEAP + FRONTIER and {(x.status, x.attempts) for x in lines} == {("failed", 3)}

    sandbox.set_scenario(None)
    cheap = job_by_alias(repo, "cheap")
    assert cli(repo, "retry", cheap.id).code == 0
    assert cli(repo, "submit").code == 0
    reconcile_until_done(cli, repo)
    cheap = job_by_alias(repo, "cheap")
    assert cheap.status == "completed" and len(cheap.previous_batches) == 3
    assert_no_duplicate_batches(repo, sandbox)
    assert_ledger_once(repo)


def test_mixed_outcomes_settle_each_request_on_its_own(cli: Any, repo: Path, sandbox: SandboxServer) -> None:
    configure(repo, retryPolicy={"maxRetries": 1})
    sandbox.set_scenario({"requests": {"invalid_every": 2, "expired_every": 3}})
    assert cli(repo, "submit").code == 0
    reconcile_until_done(cli, repo)
    # cheap: indices 1,3,5 invalid, 2 expired; frontier: 1,3 invalid, 2 expired. Follow-ups hold
    # the expired ones, and expire again (their index is 0 now, so no: they succeed).
    assert batch_sizes(sandbox) == [CHEAP, FRONTIER, 1, 1]
    lines = assert_ledger_once(repo)
    assert len(lines) == CHEAP + FRONTIER
    assert sorted(line.status for line in lines).count("failed") == 5


def test_a_partly_failed_job_can_send_its_failed_requests_again(
    cli: Any, repo: Path, sandbox: SandboxServer
) -> None:
    sandbox.set_scenario({"requests": {"invalid_every": 3}})
    assert cli(repo, "submit").code == 0
    reconcile_until_done(cli, repo)
    cheap = job_by_alias(repo, "cheap")
    assert cheap.status == "completed" and f"batch-ops retry {cheap.id}" in (cheap.error or "")
    sandbox.set_scenario(None)
    res = cli(repo, "retry", cheap.id)
    assert res.code == 0 and "2 failed request(s)" in res.out
    new = jobs(repo)[-1]
    assert new.request_count == 2 and new.model_alias == "cheap"
    assert cli(repo, "submit").code == 0
    reconcile_until_done(cli, repo)
    assert jobs(repo)[-1].status == "completed" and jobs(repo)[-1].error is None
    assert cli(repo, "retry", cheap.id).code == 2


def test_a_batch_the_provider_lost_is_sent_again(cli: Any, repo: Path, sandbox: SandboxServer) -> None:
    assert cli(repo, "submit").code == 0
    cheap = job_by_alias(repo, "cheap")
    batch_id = cheap.batches[0].id
    assert batch_id is not None
    client = anthropic.Anthropic(api_key=TEST_KEY, base_url=sandbox.url, max_retries=0)
    deadline = time.monotonic() + 10
    while client.messages.batches.retrieve(batch_id).processing_status != "ended":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    client.messages.batches.delete(batch_id)
    reconcile_until_done(cli, repo)
    cheap = job_by_alias(repo, "cheap")
    assert cheap.status == "completed" and cheap.round == 2
    assert cheap.batches[0].status == "settled" and "404" in (cheap.batches[0].error or "")
    assert {r.attempts for r in results(repo, cheap)} == {2}
    assert len(ledger(repo)) == CHEAP + FRONTIER


def test_a_gateway_timeout_on_create_is_treated_as_unanswered(
    cli: Any, repo: Path, sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After a 504 the API may still be creating the batch: the search waits out the grace."""
    monkeypatch.setenv("BATCH_OPS_ADOPT_GRACE", "0.6")
    sandbox.set_scenario({"endpoints": {"create": ["504", "ok"]}})
    started = time.monotonic()
    assert cli(repo, "submit").code == 0
    assert time.monotonic() - started >= 0.6
    assert sandbox.calls["list"] >= 3  # searched again while the grace lasted
    assert batch_sizes(sandbox) == [CHEAP, FRONTIER]
