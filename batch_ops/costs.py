"""Cost numbers from the usage ledger, with zero tokens: shared by ``batch-ops report`` and the
``cost-report`` phase.

Every figure is a sum over ledger lines (the usage the API returned, priced by ``ledger.price_usage``
when the line was written). One figure is derived: ``uncached_interactive_cost_usd``, what the same
tokens would have cost at the standard rate with no cache, i.e. every prompt token (plain, cache
write, cache read) at the input price; it is the baseline for the total saving of batch and caching
together. ``cache_hit_rate`` is the share of prompt tokens that were read from the cache.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from pydantic import BaseModel, Field

from batch_ops.config import Config
from batch_ops.errors import ConfigError
from batch_ops.ledger import LedgerLine, LedgerProblem, iter_ledger
from batch_ops.paths import Layout
from batch_ops.queue import JobRecord, read_queue


class Totals(BaseModel):
    requests: int = 0
    succeeded: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0
    requests_with_cache_read: int = 0
    cost_usd: float = 0.0
    interactive_cost_usd: float = 0.0
    savings_usd: float = 0.0
    uncached_interactive_cost_usd: float = 0.0

    @property
    def prompt_tokens(self) -> int:
        return self.input_tokens + self.cache_creation_input_tokens + self.cache_read_input_tokens

    def add(self, line: LedgerLine, uncached: float) -> None:
        self.requests += 1
        self.succeeded += line.status == "succeeded"
        self.input_tokens += line.input_tokens
        self.output_tokens += line.output_tokens
        self.cache_creation_input_tokens += line.cache_creation_input_tokens
        self.cache_read_input_tokens += line.cache_read_input_tokens
        self.requests_with_cache_read += line.cache_read_input_tokens > 0
        self.cost_usd += line.cost_usd
        self.interactive_cost_usd += line.interactive_cost_usd
        self.savings_usd += line.savings_usd
        self.uncached_interactive_cost_usd += uncached

    def row(self) -> dict[str, Any]:
        data = self.model_dump()
        prompt = self.prompt_tokens
        data["cache_hit_rate"] = self.cache_read_input_tokens / prompt if prompt else None
        data["total_savings_usd"] = self.uncached_interactive_cost_usd - self.cost_usd
        data["cost_ratio_vs_uncached_interactive"] = (
            self.cost_usd / self.uncached_interactive_cost_usd if self.uncached_interactive_cost_usd else None
        )
        return data


class CostSummary(BaseModel):
    totals: dict[str, Any]
    by_day: list[dict[str, Any]] = Field(default_factory=list)
    by_phase: list[dict[str, Any]] = Field(default_factory=list)
    by_model: list[dict[str, Any]] = Field(default_factory=list)
    by_mode: list[dict[str, Any]] = Field(default_factory=list)
    by_job: list[dict[str, Any]] = Field(default_factory=list)
    ledger_problems: list[LedgerProblem] = Field(default_factory=list)


def uncached_cost(line: LedgerLine, config: Config) -> float:
    """The line's tokens at the standard rate with no cache; falls back to the ledger's own figure."""
    try:
        price = config.price(line.model_alias)
    except ConfigError:
        return line.interactive_cost_usd
    prompt = line.input_tokens + line.cache_creation_input_tokens + line.cache_read_input_tokens
    return (prompt * price.input_usd_per_mtok + line.output_tokens * price.output_usd_per_mtok) / 1_000_000


def _grouped(
    lines: Iterable[tuple[LedgerLine, float]], key: Callable[[LedgerLine], tuple[str, ...]], names: tuple[str, ...]
) -> list[dict[str, Any]]:
    groups: dict[tuple[str, ...], Totals] = {}
    for line, uncached in lines:
        groups.setdefault(key(line), Totals()).add(line, uncached)
    return [{**dict(zip(names, k, strict=True)), **t.row()} for k, t in sorted(groups.items())]


def summarize(
    layout: Layout,
    config: Config,
    *,
    jobs: list[JobRecord] | None = None,
    exclude_phases: frozenset[str] = frozenset(),
) -> CostSummary:
    problems: list[LedgerProblem] = []
    priced = [
        (line, uncached_cost(line, config))
        for line in iter_ledger(layout.ledger_file, problems)
        if line.phase not in exclude_phases
    ]
    total = Totals()
    for line, uncached in priced:
        total.add(line, uncached)
    if jobs is None:
        jobs, _ = read_queue(layout)
    by_job = _grouped(
        priced, lambda x: (x.job_id, x.phase, x.model_alias, x.mode), ("job_id", "phase", "model_alias", "mode")
    )
    known = {j.id: j for j in jobs}
    for row in by_job:
        job = known.get(row["job_id"])
        row["caching"] = job.cache.model_dump() if job is not None and job.cache is not None else None
    return CostSummary(
        totals=total.row(),
        by_day=_grouped(priced, lambda x: (x.timestamp[:10],), ("day",)),
        by_phase=_grouped(priced, lambda x: (x.phase,), ("phase",)),
        by_model=_grouped(priced, lambda x: (x.model_alias, x.model), ("model_alias", "model")),
        by_mode=_grouped(priced, lambda x: (x.mode,), ("mode",)),
        by_job=by_job,
        ledger_problems=problems,
    )
