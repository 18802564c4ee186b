"""Printing a run's summary for a person (plain lines) or a script (``--json``)."""

from __future__ import annotations

from batch_ops.commands._common import emit_json, say
from batch_ops.engine import RunSummary


def print_summary(summary: RunSummary, *, as_json: bool) -> None:
    if as_json:
        emit_json(summary)
        return
    rows = [
        ("enqueued", summary.enqueued),
        ("submitted batches", summary.submitted_batches),
        ("adopted batches", summary.adopted_batches),
        ("ended batches", summary.ended_batches),
        ("completed jobs", summary.completed_jobs),
        ("failed jobs", summary.failed_jobs),
        ("reports", summary.reports),
    ]
    for label, values in rows:
        if values:
            say(f"{label}: {', '.join(values)}")
    if summary.settled:
        say("settled: " + ", ".join(f"{k} {v}" for k, v in sorted(summary.settled.items())))
    if summary.requeued_items:
        say(f"requeued for a follow-up batch: {summary.requeued_items} request(s)")
    if summary.ledger_lines:
        say(f"ledger lines written: {summary.ledger_lines}")
    for note in summary.notes:
        say(f"note: {note}")
    if not any(v for _, v in rows) and not summary.settled and not summary.notes:
        say("nothing to do")
