"""The job state machine: enqueue, submit, reconcile (poll, download, settle, follow up, apply).

Crash safety comes from the order of writes, each of them atomic:

* submit records its intent (a ``BatchRef`` in state ``creating`` and a create-attempt count)
  before every ``create`` call; a ref left in doubt by a crash or a timeout is matched against the
  provider's list of batches (newest first, by creation time and request count) and adopted
  before anything is created again, because the API has no idempotency key.
* reconcile downloads a batch's results to a temp file and renames it, then writes the settled
  file, then marks the ledger append in progress, appends, and marks the batch settled. A crash
  in between repeats the step; the ledger append skips lines that are already there.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from batch_ops.backlog import BacklogScan, scan_backlog
from batch_ops.config import Config
from batch_ops.errors import PolicyRefusal, StateError
from batch_ops.ledger import LedgerAppend, cost_values, keys_for_batch
from batch_ops.paths import Layout, safe_file_name
from batch_ops.payload import iter_payload, iter_payload_meta
from batch_ops.phases.base import OutputError, Phase, PhaseContext, PlannedItem, SettledResult
from batch_ops.phases.io import iter_settled
from batch_ops.policy import (
    AuthStop,
    DeadlineReached,
    OutageError,
    PersistentFailure,
    call_with_retry,
    settle_outcome,
)
from batch_ops.providers.base import BatchInfo, Provider, ProviderResult, ResultLine
from batch_ops.queue import BatchRef, JobRecord, Queue, QueueStore, atomic_write_text, atomic_writer, iso, utcnow
from batch_ops.triage import triage

MAX_BATCH_REQUESTS = 100_000
MAX_BATCH_BYTES = 256 * 1024 * 1024
# Room for the {"requests": [...]} wrapper so the body sent stays under the API's limit.
_BODY_OVERHEAD = 64
# How far before our recorded intent a provider's created_at may fall and still be ours (clock skew).
ADOPT_SKEW = dt.timedelta(seconds=120)


class PauseState(BaseModel):
    kind: str
    reason: str
    since: str


class RunSummary(BaseModel):
    enqueued: list[str] = Field(default_factory=list)
    submitted_batches: list[str] = Field(default_factory=list)
    adopted_batches: list[str] = Field(default_factory=list)
    ended_batches: list[str] = Field(default_factory=list)
    completed_jobs: list[str] = Field(default_factory=list)
    failed_jobs: list[str] = Field(default_factory=list)
    settled: dict[str, int] = Field(default_factory=dict)
    requeued_items: int = 0
    ledger_lines: int = 0
    reports: list[str] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)
    skipped: list[str] = Field(default_factory=list)


@dataclass
class _Chunk:
    index: int
    # The JSON sent for each request, as UTF-8 bytes: one byte per byte sent, where a str holding a
    # single non-Latin-1 character (an em dash in a ticket) takes two or four bytes per character.
    requests: list[bytes] = field(default_factory=list)
    size: int = 0


def read_pause(layout: Layout) -> PauseState | None:
    try:
        return PauseState.model_validate_json(layout.pause_file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except ValueError:
        # A damaged pause file still means paused: better to wait for an operator than to hammer.
        return PauseState(kind="unknown", reason="pause file is unreadable", since="")


def write_pause(layout: Layout, kind: str, reason: str) -> None:
    state = PauseState(kind=kind, reason=reason, since=iso(utcnow()))
    atomic_write_text(layout.pause_file, state.model_dump_json(indent=2) + "\n")


def clear_pause(layout: Layout) -> bool:
    try:
        layout.pause_file.unlink()
        return True
    except FileNotFoundError:
        return False



class Engine:
    def __init__(
        self,
        layout: Layout,
        config: Config,
        phases: dict[str, Phase],
        provider_factory: Callable[[], Provider] | None = None,
        *,
        deadline: float | None = None,
        max_batch_requests: int = MAX_BATCH_REQUESTS,
        max_batch_bytes: int = MAX_BATCH_BYTES,
        warn: Callable[[str], None] = lambda _msg: None,
    ) -> None:
        self.layout = layout
        self.config = config
        self.phases = phases
        self._provider_factory = provider_factory
        self._provider: Provider | None = None
        self.deadline = deadline
        self.max_batch_requests = max_batch_requests
        self.max_batch_bytes = max_batch_bytes
        self.warn = warn
        self.store = QueueStore(layout)
        self._scan: BacklogScan | None = None

    # -- shared -------------------------------------------------------------------------------

    @property
    def provider(self) -> Provider:
        if self._provider is None:
            if self._provider_factory is None:
                raise StateError("no provider configured")
            self._provider = self._provider_factory()
        return self._provider

    def scan(self) -> BacklogScan:
        if self._scan is None:
            self._scan = scan_backlog(self.layout.root, self.config.backlog.data_dir)
            for problem in self._scan.problems:
                self.warn(f"skipped ticket {problem}")
        return self._scan

    def context(self) -> PhaseContext:
        scan = self.scan()
        return PhaseContext(
            self.layout, self.config, scan, triage(scan.pending, self.config.ticket_validation)
        )

    def _call(self, fn: Callable[[], Any]) -> Any:
        return call_with_retry(fn, self.config.policy.retry_policy, deadline=self.deadline)

    def check_phase_allowed(self, phase: str) -> None:
        policy = self.config.policy
        if not policy.enabled:
            raise PolicyRefusal("llmOps.batchPolicy.enabled is false: batch work is switched off")
        if phase not in policy.eligible_phases:
            raise PolicyRefusal(
                f"phase {phase!r} is not in llmOps.batchPolicy.eligiblePhases ({', '.join(policy.eligible_phases)})"
            )
        if phase not in self.phases:
            raise PolicyRefusal(f"phase {phase!r} is not implemented in this version")

    # -- enqueue ------------------------------------------------------------------------------

    def enqueue(self, phase_names: list[str], summary: RunSummary) -> None:
        for name in phase_names:
            self.check_phase_allowed(name)
        ctx = self.context()
        with self.store.locked() as queue:
            for name in phase_names:
                phase = self.phases[name]
                covered = self._covered_items(queue, name)
                for planned in phase.plan(ctx):
                    items = [
                        it for it in planned.items if (it.custom_id, it.meta.content_hash) not in covered
                    ]
                    if not items:
                        summary.skipped.append(f"{name}/{planned.model_alias}: nothing new to send")
                        continue
                    job = self._new_job(queue, phase, planned.model_alias, items)
                    summary.enqueued.append(job.id)

    def _covered_items(self, queue: Queue, phase: str) -> set[tuple[str, str | None]]:
        """Requests already in a live or completed job of this phase, keyed with the ticket's hash."""
        covered: set[tuple[str, str | None]] = set()
        for job in queue.jobs:
            if job.phase != phase or job.status == "failed":
                continue
            try:
                path = self.layout.resolve_ops_path(job.payload_path)
                with open(path, encoding="utf-8") as fh:
                    for raw in fh:
                        if raw.strip():
                            data = json.loads(raw)
                            covered.add((data["custom_id"], (data.get("meta") or {}).get("content_hash")))
            except (OSError, ValueError, KeyError) as exc:
                self.warn(
                    f"job {job.id}: payload unreadable ({type(exc).__name__}); not used for de-duplication"
                )
        return covered

    def _new_job(self, queue: Queue, phase: Phase, alias: str, items: list[PlannedItem]) -> JobRecord:
        now = utcnow()
        job_id = queue.next_job_id(now)
        payload = self.layout.payloads_dir / f"{job_id}.jsonl"
        text = "".join(
            json.dumps(
                {
                    "custom_id": it.custom_id,
                    "params": it.params,
                    "meta": it.meta.model_dump(exclude_none=True),
                },
                separators=(",", ":"),
                ensure_ascii=False,
            )
            + "\n"
            for it in items
        )
        atomic_write_text(payload, text)
        job = JobRecord(
            id=job_id,
            workflow=phase.workflow,
            phase=phase.name,
            payload_path=self.layout.rel(payload),
            model_alias=alias,
            created_at=iso(now),
            updated_at=iso(now),
            request_count=len(items),
        )
        queue.add(job)
        queue.save()
        return job

    # -- submit -------------------------------------------------------------------------------

    def submit(self, summary: RunSummary) -> None:
        pause = read_pause(self.layout)
        if pause is not None:
            summary.notes.append(f"queue paused ({pause.kind}): {pause.reason}; nothing submitted")
            return
        with self.store.locked() as queue:
            self._submit_locked(queue, summary)

    def _in_flight(self, queue: Queue) -> int:
        return sum(len(job.in_flight()) for job in queue.jobs)

    def _submit_locked(self, queue: Queue, summary: RunSummary) -> None:
        now = utcnow()
        for job in sorted(queue.jobs, key=lambda j: (j.created_at, j.id)):
            if job.terminal or job.mode != "batch":
                continue
            if job.next_attempt_at and job.next_attempt_at > iso(now):
                continue
            if job.phase not in self.config.policy.eligible_phases or not self.config.policy.enabled:
                summary.notes.append(f"{job.id}: phase {job.phase} is not eligible now; left queued")
                continue
            try:
                self._submit_job(queue, job, summary)
            except DeadlineReached as exc:
                job.next_attempt_at = iso(utcnow())
                job.error = str(exc)
                job.touch()
                queue.save()
                summary.notes.append(f"{job.id}: {exc}")
                return

    def _round_source(self, job: JobRecord, rnd: int) -> tuple[Path, set[str] | None]:
        payload = self.layout.resolve_ops_path(job.payload_path)
        if rnd == 1:
            return payload, None
        ids_path = self._job_dir(job) / f"round-{rnd}.ids"
        return payload, set(ids_path.read_text(encoding="utf-8").split())

    def _job_dir(self, job: JobRecord) -> Path:
        return self.layout.results_dir / safe_file_name(job.id)

    def _chunks(self, job: JobRecord, rnd: int) -> Iterator[_Chunk]:
        """Split a round's requests under the request-count and byte limits, in payload order."""
        payload, subset = self._round_source(job, rnd)
        chunk = _Chunk(index=0)
        for item in iter_payload(payload):
            if subset is not None and item.custom_id not in subset:
                continue
            data = item.request.encode("utf-8")
            size = len(data) + 1
            if chunk.requests and (
                len(chunk.requests) >= self.max_batch_requests
                or chunk.size + size + _BODY_OVERHEAD > self.max_batch_bytes
            ):
                yield chunk
                chunk = _Chunk(index=chunk.index + 1)
            chunk.requests.append(data)
            chunk.size += size
        if chunk.requests:
            yield chunk

    def _submit_job(self, queue: Queue, job: JobRecord, summary: RunSummary) -> None:
        rnd = job.round
        refs = {b.chunk: b for b in job.batches if b.round == rnd}
        if job.round_submitted and all(b.status != "creating" for b in refs.values()):
            return  # every chunk of this round has its batch: nothing to send, no payload to read
        for chunk in self._chunks(job, rnd):
            ref = refs.get(chunk.index)
            if ref is not None and ref.status != "creating":
                chunk.requests.clear()
                continue
            if ref is None and self._in_flight(queue) >= self.config.policy.max_concurrent_batch_jobs:
                cap = self.config.policy.max_concurrent_batch_jobs
                summary.notes.append(f"{job.id}: waiting for a slot (maxConcurrentBatchJobs={cap})")
                return
            if ref is None:
                ref = BatchRef(
                    round=rnd, chunk=chunk.index, request_count=len(chunk.requests), intent_at=iso(utcnow())
                )
                job.batches.append(ref)
                queue.save()
            self._create_batch(queue, job, ref, chunk, summary)
            # Let the chunk go before the next is read: at most one batch's bytes in memory.
            chunk.requests.clear()
            if job.status == "failed":
                return
        job.round_submitted = True
        job.touch()
        queue.save()

    def _create_batch(
        self, queue: Queue, job: JobRecord, ref: BatchRef, chunk: _Chunk, summary: RunSummary
    ) -> None:
        requests = chunk.requests

        def attempt() -> tuple[BatchInfo, bool]:
            if ref.create_attempts > 0:
                found = self._adopt(queue, ref)
                if found is not None:
                    return found, True
            ref.create_attempts += 1
            queue.save()  # durable intent: a crash after this line means "maybe created"
            return self.provider.create_batch_json(requests), False

        try:
            info, adopted = self._call(attempt)
        except PersistentFailure as exc:
            job.batches.remove(ref)
            job.transition(
                "failed",
                error=(
                    f"the provider rejected the payload: {exc}. "
                    f"Fix {job.payload_path}, then run `batch-ops retry {job.id}`"
                ),
            )
            queue.save()
            summary.failed_jobs.append(job.id)
            return
        except AuthStop as exc:
            write_pause(self.layout, "auth-billing", str(exc))
            queue.save()
            raise
        except OutageError as exc:
            write_pause(self.layout, "outage", str(exc))
            queue.save()
            raise
        ref.id = info.id
        ref.status = "ended" if info.status == "ended" else "in_progress"
        ref.submitted_at = iso(utcnow())
        if job.status in ("queued",):
            job.transition("submitted")
        job.attempts += 1
        job.next_attempt_at = None
        job.error = None
        job.touch()
        queue.save()
        (summary.adopted_batches if adopted else summary.submitted_batches).append(info.id)

    def _adopt(self, queue: Queue, ref: BatchRef) -> BatchInfo | None:
        """Find a batch that a timed-out or interrupted create made, so it is not created twice."""
        owned = {b.id for j in queue.jobs for b in j.batches if b.id}
        intent = dt.datetime.strptime(ref.intent_at, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
        candidates: list[BatchInfo] = []
        for info in self.provider.list_batches():
            created = info.created_at if info.created_at.tzinfo else info.created_at.replace(tzinfo=dt.UTC)
            if created < intent - ADOPT_SKEW:
                break  # newest first: everything further is older still
            if info.id not in owned and info.request_count == ref.request_count:
                candidates.append(info)
        # The oldest unowned match belongs to the oldest intent in doubt.
        return min(candidates, key=lambda i: i.created_at) if candidates else None

    # -- reconcile ----------------------------------------------------------------------------

    def reconcile(self, summary: RunSummary) -> None:
        with self.store.locked() as queue:
            for job in sorted(queue.jobs, key=lambda j: (j.created_at, j.id)):
                if job.terminal or not job.batches:
                    continue
                try:
                    self._reconcile_job(queue, job, summary)
                except (OutageError, AuthStop) as exc:
                    write_pause(
                        self.layout, "outage" if isinstance(exc, OutageError) else "auth-billing", str(exc)
                    )
                    queue.save()
                    raise
                except DeadlineReached as exc:
                    summary.notes.append(f"{job.id}: {exc}")
                    return
            if read_pause(self.layout) is None:
                # Follow-up rounds created while settling go out in the same run.
                self._submit_locked(queue, summary)

    def _reconcile_job(self, queue: Queue, job: JobRecord, summary: RunSummary) -> None:
        for ref in job.batches:
            if ref.status == "in_progress" and ref.id:
                batch_id = ref.id
                info: BatchInfo = self._call(functools.partial(self.provider.retrieve_batch, batch_id))
                ref.counts = info.counts
                if info.status == "ended":
                    ref.status = "ended"
                    ref.ended_at = iso(info.ended_at or utcnow())
                    ref.results_url = info.results_url
                    summary.ended_batches.append(batch_id)
                elif job.status == "submitted":
                    job.transition("running")
                queue.save()
            if ref.status == "ended":
                self._download(queue, job, ref)
            if ref.status == "downloaded":
                self._settle(queue, job, ref, summary)
        rnd = job.round
        current = [b for b in job.batches if b.round == rnd]
        if not job.round_submitted or not current or any(b.status != "settled" for b in current):
            return
        retry_ids: list[str] = []
        for ref in current:
            retry_path = self._retry_file(job, ref)
            if retry_path.exists():
                retry_ids.extend(retry_path.read_text(encoding="utf-8").split())
        if retry_ids:
            ids_path = self._job_dir(job) / f"round-{rnd + 1}.ids"
            atomic_write_text(ids_path, "\n".join(sorted(set(retry_ids))) + "\n")
            job.round = rnd + 1
            job.round_submitted = False
            job.transition("queued")
            queue.save()
            summary.requeued_items += len(set(retry_ids))
            return
        self._finish(queue, job, summary)

    def _batch_file(self, job: JobRecord, ref: BatchRef, suffix: str) -> Path:
        return self._job_dir(job) / f"{safe_file_name(ref.id or 'none')}.{suffix}"

    def _retry_file(self, job: JobRecord, ref: BatchRef) -> Path:
        return self._batch_file(job, ref, "retry")

    def _expected_ids(self, job: JobRecord, ref: BatchRef) -> dict[str, tuple[str, str | None] | None]:
        """custom_id -> (meta JSON, ticket id) of the requests in this batch (settle sets None when seen).

        A round's chunks are consecutive runs of its requests in payload order, so this batch's
        requests are the ``request_count`` after those of the round's earlier chunks: no re-chunking
        by bytes, and ``params`` are never parsed (payload.split_line).
        """
        skip = sum(b.request_count for b in job.batches if b.round == ref.round and b.chunk < ref.chunk)
        payload, subset = self._round_source(job, ref.round)
        out: dict[str, tuple[str, str | None] | None] = {}
        position = 0
        for item in iter_payload_meta(payload):
            if subset is not None and item.custom_id not in subset:
                continue
            if position >= skip:
                out[item.custom_id] = (item.meta, item.ticket_id)
                if len(out) >= ref.request_count:
                    break
            position += 1
        return out

    def _download(self, queue: Queue, job: JobRecord, ref: BatchRef) -> None:
        assert ref.id is not None
        batch_id = ref.id
        target = self._batch_file(job, ref, "results.jsonl")
        tmp = target.with_name(target.name + ".part")
        target.parent.mkdir(parents=True, exist_ok=True)

        def fetch() -> int:
            # The provider's own JSONL, byte for byte: parsed once, when settling.
            with open(tmp, "wb") as fh:
                return self.provider.download_results(batch_id, fh, results_url=ref.results_url)

        self._call(fetch)
        tmp.replace(target)
        ref.status = "downloaded"
        job.touch()
        queue.save()

    def _parse_result(self, raw: bytes) -> ResultLine | None:
        try:
            return self.provider.parse_result_line(raw)
        except ValueError:
            pass
        try:
            # A results file downloaded by an earlier version holds ProviderResult lines.
            return ResultLine.of(ProviderResult.model_validate_json(raw))
        except ValueError:
            return None

    def _settle(self, queue: Queue, job: JobRecord, ref: BatchRef, summary: RunSummary) -> None:
        """Join the downloaded results with the payload, settle each, and write the ledger.

        Streams: settled lines go to the batch's settled file as they are made and ledger lines to
        a staged side file, so memory holds only the custom_id -> meta map and the running totals.
        """
        phase = self.phases.get(job.phase)
        if phase is None:
            raise StateError(f"job {job.id}: unknown phase {job.phase!r}")
        price = self.config.price(job.model_alias)
        max_retries = self.config.policy.retry_policy.max_retries
        expected = self._expected_ids(job, ref)
        retry_ids: list[str] = []
        counts: dict[str, int] = {}
        stamp = iso(utcnow())
        day = stamp[:10]
        # A LedgerLine as JSON, written per line from these fixed parts (tests/test_engine_lines.py).
        line_head = (
            f'"timestamp":{_dumps(stamp)},"workflow":{_dumps(job.workflow)},"phase":{_dumps(job.phase)},'
            f'"job_id":{_dumps(job.id)},"batch_id":{_dumps(ref.id)}'
        )
        line_mid = f'"provider":{_dumps(job.provider)},"model_alias":{_dumps(job.model_alias)}'
        # Crash window: lines may be in the ledger before the ref says so; skip what is there.
        present = keys_for_batch(self.layout.ledger_file, job.id, ref.id) if ref.ledger_state == "appending" else set()
        ledger = LedgerAppend(self.layout.ledger_file, self._batch_file(job, ref, "ledger.part"))
        bad_lines = 0
        try:
            with (
                open(self._batch_file(job, ref, "results.jsonl"), "rb") as fh,
                atomic_writer(self._batch_file(job, ref, "settled.jsonl")) as out,
            ):
                for raw in fh:
                    if not raw.strip():
                        continue
                    result = self._parse_result(raw)
                    if result is None:
                        bad_lines += 1
                        continue
                    cid = result.custom_id
                    if cid not in expected:
                        self.warn(f"{job.id}/{ref.id}: result for unknown custom_id {cid!r} ignored")
                        continue
                    entry = expected[cid]
                    if entry is None:
                        self.warn(f"{job.id}/{ref.id}: duplicate result for {cid!r} ignored")
                        continue
                    # Seen: the key stays (to tell a duplicate), its meta goes (memory stays flat).
                    expected[cid] = None
                    verdict = settle_outcome(result.outcome, result.error_type)
                    if verdict == "retry" and ref.round <= max_retries:
                        retry_ids.append(cid)
                        continue
                    meta_json, ticket_id = entry
                    status, error, line = self._settled_line(phase, ref, meta_json, result, verdict)
                    counts[status] = counts.get(status, 0) + 1
                    out.write(line)
                    if cid in present:
                        continue
                    u = result.usage
                    model = result.model or price.model
                    cost, interactive, savings = cost_values(u, price, "batch")
                    ledger.add_prepared(
                        f'{{{line_head},"custom_id":{_dumps(cid)},"ticket_id":{_dumps(ticket_id)},'
                        f'{line_mid},"model":{_dumps(model)},"mode":"batch",'
                        f'"input_tokens":{u.input_tokens},"output_tokens":{u.output_tokens},'
                        f'"cache_creation_input_tokens":{u.cache_creation_input_tokens},'
                        f'"cache_read_input_tokens":{u.cache_read_input_tokens},'
                        f'"cost_usd":{cost!r},"interactive_cost_usd":{interactive!r},"savings_usd":{savings!r},'
                        f'"status":"{status}","attempts":{ref.round},"error":{_dumps(error)}}}\n',
                        (day, job.workflow, job.phase, job.model_alias, model, "batch", status),
                        (u.input_tokens, u.output_tokens, u.cache_creation_input_tokens, u.cache_read_input_tokens,
                         cost, interactive, savings),
                    )  # fmt: skip
                missing = [(cid, entry) for cid, entry in expected.items() if entry is not None]
                for cid, entry in missing:
                    if ref.round <= max_retries:
                        retry_ids.append(cid)
                    else:
                        result = ResultLine(cid, "expired", error_message="no result returned")
                        status, _error, line = self._settled_line(phase, ref, entry[0], result, "failed")
                        counts[status] = counts.get(status, 0) + 1
                        out.write(line)
        except BaseException:
            ledger.discard()
            raise
        if bad_lines:
            self.warn(f"{job.id}/{ref.id}: {bad_lines} result line(s) did not parse and were ignored")
        if missing:
            self.warn(f"{job.id}/{ref.id}: {len(missing)} request(s) had no result line")
        atomic_write_text(self._retry_file(job, ref), "".join(c + "\n" for c in retry_ids))
        ref.ledger_state = "appending"
        queue.save()
        summary.ledger_lines += ledger.commit()
        ref.ledger_state = "done"
        ref.status = "settled"
        for key, n in counts.items():
            job.settled[key] = job.settled.get(key, 0) + n
            summary.settled[key] = summary.settled.get(key, 0) + n
        if retry_ids:
            summary.settled["retry"] = summary.settled.get("retry", 0) + len(retry_ids)
        job.touch()
        queue.save()

    @staticmethod
    def _settled_line(
        phase: Phase, ref: BatchRef, meta_json: str, result: ResultLine, verdict: str
    ) -> tuple[str, str | None, str]:
        """(status, error, results-file line) for one request.

        The line is a ``SettledResult`` as JSON, written directly rather than through the model
        (it runs once per result of 100,000-request batches); ``meta_json`` is the payload's own
        meta object, copied as it is. tests/test_engine_lines.py checks both agree.
        """
        output = "null"
        error: str | None = None
        status = "failed"
        if verdict == "succeeded":
            try:
                output = phase.output_json(result.text or "")
                status = "succeeded"
            except OutputError as exc:
                error = str(exc)
        else:
            detail = result.error_type or result.outcome
            error = f"{result.outcome}: {detail}" + (f": {result.error_message}" if result.error_message else "")
            if ref.round > 1:
                error += f" (after {ref.round} attempts)"
        u = result.usage
        line = (
            f'{{"custom_id":{_dumps(result.custom_id)},"status":"{status}","meta":{meta_json},'
            f'"output":{output},"error":{_dumps(error)},"batch_id":{_dumps(ref.id)},'
            f'"attempts":{int(ref.round)},"usage":{{"input_tokens":{int(u.input_tokens)},'
            f'"output_tokens":{int(u.output_tokens)},'
            f'"cache_creation_input_tokens":{int(u.cache_creation_input_tokens)},'
            f'"cache_read_input_tokens":{int(u.cache_read_input_tokens)},'
            f'"cache_creation_1h_input_tokens":{int(u.cache_creation_1h_input_tokens)}}},'
            f'"model":{_dumps(result.model)}}}\n'
        )
        return status, error, line

    def _finish(self, queue: Queue, job: JobRecord, summary: RunSummary) -> None:
        """Every request settled: merge the results, apply them, and close the job."""
        result_path = self.layout.results_dir / f"{safe_file_name(job.id)}.jsonl"
        parts = [p for p in (self._batch_file(job, ref, "settled.jsonl") for ref in job.batches) if p.exists()]
        if not (len(parts) == 1 and _link_into_place(parts[0], result_path)):
            with atomic_writer(result_path) as out:
                for path in parts:
                    with open(path, encoding="utf-8") as part:
                        shutil.copyfileobj(part, out, 1 << 20)
        job.result_path = self.layout.rel(result_path)
        queue.save()
        phase = self.phases[job.phase]
        applied = phase.apply(self.context(), job.id, iter_settled(result_path))
        if applied.report_path:
            job.report_path = applied.report_path
            summary.reports.append(applied.report_path)
        n_failed, shown = self._failures(result_path)
        if n_failed and n_failed == job.request_count:
            job.transition("failed", error=self._failure_text(n_failed, shown))
            summary.failed_jobs.append(job.id)
        else:
            job.transition("completed", error=self._failure_text(n_failed, shown) if n_failed else None)
            summary.completed_jobs.append(job.id)
        queue.save()
        # The merged results file is the record; per-batch working files would only bloat the repository.
        shutil.rmtree(self._job_dir(job), ignore_errors=True)

    @staticmethod
    def _failures(result_path: Path, keep: int = 10) -> tuple[int, list[SettledResult]]:
        """How many results failed, and the first ``keep`` of them (one cheap pass, no list of all)."""
        count = 0
        shown: list[SettledResult] = []
        with open(result_path, encoding="utf-8") as fh:
            for raw in fh:
                if '"status":"failed"' not in raw:
                    continue
                try:
                    res = SettledResult.model_validate_json(raw)
                except ValueError:
                    continue
                if res.status != "failed":
                    continue
                count += 1
                if len(shown) < keep:
                    shown.append(res)
        return count, shown

    @staticmethod
    def _failure_text(count: int, shown: list[SettledResult]) -> str:
        listed = "; ".join(f"{r.custom_id}: {r.error}" for r in shown)
        more = f"; and {count - len(shown)} more" if count > len(shown) else ""
        return (
            f"{count} request(s) failed: {listed}{more}. Fix the tickets or the payload, "
            "then run `batch-ops retry JOB`"
        )


_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def _link_into_place(source: Path, target: Path) -> bool:
    """Make ``target`` the same file as ``source`` (a hard link, renamed into place atomically).

    A job of one batch needs no merge: its settled file, already fsynced, becomes the results
    file without copying (190 MB for 100,000 results). False where links are not possible.
    """
    tmp = target.with_name(f".{target.name}.{os.getpid()}.link")
    try:
        tmp.unlink(missing_ok=True)
        os.link(source, tmp)
        os.replace(tmp, target)
    except OSError:
        tmp.unlink(missing_ok=True)
        return False
    fd = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    return True


def wait_until(deadline: float) -> float:
    return max(0.0, deadline - time.monotonic())
