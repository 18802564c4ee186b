"""Whether a job's shared prefix is worth a ``cache_control`` breakpoint, and with which TTL.

The rule, per job, in units of the prefix's uncached input price:

* without caching, ``N`` requests pay ``N`` times the prefix;
* with caching, the first request writes it (``w``: 1.25 for the 5-minute TTL, 2 for the hour),
  each later one reads it (``r`` = 0.1) with probability ``h`` or misses and writes it again;
  so ``w + (N - 1) * (h * r + (1 - h) * w)``.

Caching is chosen only when the prefix reaches the model's minimum cacheable length and the second
figure is strictly below the first. The batch discount multiplies both sides, so it never changes
the answer. A miss is priced as a write because that is what the API bills for a request that
carries a breakpoint and finds nothing; an estimate that overshoots the minimum costs nothing,
because the API ignores a breakpoint under the minimum.

The TTL follows the expected wait between the write and the reads: interactive requests run back
to back (5 minutes is plenty); a batch runs its requests in any order over its whole processing
time, which can pass five minutes, so the hour is used unless past batches ended faster.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from typing import Any, Literal

from pydantic import BaseModel

from batch_ops.config import ModelPrice

CacheTtl = Literal["5m", "1h"]
FIVE_MINUTES = 300.0
# Gap between two interactive requests of one job: one call's latency, far below five minutes.
INTERACTIVE_GAP_SECONDS = 60.0
# Cache hits inside a batch are best effort (requests run in parallel, in any order); assume 70 %
# of the requests after the first find the prefix. Interactive requests run in order and do.
BATCH_HIT_RATE = 0.7
INTERACTIVE_HIT_RATE = 1.0
# How many recent batches the expected processing time is taken from.
HISTORY_BATCHES = 20


class CacheDecision(BaseModel):
    """What enqueue decided for one job, kept on the job record so reports can show it."""

    enabled: bool
    ttl: CacheTtl | None = None
    prefix_tokens: int
    min_cacheable_tokens: int
    sharing_requests: int
    expected_wait_seconds: float | None = None
    hit_rate: float
    # Expected cost of the shared prefix over the job, in USD, at this job's mode.
    prefix_cost_without_usd: float
    prefix_cost_with_usd: float
    reason: str


def choose_ttl(mode: str, expected_batch_seconds: float | None) -> tuple[CacheTtl, float | None]:
    """The TTL for the expected wait, and that wait (None: unknown, assume it may be long)."""
    if mode == "interactive":
        return "5m", INTERACTIVE_GAP_SECONDS
    if expected_batch_seconds is None:
        return "1h", None
    return ("5m" if expected_batch_seconds <= FIVE_MINUTES else "1h"), expected_batch_seconds


def expected_batch_seconds(spans: Iterable[tuple[float, float]]) -> float | None:
    """Median processing time of the most recent batches, from (submitted, ended) epoch seconds."""
    recent = sorted(spans)[-HISTORY_BATCHES:]
    durations = [max(0.0, end - start) for start, end in recent]
    return statistics.median(durations) if durations else None


def decide(
    prefix_tokens: int,
    sharing_requests: int,
    price: ModelPrice,
    mode: str,
    *,
    expected_batch_seconds: float | None = None,
    hit_rate: float | None = None,
    allowed: bool = True,
) -> CacheDecision:
    ttl, wait = choose_ttl(mode, expected_batch_seconds)
    h = hit_rate if hit_rate is not None else (INTERACTIVE_HIT_RATE if mode == "interactive" else BATCH_HIT_RATE)
    write = price.cache_write_5m_multiplier if ttl == "5m" else price.cache_write_1h_multiplier
    read = price.cache_read_multiplier
    unit = prefix_tokens * price.input_usd_per_mtok / 1_000_000
    if mode == "batch":
        unit *= price.batch_discount
    n = sharing_requests
    without = n * unit
    with_cache = unit * (write + (n - 1) * (h * read + (1 - h) * write)) if n else 0.0
    base: dict[str, Any] = {
        "prefix_tokens": prefix_tokens,
        "min_cacheable_tokens": price.min_cacheable_tokens,
        "sharing_requests": n,
        "expected_wait_seconds": wait,
        "hit_rate": h,
        "prefix_cost_without_usd": without,
        "prefix_cost_with_usd": with_cache,
    }
    if not allowed:
        return CacheDecision(enabled=False, reason="prompt caching is switched off in the config", **base)
    if prefix_tokens < price.min_cacheable_tokens:
        return CacheDecision(
            enabled=False,
            reason=f"prefix of ~{prefix_tokens} tokens is under {price.model}'s minimum of "
            f"{price.min_cacheable_tokens}",
            **base,
        )
    if with_cache >= without:
        return CacheDecision(
            enabled=False,
            reason=f"{n} request(s) sharing the prefix do not repay a {ttl} write "
            f"(${with_cache:.6f} with caching vs ${without:.6f} without)",
            **base,
        )
    return CacheDecision(
        enabled=True,
        ttl=ttl,
        reason=f"{n} requests share a ~{prefix_tokens}-token prefix: ${with_cache:.6f} with a {ttl} cache "
        f"vs ${without:.6f} without",
        **base,
    )


def mark_prefix(params: dict[str, Any], ttl: CacheTtl) -> None:
    """Put the breakpoint on the last system block: the prefix is tools + system, tickets come after.

    The system list is replaced, not edited: phases share one list between their requests, and a
    job's decision must not leak into another job's requests.
    """
    system = params.get("system")
    if isinstance(system, str):
        system = [{"type": "text", "text": system}]
    if not isinstance(system, list) or not system or not isinstance(system[-1], dict):
        return
    marker: dict[str, str] = {"type": "ephemeral"}
    if ttl == "1h":
        marker["ttl"] = "1h"
    params["system"] = [*system[:-1], {**system[-1], "cache_control": marker}]
