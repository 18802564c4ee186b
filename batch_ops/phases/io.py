"""Reading settled results and writing reports: shared by every phase."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from batch_ops.paths import Layout, safe_file_name
from batch_ops.phases.base import SettledResult
from batch_ops.queue import atomic_write_text, read_queue


def iter_settled(path: Path) -> Iterator[SettledResult]:
    """Stream a job's results file; a line that does not parse is skipped (the engine wrote it)."""
    if not path.exists():
        return
    with open(path, encoding="utf-8", errors="replace") as fh:
        for raw in fh:
            if raw.strip():
                try:
                    yield SettledResult.model_validate_json(raw)
                except ValidationError:
                    continue


def latest_completed_results(
    layout: Layout, phase: str, *, extra_job: str | None = None
) -> dict[str, SettledResult]:
    """ticket_id -> the newest settled result among this phase's completed jobs (and ``extra_job``)."""
    jobs, _ = read_queue(layout)
    chosen = [
        j
        for j in jobs
        if j.phase == phase and j.result_path and (j.status == "completed" or j.id == extra_job)
    ]
    chosen.sort(key=lambda j: (j.updated_at, j.id))
    latest: dict[str, SettledResult] = {}
    for job in chosen:
        assert job.result_path is not None
        for res in iter_settled(layout.resolve_ops_path(job.result_path)):
            if res.meta.ticket_id:
                latest[res.meta.ticket_id] = res
    return latest


def write_report(layout: Layout, name: str, markdown: str, data: Any) -> str:
    """Write ``reports/{name}.md`` and its JSON twin atomically; returns the Markdown's repo path."""
    md_path = layout.own_path(layout.reports_dir / f"{safe_file_name(name)}.md")
    json_path = layout.own_path(layout.reports_dir / f"{safe_file_name(name)}.json")
    atomic_write_text(md_path, markdown.rstrip() + "\n")
    atomic_write_text(json_path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    return layout.rel(md_path)
