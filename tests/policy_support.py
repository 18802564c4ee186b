"""Helpers for the failure-policy, limits and crash tests: config edits, polling, invariants.

Nothing here fakes anything: the CLI, the SDK and the sandbox are the real ones.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from batch_ops.ledger import LedgerLine, LedgerProblem, iter_ledger
from batch_ops.paths import Layout
from batch_ops.phases.base import SettledResult
from batch_ops.phases.io import iter_settled
from batch_ops.queue import JobRecord, read_queue
from batch_ops.sandbox import SandboxServer

# The sample backlog's cheap-llm and requires-frontier tickets (its README lists them).
CHEAP, FRONTIER = 7, 4

FAST_RETRY = {"maxRetries": 3, "backoffMultiplier": 2.0, "initialDelaySeconds": 0.01, "maxDelaySeconds": 0.05}


@pytest.fixture(autouse=True)
def validation_only_in_batch(request: pytest.FixtureRequest) -> None:
    """These tests are about the batch path: one phase, and every job a batch however small.

    Autouse, so it applies to every module that imports it.
    """
    if "sample_repo" in request.fixturenames:
        configure(request.getfixturevalue("sample_repo"), eligiblePhases=["bulk-ticket-validation"],
                  forceBatchWhenQueueOver=0)  # fmt: skip


def configure(repo: Path, **policy: Any) -> None:
    """Set keys of llmOps.batchPolicy (fast retries unless given), leaving the rest of the file alone."""
    path = repo / "backlog.config.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    batch = data.setdefault("llmOps", {}).setdefault("batchPolicy", {})
    batch["retryPolicy"] = {**FAST_RETRY, **policy.pop("retryPolicy", {})}
    batch.update(policy)
    path.write_text(json.dumps(data, indent=2), encoding="utf-8")


def jobs(repo: Path) -> list[JobRecord]:
    found, bad = read_queue(Layout(repo))
    assert not bad, bad
    return found


def job_by_alias(repo: Path, alias: str) -> JobRecord:
    return next(j for j in jobs(repo) if j.model_alias == alias)


def ledger(repo: Path) -> list[LedgerLine]:
    problems: list[LedgerProblem] = []
    lines = list(iter_ledger(Layout(repo).ledger_file, problems))
    assert not problems, problems
    return lines


def results(repo: Path, job: JobRecord) -> list[SettledResult]:
    assert job.result_path is not None
    return list(iter_settled(Layout(repo).resolve_ops_path(job.result_path)))


def reconcile_until_done(cli: Any, repo: Path, limit: float = 30.0, *, expect: int = 0) -> None:
    end = time.monotonic() + limit
    while time.monotonic() < end:
        res = cli(repo, "reconcile")
        assert res.code == expect, res.err
        found = jobs(repo)
        if found and all(j.terminal for j in found):
            return
        time.sleep(0.1)
    raise AssertionError(f"jobs did not finish: {[(j.id, j.status) for j in jobs(repo)]}")


def owned_batch_ids(repo: Path) -> list[str]:
    return [b.id for j in jobs(repo) for b in (*j.batches, *j.previous_batches) if b.id]


def assert_no_duplicate_batches(repo: Path, srv: SandboxServer) -> None:
    """Every batch the provider holds is owned by exactly one ref: none created twice, none orphaned."""
    created = [b["id"] for b in srv.batch_summaries()]
    owned = owned_batch_ids(repo)
    assert len(owned) == len(set(owned)), f"a batch is owned twice: {Counter(owned).most_common(3)}"
    assert sorted(created) == sorted(owned), {
        "orphaned (created, owned by no job)": sorted(set(created) - set(owned)),
        "owned but never created": sorted(set(owned) - set(created)),
    }


def assert_ledger_once(repo: Path) -> list[LedgerLine]:
    """One ledger line per processed request of every terminal job, none twice.

    A job re-queued by `batch-ops retry` settles its requests a second time, in other batches:
    its lines are unique by batch instead.
    """
    lines = ledger(repo)
    retried = {j.id for j in jobs(repo) if j.retried_by_operator and j.previous_batches}
    keys = [
        (line.job_id, line.custom_id) + ((line.batch_id,) if line.job_id in retried else ()) for line in lines
    ]
    assert len(keys) == len(set(keys)), f"ledger lines written twice: {Counter(keys).most_common(3)}"
    per_job = Counter(line.job_id for line in lines)
    for job in jobs(repo):
        if job.terminal and job.id not in retried:
            processed = sum(1 for r in results(repo, job) if not (r.error or "").startswith("rejected"))
            assert per_job[job.id] == processed, (job.id, per_job[job.id], processed)
    return lines


def batch_sizes(srv: SandboxServer) -> list[int]:
    return [b["request_count"] for b in srv.batch_summaries()]
