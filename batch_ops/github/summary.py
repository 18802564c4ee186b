"""The job summary (``$GITHUB_STEP_SUMMARY``) and the annotations of a run.

Text from tickets and models goes through ``batch_ops.markdown`` before it lands in Markdown, and
through ``escape_data`` / ``escape_property`` before it lands in a workflow command, so that it can
neither break the table nor act on the runner.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from batch_ops.config import Config
from batch_ops.github.conditions import (
    RunRecord,
    budget_state,
    current_pause,
    describe_pause,
    failures_table,
    last_ledger_lines,
    outstanding_failures,
)
from batch_ops.ledger import iter_ledger
from batch_ops.markdown import cell, inline
from batch_ops.paths import Layout
from batch_ops.queue import read_queue

MAX_ANNOTATIONS = 10  # GitHub shows at most 10 error annotations per step
MAX_TERMINAL_ROWS = 20


def escape_data(text: str) -> str:
    """GitHub's escaping for a workflow command's message."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    """GitHub's escaping for a workflow command's property value (``title=…``)."""
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def annotation(level: str, title: str, message: str) -> str:
    return f"::{level} title={escape_property(title)}::{escape_data(' '.join(message.split()))}"


@dataclass
class Rendered:
    markdown: str
    annotations: list[str] = field(default_factory=list)


def _money(value: float) -> str:
    return f"${value:.4f}"


def render(layout: Layout, config: Config, run: RunRecord, *, title: str = "batch-ops") -> Rendered:
    jobs, bad = read_queue(layout)
    pause = current_pause(layout)
    s = run.summary
    out: list[str] = [f"## {inline(title)}", ""]
    notes: list[str] = []
    annotations: list[str] = []

    if pause is not None:
        out += [f"> [!WARNING]\n> {describe_pause(pause)}. Nothing new is submitted until it is lifted.", ""]
        annotations.append(annotation("error", "batch-ops: queue paused", describe_pause(pause)))
    for path in run.unreadable:
        notes.append(f"run record {inline(path)} missing or unreadable (the step ended before writing it)")

    # -- this run
    this_run = [
        ("jobs enqueued", len(s.enqueued)),
        ("batches submitted", len(s.submitted_batches)),
        ("batches adopted after a lost answer", len(s.adopted_batches)),
        ("batches ended", len(s.ended_batches)),
        ("jobs completed", len(s.completed_jobs)),
        ("jobs failed", len(s.failed_jobs)),
        ("requests requeued for a follow-up batch", s.requeued_items),
    ]
    run_lines = last_ledger_lines(layout, s.ledger_lines)
    run_cost = sum(line.cost_usd for line in run_lines)
    run_saved = sum(line.savings_usd for line in run_lines)
    out += ["### This run", "", "| | |", "| --- | --- |"]
    for label, count in this_run:
        if count:
            out.append(f"| {label} | {count} |")
    settled = ", ".join(f"{inline(k)} {v}" for k, v in sorted(s.settled.items()))
    out.append(f"| requests settled | {s.ledger_lines}" + (f" ({settled})" if settled else "") + " |")
    out.append(f"| cost | {_money(run_cost)} |")
    out.append(f"| saved against interactive | {_money(run_saved)} |")
    out.append("")

    # -- the queue
    cost: dict[str, float] = defaultdict(float)
    saved: dict[str, float] = defaultdict(float)
    total_cost = total_saved = 0.0
    requests = 0
    for line in iter_ledger(layout.ledger_file):
        cost[line.job_id] += line.cost_usd
        saved[line.job_id] += line.savings_usd
        total_cost += line.cost_usd
        total_saved += line.savings_usd
        requests += 1
    touched = set(s.enqueued) | run.ended_jobs
    live = [j for j in jobs if not j.terminal or j.id in touched]
    older = [j for j in jobs if j.terminal and j.id not in touched][-MAX_TERMINAL_ROWS:]
    shown = sorted(live + older, key=lambda j: (j.created_at, j.id))
    out += ["### Jobs", ""]
    if shown:
        out += [
            "| job | phase | model | status | requests | settled | cost | saved |",
            "| --- | --- | --- | --- | ---: | --- | ---: | ---: |",
        ]
        for job in shown:
            settled_text = ", ".join(f"{k} {v}" for k, v in sorted(job.settled.items()))
            settled_cell = cell(settled_text) if settled_text else "-"
            status = f"**{job.status}**" if job.id in touched else job.status
            out.append(
                f"| {cell(job.id)} | {cell(job.phase)} | {cell(job.model_alias)} | {status} | "
                f"{job.request_count} | {settled_cell} | {_money(cost[job.id])} | {_money(saved[job.id])} |"
            )
        hidden = len(jobs) - len(shown)
        if hidden:
            out.append(f"| … | {hidden} older finished job(s) not shown | | | | | | |")
    else:
        out.append("No jobs in the queue.")
    out += [
        "",
        f"Ledger: {requests} request(s), cost {_money(total_cost)}, saved {_money(total_saved)} "
        "against interactive prices.",
    ]
    budget = budget_state(layout, config)
    if budget is not None:
        out.append(f"Budget: {budget.describe()}.")
        if budget.level:
            annotations.append(annotation("warning", f"batch-ops: {budget.level}", budget.describe()))
    out.append("")

    # -- failures
    failed = outstanding_failures(layout, jobs)
    new = [f for f in failed if f.job_id in run.ended_jobs]
    if failed:
        out += ["### Failed requests", ""]
        out += failures_table(failed).splitlines()
        out.append("")
    for item in (new if run.sources else failed)[:MAX_ANNOTATIONS]:
        where = item.job_id if item.custom_id == "*" else f"{item.job_id} {item.custom_id}"
        annotations.append(annotation("error", f"batch-ops: failed request {where}", item.error))

    for note in s.notes:
        notes.append(inline(note))
    for q in bad:
        notes.append(f"batch-queue.jsonl line {q.line_number}: {inline(q.reason)}")
    if notes:
        out += ["### Notes", ""] + [f"- {n}" for n in notes] + [""]
    return Rendered("\n".join(out).rstrip() + "\n", annotations)

