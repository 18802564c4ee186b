"""Build batch-ops state files directly (queue, results, ledger, pause) for the GitHub-side tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from batch_ops.engine import write_pause
from batch_ops.paths import Layout
from batch_ops.queue import JobRecord, QueueStore

GH_TOKEN = "ghs_fake_token_never_printed_0123456789"
REPO = "octo/app"


def job(job_id: str, status: str = "completed", *, phase: str = "bulk-ticket-validation", **extra: Any) -> JobRecord:
    return JobRecord(
        id=job_id,
        workflow="validation",
        phase=phase,
        payload_path=f".backlog-ops/payloads/{job_id}.jsonl",
        model_alias="cheap",
        status=status,  # type: ignore[arg-type]
        created_at=extra.pop("created_at", "2026-02-18T00:00:00Z"),
        updated_at=extra.pop("updated_at", "2026-02-18T00:00:00Z"),
        **extra,
    )


def write_jobs(root: Path, jobs: list[JobRecord]) -> None:
    with QueueStore(Layout(root)).locked() as queue:
        queue.jobs[:] = jobs
        queue.save()


def write_results(root: Path, job_id: str, results: list[tuple[str, str, str | None, str | None]]) -> str:
    """results: (custom_id, status, ticket_id, error); returns the repo-relative path."""
    rel = f".backlog-ops/results/{job_id}.jsonl"
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [
        json.dumps({"custom_id": cid, "status": st, "meta": {"ticket_id": tid}, "error": err})
        for cid, st, tid, err in results
    ]
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return rel


def ledger_line(job_id: str, custom_id: str, cost: float, timestamp: str = "2026-02-18T00:00:00Z") -> str:
    return json.dumps(
        {
            "timestamp": timestamp, "workflow": "validation", "phase": "bulk-ticket-validation",
            "job_id": job_id, "batch_id": "msgbatch_1", "custom_id": custom_id, "ticket_id": None,
            "provider": "anthropic", "model_alias": "cheap", "model": "claude-haiku-4-5", "mode": "batch",
            "input_tokens": 100, "output_tokens": 10, "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0, "cost_usd": cost, "interactive_cost_usd": cost * 2,
            "savings_usd": cost, "status": "succeeded",
        },
        separators=(",", ":"),
    )


def append_ledger(root: Path, *lines: str) -> None:
    path = Layout(root).ledger_file
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as fh:
        for line in lines:
            fh.write(line + "\n")


OUTAGE_REASON = "retrieve: HTTP 500 api_error (still failing after 3 retries)"


def pause(root: Path, kind: str = "outage", reason: str = OUTAGE_REASON) -> None:
    write_pause(Layout(root), kind, reason)
