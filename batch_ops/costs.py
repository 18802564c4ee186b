"""Cost numbers from the usage ledger, with zero tokens: shared by ``batch-ops report`` and the
``cost-report`` phase.

Every figure is a sum over ledger lines (the usage the API returned, priced by ``ledger.price_usage``
when the line was written). One figure is derived: ``uncached_interactive_cost_usd``, what the same
tokens would have cost at the standard rate with no cache, i.e. every prompt token (plain, cache
write, cache read) at the input price; it is the baseline for the total saving of batch and caching
together. ``cache_hit_rate`` is the share of prompt tokens that were read from the cache.
"""

from __future__ import annotations

import operator
from typing import Any

from pydantic import BaseModel, Field

from batch_ops.config import Config
from batch_ops.errors import ConfigError
from batch_ops.ledger import LedgerLine, LedgerProblem, LedgerSummary, ReportCell, read_summary
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
    ledger_problems: list[LedgerProblem] = Field(default_factory=list)  # the first ledger.MAX_PROBLEMS_KEPT
    # The Markdown lists the JOBS_SHOWN most recent jobs and sums the rest in one row: that row,
    # with "jobs" and "rows" (how many it stands for), when there are more. Not in the JSON, which
    # lists every job.
    older_jobs: dict[str, Any] | None = Field(default=None, exclude=True)
    # How many there are in all; not in the JSON (its shape stays), only in the rendered report.
    ledger_problem_count: int = Field(default=0, exclude=True)


def uncached_cost(line: LedgerLine, config: Config) -> float:
    """The line's tokens at the standard rate with no cache; falls back to the ledger's own figure."""
    try:
        price = config.price(line.model_alias)
    except ConfigError:
        return line.interactive_cost_usd
    prompt = line.input_tokens + line.cache_creation_input_tokens + line.cache_read_input_tokens
    return (prompt * price.input_usd_per_mtok + line.output_tokens * price.output_usd_per_mtok) / 1_000_000


_MILLION = 1_000_000
# The rendered report's per-job table shows the most recent jobs (ids sort by day, then number);
# a queue of 10,000 jobs would make it a table of tens of thousands of rows nobody reads.
JOBS_SHOWN = 50


def _binary(value: float) -> tuple[int, int]:
    """(n, k) with value == n / 2**k exactly."""
    n, d = value.as_integer_ratio()  # d is a power of two
    return n, d.bit_length() - 1


class _Scale:
    """Whole-number arithmetic for the report's sums, at the finest step any of them needs.

    The summary's cost sums are exact, m * 2**e; here each becomes a whole number of 2**-bits
    (bits: the finest step among them, some 60 bits for real costs), so sums stay exact and small.
    The uncached cost, (prompt tokens x input price + output tokens x output price) / 10**6 per
    cell, is a whole number of 2**-price_bits / 10**6. Each float is rounded once, at the end.
    """

    def __init__(self, cells: list[ReportCell], config: Config) -> None:
        exponents = [e for cell in cells for m, e in cell[13:] if m]
        self.bits = max(0, -min(exponents, default=0))
        self.prices: dict[str, tuple[tuple[int, int], tuple[int, int]] | None] = {}
        for alias in {cell[3] for cell in cells}:
            try:
                price = config.price(alias)
            except ConfigError:
                self.prices[alias] = None  # as uncached_cost: the ledger's own interactive figure
            else:
                self.prices[alias] = (_binary(price.input_usd_per_mtok), _binary(price.output_usd_per_mtok))
        steps = [k for both in self.prices.values() if both for _, k in both]
        self.price_bits = max([self.bits, *steps])
        self.denominator = 1 << self.bits
        self.uncached_denominator = (1 << self.price_bits) * _MILLION

    def values(self, cell: ReportCell) -> list[int]:
        """The cell's first 10 sums: counts and tokens, then the three costs (``uncached`` adds the 11th)."""
        bits = self.bits
        (m1, e1), (m2, e2), (m3, e3) = cell[13], cell[14], cell[15]
        return [*cell[6:13], m1 << (e1 + bits), m2 << (e2 + bits), m3 << (e3 + bits)]

    def uncached(self, alias: str, acc: list[int]) -> int:
        """The uncached cost of sums of one model's cells: it is linear in their tokens (or, for a
        model without a price, in their interactive cost), so it is taken once per group."""
        both = self.prices[alias]
        if both is None:
            return acc[8] * _MILLION << (self.price_bits - self.bits)
        (n_in, k_in), (n_out, k_out) = both
        prompt = acc[2] + acc[4] + acc[5]
        return (prompt * n_in << (self.price_bits - k_in)) + (acc[3] * n_out << (self.price_bits - k_out))

    def row(self, acc: list[int], row: dict[str, Any] | None = None) -> dict[str, Any]:
        """``Totals(...).row()`` from exact sums: the same keys in the same order, after ``row``'s."""
        return self._fill({} if row is None else row, acc, acc[10])

    def _fill(self, out: dict[str, Any], acc: list[int], uncached_units: int) -> dict[str, Any]:
        """Add a row's figures to ``out`` (int / int: each correctly rounded, once)."""
        den = self.denominator
        cost = acc[7] / den
        uncached = uncached_units / self.uncached_denominator
        prompt = acc[2] + acc[4] + acc[5]
        out.update({
            "requests": acc[0],
            "succeeded": acc[1],
            "input_tokens": acc[2],
            "output_tokens": acc[3],
            "cache_creation_input_tokens": acc[4],
            "cache_read_input_tokens": acc[5],
            "requests_with_cache_read": acc[6],
            "cost_usd": cost,
            "interactive_cost_usd": acc[8] / den,
            "savings_usd": acc[9] / den,
            "uncached_interactive_cost_usd": uncached,
            "cache_hit_rate": acc[5] / prompt if prompt else None,
            "total_savings_usd": uncached - cost,
            "cost_ratio_vs_uncached_interactive": cost / uncached if uncached else None,
        })  # fmt: skip
        return out

    def job_rows(self, groups: dict[tuple[str, ...], list[int]], caching: dict[str, Any]) -> list[dict[str, Any]]:
        """``rows(groups, ("job_id", "phase", "model_alias", "mode"))`` plus each job's "caching".

        The uncached cost is taken per row from its sums (``uncached``), not kept in each cell.
        """
        out = []
        for key in sorted(groups):
            row: dict[str, Any] = {"job_id": key[0], "phase": key[1], "model_alias": key[2], "mode": key[3]}
            self._fill(row, groups[key], self.uncached(key[2], groups[key]))
            row["caching"] = caching.get(key[0])
            out.append(row)
        return out

    def rows(self, groups: dict[tuple[str, ...], list[int]], names: tuple[str, ...]) -> list[dict[str, Any]]:
        return [self.row(acc, dict(zip(names, k, strict=True))) for k, acc in sorted(groups.items())]


def _into(groups: dict[tuple[str, ...], list[int]], key: tuple[str, ...], values: list[int]) -> None:
    acc = groups.get(key)
    if acc is None:
        groups[key] = list(values)
    else:
        acc[:] = map(operator.add, acc, values)


def summarize(
    layout: Layout,
    config: Config,
    *,
    jobs: list[JobRecord] | None = None,
    exclude_phases: frozenset[str] = frozenset(),
    ledger: LedgerSummary | None = None,
) -> CostSummary:
    """The report's numbers, from the ledger's summary (``ledger.read_summary``), not its lines.

    The summary keeps one cell per day, job, phase, model and mode; every row here is a sum of
    cells. Sums are exact and rounded once, so they do not depend on how the lines were grouped.
    A missing or stale summary is rebuilt by streaming the ledger once (and saved for next time).
    """
    if ledger is None:
        ledger = read_summary(layout.ledger_file, save=True)
    cells = [cell for cell in ledger.cells if cell[2] not in exclude_phases]
    scale = _Scale(cells, config)
    # Cells fold into jobs, and into (day, phase, model, mode), which folds into the rest. The
    # loop is written out (no call per cell): a summary holds tens of thousands of cells.
    by_job_acc: dict[tuple[str, ...], list[int]] = {}
    middle: dict[tuple[str, ...], list[int]] = {}
    add = operator.add
    bits = scale.bits
    for cell in cells:
        (m1, e1), (m2, e2), (m3, e3) = cell[13], cell[14], cell[15]  # as scale.values(cell)
        values = [*cell[6:13], m1 << (e1 + bits), m2 << (e2 + bits), m3 << (e3 + bits)]
        key = (cell[1], cell[2], cell[3], cell[5])
        acc = by_job_acc.get(key)
        if acc is None:
            by_job_acc[key] = values
        else:
            acc[:] = map(add, acc, values)
        at = (cell[0], cell[2], cell[3], cell[4], cell[5])
        acc = middle.get(at)
        if acc is None:
            middle[at] = values.copy()  # by_job_acc may add into ``values`` itself
        else:
            acc[:] = map(add, acc, values)
    for (_day, _phase, alias, _model, _mode), values in middle.items():
        values.append(scale.uncached(alias, values))
    total = [0] * 11
    by_day: dict[tuple[str, ...], list[int]] = {}
    by_phase: dict[tuple[str, ...], list[int]] = {}
    by_model: dict[tuple[str, ...], list[int]] = {}
    by_mode: dict[tuple[str, ...], list[int]] = {}
    for (day, phase, alias, model, mode), values in middle.items():
        total[:] = map(operator.add, total, values)
        _into(by_day, (day,), values)
        _into(by_phase, (phase,), values)
        _into(by_model, (alias, model), values)
        _into(by_mode, (mode,), values)
    if jobs is None:
        jobs, _ = read_queue(layout)
    known = {j.id: j.cache.model_dump() for j in jobs if j.cache is not None}
    by_job = scale.job_rows(by_job_acc, known)
    older = _older(by_job_acc, total, scale)
    older_jobs = None if older is None else scale.row(older[2], {"jobs": older[0], "rows": older[1]})
    # Built here from exact sums and known types: constructed, not validated again row by row.
    return CostSummary.model_construct(
        totals=scale.row(total),
        by_day=scale.rows(by_day, ("day",)),
        by_phase=scale.rows(by_phase, ("phase",)),
        by_model=scale.rows(by_model, ("model_alias", "model")),
        by_mode=scale.rows(by_mode, ("mode",)),
        by_job=by_job,
        ledger_problems=list(ledger.problems),
        ledger_problem_count=ledger.problem_count,
        older_jobs=older_jobs,
    )


def _older(
    by_job: dict[tuple[str, ...], list[int]], total: list[int], scale: _Scale
) -> tuple[int, int, list[int]] | None:
    """(jobs, rows, exact sums) of the jobs older than the JOBS_SHOWN most recent, if there are any."""
    ids = sorted({key[0] for key in by_job})
    if len(ids) <= JOBS_SHOWN:
        return None
    recent = frozenset(ids[-JOBS_SHOWN:])
    rest = list(total)  # every cell is in one job's rows: the older ones are the total less the recent
    rows = len(by_job)
    for key, acc in by_job.items():
        if key[0] in recent:
            rest[:] = map(operator.sub, rest, [*acc, scale.uncached(key[2], acc)])
            rows -= 1
    return len(ids) - JOBS_SHOWN, rows, rest
