"""Reading settled results and writing reports: shared by every phase."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from batch_ops.paths import Layout, safe_file_name
from batch_ops.phases.base import SettledResult, read_settled
from batch_ops.queue import atomic_write_text, locked_jobs


def iter_settled(path: Path) -> Iterator[SettledResult]:
    """Stream a job's results file; a line that does not parse is skipped (the engine wrote it)."""
    return read_settled(path)


# The start of a succeeded result as the engine writes it (compact, custom_id then status).
_SUCCEEDED = re.compile(rb'\{"custom_id":"[^"\\]*","status":"succeeded",')


def iter_failed(path: Path) -> Iterator[SettledResult]:
    """The failed results of a results file, as ``iter_settled`` gives them.

    Lines that open as the engine writes a succeeded result are passed over unparsed: a job's
    failures are read after every apply, and parsing 100,000 answers to find a few cost seconds.
    """
    if not path.exists():
        return
    with open(path, "rb") as fh:
        for raw in fh:
            if not raw.strip() or _SUCCEEDED.match(raw):
                continue
            try:
                res = SettledResult.model_validate_json(raw.decode("utf-8", errors="replace"))
            except ValidationError:
                continue
            if res.status == "failed":
                yield res


def latest_completed_results(
    layout: Layout, phase: str, *, extra_job: str | None = None, wanted: set[str] | None = None
) -> dict[str, SettledResult]:
    """ticket_id -> the newest settled result among this phase's completed jobs (and ``extra_job``).

    With ``wanted``, only those tickets are kept (and nothing is read when it is empty): a phase
    that reports on the pending tickets need not hold every result of every past job.
    """
    if wanted is not None and not wanted:
        return {}
    chosen = [
        j
        for j in _job_fields(layout)
        if j.phase == phase and j.result_path and (j.status == "completed" or j.id == extra_job)
    ]
    # Newest job first, keeping the first verdict found per ticket: with ``wanted``, the walk stops
    # as soon as every wanted ticket has one, so a queue of 10,000 old jobs is not read through.
    chosen.sort(key=lambda j: (j.updated_at, j.id), reverse=True)
    latest: dict[str, SettledResult] = {}
    for job in chosen:
        assert job.result_path is not None
        in_job: dict[str, SettledResult] = {}
        for res in iter_settled(layout.resolve_ops_path(job.result_path)):
            if res.meta.ticket_id and (wanted is None or res.meta.ticket_id in wanted):
                in_job[res.meta.ticket_id] = res  # within one job, the later line wins
        for ticket_id, res in in_job.items():
            latest.setdefault(ticket_id, res)
        if wanted is not None and len(latest) >= len(wanted):
            break
    return latest


@dataclass(frozen=True)
class _JobFields:
    id: str
    phase: str
    status: str
    result_path: str | None
    updated_at: str


def _job_fields(layout: Layout) -> list[_JobFields]:
    """The few fields of each queue record this module needs, without validating whole records.

    Runs inside every apply, right after the engine saved the queue (10,000 jobs: a full parse
    took half a second); a line that does not parse is left to the queue's own reader to report.
    Inside the engine's run the queue is in memory, locked: it is taken from there.
    """
    held = locked_jobs(layout)
    if held is not None:
        return [_JobFields(j.id, j.phase, j.status, j.result_path, j.updated_at) for j in held]
    try:
        text = layout.queue_file.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return []
    out: list[_JobFields] = []
    for line in text.splitlines():
        try:
            data = json.loads(line)
            fields = _JobFields(
                str(data["id"]), str(data["phase"]), str(data.get("status") or "queued"),
                data.get("result_path") if isinstance(data.get("result_path"), str) else None,
                str(data.get("updated_at") or ""),
            )  # fmt: skip
        except (ValueError, KeyError, TypeError, AttributeError):
            continue
        out.append(fields)
    return out


def write_report(layout: Layout, name: str, markdown: str, data: Any, *, json_text: str | None = None) -> str:
    """Write ``reports/{name}.md`` and its JSON twin atomically; returns the Markdown's repo path.

    ``json_text``: the twin already encoded (as ``json.dumps(data, indent=2, ensure_ascii=False)``).
    """
    md_path = layout.own_path(layout.reports_dir / f"{safe_file_name(name)}.md")
    json_path = layout.own_path(layout.reports_dir / f"{safe_file_name(name)}.json")
    atomic_write_text(md_path, markdown.rstrip() + "\n")
    if json_text is None:
        json_text = json.dumps(data, indent=2, ensure_ascii=False)
    atomic_write_text(json_path, json_text + "\n")
    return layout.rel(md_path)
