"""``llmOps.budget``: a monthly spend guard checked before a job exists, with zero tokens.

Month-to-date spend is the ledger's ``cost_usd`` for the current UTC month, plus what live jobs
(queued, submitted, running) may still cost: their estimate times the share of their requests
not yet settled. A job's estimate is an upper bound: every prompt character at
``estimate.CHARS_PER_TOKEN`` characters per token with no cache discount, and every request
writing its full ``max_tokens``, at the job's mode (batch discount or not). The provider's own
spend limit can be overshot by in-flight work, so this guard refuses before anything is sent.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any, Literal

from pydantic import BaseModel

from batch_ops.config import Config, ModelPrice
from batch_ops.errors import PolicyRefusal
from batch_ops.estimate import prompt_chars, tokens_for_chars
from batch_ops.ledger import LedgerSummary, read_summary
from batch_ops.paths import Layout
from batch_ops.queue import JobRecord

BudgetLevel = Literal["ok", "warning", "hard-stop"]


class BudgetState(BaseModel):
    month: str
    monthly_usd: float
    spent_usd: float
    reserved_usd: float
    warn_ratio: float
    hard_stop_ratio: float
    ratio: float
    state: BudgetLevel

    def line(self) -> str:
        text = (
            f"budget {self.month}: ${self.spent_usd:.4f} spent + ${self.reserved_usd:.4f} in flight of "
            f"${self.monthly_usd:.2f} ({self.ratio:.0%})"
        )
        if self.state == "warning":
            text += f" — WARNING: past warnRatio {self.warn_ratio:.0%}"
        elif self.state == "hard-stop":
            text += f" — HARD STOP: past hardStopRatio {self.hard_stop_ratio:.0%}; new jobs are refused"
        return text


def estimate_request_usd(params: dict[str, Any], price: ModelPrice, mode: str) -> float:
    tokens_in = tokens_for_chars(prompt_chars(params))
    tokens_out = int(params.get("max_tokens") or 0)
    usd = (tokens_in * price.input_usd_per_mtok + tokens_out * price.output_usd_per_mtok) / 1_000_000
    return usd * (price.batch_discount if mode == "batch" else 1.0)


def estimate_job_usd(params: Iterable[dict[str, Any]], price: ModelPrice, mode: str) -> float:
    return sum(estimate_request_usd(p, price, mode) for p in params)


def _month(now: dt.datetime | None) -> str:
    return (now or dt.datetime.now(dt.UTC)).strftime("%Y-%m")


def month_spend(layout: Layout, month: str, ledger: LedgerSummary | None = None) -> float:
    # From the ledger's summary (totals by day) rather than a pass over every line; ``ledger`` is
    # that summary when the caller has read it already.
    summary = ledger if ledger is not None else read_summary(layout.ledger_file, cells=False)
    return sum(g.cost_usd for g in summary.groups if g.day.startswith(month))


def reserved(jobs: Iterable[JobRecord]) -> float:
    """What live jobs may still cost: the estimate for their requests that are not settled yet."""
    total = 0.0
    for job in jobs:
        if job.terminal or job.estimated_cost_usd is None or job.request_count <= 0:
            continue
        done = min(sum(job.settled.values()), job.request_count)
        total += job.estimated_cost_usd * (1 - done / job.request_count)
    return total


def state(
    config: Config,
    layout: Layout,
    jobs: Iterable[JobRecord],
    *,
    now: dt.datetime | None = None,
    ledger: LedgerSummary | None = None,
) -> BudgetState | None:
    budget = config.llm_ops.budget
    if budget is None:
        return None
    month = _month(now)
    spent = month_spend(layout, month, ledger)
    held = reserved(jobs)
    ratio = (spent + held) / budget.monthly_usd
    level: BudgetLevel = "ok"
    if ratio >= budget.hard_stop_ratio:
        level = "hard-stop"
    elif ratio >= budget.warn_ratio:
        level = "warning"
    return BudgetState(
        month=month,
        monthly_usd=budget.monthly_usd,
        spent_usd=spent,
        reserved_usd=held,
        warn_ratio=budget.warn_ratio,
        hard_stop_ratio=budget.hard_stop_ratio,
        ratio=ratio,
        state=level,
    )


def check(current: BudgetState | None, estimate_usd: float, what: str) -> None:
    """Refuse (``PolicyRefusal``, exit 2) a job whose estimate would pass the hard stop."""
    if current is None:
        return
    limit = current.monthly_usd * current.hard_stop_ratio
    after = current.spent_usd + current.reserved_usd + estimate_usd
    if after > limit:
        raise PolicyRefusal(
            f"budget: {what} is estimated at up to ${estimate_usd:.4f}; with ${current.spent_usd:.4f} spent and "
            f"${current.reserved_usd:.4f} in flight this month ({current.month}) that is ${after:.4f}, past the hard "
            f"stop of ${limit:.4f} (llmOps.budget.monthlyUsd {current.monthly_usd:g} x hardStopRatio "
            f"{current.hard_stop_ratio:g}); not enqueued. Raise the budget or wait for next month."
        )
