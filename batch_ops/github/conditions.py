"""The conditions an operator is alerted about, read from the repository's state (no network).

* a pause (``.backlog-ops/paused.json``): ``provider-outage`` or ``auth-billing``;
* failed requests: the latest settled result of a request (by phase and ``custom_id``, newest job
  last) is ``failed``, or a job failed as a whole and was not retried;
* budget: month-to-date ledger cost against ``llmOps.budget`` (``warnRatio``, ``hardStopRatio``).

Also a run record: the ``--json`` output of ``submit`` / ``reconcile`` / ``cycle`` (a RunSummary),
which says which jobs ended in this run.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from batch_ops.config import Config
from batch_ops.engine import PauseState, RunSummary, read_pause
from batch_ops.ledger import LedgerLine, iter_ledger
from batch_ops.markdown import cell, inline
from batch_ops.paths import Layout
from batch_ops.phases.io import iter_settled
from batch_ops.queue import JobRecord, read_queue


@dataclass(frozen=True)
class FailedItem:
    job_id: str
    phase: str
    custom_id: str
    ticket_id: str | None
    error: str


@dataclass
class BudgetState:
    month: str
    spent_usd: float
    monthly_usd: float
    warn_ratio: float
    hard_stop_ratio: float

    @property
    def ratio(self) -> float:
        return self.spent_usd / self.monthly_usd if self.monthly_usd else 0.0

    @property
    def level(self) -> str | None:
        if self.ratio >= self.hard_stop_ratio:
            return "budget-hard-stop"
        if self.ratio >= self.warn_ratio:
            return "budget-warning"
        return None

    def describe(self) -> str:
        return (
            f"${self.spent_usd:.2f} spent in {self.month} of a ${self.monthly_usd:.2f} monthly budget "
            f"({self.ratio:.0%}; warning at {self.warn_ratio:.0%}, hard stop at {self.hard_stop_ratio:.0%})"
        )


@dataclass
class RunRecord:
    """What the run's steps reported (merged), and whether every record could be read."""

    summary: RunSummary = field(default_factory=RunSummary)
    sources: list[str] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)

    @property
    def ended_jobs(self) -> set[str]:
        return set(self.summary.completed_jobs) | set(self.summary.failed_jobs)


def read_run_records(paths: Iterable[str | Path]) -> RunRecord:
    """Merge RunSummary JSON files (an argument may name several, comma or newline separated).

    A missing or broken one (a step that died before writing it) is noted, not fatal.
    """
    record = RunRecord()
    names = [p.strip() for raw in paths for p in re.split(r"[,\n]", str(raw)) if p.strip()]
    for name in names:
        path = Path(name)
        try:
            text = path.read_text(encoding="utf-8")
            one = RunSummary.model_validate_json(text) if text.strip() else RunSummary()
        except (OSError, ValidationError, ValueError):
            record.unreadable.append(str(path))
            continue
        record.sources.append(str(path))
        record.summary.merge(one)
    return record


def pause_alert_kind(pause: PauseState) -> str:
    return "auth-billing" if pause.kind == "auth-billing" else "provider-outage"


def describe_pause(pause: PauseState) -> str:
    since = f" since {pause.since}" if pause.since else ""
    return f"The queue is paused ({inline(pause.kind)}){since}: {inline(pause.reason)}"


def current_pause(layout: Layout) -> PauseState | None:
    return read_pause(layout)


def _job_order(job: JobRecord) -> tuple[str, str]:
    return (job.created_at, job.id)


def outstanding_failures(layout: Layout, jobs: list[JobRecord] | None = None) -> list[FailedItem]:
    """Failed requests whose latest result is still a failure, and whole-job failures not retried."""
    if jobs is None:
        jobs, _ = read_queue(layout)
    latest: dict[tuple[str, str], FailedItem | None] = {}
    whole: list[FailedItem] = []
    for job in sorted(jobs, key=_job_order):
        if not job.terminal:
            continue
        if job.result_path:
            try:
                path = layout.resolve_ops_path(job.result_path)
            except Exception:  # a hand-edited path outside .backlog-ops: not ours to read
                continue
            for res in iter_settled(path):
                key = (job.phase, res.custom_id)
                if res.status == "failed":
                    latest[key] = FailedItem(
                        job.id, job.phase, res.custom_id, res.meta.ticket_id, res.error or "failed"
                    )
                else:
                    latest[key] = None
        elif job.status == "failed":
            whole.append(FailedItem(job.id, job.phase, "*", None, job.error or "failed"))
    return whole + [item for item in latest.values() if item is not None]


def failures_table(items: list[FailedItem], *, limit: int = 50) -> str:
    if not items:
        return ""
    rows = ["| job | request | ticket | error |", "| --- | --- | --- | --- |"]
    for item in items[:limit]:
        request = "(whole job)" if item.custom_id == "*" else item.custom_id
        ticket = cell(item.ticket_id) if item.ticket_id else "-"
        rows.append(f"| {cell(item.job_id)} | {cell(request)} | {ticket} | {cell(item.error)} |")
    if len(items) > limit:
        rows.append(f"| … | {len(items) - limit} more | | |")
    return "\n".join(rows)


def month_of(timestamp: str) -> str:
    return timestamp[:7]


def budget_state(layout: Layout, config: Config, now: dt.datetime | None = None) -> BudgetState | None:
    budget = config.llm_ops.budget
    if budget is None:
        return None
    month = (now or dt.datetime.now(dt.UTC)).strftime("%Y-%m")
    spent = sum(line.cost_usd for line in iter_ledger(layout.ledger_file) if month_of(line.timestamp) == month)
    return BudgetState(month, spent, budget.monthly_usd, budget.warn_ratio, budget.hard_stop_ratio)


def last_ledger_lines(layout: Layout, count: int) -> list[LedgerLine]:
    """The ledger's last ``count`` lines: what this run appended (runs hold the concurrency group)."""
    if count <= 0:
        return []
    lines = list(iter_ledger(layout.ledger_file))
    return lines[-count:]

