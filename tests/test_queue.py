from __future__ import annotations

import json
import multiprocessing
import os
import signal
import time
from pathlib import Path

import pytest

from batch_ops.errors import StateError
from batch_ops.paths import Layout
from batch_ops.queue import JobRecord, QueueStore, atomic_write_text, read_queue


def _job(job_id: str) -> JobRecord:
    return JobRecord(
        id=job_id,
        workflow="refinement",
        phase="refinement",
        payload_path=f".backlog-ops/payloads/{job_id}.jsonl",
        model_alias="cheap",
        created_at="2026-02-18T00:00:00Z",
        updated_at="2026-02-18T00:00:00Z",
    )


def test_design_record_shape_loads(tmp_path: Path) -> None:
    line = (
        '{"id": "job-20260218-0001", "workflow": "refinement", "phase": "refinement",'
        ' "payload_path": ".backlog-ops/payloads/job-20260218-0001.jsonl", "provider": "anthropic",'
        ' "model_alias": "cheap", "status": "queued", "attempts": 0,'
        ' "created_at": "2026-02-18T00:00:00Z", "updated_at": "2026-02-18T00:00:00Z",'
        ' "result_path": null, "error": null, "someone_elses_field": 7}'
    )
    layout = Layout(tmp_path)
    atomic_write_text(layout.queue_file, line + "\n")
    jobs, bad = read_queue(layout)
    assert not bad and jobs[0].id == "job-20260218-0001"
    with QueueStore(layout).locked() as q:
        q.save()
    assert json.loads(layout.queue_file.read_text())["someone_elses_field"] == 7


def test_status_transitions_are_enforced() -> None:
    job = _job("job-1")
    job.transition("submitted")
    job.transition("running")
    job.transition("completed")
    with pytest.raises(StateError, match="illegal status change completed -> queued"):
        job.transition("queued")
    other = _job("job-2")
    with pytest.raises(StateError):
        other.transition("running")


def test_malformed_lines_are_quarantined_not_dropped(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    good = _job("job-1").model_dump_json()
    lines = [good, "{not json", '{"id": "job-2"}', good, ""]
    atomic_write_text(layout.queue_file, "\n".join(lines) + "\n")
    jobs, bad = read_queue(layout)
    assert [j.id for j in jobs] == ["job-1"]
    assert [b.line_number for b in bad] == [2, 3, 4]
    assert "not JSON" in bad[0].reason and "invalid job record" in bad[1].reason and "duplicate" in bad[2].reason
    # Reading changes nothing; the next locked write moves the bad lines aside.
    assert layout.queue_file.read_text().count("\n") == 5
    with QueueStore(layout).locked() as q:
        assert [j.id for j in q.jobs] == ["job-1"]
    kept = [json.loads(x)["text"] for x in layout.queue_quarantine.read_text().splitlines()]
    assert kept == ["{not json", '{"id": "job-2"}', good]
    assert read_queue(layout) == ([jobs[0]], [])
    # Quarantining twice does not duplicate.
    with QueueStore(layout).locked():
        pass
    assert len(layout.queue_quarantine.read_text().splitlines()) == 3


def _writer(root: str, start: int) -> None:
    layout = Layout(Path(root))
    store = QueueStore(layout)
    for i in range(start, start + 10_000):
        with store.locked() as q:
            q.add(_job(f"job-x-{i:06d}"))
            q.save()


def test_kill_during_rewrites_leaves_a_loadable_queue(tmp_path: Path) -> None:
    """SIGKILL a process that rewrites the queue in a loop; every survivor state must load."""
    layout = Layout(tmp_path)
    for attempt in range(8):
        proc = multiprocessing.get_context("fork").Process(target=_writer, args=(str(tmp_path), attempt * 100_000))
        proc.start()
        time.sleep(0.05 + 0.03 * attempt)
        assert proc.pid is not None
        os.kill(proc.pid, signal.SIGKILL)
        proc.join()
        jobs, bad = read_queue(layout)
        assert bad == [], bad[:1]
        assert len({j.id for j in jobs}) == len(jobs)
    # Stale temp files from killed writers are not the queue and do not break it.
    assert layout.queue_file.exists()


def test_lock_serialises_writers(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    ctx = multiprocessing.get_context("fork")

    def add_many(prefix: str) -> None:
        store = QueueStore(layout)
        for i in range(30):
            with store.locked() as q:
                q.add(_job(f"{prefix}-{i}"))
                q.save()

    procs = [ctx.Process(target=add_many, args=(p,)) for p in ("a", "b", "c")]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    jobs, bad = read_queue(layout)
    assert not bad and len(jobs) == 90
