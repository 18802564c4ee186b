"""What enqueue decides for a job beyond its requests: the mode, caching, the cost estimate, the budget.

* Mode: a phase with fewer new items than ``forceBatchWhenQueueOver`` runs interactively (full
  price, immediate), otherwise through the batch API; ``--batch`` / ``--interactive`` force it.
  The count is the phase's, across its jobs (one per model alias), so a phase's jobs share a mode.
* Caching: ``caching.decide`` on the largest group of requests sharing a prefix, with the expected
  batch wait taken from the queue's recent batches; the breakpoint is added to those requests.
* Estimate and budget: ``budget.estimate_job_usd`` (an upper bound) is kept on the job and checked
  against the month's hard stop before the job is written.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from batch_ops import budget, caching
from batch_ops.config import Config
from batch_ops.estimate import prefix_chars, prefix_key, tokens_for_chars
from batch_ops.phases.base import PlannedItem
from batch_ops.queue import JobRecord

ModeChoice = Literal["auto", "batch", "interactive"]
Mode = Literal["batch", "interactive"]


@dataclass(frozen=True)
class JobPlan:
    mode: Mode
    cache: caching.CacheDecision
    estimate_usd: float


def choose_mode(item_count: int, config: Config, forced: ModeChoice = "auto") -> Mode:
    if forced != "auto":
        return forced
    return "interactive" if item_count < config.policy.force_batch_when_queue_over else "batch"


def caching_allowed(config: Config) -> bool:
    """The toolkit's ``llmOps.cachePolicy.providerPromptCaching: false`` switches caching off."""
    policy = (config.llm_ops.model_extra or {}).get("cachePolicy")
    return not (isinstance(policy, dict) and policy.get("providerPromptCaching") is False)


def _epoch(stamp: str | None) -> float | None:
    if not stamp:
        return None
    try:
        return dt.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC).timestamp()
    except ValueError:
        return None


def batch_spans(jobs: Iterable[JobRecord]) -> list[tuple[float, float]]:
    """(submitted, ended) of the provider batches the queue remembers."""
    spans = []
    for job in jobs:
        if job.mode != "batch":
            continue
        for ref in job.batches:
            start, end = _epoch(ref.submitted_at), _epoch(ref.ended_at)
            if start is not None and end is not None:
                spans.append((start, end))
    return spans


def prepare(config: Config, history: list[JobRecord], alias: str, items: list[PlannedItem], mode: Mode) -> JobPlan:
    """Decide caching (marking the requests that share the prefix) and estimate the job's cost."""
    price = config.price(alias)
    keys = [prefix_key(it.params) for it in items]
    shared_key, sharing = Counter(keys).most_common(1)[0]
    sample = items[keys.index(shared_key)]
    decision = caching.decide(
        tokens_for_chars(prefix_chars(sample.params)),
        sharing,
        price,
        mode,
        expected_batch_seconds=caching.expected_batch_seconds(batch_spans(history)),
        allowed=caching_allowed(config),
    )
    if decision.enabled and decision.ttl is not None:
        for item, key in zip(items, keys, strict=True):
            if key == shared_key:
                caching.mark_prefix(item.params, decision.ttl)
    estimate = budget.estimate_job_usd((it.params for it in items), price, mode)
    return JobPlan(mode=mode, cache=decision, estimate_usd=estimate)
