"""The job queue: ``.backlog-ops/batch-queue.jsonl``, one JSON object per job.

All writes go through ``QueueStore``: an exclusive lock on ``.backlog-ops/.lock`` for the whole
read-modify-write, and an atomic rewrite (temp file, fsync, rename, fsync of the directory), so a
kill at any instant leaves either the old file or the new one. A line that does not parse is
copied to the quarantine file before the queue is rewritten without it: reported, never dropped.
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime as dt
import fcntl
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from batch_ops.caching import CacheDecision
from batch_ops.errors import PathError, StateError
from batch_ops.paths import Layout, OpsPathCheck

JobStatus = Literal["queued", "submitted", "running", "completed", "failed"]
TERMINAL: frozenset[str] = frozenset({"completed", "failed"})

# A job may go back to queued: from submitted/running when a follow-up batch must wait for a
# slot, and from failed once when the operator retries it after fixing the payload. A queued job
# may end at once when the provider refused every batch of its current round (it settles those
# requests as failed, and earlier rounds may have succeeded).
ALLOWED: dict[str, frozenset[str]] = {
    "queued": frozenset({"submitted", "completed", "failed"}),
    "submitted": frozenset({"running", "queued", "completed", "failed"}),
    "running": frozenset({"queued", "completed", "failed"}),
    "completed": frozenset(),
    "failed": frozenset({"queued"}),
}

# creating: the intent is recorded, no batch id yet; rejected: the provider refused the create
# (persistent), so its requests settled as failed without being processed; lost: the provider no
# longer knows the batch (404), so its requests are settled like requests without a result.
BatchStatus = Literal["creating", "in_progress", "ended", "downloaded", "settled", "lost", "rejected"]
# After a create call that may have made a batch: "unanswered" (timeout, dropped connection, or a
# crash mid-call: the provider may still be creating it) or "answered" (an error status came back,
# so whatever happened has happened). Either way the list of batches is searched before a new create.
CreateDoubt = Literal["unanswered", "answered"]


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def iso(ts: dt.datetime) -> str:
    return ts.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class BatchRef(BaseModel):
    """One provider batch owned by a job. ``id`` is None while the create call is in doubt."""

    model_config = ConfigDict(extra="allow")

    id: str | None = None
    round: int = Field(default=1, ge=1)
    chunk: int = Field(default=0, ge=0)  # index of this batch's slice of the round's requests
    request_count: int = Field(ge=0)
    status: BatchStatus = "creating"
    create_attempts: int = Field(default=0, ge=0)  # create calls made for this batch, successful or not
    doubt: CreateDoubt | None = None  # set: a create may have succeeded; look before creating again
    last_create_at: float | None = None  # epoch seconds when the latest create call started
    last_failure_at: float | None = None  # epoch seconds when the latest create call failed
    error: str | None = None  # why the create was rejected (status "rejected")
    ledger_state: Literal["appending", "done"] | None = None
    intent_at: str
    submitted_at: str | None = None
    ended_at: str | None = None
    counts: dict[str, int] = Field(default_factory=dict)
    results_url: str | None = None  # from the retrieve that saw the batch end: no second retrieve

    @model_validator(mode="after")
    def _intent_parses_while_in_doubt(self) -> BatchRef:
        # A ref without an id may be adopted: intent_at is then compared with the provider's
        # created_at, so it must parse (a hand-edited "yesterday" crashed submit).
        if self.id is None:
            dt.datetime.strptime(self.intent_at, "%Y-%m-%dT%H:%M:%SZ")
        return self


class JobRecord(BaseModel):
    model_config = ConfigDict(extra="allow", validate_assignment=True)

    id: str
    workflow: str
    phase: str
    payload_path: str
    provider: str = "anthropic"
    model_alias: str
    status: JobStatus = "queued"
    attempts: int = Field(default=0, ge=0)
    created_at: str
    updated_at: str
    result_path: str | None = None
    error: str | None = None
    mode: Literal["batch", "interactive"] = "batch"
    request_count: int = Field(default=0, ge=0)
    batches: list[BatchRef] = Field(default_factory=list)
    # Batches of the job's earlier life, before an operator's `retry`: still owned by this job, so
    # adoption never mistakes one of them for a new create.
    previous_batches: list[BatchRef] = Field(default_factory=list)
    round: int = Field(default=1, ge=1)  # 1 = the whole payload; n > 1 = the follow-up of round n-1's unsettled items
    round_submitted: bool = False  # every chunk of the current round has a batch
    settled: dict[str, int] = Field(default_factory=dict)  # outcome -> count
    next_attempt_at: str | None = None
    retried_by_operator: bool = False
    report_path: str | None = None
    # Decided at enqueue (jobplan.py): the upper-bound cost estimate the budget counts, and caching.
    estimated_cost_usd: float | None = None
    cache: CacheDecision | None = None

    def transition(self, new: JobStatus, *, error: str | None = None) -> None:
        if new != self.status and new not in ALLOWED[self.status]:
            raise StateError(f"job {self.id}: illegal status change {self.status} -> {new}")
        self.status = new
        if error is not None:
            self.error = error
        self.touch()

    def touch(self) -> None:
        self.updated_at = iso(utcnow())

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL

    def in_flight(self) -> list[BatchRef]:
        return [b for b in self.batches if b.status in ("creating", "in_progress")]


class QuarantinedLine(BaseModel):
    line_number: int
    reason: str
    text: str


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_text(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` so that a reader (or a crash) sees the old or the new file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8", newline="\n") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


class atomic_writer:
    """``with atomic_writer(path) as fh: fh.write(...)``: ``path`` is replaced only if the block succeeds."""

    def __init__(self, path: Path, *, binary: bool = False) -> None:
        self.path = path
        self.tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        self.binary = binary

    def __enter__(self) -> Any:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.binary:
            self._fh: Any = open(self.tmp, "wb")
        else:
            self._fh = open(self.tmp, "w", encoding="utf-8", newline="\n")
        return self._fh

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: Any) -> None:
        fh = self._fh
        if exc_type is not None:
            fh.close()
            self.tmp.unlink(missing_ok=True)
            return
        fh.flush()
        os.fsync(fh.fileno())
        fh.close()
        os.replace(self.tmp, self.path)
        _fsync_dir(self.path.parent)


def _outside_paths(job: JobRecord, check: OpsPathCheck) -> str | None:
    """Why a record's stored paths may not be followed, or None: each must stay inside ``.backlog-ops/``."""
    for name in ("payload_path", "result_path", "report_path"):
        stored = getattr(job, name)
        if stored is None:
            continue
        try:
            full = check.resolve(stored)
        except PathError as exc:
            return f"{name}: {exc}"
        if full == check.ops_real:
            return f"{name}: {stored!r} is the .backlog-ops directory itself, not a file in it"
    return None


def _parse_record(number: int, line: str) -> JobRecord | QuarantinedLine:
    """One queue line as a record, or the reason it is bad."""
    # The common case in one step: pydantic's JSON parser validates while it parses, with no dict
    # in between (a queue of 10,000 jobs is read on every command). It refuses whatever json.loads
    # refuses and more (lone surrogates, nesting past 200), so any failure takes the full path
    # below, which decides exactly as before and gives the same reasons.
    try:
        fast = JobRecord.model_validate_json(line)
    except ValueError:
        pass
    else:
        if "\\u" not in line:
            return fast  # no escape, so no lone surrogate (the text came from UTF-8)
    try:
        data: Any = json.loads(line)
        # A lone surrogate ("\ud800") parses but could never be written back as UTF-8.
        json.dumps(data, ensure_ascii=False).encode("utf-8")
        return JobRecord.model_validate(data)
    except json.JSONDecodeError as exc:
        return QuarantinedLine(line_number=number, reason=f"not JSON: {exc.msg} at column {exc.colno}", text=line)
    except RecursionError:
        return QuarantinedLine(line_number=number, reason="not JSON: nested too deeply", text=line)
    except UnicodeEncodeError:
        return QuarantinedLine(line_number=number, reason="invalid Unicode (a lone surrogate escape)", text=line)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(record)"
        return QuarantinedLine(line_number=number, reason=f"invalid job record: {where}: {first['msg']}", text=line)


def parse_queue_text(
    text: str, layout: Layout | None = None
) -> tuple[list[JobRecord], list[QuarantinedLine]]:
    """Parse the queue; with ``layout``, a record whose paths leave ``.backlog-ops/`` is bad too."""
    jobs: list[JobRecord] = []
    bad: list[QuarantinedLine] = []
    seen: set[str] = set()
    check = layout.ops_paths() if layout is not None else None
    # Records are separated by "\n" only: str.splitlines() would also cut at U+2028, U+0085 and
    # other separators, which JSON strings (an error message, model text) may carry unescaped.
    for number, line in enumerate(text.split("\n"), start=1):
        line = line.removesuffix("\r")
        if not line.strip():
            continue
        job_or_bad = _parse_record(number, line)
        if isinstance(job_or_bad, QuarantinedLine):
            bad.append(job_or_bad)
            continue
        job = job_or_bad
        if job.id in seen:
            bad.append(QuarantinedLine(line_number=number, reason=f"duplicate job id {job.id}", text=line))
            continue
        outside = _outside_paths(job, check) if check is not None else None
        if outside is not None:
            bad.append(QuarantinedLine(line_number=number, reason=f"path refused: {outside}", text=line))
            continue
        seen.add(job.id)
        jobs.append(job)
    return jobs, bad


def read_queue(layout: Layout) -> tuple[list[JobRecord], list[QuarantinedLine]]:
    """Read without the lock and without moving anything (for status and reports)."""
    try:
        text = layout.queue_file.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return [], []
    return parse_queue_text(text, layout)


class JobGlance(BaseModel):
    """A few fields of a queue line, read without building the job (``read_jobs_where``).

    Same names and types as ``JobRecord``'s: on any line that is a valid record they hold the
    record's values. Everything else in the line is ignored here, and validated only when the
    line is wanted.
    """

    model_config = ConfigDict(extra="ignore")

    id: str
    phase: str
    status: JobStatus = "queued"
    cache: Any = None  # None exactly when the record's ``cache`` is None


def read_jobs_where(layout: Layout, wanted: Callable[[JobGlance], bool]) -> list[JobRecord]:
    """``[j for j in read_queue(layout)[0] if wanted(j)]`` (``wanted`` may look only at JobGlance's fields).

    A report needs a handful of a 10,000-job queue (the live ones, the cost reports, those with a
    caching decision): the other lines are only glanced at, a fifth of the cost of building and
    path-checking a record. A line the glance cannot read is read in full, so it is quarantined
    exactly as by ``read_queue``. The one thing a skipped line can change is which line owns a
    duplicated id (the first good one): a wanted record whose id a skipped line carried before it
    has those earlier lines read in full first, and is dropped if one of them is good.
    """
    try:
        text = layout.queue_file.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return []
    check = layout.ops_paths()

    def good(number: int, line: str) -> JobRecord | None:
        job = _parse_record(number, line)
        if isinstance(job, QuarantinedLine) or _outside_paths(job, check) is not None:
            return None
        return job

    jobs: list[JobRecord] = []
    seen: set[str] = set()  # ids owned by a good line (or possibly so: a skipped line's)
    skipped: dict[str, list[tuple[int, str]]] = {}  # id -> unwanted lines with it, not read in full
    for number, line in enumerate(text.split("\n"), start=1):  # "\n" only, as parse_queue_text
        line = line.removesuffix("\r")
        if not line.strip():
            continue
        try:
            glance: JobGlance | None = JobGlance.model_validate_json(line)
        except ValueError:
            glance = None
        if glance is not None and not wanted(glance):
            if glance.id not in seen:
                skipped.setdefault(glance.id, []).append((number, line))
            continue
        job = good(number, line)
        if job is None or job.id in seen:
            continue
        earlier = skipped.pop(job.id, [])
        if any(good(n, text_) is not None for n, text_ in earlier):
            seen.add(job.id)  # an earlier good line owns the id: this one is a duplicate
            continue
        seen.add(job.id)
        jobs.append(job)
    return jobs


class Queue:
    """The jobs, loaded under the store's lock; ``save()`` rewrites the file atomically."""

    def __init__(self, layout: Layout, jobs: list[JobRecord], quarantined: list[QuarantinedLine]) -> None:
        self.layout = layout
        self.jobs = jobs
        self.quarantined = quarantined

    def get(self, job_id: str) -> JobRecord:
        for job in self.jobs:
            if job.id == job_id:
                return job
        raise StateError(f"no job {job_id!r} in {self.layout.rel_or_abs(self.layout.queue_file)}")

    def add(self, job: JobRecord) -> None:
        if any(j.id == job.id for j in self.jobs):
            raise StateError(f"job {job.id} already exists")
        self.jobs.append(job)

    def next_job_id(self, now: dt.datetime | None = None) -> str:
        day = (now or utcnow()).strftime("%Y%m%d")
        prefix = f"job-{day}-"
        used = [
            int(j.id[len(prefix) :])
            for j in self.jobs
            if j.id.startswith(prefix) and j.id[len(prefix) :].isdigit()
        ]
        return f"{prefix}{max(used, default=0) + 1:04d}"

    def save(self) -> None:
        text = "".join(job.model_dump_json(exclude_none=False) + "\n" for job in self.jobs)
        atomic_write_text(self.layout.queue_file, text)


# The queue this process holds under the lock, while it does: a reader inside the same run (a
# phase's apply looking up earlier results) takes its jobs from memory instead of parsing the
# 10,000-job file the engine has just written.
_LOCKED: contextvars.ContextVar[Queue | None] = contextvars.ContextVar("batch_ops_locked_queue", default=None)


def locked_jobs(layout: Layout) -> list[JobRecord] | None:
    """The jobs of ``layout``'s queue if this process holds it locked (as changed in memory), else None."""
    queue = _LOCKED.get()
    if queue is None or queue.layout.queue_file != layout.queue_file:
        return None
    return queue.jobs


class QueueStore:
    """The one way to change the queue: ``with store.locked() as queue: ...; queue.save()``."""

    def __init__(self, layout: Layout, warn: Callable[[str], None] | None = None) -> None:
        self.layout = layout
        self.warn = warn

    @contextlib.contextmanager
    def locked(self) -> Iterator[Queue]:
        self.layout.check_own_files()
        self.layout.ops_dir.mkdir(parents=True, exist_ok=True)
        with open(self.layout.lock_file, "a+") as lock:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
            try:
                jobs, bad = read_queue(self.layout)
                queue = Queue(self.layout, jobs, bad)
                if bad:
                    self._quarantine(bad)
                    queue.save()
                    if self.warn is not None:
                        where = self.layout.rel_or_abs(self.layout.queue_quarantine)
                        for b in bad:
                            self.warn(f"batch-queue.jsonl line {b.line_number}: {b.reason}; moved to {where}")
                token = _LOCKED.set(queue)
                try:
                    yield queue
                finally:
                    _LOCKED.reset(token)
            finally:
                fcntl.flock(lock.fileno(), fcntl.LOCK_UN)

    def _quarantine(self, bad: list[QuarantinedLine]) -> None:
        """Append bad lines to the quarantine file (once each) before they leave the queue."""
        path = self.layout.queue_quarantine
        existing = path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""
        known = set()
        for line in existing.splitlines():
            with contextlib.suppress(json.JSONDecodeError, TypeError, AttributeError):
                known.add(json.loads(line).get("text"))
        stamp = iso(utcnow())
        new = "".join(
            json.dumps({"quarantined_at": stamp, **b.model_dump()}) + "\n" for b in bad if b.text not in known
        )
        if new:
            atomic_write_text(path, existing + new)
