"""Interactive mode: a job's requests through the Messages API, one call at a time, at full price.

A job below ``forceBatchWhenQueueOver`` (or enqueued with ``--interactive``) never becomes a
provider batch. Its requests are sent with ``provider.create_message`` through the one retry
layer (``policy.call_with_retry``), and the answers land exactly where a batch's downloaded
results would: ``results/JOB/<ref>.results.jsonl``, under a ``BatchRef`` whose id starts with
``interactive-``. From there the engine's own settle step takes over (settled file, ledger lines
with ``mode`` "interactive" and zero savings, follow-up round or apply), so both modes produce
the same results file, the same apply and the same ledger shape.

Crash safety: each answer is appended and fsynced to ``<ref>.results.jsonl.part`` as it arrives;
a re-run skips the custom_ids already there, so at most the one call in progress at a crash is
paid twice (the Messages API has no idempotency key either). The part file is renamed when the
chunk is complete, which is the step the batch path calls "downloaded".
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import TYPE_CHECKING

from batch_ops.policy import AuthStop, DeadlineReached, OutageError, PersistentFailure
from batch_ops.providers.base import ProviderRequest, ProviderResult
from batch_ops.queue import BatchRef, JobRecord, Queue, iso, utcnow

if TYPE_CHECKING:
    from batch_ops.engine import Engine, RunSummary

REF_PREFIX = "interactive-"


def run_jobs(engine: Engine, queue: Queue, summary: RunSummary) -> None:
    """Run every live interactive job to its end (or to the run's deadline)."""
    from batch_ops.engine import read_pause, write_pause

    for job in sorted(queue.jobs, key=lambda j: (j.created_at, j.id)):
        if job.terminal or job.mode != "interactive":
            continue
        if read_pause(engine.layout) is not None:
            return
        try:
            _run_job(engine, queue, job, summary)
        except DeadlineReached as exc:
            queue.save()
            summary.notes.append(f"{job.id}: {exc}; the next run continues where this one stopped")
            return
        except (OutageError, AuthStop) as exc:
            write_pause(engine.layout, "outage" if isinstance(exc, OutageError) else "auth-billing", str(exc))
            queue.save()
            raise


def _run_job(engine: Engine, queue: Queue, job: JobRecord, summary: RunSummary) -> None:
    # A follow-up round only comes from a missing answer; bound the loop the way batches are bounded.
    for _ in range(engine.config.policy.retry_policy.max_retries + 2):
        rnd = job.round
        sent = 0
        # Refs left "creating" by a crash are finished first; then the round's remaining requests.
        for ref in [b for b in job.batches if b.round == rnd and b.status == "creating"]:
            sent += _call_chunk(engine, queue, job, ref, engine._ref_ids(job, ref))
        for ids in engine._plan_round(job, rnd):
            ref = engine._new_ref(queue, job, rnd, ids)
            ref.id = f"{REF_PREFIX}{job.id}-r{rnd}-c{ref.chunk}"
            ref.submitted_at = iso(utcnow())
            if job.status == "queued":
                job.transition("submitted")
            queue.save()
            sent += _call_chunk(engine, queue, job, ref, ids)
        job.round_submitted = True
        job.touch()
        queue.save()
        if sent:
            summary.notes.append(f"{job.id}: {sent} request(s) sent interactively (Messages API)")
        engine._reconcile_job(queue, job, summary)  # settle, then a follow-up round or apply
        if job.terminal or job.round == rnd:
            return


def _done_ids(part: Path) -> set[str]:
    done: set[str] = set()
    if not part.exists():
        return done
    with open(part, encoding="utf-8") as fh:
        for raw in fh:
            try:
                done.add(ProviderResult.model_validate_json(raw).custom_id)
            except ValueError:
                continue  # a line cut short by a crash: that request is simply sent again
    return done


def _call_chunk(engine: Engine, queue: Queue, job: JobRecord, ref: BatchRef, ids: list[str]) -> int:
    target = engine._ref_file(job, ref, "results.jsonl")
    part = target.with_name(target.name + ".part")
    target.parent.mkdir(parents=True, exist_ok=True)
    done = _done_ids(part)
    if done:
        _drop_partial_line(part)
    sent = 0
    with open(part, "a", encoding="utf-8") as fh:
        for request in engine._requests_for(job, ids):
            if request.custom_id in done:
                continue
            result = _call_one(engine, request)
            fh.write(result.model_dump_json() + "\n")
            fh.flush()
            os.fsync(fh.fileno())
            sent += 1
    part.replace(target)
    ref.status = "downloaded"
    ref.ended_at = iso(utcnow())
    job.attempts += 1
    job.touch()
    queue.save()
    return sent


def _drop_partial_line(part: Path) -> None:
    data = part.read_bytes()
    if data and not data.endswith(b"\n"):
        part.write_bytes(data[: data.rfind(b"\n") + 1])


def _call_one(engine: Engine, request: ProviderRequest) -> ProviderResult:
    try:
        result: ProviderResult = engine._call(functools.partial(engine.provider.create_message, request))
        return result
    except PersistentFailure as exc:
        # The API refused this request's shape: the item fails on its own, as in a batch.
        return ProviderResult(
            custom_id=request.custom_id,
            outcome="errored",
            error_type="invalid_request_error",
            error_message=str(exc)[:500],
        )
