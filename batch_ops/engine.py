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
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from batch_ops.backlog import BacklogScan, scan_backlog
from batch_ops.config import Config
from batch_ops.errors import BatchOpsError, PolicyRefusal, StateError
from batch_ops.ledger import LedgerLine, append_lines, keys_for_batch, price_usage
from batch_ops.paths import Layout, safe_file_name
from batch_ops.phases.base import ItemMeta, OutputError, Phase, PhaseContext, PlannedItem, SettledResult
from batch_ops.phases.io import iter_settled
from batch_ops.policy import (
    AuthStop,
    DeadlineReached,
    OutageError,
    PersistentFailure,
    call_with_retry,
    settle_outcome,
)
from batch_ops.providers.base import MALFORMED, BatchInfo, Provider, ProviderRequest, ProviderResult
from batch_ops.queue import BatchRef, JobRecord, Queue, QueueStore, atomic_write_text, iso, utcnow
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
    lines: list[str] = field(default_factory=list)  # raw payload lines of this chunk
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


def _payload_items(path: Path) -> Iterator[tuple[str, str]]:
    """(custom_id, raw line) for each request of a payload file, streamed.

    A payload is batch-ops' own file, but it is committed and can be edited or damaged by hand:
    anything unusable is a StateError naming the file and the line.
    """
    number = 0
    try:
        with open(path, encoding="utf-8") as fh:
            for number, raw in enumerate(fh, start=1):
                if not raw.strip():
                    continue
                try:
                    data = json.loads(raw)
                except (ValueError, RecursionError):
                    raise StateError(f"{path.name}: line {number}: not JSON") from None
                if (
                    not isinstance(data, dict)
                    or not isinstance(data.get("custom_id"), str)
                    or not isinstance(data.get("params"), dict)
                ):
                    raise StateError(f"{path.name}: line {number}: needs a custom_id string and a params object")
                yield data["custom_id"], raw.rstrip("\n")
    except FileNotFoundError:
        raise StateError(f"payload {path.name} is missing") from None
    except UnicodeDecodeError:
        raise StateError(f"{path.name}: line {number + 1}: not UTF-8") from None
    except OSError as exc:
        raise StateError(f"payload {path.name} cannot be read: {exc.strerror or type(exc).__name__}") from None


def _request_json(raw_line: str) -> str:
    """The JSON actually sent for one request: the payload line without our ``meta``."""
    data = json.loads(raw_line)
    return json.dumps({"custom_id": data["custom_id"], "params": data["params"]}, separators=(",", ":"))


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
        self.store = QueueStore(layout, warn)
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
        payload = self.layout.own_path(self.layout.payloads_dir / f"{safe_file_name(job_id)}.jsonl")
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
            except StateError as exc:
                # The payload cannot be sent as it is: fail this job, keep going with the others.
                if job.status != "failed":
                    job.transition(
                        "failed", error=f"payload unusable: {exc}. Fix it, then run `batch-ops retry {job.id}`"
                    )
                queue.save()
                summary.failed_jobs.append(job.id)
                self.warn(f"{job.id}: payload unusable: {exc}")
                continue
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
        try:
            return payload, set(ids_path.read_text(encoding="utf-8", errors="replace").split())
        except FileNotFoundError:
            where = self.layout.rel_or_abs(ids_path)
            raise StateError(f"round {rnd} of {job.id} has no list of requests ({where})") from None

    def _job_dir(self, job: JobRecord) -> Path:
        return self.layout.own_path(self.layout.results_dir / safe_file_name(job.id))

    def _chunks(self, job: JobRecord, rnd: int) -> Iterator[_Chunk]:
        """Split a round's requests under the request-count and byte limits, in payload order."""
        payload, subset = self._round_source(job, rnd)
        chunk = _Chunk(index=0)
        for cid, raw in _payload_items(payload):
            if subset is not None and cid not in subset:
                continue
            size = len(_request_json(raw).encode("utf-8")) + 1
            if chunk.lines and (
                len(chunk.lines) >= self.max_batch_requests
                or chunk.size + size + _BODY_OVERHEAD > self.max_batch_bytes
            ):
                yield chunk
                chunk = _Chunk(index=chunk.index + 1)
            chunk.lines.append(raw)
            chunk.size += size
        if chunk.lines:
            yield chunk

    def _submit_job(self, queue: Queue, job: JobRecord, summary: RunSummary) -> None:
        rnd = job.round
        refs = {b.chunk: b for b in job.batches if b.round == rnd}
        for chunk in self._chunks(job, rnd):
            ref = refs.get(chunk.index)
            if ref is not None and ref.status != "creating":
                continue
            if ref is None and self._in_flight(queue) >= self.config.policy.max_concurrent_batch_jobs:
                cap = self.config.policy.max_concurrent_batch_jobs
                summary.notes.append(f"{job.id}: waiting for a slot (maxConcurrentBatchJobs={cap})")
                return
            if ref is None:
                ref = BatchRef(
                    round=rnd, chunk=chunk.index, request_count=len(chunk.lines), intent_at=iso(utcnow())
                )
                job.batches.append(ref)
                queue.save()
            self._create_batch(queue, job, ref, chunk, summary)
            if job.status == "failed":
                return
        job.round_submitted = True
        job.touch()
        queue.save()

    def _create_batch(
        self, queue: Queue, job: JobRecord, ref: BatchRef, chunk: _Chunk, summary: RunSummary
    ) -> None:
        requests = [ProviderRequest.model_validate_json(_request_json(raw)) for raw in chunk.lines]

        def attempt() -> tuple[BatchInfo, bool]:
            if ref.create_attempts > 0:
                found = self._adopt(queue, ref)
                if found is not None:
                    return found, True
            ref.create_attempts += 1
            queue.save()  # durable intent: a crash after this line means "maybe created"
            return self.provider.create_batch(requests), False

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
                except StateError as exc:
                    # Left as it is for an operator to fix; the other jobs go on.
                    self.warn(f"{job.id}: cannot reconcile: {exc}")
                    summary.notes.append(f"{job.id}: cannot reconcile: {exc}")
                    continue
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

    def _expected_ids(self, job: JobRecord, ref: BatchRef) -> dict[str, ItemMeta]:
        for chunk in self._chunks(job, ref.round):
            if chunk.index == ref.chunk:
                out: dict[str, ItemMeta] = {}
                for raw in chunk.lines:
                    data = json.loads(raw)
                    try:
                        out[str(data["custom_id"])] = ItemMeta.model_validate(data.get("meta") or {})
                    except ValueError:
                        cid = data["custom_id"]
                        raise StateError(f"{job.payload_path}: meta of {cid!r} is not an object") from None
                return out
        return {}

    def _download(self, queue: Queue, job: JobRecord, ref: BatchRef) -> None:
        assert ref.id is not None
        batch_id = ref.id
        target = self._batch_file(job, ref, "results.jsonl")
        tmp = target.with_name(target.name + ".part")
        target.parent.mkdir(parents=True, exist_ok=True)

        def fetch() -> int:
            n = 0
            with open(tmp, "w", encoding="utf-8") as fh:
                for result in self.provider.iter_results(batch_id):
                    fh.write(result.model_dump_json() + "\n")
                    n += 1
            return n

        self._call(fetch)
        tmp.replace(target)
        ref.status = "downloaded"
        job.touch()
        queue.save()

    def _settle(self, queue: Queue, job: JobRecord, ref: BatchRef, summary: RunSummary) -> None:
        phase = self.phases.get(job.phase)
        if phase is None:
            raise StateError(f"job {job.id}: unknown phase {job.phase!r}")
        price = self.config.price(job.model_alias)
        max_retries = self.config.policy.retry_policy.max_retries
        expected = self._expected_ids(job, ref)
        seen: set[str] = set()
        settled_lines: list[str] = []
        retry_ids: list[str] = []
        ledger: list[LedgerLine] = []
        counts: dict[str, int] = {}
        stamp = iso(utcnow())
        rejected: dict[str, int] = {}

        def reject(kind: str, message: str) -> None:
            rejected[kind] = rejected.get(kind, 0) + 1
            self.warn(f"{job.id}/{ref.id}: {message}")

        owners: dict[str, str] | None = None
        with open(self._batch_file(job, ref, "results.jsonl"), encoding="utf-8", errors="replace") as fh:
            for number, raw in enumerate(fh, start=1):
                if not raw.strip():
                    continue
                try:
                    result = ProviderResult.model_validate_json(raw)
                except ValueError:
                    reject("unreadable", f"results line {number} is unreadable; ignored")
                    continue
                cid = result.custom_id
                if result.error_type == MALFORMED:
                    reject("malformed", f"{result.error_message or 'malformed result line'}; not applied")
                    if cid not in expected or cid in seen:
                        continue
                if cid not in expected:
                    if owners is None:
                        owners = self._custom_id_owners(queue, job, ref)
                    owner = owners.get(cid)
                    if owner is None:
                        reject("unknown", f"result for unknown custom_id {cid!r} ignored")
                    else:
                        reject("foreign", f"result for {cid!r} belongs to {owner}; not applied")
                    continue
                if cid in seen:
                    reject("duplicate", f"duplicate result for {cid!r} ignored")
                    continue
                seen.add(cid)
                verdict = settle_outcome(result.outcome, result.error_type)
                if verdict == "retry" and ref.round <= max_retries:
                    retry_ids.append(cid)
                    continue
                settled = self._settled(phase, job, ref, expected[cid], result, verdict)
                counts[settled.status] = counts.get(settled.status, 0) + 1
                settled_lines.append(settled.model_dump_json() + "\n")
                cost = price_usage(result.usage, price, "batch")
                ledger.append(
                    LedgerLine(
                        timestamp=stamp,
                        workflow=job.workflow,
                        phase=job.phase,
                        job_id=job.id,
                        batch_id=ref.id,
                        custom_id=cid,
                        ticket_id=expected[cid].ticket_id,
                        provider=job.provider,
                        model_alias=job.model_alias,
                        model=result.model or price.model,
                        mode="batch",
                        input_tokens=result.usage.input_tokens,
                        output_tokens=result.usage.output_tokens,
                        cache_creation_input_tokens=result.usage.cache_creation_input_tokens,
                        cache_read_input_tokens=result.usage.cache_read_input_tokens,
                        status=settled.status,
                        attempts=ref.round,
                        error=settled.error,
                        **cost.model_dump(),
                    )
                )
        missing = [cid for cid in expected if cid not in seen]
        for cid in missing:
            if ref.round <= max_retries:
                retry_ids.append(cid)
            else:
                result = ProviderResult(custom_id=cid, outcome="expired", error_message="no result returned")
                settled = self._settled(phase, job, ref, expected[cid], result, "failed")
                counts["failed"] = counts.get("failed", 0) + 1
                settled_lines.append(settled.model_dump_json() + "\n")
        if missing:
            self.warn(f"{job.id}/{ref.id}: {len(missing)} request(s) had no result line")
        if rejected:
            shown = ", ".join(f"{kind} {n}" for kind, n in sorted(rejected.items()))
            summary.notes.append(f"{job.id}/{ref.id}: result lines rejected, not applied ({shown})")
        atomic_write_text(self._batch_file(job, ref, "settled.jsonl"), "".join(settled_lines))
        atomic_write_text(self._retry_file(job, ref), "".join(c + "\n" for c in retry_ids))
        # Crash window: lines may be in the ledger before the ref says so; skip what is there.
        if ref.ledger_state == "appending":
            present = keys_for_batch(self.layout.ledger_file, job.id, ref.id)
            ledger = [line for line in ledger if line.custom_id not in present]
        ref.ledger_state = "appending"
        queue.save()
        summary.ledger_lines += append_lines(self.layout.ledger_file, ledger)
        ref.ledger_state = "done"
        ref.status = "settled"
        for key, n in counts.items():
            job.settled[key] = job.settled.get(key, 0) + n
            summary.settled[key] = summary.settled.get(key, 0) + n
        if retry_ids:
            summary.settled["retry"] = summary.settled.get("retry", 0) + len(retry_ids)
        job.touch()
        queue.save()

    def _custom_id_owners(self, queue: Queue, job: JobRecord, ref: BatchRef) -> dict[str, str]:
        """custom_id -> who else expects it: another batch of this job, or another job."""
        owners: dict[str, str] = {}
        for other in queue.jobs:
            try:
                path = self.layout.resolve_ops_path(other.payload_path)
                for cid, _raw in _payload_items(path):
                    if other.id == job.id:
                        owners.setdefault(cid, f"another batch of job {job.id}")
                    else:
                        owners.setdefault(cid, f"job {other.id}")
            except (OSError, ValueError, KeyError, BatchOpsError):
                continue
        return owners

    def _settled(
        self,
        phase: Phase,
        job: JobRecord,
        ref: BatchRef,
        meta: ItemMeta,
        result: ProviderResult,
        verdict: str,
    ) -> SettledResult:
        base: dict[str, Any] = {
            "custom_id": result.custom_id,
            "meta": meta,
            "batch_id": ref.id,
            "attempts": ref.round,
            "usage": result.usage,
            "model": result.model,
        }
        if verdict == "succeeded":
            if result.stop_reason == "max_tokens":
                return SettledResult(
                    status="failed", error="answer cut off at max_tokens: not applied", **base
                )
            try:
                output = phase.parse_output(result.text or "")
            except OutputError as exc:
                return SettledResult(status="failed", error=str(exc), **base)
            return SettledResult(status="succeeded", output=output, **base)
        detail = result.error_type or result.outcome
        message = f"{result.outcome}: {detail}" + (
            f": {result.error_message}" if result.error_message else ""
        )
        if ref.round > 1:
            message += f" (after {ref.round} attempts)"
        return SettledResult(status="failed", error=message, **base)

    def _finish(self, queue: Queue, job: JobRecord, summary: RunSummary) -> None:
        """Every request settled: merge the results, apply them, and close the job."""
        lines: list[str] = []
        for ref in job.batches:
            path = self._batch_file(job, ref, "settled.jsonl")
            if path.exists():
                # "\n" only: splitlines() would also cut at a U+2028 inside a model's answer.
                lines.extend(line + "\n" for line in path.read_text(encoding="utf-8").split("\n") if line)
        result_path = self.layout.own_path(self.layout.results_dir / f"{safe_file_name(job.id)}.jsonl")
        atomic_write_text(result_path, "".join(lines))
        job.result_path = self.layout.rel(result_path)
        queue.save()
        phase = self.phases[job.phase]
        applied = phase.apply(self.context(), job.id, iter_settled(result_path))
        if applied.report_path:
            job.report_path = applied.report_path
            summary.reports.append(applied.report_path)
        failed = [r for r in iter_settled(result_path) if r.status == "failed"]
        if failed and len(failed) == job.request_count:
            job.transition("failed", error=self._failure_text(failed))
            summary.failed_jobs.append(job.id)
        else:
            job.transition("completed", error=self._failure_text(failed) if failed else None)
            summary.completed_jobs.append(job.id)
        queue.save()
        # The merged results file is the record; per-batch working files would only bloat the repository.
        shutil.rmtree(self._job_dir(job), ignore_errors=True)

    @staticmethod
    def _failure_text(failed: list[SettledResult]) -> str:
        shown = "; ".join(f"{r.custom_id}: {r.error}" for r in failed[:10])
        more = f"; and {len(failed) - 10} more" if len(failed) > 10 else ""
        return (
            f"{len(failed)} request(s) failed: {shown}{more}. Fix the tickets or the payload, "
            "then run `batch-ops retry JOB`"
        )


def wait_until(deadline: float) -> float:
    return max(0.0, deadline - time.monotonic())
