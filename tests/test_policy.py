"""The failure classes and the one retry layer, on their own (DESIGN.md §5).

The end-to-end rows of the table, through the real SDK and the sandbox, are in test_failures.py.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest

from batch_ops.config import RetryPolicy
from batch_ops.engine import crashpoint
from batch_ops.policy import (
    AuthStop,
    DeadlineReached,
    FailureClass,
    OutageError,
    PersistentFailure,
    RunHealth,
    backoff_seconds,
    call_with_retry,
    classify,
    settle_outcome,
)
from batch_ops.providers.base import ProviderCallError

POLICY = RetryPolicy(maxRetries=3, backoffMultiplier=2.0, initialDelaySeconds=0.01, maxDelaySeconds=0.05)


def err(status: int | None = None, **kw: object) -> ProviderCallError:
    return ProviderCallError(f"call: HTTP {status}", status=status, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (err(timeout=True, connection=True), FailureClass.TRANSIENT),
        (err(connection=True), FailureClass.TRANSIENT),
        (err(429, retry_after=2.0), FailureClass.TRANSIENT),
        (err(500), FailureClass.TRANSIENT),
        (err(502), FailureClass.TRANSIENT),
        (err(503), FailureClass.TRANSIENT),
        (err(529, error_type="overloaded_error"), FailureClass.TRANSIENT),
        (err(408), FailureClass.TRANSIENT),
        (err(200), FailureClass.TRANSIENT),  # a success whose body did not parse
        (err(None), FailureClass.TRANSIENT),  # e.g. a malformed result line
        (err(400, error_type="invalid_request_error"), FailureClass.PERSISTENT),
        (err(404, error_type="not_found_error"), FailureClass.PERSISTENT),
        (err(413, error_type="request_too_large"), FailureClass.PERSISTENT),
        (err(422), FailureClass.PERSISTENT),
        (err(401, error_type="authentication_error"), FailureClass.AUTH),
        (err(402, error_type="billing_error"), FailureClass.AUTH),
        (err(403, error_type="permission_error"), FailureClass.AUTH),
        (err(429), FailureClass.AUTH),  # spend limit: no retry-after
        (err(400, error_type="billing_error"), FailureClass.AUTH),
    ],
)
def test_classification_follows_the_table(error: ProviderCallError, expected: FailureClass) -> None:
    assert classify(error) is expected


@pytest.mark.parametrize(
    ("outcome", "error_type", "verdict"),
    [
        ("succeeded", None, "succeeded"),
        ("errored", "invalid_request_error", "failed"),
        ("errored", "overloaded_error", "retry"),
        ("errored", "api_error", "retry"),
        ("errored", None, "retry"),
        ("expired", None, "retry"),
        ("canceled", None, "retry"),
    ],
)
def test_per_request_settlement(outcome: str, error_type: str | None, verdict: str) -> None:
    assert settle_outcome(outcome, error_type) == verdict


def test_backoff_grows_is_capped_jittered_and_honours_retry_after() -> None:
    policy = RetryPolicy(maxRetries=5, backoffMultiplier=3.0, initialDelaySeconds=1.0, maxDelaySeconds=5.0)
    for attempt, base in [(1, 1.0), (2, 3.0), (3, 5.0), (4, 5.0)]:
        waits = [backoff_seconds(attempt, policy, None) for _ in range(200)]
        assert all(base / 2 <= w <= base for w in waits)
        assert max(waits) - min(waits) > base / 10  # jittered, not fixed
    assert all(backoff_seconds(1, policy, 7.5) >= 7.5 for _ in range(50))


class Flaky:
    """A callable that raises the given errors in turn, then returns "ok"."""

    def __init__(self, *errors: ProviderCallError) -> None:
        self.errors = list(errors)
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


def test_transient_failures_are_retried_with_the_waits_given() -> None:
    waits: list[float] = []
    fn = Flaky(err(500), err(429, retry_after=0.3), err(timeout=True))
    assert call_with_retry(fn, POLICY, sleep=waits.append) == "ok"
    assert fn.calls == 4 and len(waits) == 3
    assert waits[1] >= 0.3 and waits[0] <= 0.01 and waits[2] <= 0.04


def test_auth_stops_at_once() -> None:
    fn = Flaky(err(401, error_type="authentication_error"))
    with pytest.raises(AuthStop, match="ANTHROPIC_API_KEY") as info:
        call_with_retry(fn, POLICY, sleep=lambda _s: None)
    assert fn.calls == 1 and info.value.exit_code == 4


def test_persistent_is_not_retried() -> None:
    fn = Flaky(err(413, error_type="request_too_large"))
    with pytest.raises(PersistentFailure) as info:
        call_with_retry(fn, POLICY, sleep=lambda _s: None)
    assert fn.calls == 1 and info.value.status == 413 and info.value.error_type == "request_too_large"


def test_retries_outlasted_are_an_outage() -> None:
    fn = Flaky(*[err(503)] * 10)
    with pytest.raises(OutageError, match="still failing after 3 retries") as info:
        call_with_retry(fn, POLICY, sleep=lambda _s: None)
    assert fn.calls == 4 and info.value.exit_code == 3


def test_no_wait_past_the_deadline() -> None:
    fn = Flaky(err(429, retry_after=30.0))
    before = time.time()
    with pytest.raises(DeadlineReached) as info:
        call_with_retry(fn, POLICY, deadline=time.monotonic() + 1.0, sleep=lambda _s: None)
    assert fn.calls == 1 and info.value.retry_at >= before + 30.0


def test_a_run_where_every_call_fails_is_an_outage_even_when_cut_short() -> None:
    # The first wait (5-10 ms) fits in the budget, the second (50-100 ms) does not.
    steep = RetryPolicy(maxRetries=3, backoffMultiplier=10.0, initialDelaySeconds=0.01, maxDelaySeconds=1.0)
    health = RunHealth()
    fn = Flaky(err(500), err(502))
    with pytest.raises(OutageError, match="every call of this run failed"):
        call_with_retry(fn, steep, deadline=time.monotonic() + 0.04, health=health)
    assert fn.calls == 2
    # One success in the run and it is a slow provider instead: the job waits for the next run.
    health = RunHealth()
    assert call_with_retry(Flaky(), steep, health=health) == "ok"
    with pytest.raises(DeadlineReached):
        call_with_retry(Flaky(err(500), err(502)), steep, deadline=time.monotonic() + 0.04, health=health)


def test_server_errors_count_across_calls_of_a_run() -> None:
    health = RunHealth()
    for _ in range(2):
        health.record_failure(err(500))
    assert not health.every_call_failed(4)
    health.record_failure(err(429, retry_after=1))  # a limit, not an outage: the count restarts
    assert health.consecutive_server_errors == 0
    for _ in range(4):
        health.record_failure(err(529))
    assert health.every_call_failed(4)
    health.record_ok()
    assert not health.every_call_failed(1)


def test_crashpoint_is_a_no_op_unless_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BATCH_OPS_CRASH_AT", raising=False)
    crashpoint("submit.created")
    monkeypatch.setenv("BATCH_OPS_CRASH_AT", "reconcile.polled:1")
    crashpoint("submit.created")  # another label: nothing happens


@pytest.mark.parametrize(("spec", "survives"), [("x.y:3", 2), ("x.y", 0), ("x.y:1", 0)])
def test_crashpoint_kills_at_the_nth_pass(spec: str, survives: int) -> None:
    code = (
        "import sys\nfrom batch_ops.engine import crashpoint\n"
        "for i in range(5):\n    crashpoint('x.y')\n    print(i, flush=True)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], env={"BATCH_OPS_CRASH_AT": spec, "PATH": ""}, capture_output=True, text=True
    )
    assert proc.returncode == -signal.SIGKILL
    assert proc.stdout.split() == [str(i) for i in range(survives)]
