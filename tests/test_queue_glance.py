"""``read_jobs_where`` gives exactly the jobs ``read_queue`` gives that the predicate wants.

The report reads the queue this way: most lines are only glanced at. Bad lines, paths that
leave ``.backlog-ops/``, duplicated ids in every order, and lines the glance reads but the
full record refuses are mixed in at random; the answer must match the full read's, filtered.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from batch_ops.caching import CacheDecision
from batch_ops.paths import Layout
from batch_ops.queue import TERMINAL, JobGlance, JobRecord, read_jobs_where, read_queue

DECISION = CacheDecision(
    enabled=True, ttl="5m", prefix_tokens=4096, min_cacheable_tokens=1024, sharing_requests=40, hit_rate=0.9,
    prefix_cost_without_usd=0.2, prefix_cost_with_usd=0.05, reason="a long shared prefix",
)  # fmt: skip


def _line(rng: random.Random, k: int) -> str:
    job = JobRecord(
        id=f"job-{rng.randrange(max(1, k // 3)):04d}",
        workflow="w",
        phase=rng.choice(["bulk-ticket-validation", "cost-report"]),
        payload_path=rng.choice([".backlog-ops/payloads/p.jsonl"] * 5 + ["../../etc/passwd"]),
        model_alias="cheap",
        status=rng.choice(["completed", "completed", "failed", "queued", "running"]),
        created_at="2026-01-01T00:00:00Z",
        updated_at="2026-01-01T00:00:00Z",
        cache=DECISION if rng.random() < 0.2 else None,
    )
    text = job.model_dump_json()
    kind = rng.random()
    if kind < 0.05:
        return text[: rng.randrange(len(text))]  # torn: neither reads it
    if kind < 0.1:
        return text.replace('"attempts":0', '"attempts":-1')  # the glance reads it; the record refuses it
    if kind < 0.13:
        return text.replace('"status":', '"status":"lost","_":')  # the glance refuses it too
    if kind < 0.16:
        return text.replace('"id":"', '"id":"\\u00e9')  # an escape: the record's slower path
    return text


def _wants(job: JobGlance | JobRecord) -> bool:
    return job.phase == "cost-report" or job.status not in TERMINAL or job.cache is not None


@pytest.mark.parametrize("seed", range(40))
def test_the_glanced_read_is_the_full_read_filtered(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    layout = Layout(tmp_path)
    layout.ops_dir.mkdir()
    n = rng.choice([5, 30, 200])
    layout.queue_file.write_text("\n".join(_line(rng, n) for _ in range(n)) + "\n\n", encoding="utf-8")
    full = [j for j in read_queue(layout)[0] if _wants(j)]
    glanced = read_jobs_where(layout, _wants)
    assert [j.model_dump() for j in glanced] == [j.model_dump() for j in full]


def test_a_missing_queue_has_no_jobs(tmp_path: Path) -> None:
    assert read_jobs_where(Layout(tmp_path), _wants) == []
