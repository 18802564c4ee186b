"""Failure classes and the one retry layer (DESIGN.md §5).

Every failed call is classified as transient, persistent, outage or auth/billing; retries happen
only here (the SDK's own are off), with exponential backoff from ``retryPolicy``, jitter, and
``retry-after`` honoured, and never past the run's deadline, so a scheduled run cannot hang.

| failure    | examples                                      | here                                   |
| ---------- | --------------------------------------------- | -------------------------------------- |
| transient  | timeout, connection reset, 429 + retry-after, | retried up to ``maxRetries``           |
|            | 408, 409, 500, 502, 503, 504, 529             |                                        |
| persistent | 400, 404, 413, 422 (any other 4xx)            | ``PersistentFailure``, no retry        |
| outage     | transient failures that outlast the retries,  | ``OutageError``: the caller pauses the |
|            | or server errors on every call of the run     | queue (exit 3)                         |
| auth       | 401, 402, 403, 429 without retry-after        | ``AuthStop`` at once (exit 4)          |
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import TypeVar

import tenacity

from batch_ops.config import RetryPolicy
from batch_ops.errors import BatchOpsError
from batch_ops.providers.base import ProviderCallError

T = TypeVar("T")

EXIT_OUTAGE = 3
EXIT_AUTH = 4

PAUSE_OUTAGE = "outage"
PAUSE_AUTH = "auth-billing"


class FailureClass(StrEnum):
    TRANSIENT = "transient"
    PERSISTENT = "persistent"
    OUTAGE = "outage"
    AUTH = "auth-billing"


_TRANSIENT_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504, 529})
_AUTH_STATUS = frozenset({401, 402, 403})
_AUTH_TYPES = frozenset({"authentication_error", "permission_error", "billing_error"})


def classify(err: ProviderCallError) -> FailureClass:
    """The class of one failed call. Never OUTAGE: that is a verdict on a run, not on a call."""
    if err.status in _AUTH_STATUS or err.error_type in _AUTH_TYPES:
        return FailureClass.AUTH
    if err.status == 429 and err.retry_after is None:
        # A rate limit says when to come back; a spend limit does not, and retrying only burns calls.
        return FailureClass.AUTH
    if err.connection or err.timeout or err.status is None or err.status in _TRANSIENT_STATUS:
        return FailureClass.TRANSIENT
    if err.status < 400:
        # A success whose body did not parse: the call worked (a create made its batch), so the
        # retry path, which looks for that batch first, is the right one.
        return FailureClass.TRANSIENT
    if 500 <= err.status < 600:
        return FailureClass.TRANSIENT
    return FailureClass.PERSISTENT


def is_server_side(err: ProviderCallError) -> bool:
    """A failure that says the provider is unwell (5xx, 529, no answer), as opposed to a limit."""
    return err.connection or err.timeout or (err.status is not None and err.status >= 500)


def settle_outcome(outcome: str, error_type: str | None) -> str:
    """Per-request settlement inside an ended batch: 'succeeded', 'failed' or 'retry'."""
    if outcome == "succeeded":
        return "succeeded"
    if outcome == "errored" and error_type == "invalid_request_error":
        return "failed"
    return "retry"


class OutageError(BatchOpsError):
    """Transient failures outlasted the retries: the queue is paused and an operator alerted."""

    exit_code = EXIT_OUTAGE


class AuthStop(BatchOpsError):
    """Authentication or billing refused the call: stop at once, never burn retries."""

    exit_code = EXIT_AUTH


class QueuePaused(BatchOpsError):
    """Submission refused while the queue is paused; the exit code is the pause's (3 or 4)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.exit_code = pause_exit_code(kind)


class PersistentFailure(BatchOpsError):
    """The provider rejected this request; retrying the same bytes cannot help."""

    def __init__(self, message: str, status: int | None = None, error_type: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.error_type = error_type


class DeadlineReached(BatchOpsError):
    """The run's time budget ran out; the next run picks the work up at ``retry_at`` (epoch seconds)."""

    def __init__(self, message: str, retry_at: float | None = None) -> None:
        super().__init__(message)
        self.retry_at = retry_at if retry_at is not None else time.time()


def pause_exit_code(kind: str) -> int:
    return EXIT_AUTH if kind == PAUSE_AUTH else EXIT_OUTAGE


@dataclass
class RunHealth:
    """Every call attempt of one run, so "5xx on every call" can be seen across calls and jobs.

    A call that fails with a server error and is then cut short (time budget, or an adoption
    search in between) never exhausts its own retries; counted here, the run still sees the outage.
    """

    ok: int = 0
    server_errors: int = 0
    consecutive_server_errors: int = 0
    last_error: str = ""

    def record_ok(self) -> None:
        self.ok += 1
        self.consecutive_server_errors = 0

    def record_failure(self, err: ProviderCallError) -> None:
        if is_server_side(err):
            self.server_errors += 1
            self.consecutive_server_errors += 1
            self.last_error = err.message
        else:
            self.consecutive_server_errors = 0

    def every_call_failed(self, threshold: int) -> bool:
        """No success in this run and at least ``threshold`` server-side failures in a row."""
        return self.ok == 0 and self.consecutive_server_errors >= max(threshold, 1)


def backoff_seconds(attempt: int, policy: RetryPolicy, retry_after: float | None) -> float:
    """Exponential backoff with jitter (half fixed, half random), never shorter than retry-after."""
    base = policy.initial_delay_seconds * (policy.backoff_multiplier ** max(attempt - 1, 0))
    wait = min(base, policy.max_delay_seconds) * (0.5 + random.random() / 2)
    if retry_after is not None:
        wait = max(wait, retry_after)
    return wait


def outage_message(detail: str) -> str:
    return (
        f"provider outage: {detail}. The queue is paused and nothing more is submitted; "
        "run `batch-ops resume` once the provider has recovered"
    )


def auth_message(detail: str) -> str:
    return (
        f"authentication or billing stop: {detail}. Check ANTHROPIC_API_KEY, the workspace's "
        "permissions and its credit or spend limit, then run `batch-ops resume`"
    )


def call_with_retry(
    fn: Callable[[], T],
    policy: RetryPolicy,
    *,
    deadline: float | None = None,
    sleep: Callable[[float], None] = time.sleep,
    health: RunHealth | None = None,
) -> T:
    """Run ``fn``; retry transient ProviderCallErrors up to ``maxRetries`` times.

    ``deadline`` is a ``time.monotonic()`` value. Raises AuthStop, PersistentFailure,
    OutageError (retries exhausted, or every call of the run failing) or DeadlineReached.
    """
    threshold = policy.max_retries + 1

    def _retryable(exc: BaseException) -> bool:
        return isinstance(exc, ProviderCallError) and classify(exc) is FailureClass.TRANSIENT

    def _wait(state: tenacity.RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        retry_after = exc.retry_after if isinstance(exc, ProviderCallError) else None
        wait = backoff_seconds(state.attempt_number, policy, retry_after)
        if health is not None and health.every_call_failed(threshold):
            raise OutageError(
                outage_message(f"{health.last_error} ({health.server_errors} failed call(s) in a row this run)")
            )
        if deadline is not None and time.monotonic() + wait > deadline:
            if health is not None and health.every_call_failed(2):
                # The budget cut the retries short, but nothing in this run worked: that is an
                # outage, not a slow provider, and the next run would only hammer it again.
                raise OutageError(
                    outage_message(f"{health.last_error} (every call of this run failed; time budget reached)")
                )
            raise DeadlineReached(
                f"time budget reached; next try in {wait:.1f}s after: {exc}", retry_at=time.time() + wait
            )
        return wait

    def _attempt() -> T:
        try:
            result = fn()
        except ProviderCallError as exc:
            if health is not None:
                health.record_failure(exc)
            raise
        if health is not None:
            health.record_ok()
        return result

    retrying = tenacity.Retrying(
        retry=tenacity.retry_if_exception(_retryable),
        stop=tenacity.stop_after_attempt(threshold),
        wait=_wait,
        sleep=sleep,
        reraise=True,
    )
    try:
        return retrying(_attempt)
    except ProviderCallError as exc:
        kind = classify(exc)
        if kind is FailureClass.AUTH:
            raise AuthStop(auth_message(exc.message)) from None
        if kind is FailureClass.PERSISTENT:
            raise PersistentFailure(exc.message, exc.status, exc.error_type) from None
        raise OutageError(
            outage_message(f"{exc.message} (still failing after {policy.max_retries} retries)")
        ) from None
