"""Failure classes and the one retry layer (DESIGN.md §5).

Every failed call is classified as transient, persistent, outage or auth/billing; retries happen
only here, with exponential backoff from ``retryPolicy``, jitter, and ``retry-after`` honoured,
and never past the run's deadline, so a scheduled run cannot hang.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from enum import StrEnum
from typing import TypeVar

import tenacity

from batch_ops.config import RetryPolicy
from batch_ops.errors import BatchOpsError
from batch_ops.providers.base import ProviderCallError

T = TypeVar("T")

EXIT_OUTAGE = 3
EXIT_AUTH = 4


class FailureClass(StrEnum):
    TRANSIENT = "transient"
    PERSISTENT = "persistent"
    OUTAGE = "outage"
    AUTH = "auth-billing"


_TRANSIENT_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504, 529})
_AUTH_STATUS = frozenset({401, 402, 403})
_AUTH_TYPES = frozenset({"authentication_error", "permission_error", "billing_error"})


def classify(err: ProviderCallError) -> FailureClass:
    if err.status in _AUTH_STATUS or err.error_type in _AUTH_TYPES:
        return FailureClass.AUTH
    if err.status == 429 and err.retry_after is None:
        # A rate limit tells you when to come back; a spend limit does not, and retrying burns nothing useful.
        return FailureClass.AUTH
    if err.connection or err.timeout or err.status in _TRANSIENT_STATUS:
        return FailureClass.TRANSIENT
    if err.status is not None and 500 <= err.status < 600:
        return FailureClass.TRANSIENT
    if err.status is None:
        return FailureClass.TRANSIENT
    return FailureClass.PERSISTENT


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


class PersistentFailure(BatchOpsError):
    """The provider rejected this payload; retrying the same bytes cannot help."""


class DeadlineReached(BatchOpsError):
    """The run's time budget ran out while waiting to retry; the next run picks the work up."""


def backoff_seconds(attempt: int, policy: RetryPolicy, retry_after: float | None) -> float:
    base = policy.initial_delay_seconds * (policy.backoff_multiplier ** max(attempt - 1, 0))
    wait = min(base, policy.max_delay_seconds) * (0.5 + random.random() / 2)
    if retry_after is not None:
        wait = max(wait, retry_after)
    return wait


def call_with_retry(
    fn: Callable[[], T],
    policy: RetryPolicy,
    *,
    deadline: float | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Run ``fn``; retry transient ProviderCallErrors up to ``maxRetries`` times.

    Raises AuthStop, PersistentFailure, OutageError (retries exhausted) or DeadlineReached.
    """

    def _retryable(exc: BaseException) -> bool:
        return isinstance(exc, ProviderCallError) and classify(exc) is FailureClass.TRANSIENT

    def _wait(state: tenacity.RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        retry_after = exc.retry_after if isinstance(exc, ProviderCallError) else None
        wait = backoff_seconds(state.attempt_number, policy, retry_after)
        if deadline is not None and time.monotonic() + wait > deadline:
            raise DeadlineReached(f"time budget reached while waiting {wait:.0f}s to retry: {exc}")
        return wait

    retrying = tenacity.Retrying(
        retry=tenacity.retry_if_exception(_retryable),
        stop=tenacity.stop_after_attempt(policy.max_retries + 1),
        wait=_wait,
        sleep=sleep,
        reraise=True,
    )
    try:
        return retrying(fn)
    except ProviderCallError as exc:
        kind = classify(exc)
        if kind is FailureClass.AUTH:
            raise AuthStop(f"{exc.message} — check ANTHROPIC_API_KEY and the account's billing") from None
        if kind is FailureClass.PERSISTENT:
            raise PersistentFailure(exc.message) from None
        raise OutageError(f"{exc.message} (still failing after {policy.max_retries} retries)") from None
