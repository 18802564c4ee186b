"""The job state machine: enqueue, submit, reconcile (poll, download, settle, follow up, apply).

Crash safety comes from the order of writes, each of them atomic (temp file, fsync, rename):

* Before a batch is created, the ids of its requests go to ``results/JOB/rR-cC.ids`` and a
  ``BatchRef`` in state ``creating`` goes to the queue. Before every ``create`` call the ref is
  marked in doubt (``doubt="unanswered"``, with the time) and saved: from then on a batch may exist
  that the queue does not name. The API has no idempotency key, so a ref in doubt is matched
  against the provider's list of batches (newest first, by creation time and request count, never
  one that a job already owns) and adopted before anything is created again. A timeout or a
  dropped connection leaves the provider possibly still creating the batch, so an empty search is
  trusted only after ``adopt_grace_seconds``; an error status was an answer, so one search is enough.
* Reconcile downloads a batch's results to a temp file and renames it, writes the settled and
  retry files, marks the ledger append in progress, appends, and marks the batch settled. A crash
  in between repeats the step; the ledger append then skips the lines already there.
* A round ends when every batch of it is settled: its unsettled requests (errored other than
  invalid, expired, canceled, or without a result) go to ``round-N.ids`` and a follow-up batch of
  the same job, until ``maxRetries`` follow-ups; then they fail with their history.

``crashpoint(label)`` marks the instants the crash test kills the process at (``CRASH_POINTS``).
"""

from __future__ import annotations

import datetime as dt
import functools
import gc
import hashlib
import json
import math
import os
import re
import shutil
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import msgspec
from pydantic import BaseModel, Field

from batch_ops import budget, interactive, jobplan
from batch_ops.backlog import BacklogScan, scan_backlog
from batch_ops.config import Config, ModelPrice
from batch_ops.errors import BatchOpsError, PolicyRefusal, StateError
from batch_ops.ledger import LedgerAppend, LedgerLine, LedgerRow, Rates, TokenCounts, keys_for_batch
from batch_ops.paths import Layout, safe_file_name
from batch_ops.payload import (
    CANONICAL_META,
    META_INDEX_SUFFIX,
    IndexedMetas,
    iter_payload_meta,
    parse_request_line,
    read_meta_index,
    write_payload,
)
from batch_ops.phases.base import (
    ItemMeta,
    OutputError,
    Phase,
    PhaseContext,
    PlannedItem,
    SettledFile,
    SettledResult,
)
from batch_ops.phases.io import iter_failed, iter_settled
from batch_ops.policy import (
    PAUSE_AUTH,
    PAUSE_OUTAGE,
    AuthStop,
    DeadlineReached,
    OutageError,
    PersistentFailure,
    QueuePaused,
    RunHealth,
    call_with_retry,
    settle_outcome,
)
from batch_ops.providers.base import (
    MALFORMED,
    BatchInfo,
    Provider,
    ProviderCallError,
    ProviderRequest,
    ProviderResult,
    ResultLine,
)
from batch_ops.queue import (
    BatchRef,
    CreateDoubt,
    JobRecord,
    Queue,
    QueueStore,
    atomic_write_text,
    atomic_writer,
    iso,
    utcnow,
)
from batch_ops.triage import triage

# The API's limits per batch. 256 MB is taken as decimal megabytes: the smaller reading is safe
# whichever one the API means.
MAX_BATCH_REQUESTS = 100_000
MAX_BATCH_BYTES = 256 * 1000 * 1000
# How far before our recorded intent a provider's created_at may fall and still be ours (clock skew).
ADOPT_SKEW = dt.timedelta(seconds=120)
# How long after a create that got no answer its batch may still appear in the list.
ADOPT_GRACE_SECONDS = 60.0
ADOPT_POLL_SECONDS = 2.0
CUSTOM_ID_RE = re.compile(r"[a-zA-Z0-9_-]{1,64}")

# Operator and test knobs, read when an Engine is built (the CLI builds one per command).
ENV_MAX_BATCH_REQUESTS = "BATCH_OPS_MAX_BATCH_REQUESTS"
ENV_MAX_BATCH_BYTES = "BATCH_OPS_MAX_BATCH_BYTES"
ENV_ADOPT_GRACE = "BATCH_OPS_ADOPT_GRACE"
ENV_CRASH_AT = "BATCH_OPS_CRASH_AT"

# Every instant ``crashpoint`` marks, in the order a job passes them.
CRASH_POINTS: tuple[str, ...] = (
    "submit.ids-written",
    "submit.ref-saved",
    "submit.intent-saved",
    "submit.created",
    "submit.recorded",
    "submit.doubt-cleared",
    "reconcile.polled",
    "reconcile.downloading",
    "reconcile.downloaded-file",
    "reconcile.downloaded",
    "reconcile.settled-files",
    "reconcile.ledger-marked",
    "reconcile.ledger-appended",
    "reconcile.settled",
    "reconcile.next-round",
    "finish.results-written",
    "finish.applied",
    "finish.closed",
)
_crash_hits: dict[str, int] = {}

# Prefixes of a failed request's error, one per kind of failure, so the job's error can group them.
FAIL_REJECTED = "rejected at creation"
FAIL_INVALID = "invalid request"
FAIL_GAVE_UP = "gave up"
FAIL_ANSWER = "unusable answer"
# A batch's results as the provider sent them (interactive answers are ``results.jsonl``).
RAW_RESULTS = "download.jsonl"


def crashpoint(label: str) -> None:
    """Test hook: with ``BATCH_OPS_CRASH_AT=label:n`` the n-th pass here kills the process (SIGKILL).

    A no-op unless the variable is set. It is how the crash test stops a real run at a chosen
    instant; nothing is faked, the process simply dies there.
    """
    spec = os.environ.get(ENV_CRASH_AT)
    if not spec:
        return
    name, _, nth = spec.rpartition(":") if ":" in spec else (spec, ":", "1")
    if name != label:
        return
    _crash_hits[label] = _crash_hits.get(label, 0) + 1
    if _crash_hits[label] == int(nth or "1"):
        os.kill(os.getpid(), signal.SIGKILL)


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
    refused: list[str] = Field(default_factory=list)  # jobs the policy kept back (exit 2)

    def merge(self, other: RunSummary) -> None:
        """Add another run's summary to this one (lists extended, counts added)."""
        for name in RunSummary.model_fields:
            value = getattr(other, name)
            if isinstance(value, list):
                getattr(self, name).extend(value)
            elif isinstance(value, dict):
                for k, v in value.items():
                    getattr(self, name)[k] = getattr(self, name).get(k, 0) + v
            else:
                setattr(self, name, getattr(self, name) + value)


@dataclass(frozen=True, slots=True)
class PlanItem:
    """What chunking needs to know of one request."""

    custom_id: str
    size: int  # bytes it adds to the create body actually sent
    prefix: str | None  # cache-prefix key: requests that share one stay in one batch


class _PayloadProblem(Exception):
    """A payload that cannot be sent as it is; the operator has to fix it."""


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


def cache_prefix_key(params: dict[str, Any], memo: dict[Any, str] | None = None) -> str | None:
    """A key shared by requests whose cached prompt prefix is the same; None if nothing is cached.

    The cache covers tools, then system, then messages, up to the last ``cache_control``
    breakpoint (all of it with a top-level ``cache_control``), for one model.

    ``memo`` (one dict per planning pass) spares the canonical JSON and its hash for a prefix seen
    before: every request of a job usually shares one, and serialising it per request cost most of
    what planning costs besides the parse.
    """
    blocks: list[Any] = [("tool", t) for t in params.get("tools") or []]
    system = params.get("system")
    if isinstance(system, str):
        blocks.append(("system", {"type": "text", "text": system}))
    elif isinstance(system, list):
        blocks.extend(("system", b) for b in system)
    for message in params.get("messages") or []:
        content = message.get("content") if isinstance(message, dict) else None
        role = message.get("role") if isinstance(message, dict) else None
        if isinstance(content, list):
            blocks.extend((role, b) for b in content)
        else:
            blocks.append((role, {"type": "text", "text": content}))
    if params.get("cache_control"):
        last = len(blocks) - 1
    else:
        marked = [i for i, (_, b) in enumerate(blocks) if isinstance(b, dict) and b.get("cache_control")]
        if not marked:
            return None
        last = marked[-1]
    prefix = [params.get("model"), blocks[: last + 1]]
    frozen = _frozen(prefix) if memo is not None else None
    if frozen is not None and memo is not None:
        key = memo.get(frozen)
        if key is not None:
            return key
    canonical = json.dumps(prefix, sort_keys=True, ensure_ascii=False)
    key = hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:24]
    if frozen is not None and memo is not None:
        if len(memo) >= _PREFIX_MEMO_MAX:
            memo.clear()  # prefixes that differ per request: keep the memo from holding them all
        memo[frozen] = key
    return key


_PREFIX_MEMO_MAX = 64


def _frozen(value: Any) -> Any:
    """A hashable value equal for two prefixes exactly when their canonical JSON is; None if unsure.

    Only strings, None, lists, tuples and dicts with string keys are frozen: Python equates
    ``True``, ``1`` and ``1.0``, which JSON tells apart, so a prefix holding a number is left to
    the JSON. Dicts are tagged and sorted by key (as ``sort_keys``), lists tagged apart from them.
    """
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            return None
        items: list[Any] = ["{"]
        for k in sorted(value):
            v = _frozen(value[k])
            if v is None and value[k] is not None:
                return None
            items.append((k, v))
        return tuple(items)
    if isinstance(value, (list, tuple)):
        out: list[Any] = ["["]
        for item in value:
            v = _frozen(item)
            if v is None and item is not None:
                return None
            out.append(v)
        return tuple(out)
    return None


def plan_chunks(items: Iterable[PlanItem], max_requests: int, max_bytes: int) -> list[list[PlanItem]]:
    """Split requests into batches of at most ``max_requests`` and ``max_bytes`` (body included).

    Requests that share a cache prefix are kept together: they are grouped (in order of first
    appearance, payload order inside a group) and a group only starts a new batch when it does not
    fit in the current one; a group bigger than a whole batch is split where it must be. Requests
    without a cached prefix keep payload order. ``max_bytes`` counts the requests' bytes only: the
    caller subtracts the body's envelope.
    """
    groups: dict[str, list[PlanItem]] = {}
    order: list[list[PlanItem]] = []
    for item in items:
        if item.size > max_bytes:
            raise _PayloadProblem(
                f"request {item.custom_id} is {item.size} bytes, more than a whole batch may hold ({max_bytes})"
            )
        if item.prefix is None:
            order.append([item])
            continue
        group = groups.get(item.prefix)
        if group is None:
            group = groups[item.prefix] = []
            order.append(group)
        group.append(item)
    chunks: list[list[PlanItem]] = []
    current: list[PlanItem] = []
    size = 0
    for group in order:
        group_size = sum(i.size for i in group)
        if current and (len(current) + len(group) > max_requests or size + group_size > max_bytes):
            chunks.append(current)
            current, size = [], 0
        for item in group:
            if current and (len(current) >= max_requests or size + item.size > max_bytes):
                chunks.append(current)
                current, size = [], 0
            current.append(item)
            size += item.size
    if current:
        chunks.append(current)
    return chunks


def _env_number(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        value = float(raw)
    except ValueError:
        raise StateError(f"{name}={raw!r} is not a number") from None
    if value < 0 or math.isnan(value):
        raise StateError(f"{name}={raw!r} must not be negative")
    return value


def _iso_ceil(epoch: float) -> str:
    """An ISO time no earlier than ``epoch`` (iso() drops fractions, which would be too early)."""
    return iso(dt.datetime.fromtimestamp(math.ceil(epoch), tz=dt.UTC))


def _doubt_after(err: ProviderCallError) -> CreateDoubt | None:
    """What a failed create says about whether it made a batch."""
    if err.status is None:
        return "unanswered"  # timeout or dropped connection: the provider may still be working on it
    if err.status in (408, 502, 504):
        return "unanswered"  # a proxy gave up on the API, which may still be creating the batch
    if 400 <= err.status < 500:
        return None  # refused before anything was created
    return "answered"  # the API's own 5xx or 529, or a success whose body did not parse


def _describe(result: ProviderResult | ResultLine) -> str:
    if result.outcome == "errored":
        text = f"errored ({result.error_type or 'unknown error'})"
        return text + (f": {result.error_message}" if result.error_message else "")
    return result.outcome + (f": {result.error_message}" if result.error_message else "")


# Floats from here up (in magnitude) are written "1e+16" by pydantic and "1e16" by msgspec; below,
# the two write the same text (the shortest that reads back as the float).
_FLOAT_TEXTS_AGREE = 1e16


def _ledger_line(row: LedgerRow) -> LedgerRow | msgspec.Raw:
    """The row, or where a cost is that large (never, at any real price) the model's own text of it:
    every ledger line is what ``LedgerLine.model_dump_json()`` writes."""
    big = _FLOAT_TEXTS_AGREE
    if -big < row.cost_usd < big and -big < row.interactive_cost_usd < big and -big < row.savings_usd < big:
        return row
    return msgspec.Raw(LedgerLine.model_validate(msgspec.structs.asdict(row)).model_dump_json())


_NO_META = ItemMeta().model_dump_json()


@dataclass(frozen=True, slots=True)
class _Metas:
    """custom_id -> its meta as ``ItemMeta.model_dump_json()`` gives it, and its ticket id.

    Dicts of strings rather than an object per item: the garbage collector does not track them
    (it would walk 100,000 entries at every full collection), and they are small. The ticket id
    of a meta in the usual shape is read from its text; ``ticket`` holds only the others'.
    """

    json: dict[str, str]
    ticket: dict[str, str | None]

    def ticket_id(self, custom_id: str) -> str | None:
        return self.ticket_id_in(custom_id, self.json[custom_id])

    def ticket_id_in(self, custom_id: str, text: str) -> str | None:
        """The ticket id of ``custom_id``, whose meta is ``text``."""
        if custom_id in self.ticket:
            return self.ticket[custom_id]
        # CANONICAL_META: '{"ticket_id":' then null or a plain string
        return text[14 : text.index('"', 14)] if text[13] == '"' else None


_FAILURE_KINDS = {
    FAIL_REJECTED: "the provider refused the batch, so these were never processed: fix the payload",
    FAIL_INVALID: "the provider found the request invalid: fix the ticket or the phase's request",
    FAIL_GAVE_UP: "transient failures outlasted retryPolicy.maxRetries: check the provider's status",
    FAIL_ANSWER: "the answer did not fit the phase's schema: check the prompt or the model",
}
_SHOWN_PER_KIND = 5


class _Failures:
    """A job's failed requests as its error text tells them: how many, and per kind (the error's
    prefix) how many and the first five, in file order."""

    __slots__ = ("count", "kinds")

    def __init__(self) -> None:
        self.count = 0
        self.kinds: dict[str, tuple[int, list[str]]] = {}

    def add(self, custom_id: str, ticket_id: str | None, error: str | None) -> None:
        self.count += 1
        text = error or ""
        kind = next((k for k in _FAILURE_KINDS if text.startswith(k)), "other")
        n, shown = self.kinds.get(kind) or (0, [])
        if n < _SHOWN_PER_KIND:
            shown.append(custom_id + (f" [{ticket_id}]" if ticket_id else "") + f": {error}")
        self.kinds[kind] = (n + 1, shown)

    def extend(self, later: _Failures) -> None:
        """Add the failures of a part that comes after this one in the job's results."""
        self.count += later.count
        for kind, (n, shown) in later.kinds.items():
            have, mine = self.kinds.get(kind) or (0, [])
            self.kinds[kind] = (have + n, mine + shown[: _SHOWN_PER_KIND - len(mine)])


def _link_into(source: Path, target: Path) -> bool:
    """Make ``target`` name the same file as ``source`` (complete and fsynced), replacing it atomically.

    A job of one batch (the common case) then gets its results file without a copy of 200 MB;
    False where the file system has no hard links, and the caller copies instead.
    """
    tmp = target.with_name(f".{target.name}.{os.getpid()}.link")
    try:
        tmp.unlink(missing_ok=True)
        os.link(source, tmp)
    except OSError:
        return False
    os.replace(tmp, target)
    fd = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    return True


class _Download:
    """A finished download whose fsync runs in a thread while the results are settled from it.

    Flushing 200 MB to disk is most of a download's time and needs no CPU: the settle, which
    needs nothing but the page cache, reads the file meanwhile. ``commit`` waits for the fsync
    and only then renames the file into place, so a ref marked downloaded never names a file
    that a power cut could leave short; until then a crash costs only a new download.
    """

    def __init__(self, tmp: Path, target: Path) -> None:
        self.tmp = tmp
        self.target = target
        self._error: OSError | None = None
        self._thread = threading.Thread(target=self._fsync, name="batch-ops-fsync", daemon=True)
        self._thread.start()

    def _fsync(self) -> None:
        try:
            fd = os.open(self.tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            self._error = exc

    def commit(self) -> None:
        self._thread.join()
        if self._error is not None:
            raise self._error
        self.tmp.replace(self.target)


class _FirstWrite:
    """A byte sink that passes the download's first write to the crash hook."""

    def __init__(self, fh: BinaryIO) -> None:
        self._fh = fh
        self._first = True

    def write(self, data: bytes, /) -> int:
        n = self._fh.write(data)
        if self._first:
            self._first = False
            crashpoint("reconcile.downloading")
        return n


class _SettledRow(msgspec.Struct, gc=False):
    """A settled line: the fields of ``SettledResult`` in its order, the meta and output as the JSON
    text they already are. ``_encode_lines`` writes it as ``SettledResult.model_dump_json()`` would
    (msgspec writes strings and ints as pydantic does); ``test_engine_lines`` holds the two to each other."""

    custom_id: str
    status: str
    meta: msgspec.Raw
    output: msgspec.Raw | None
    error: str | None
    batch_id: str | None
    attempts: int
    usage: TokenCounts  # its fields are ``Usage``'s, in the same order
    model: str | None


# Rows to JSON lines, each ending in a newline, in one call per block of rows.
_encode_lines = msgspec.json.Encoder().encode_lines


class _LineParts:
    """Settled-result and ledger rows of one batch, made from plain values.

    Rows, not models: at 100,000 results a batch, three pydantic models per result were most of
    the settle's time, and then building each line's text in Python most of what was left. A row
    is made in C and a block of them written by msgspec in one call.
    """

    def __init__(self, job: JobRecord, ref: BatchRef, price: ModelPrice, ledger: LedgerAppend) -> None:
        self.job = job
        self.price = price
        self.attempts = ref.round
        self.batch_id = ref.id
        self.stamp = iso(utcnow())
        self._rates = Rates.of(price, job.mode)
        self.sums = ledger.lines_of(self.stamp[:10], job.workflow, job.phase, job.model_alias, job.mode, job.id)

    def settled(
        self, result: ResultLine, meta_json: str, status: str, output: str | None, error: str | None
    ) -> _SettledRow:
        return _SettledRow(
            result.custom_id, status, msgspec.Raw(meta_json), None if output is None else msgspec.Raw(output),
            error, self.batch_id, self.attempts, result.usage, result.model,
        )  # fmt: skip

    def ledger(
        self, result: ResultLine, ticket_id: str | None, status: str, error: str | None
    ) -> LedgerRow | msgspec.Raw:
        """The ledger line (``_ledger_line``); its sums go to ``self.sums``."""
        u = result.usage
        tokens_in, tokens_out = u.input_tokens, u.output_tokens
        write, read = u.cache_creation_input_tokens, u.cache_read_input_tokens
        cost, interactive, savings = self._rates.costs(u)
        if not math.isfinite(interactive):
            raise StateError(f"job {self.job.id}: the price of {self.job.model_alias} gives a cost of {interactive}")
        model = result.model or self.price.model
        self.sums.add(model, status, tokens_in, tokens_out, write, read, cost, interactive, savings)
        job = self.job
        row = LedgerRow(
            self.stamp, job.workflow, job.phase, job.id, self.batch_id, result.custom_id, ticket_id,
            job.provider, job.model_alias, model, job.mode, tokens_in, tokens_out, write, read,
            cost, interactive, savings, status, self.attempts, error,
        )  # fmt: skip
        return _ledger_line(row)


def _provider_result_line(raw: bytes, number: int) -> ResultLine | None:
    """A line of an interactive results file (``ProviderResult`` JSON); None if it is unreadable."""
    try:
        return ResultLine.of(ProviderResult.model_validate_json(raw.decode("utf-8", errors="replace")))
    except ValueError:
        return None


def _decoded_payload_line(where: str, text: str) -> tuple[str, dict[str, Any]]:
    """A payload line's custom_id and record, or the _PayloadProblem that says what is wrong with it."""
    try:
        data = json.loads(text)
    except RecursionError:
        raise _PayloadProblem(f"{where} is nested too deeply to read") from None
    except ValueError as exc:
        raise _PayloadProblem(f"{where} is not JSON ({exc})") from None
    cid = data.get("custom_id") if isinstance(data, dict) else None
    if not isinstance(cid, str) or not CUSTOM_ID_RE.fullmatch(cid):
        raise _PayloadProblem(f"{where}: custom_id {cid!r} does not match ^[a-zA-Z0-9_-]{{1,64}}$")
    return cid, data


class Engine:
    def __init__(
        self,
        layout: Layout,
        config: Config,
        phases: dict[str, Phase],
        provider_factory: Callable[[], Provider] | None = None,
        *,
        deadline: float | None = None,
        max_batch_requests: int | None = None,
        max_batch_bytes: int | None = None,
        adopt_grace_seconds: float | None = None,
        adopt_poll_seconds: float = ADOPT_POLL_SECONDS,
        warn: Callable[[str], None] = lambda _msg: None,
    ) -> None:
        """``deadline`` is a ``time.monotonic()`` value: past it, waits stop and work stays queued.

        The limits default to the API's (or ``BATCH_OPS_MAX_BATCH_REQUESTS`` / ``_BYTES``) and are
        never allowed above them; ``adopt_grace_seconds`` defaults to ``BATCH_OPS_ADOPT_GRACE`` or 60.
        """
        self.layout = layout
        self.config = config
        self.phases = phases
        self._provider_factory = provider_factory
        self._provider: Provider | None = None
        self.deadline = deadline
        requests = max_batch_requests or int(_env_number(ENV_MAX_BATCH_REQUESTS, MAX_BATCH_REQUESTS))
        size = max_batch_bytes or int(_env_number(ENV_MAX_BATCH_BYTES, MAX_BATCH_BYTES))
        self.max_batch_requests = max(1, min(requests, MAX_BATCH_REQUESTS))
        self.max_batch_bytes = max(1, min(size, MAX_BATCH_BYTES))
        self.adopt_grace = (
            adopt_grace_seconds
            if adopt_grace_seconds is not None
            else _env_number(ENV_ADOPT_GRACE, ADOPT_GRACE_SECONDS)
        )
        # Look often enough to adopt soon after the batch shows up, rarely enough not to hammer.
        self.adopt_poll = max(min(adopt_poll_seconds, self.adopt_grace / 5), 0.05)
        self.warn = warn
        self.store = QueueStore(layout, warn)
        self._scan: BacklogScan | None = None
        self.health = RunHealth()
        # Settled file -> what its failed lines say, gathered as they were written, for files written
        # in this run: a job whose batches all settled now closes without reading any line back
        # (``_finish``); a count and five examples per kind, not the lines, to keep memory flat.
        self._failed_lines: dict[Path, _Failures] = {}

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
        return PhaseContext(self.layout, self.config, scan, triage(scan.pending, self.config.ticket_validation))

    def _call(self, fn: Callable[[], Any]) -> Any:
        return call_with_retry(fn, self.config.policy.retry_policy, deadline=self.deadline, health=self.health)

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

    def enqueue(self, phase_names: list[str], summary: RunSummary, *, mode: jobplan.ModeChoice = "auto") -> None:
        """Queue a job per phase and alias. A job the budget refuses is not written; the others are,
        and the refusals are raised together at the end (PolicyRefusal, exit 2)."""
        for name in phase_names:
            self.check_phase_allowed(name)
        ctx = self.context()
        refusals: list[str] = []
        with self.store.locked() as queue:
            for name in phase_names:
                phase = self.phases[name]
                covered = self._covered_items(queue, name)
                fresh: list[tuple[str, list[PlannedItem]]] = []
                for planned in phase.plan(ctx):
                    items = [it for it in planned.items if (it.custom_id, it.meta.content_hash) not in covered]
                    if not items:
                        summary.skipped.append(f"{name}/{planned.model_alias}: nothing new to send")
                        continue
                    fresh.append((planned.model_alias, items))
                job_mode = jobplan.choose_mode(sum(len(items) for _, items in fresh), self.config, mode)
                for alias, items in fresh:
                    try:
                        plan = self._plan_job(queue, phase, alias, items, job_mode)
                    except PolicyRefusal as exc:
                        refusals.append(str(exc))
                        continue
                    job = self._new_job(queue, phase, alias, items, plan)
                    summary.enqueued.append(job.id)
                    summary.notes.append(self._plan_note(job))
        if refusals:
            raise PolicyRefusal("; ".join(refusals))

    def _plan_job(
        self, queue: Queue, phase: Phase, alias: str, items: list[PlannedItem], mode: jobplan.Mode
    ) -> jobplan.JobPlan:
        plan = jobplan.prepare(self.config, queue.jobs, alias, items, mode)
        current = budget.state(self.config, self.layout, queue.jobs)
        budget.check(current, plan.estimate_usd, f"the {phase.name}/{alias} job ({len(items)} request(s), {mode})")
        return plan

    @staticmethod
    def _plan_note(job: JobRecord) -> str:
        cache = job.cache
        caching = f"caching {cache.ttl}" if cache is not None and cache.enabled else "no caching"
        why = f" ({cache.reason})" if cache is not None else ""
        return f"{job.id}: {job.phase}/{job.model_alias}, {job.request_count} request(s), {job.mode}, {caching}{why}"

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
            except (OSError, ValueError, KeyError, TypeError, AttributeError, RecursionError, BatchOpsError) as exc:
                self.warn(
                    f"job {job.id}: payload unreadable ({type(exc).__name__}); not used for de-duplication"
                )
        return covered

    def _new_job(
        self, queue: Queue, phase: Phase, alias: str, items: list[PlannedItem], plan: jobplan.JobPlan | None = None
    ) -> JobRecord:
        now = utcnow()
        job_id = queue.next_job_id(now)
        payload = self.layout.payloads_dir / f"{job_id}.jsonl"
        # With its meta index beside it: the reconcile's join reads that instead of the payload.
        write_payload(payload, ((it.custom_id, it.params, it.meta.model_dump(exclude_none=True)) for it in items))
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
        if plan is not None:
            job.mode = plan.mode
            job.cache = plan.cache
            job.estimated_cost_usd = plan.estimate_usd
        queue.add(job)
        queue.save()
        return job

    # -- submit -------------------------------------------------------------------------------

    def submit(self, summary: RunSummary) -> None:
        """Send queued jobs within the policy. Raises QueuePaused (exit 3/4) while the queue is paused."""
        pause = read_pause(self.layout)
        if pause is not None:
            summary.notes.append("queue paused: nothing submitted")
            raise QueuePaused(
                pause.kind,
                f"queue paused ({pause.kind}) since {pause.since}: {pause.reason} "
                "— nothing is submitted until `batch-ops resume`",
            )
        if not self.config.policy.enabled:
            raise PolicyRefusal("llmOps.batchPolicy.enabled is false: batch work is switched off; nothing submitted")
        with self.store.locked() as queue:
            self._submit_locked(queue, summary)
            self._run_interactive(queue, summary)

    def _ordered(self, queue: Queue) -> list[JobRecord]:
        return sorted(queue.jobs, key=lambda j: (j.created_at, j.id))

    def _in_flight(self, queue: Queue) -> int:
        return sum(len(job.in_flight()) for job in queue.jobs)

    def _submit_locked(self, queue: Queue, summary: RunSummary) -> None:
        policy = self.config.policy
        job: JobRecord | None = None
        try:
            self._resolve_doubts(queue, summary)
            for job in self._ordered(queue):
                if job.terminal or job.mode != "batch" or job.round_submitted:
                    continue
                if job.next_attempt_at and job.next_attempt_at > iso(utcnow()):
                    summary.notes.append(f"{job.id}: waiting until {job.next_attempt_at} to try again")
                    continue
                if job.phase not in policy.eligible_phases:
                    summary.refused.append(job.id)
                    summary.notes.append(
                        f"{job.id}: refused: phase {job.phase!r} is not in llmOps.batchPolicy.eligiblePhases "
                        f"({', '.join(policy.eligible_phases) or 'none'}); the job stays queued"
                    )
                    continue
                self._submit_job(queue, job, summary)
        except DeadlineReached as exc:
            if job is not None and not job.terminal:
                job.next_attempt_at = _iso_ceil(exc.retry_at)
                job.error = f"not submitted yet: {exc}"
                job.touch()
                queue.save()
            summary.notes.append(f"{job.id if job else 'submit'}: {exc}; the next run picks it up")

    def _resolve_doubts(self, queue: Queue, summary: RunSummary) -> None:
        """Settle every create left in doubt (crash, timeout) before anything new is created.

        Oldest intent first, so that when two refs could match one batch the older claims it.
        """
        pending = [
            (ref, job)
            for job in queue.jobs
            if not job.terminal
            for ref in job.batches
            if ref.status == "creating" and ref.doubt is not None
        ]
        pending.sort(key=lambda p: (p[0].intent_at, p[1].id, p[0].round, p[0].chunk))
        for ref, job in pending:
            try:
                found: BatchInfo | None = self._call(functools.partial(self._resolve_doubt, queue, ref))
            except (AuthStop, OutageError) as exc:
                self._pause_for(exc)
                queue.save()
                raise
            except DeadlineReached as exc:
                job.next_attempt_at = _iso_ceil(exc.retry_at)
                job.touch()
                queue.save()
                raise
            if found is not None:
                self._record_created(queue, job, ref, found, adopted=True, summary=summary)

    def _resolve_doubt(self, queue: Queue, ref: BatchRef) -> BatchInfo | None:
        """The batch an earlier create of ``ref`` made, or None once it is sure there is none."""
        if ref.doubt is None:
            return None
        found = self._adopt(queue, ref)
        if found is not None:
            return found
        if ref.doubt == "unanswered":
            since = ref.last_failure_at or ref.last_create_at or time.time()
            until = since + self.adopt_grace
            while (now := time.time()) < until:
                step = min(self.adopt_poll, until - now)
                if self.deadline is not None and time.monotonic() + step > self.deadline:
                    raise DeadlineReached(
                        "a create got no answer and its batch may still appear in the list; "
                        f"looking again after {_iso_ceil(until)} before creating anything",
                        retry_at=until,
                    )
                time.sleep(step)
                found = self._adopt(queue, ref)
                if found is not None:
                    return found
        ref.doubt = None  # nothing appeared: that create made no batch, so creating again is safe
        queue.save()
        crashpoint("submit.doubt-cleared")
        return None

    def _adopt(self, queue: Queue, ref: BatchRef) -> BatchInfo | None:
        """Find a batch that a timed-out or interrupted create made, so it is not created twice."""
        owned = {b.id for j in queue.jobs for b in (*j.batches, *j.previous_batches) if b.id}
        # Only the latest create can be in doubt (each earlier one was settled before the next
        # began), so the search starts there, less the clock skew.
        if ref.last_create_at is not None:
            since = dt.datetime.fromtimestamp(ref.last_create_at, tz=dt.UTC)
        else:
            since = dt.datetime.strptime(ref.intent_at, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
        candidates: list[BatchInfo] = []
        for info in self.provider.list_batches():
            created = info.created_at if info.created_at.tzinfo else info.created_at.replace(tzinfo=dt.UTC)
            if created < since - ADOPT_SKEW:
                break  # newest first: everything further is older still
            if info.id not in owned and info.request_count == ref.request_count:
                candidates.append(info)
        if not candidates:
            return None

        # Ours was created right after the call began: prefer a match from then on, the closest
        # first; one from the skew allowance before it only if there is no such match.
        def distance(info: BatchInfo) -> tuple[bool, float]:
            created = info.created_at if info.created_at.tzinfo else info.created_at.replace(tzinfo=dt.UTC)
            gap = (created - since).total_seconds()
            return gap < -1.0, abs(gap)

        return min(candidates, key=distance)

    def _submit_job(self, queue: Queue, job: JobRecord, summary: RunSummary) -> None:
        rnd = job.round
        cap = self.config.policy.max_concurrent_batch_jobs
        try:
            waiting = sorted(
                (b for b in job.batches if b.round == rnd and b.status == "creating"), key=lambda b: b.chunk
            )
            # One checked pass over the payload serves the whole round: planning, and every create's
            # body, read back by offset (see _scan_payload).
            index = self._scan_payload(job, rnd)
            for ref in waiting:  # intents recorded by an earlier run: their ids are fixed already
                self._create_batch(queue, job, ref, summary, index)
            for ids in self._plan_round(job, rnd, index):
                if self._in_flight(queue) >= cap:
                    summary.notes.append(f"{job.id}: waiting for a slot (maxConcurrentBatchJobs={cap})")
                    return
                ref = self._new_ref(queue, job, rnd, ids)
                self._create_batch(queue, job, ref, summary, index)
        except _PayloadProblem as exc:
            self._fail_payload(queue, job, str(exc), summary)
            return
        job.round_submitted = True
        job.touch()
        queue.save()
        # A round the provider refused entirely has nothing in flight: settle it now.
        self._advance(queue, job, summary)

    def _fail_payload(self, queue: Queue, job: JobRecord, problem: str, summary: RunSummary) -> None:
        if any(b.status in ("creating", "in_progress", "ended", "downloaded") for b in job.batches):
            summary.notes.append(f"{job.id}: {problem}; left as it is while its other batches are in flight")
            return
        job.transition(
            "failed",
            error=(
                f"the payload cannot be sent: {problem}. Fix {job.payload_path} (or the tickets it came "
                f"from), then run `batch-ops retry {job.id}` (allowed once)"
            ),
        )
        queue.save()
        summary.failed_jobs.append(job.id)

    # -- the requests of a round ----------------------------------------------------------------

    def _job_dir(self, job: JobRecord) -> Path:
        # own_path refuses a folder that a symlink has pointed out of .backlog-ops/.
        return self.layout.own_path(self.layout.results_dir / safe_file_name(job.id))

    def _ref_file(self, job: JobRecord, ref: BatchRef, suffix: str) -> Path:
        # Named by round and chunk, not batch id: a ref has its files before it has an id.
        return self._job_dir(job) / f"r{ref.round}-c{ref.chunk}.{suffix}"

    def _payload_lines(self, job: JobRecord) -> Iterator[tuple[str, dict[str, Any]]]:
        """(custom_id, record) per request, streamed and checked: a bad line is a _PayloadProblem."""
        path = self.layout.resolve_ops_path(job.payload_path)
        seen: set[str] = set()
        if not path.is_file():
            raise _PayloadProblem(f"{job.payload_path} is missing")
        with open(path, encoding="utf-8", errors="replace") as fh:
            for number, raw in enumerate(fh, start=1):
                if not raw.strip():
                    continue
                where = f"{job.payload_path} line {number}"
                cid, data = _decoded_payload_line(where, raw)
                if cid in seen:
                    raise _PayloadProblem(f"{where}: custom_id {cid} appears twice")
                if not isinstance(data.get("params"), dict):
                    raise _PayloadProblem(f"{where}: params must be an object")
                seen.add(cid)
                yield cid, data

    def _round_ids(self, job: JobRecord, rnd: int) -> set[str] | None:
        """The custom_ids of a follow-up round; None for round 1 (the whole payload)."""
        if rnd == 1:
            return None
        path = self._job_dir(job) / f"round-{rnd}.ids"
        try:
            return set(path.read_text(encoding="utf-8").split())
        except FileNotFoundError:
            raise StateError(f"job {job.id}: {self.layout.rel_or_abs(path)} is missing") from None

    def _ref_ids(self, job: JobRecord, ref: BatchRef) -> list[str]:
        path = self._ref_file(job, ref, "ids")
        try:
            return path.read_text(encoding="utf-8").split()
        except FileNotFoundError:
            raise StateError(f"job {job.id}: {self.layout.rel_or_abs(path)} is missing") from None

    def _scan_payload(self, job: JobRecord, rnd: int) -> _PayloadIndex:
        """Check every payload line (as ``_payload_lines`` does) and note where each request sits.

        A line in the engine's own layout is parsed once (``payload.parse_request_line``) and its
        request is sent as the bytes it already is: a create reads them back by offset
        (``_BatchRequests``), so planning and sending cost one parse of the payload, no
        serialisation, and no batch's bytes held in memory. A line in any other shape is parsed in
        full and re-serialised when it is sent, as before. Lines are split on ``\n`` only, as the
        reconcile's join reads them (``iter_payload_meta``).
        """
        wanted = self._round_ids(job, rnd)
        taken: set[str] = set()
        for ref in job.batches:
            if ref.round == rnd:
                taken.update(self._ref_ids(job, ref))
        path = self.layout.resolve_ops_path(job.payload_path)
        if not path.is_file():
            raise _PayloadProblem(f"{job.payload_path} is missing")
        provider = self.provider
        seen: set[str] = set()
        spans: dict[str, tuple[int, int]] = {}
        todo: list[PlanItem] = []
        memo: dict[Any, str] = {}
        with open(path, "rb") as fh:
            stamp = _stamp(os.fstat(fh.fileno()))
            offset = 0
            for number, raw in enumerate(fh, start=1):
                start = offset
                offset += len(raw)
                if raw.isspace():
                    continue
                fast = parse_request_line(raw)
                if fast is not None:
                    cid, params, size = fast
                else:
                    cid, params = self._checked_line(job, raw, number)
                    size = -len(raw)  # re-serialised from a full parse when sent
                if cid in seen:
                    raise _PayloadProblem(f"{job.payload_path} line {number}: custom_id {cid} appears twice")
                if not isinstance(params, dict):
                    raise _PayloadProblem(f"{job.payload_path} line {number}: params must be an object")
                seen.add(cid)
                if wanted is not None and cid not in wanted:
                    continue
                spans[cid] = (start, size)
                if cid in taken:
                    continue
                if size > 0:
                    json_bytes = size + 1
                else:
                    try:
                        json_bytes = len(_compact({"custom_id": cid, "params": params}).encode("utf-8"))
                    except UnicodeEncodeError:
                        raise _PayloadProblem(
                            f"{job.payload_path} line {number}: params hold a lone surrogate (\\ud800-\\udfff)"
                        ) from None
                todo.append(PlanItem(cid, provider.request_json_bytes(json_bytes), cache_prefix_key(params, memo)))
        return _PayloadIndex(path=path, stamp=stamp, spans=spans, todo=todo)

    def _checked_line(self, job: JobRecord, raw: bytes, number: int) -> tuple[str, Any]:
        """custom_id and params of a line in another shape, with ``_payload_lines``'s checks and messages."""
        cid, data = _decoded_payload_line(f"{job.payload_path} line {number}", raw.decode("utf-8", errors="replace"))
        return cid, data.get("params")

    def _plan_round(self, job: JobRecord, rnd: int, index: _PayloadIndex | None = None) -> list[list[str]]:
        """The batches still to create for this round: its requests not yet in one of its batches."""
        if index is None:
            index = self._scan_payload(job, rnd)
        budget = self.max_batch_bytes - self.provider.envelope_bytes()
        return [[i.custom_id for i in chunk] for chunk in plan_chunks(index.todo, self.max_batch_requests, budget)]

    def _new_ref(self, queue: Queue, job: JobRecord, rnd: int, ids: list[str]) -> BatchRef:
        chunk = max((b.chunk for b in job.batches if b.round == rnd), default=-1) + 1
        ref = BatchRef(round=rnd, chunk=chunk, request_count=len(ids), intent_at=iso(utcnow()))
        atomic_write_text(self._ref_file(job, ref, "ids"), "".join(c + "\n" for c in ids))
        crashpoint("submit.ids-written")
        job.batches.append(ref)
        job.touch()
        queue.save()
        crashpoint("submit.ref-saved")
        return ref

    def _requests_for(self, job: JobRecord, ids: list[str]) -> list[ProviderRequest]:
        wanted = set(ids)
        found = {
            cid: ProviderRequest(custom_id=cid, params=data["params"])
            for cid, data in self._payload_lines(job)
            if cid in wanted
        }
        missing = [c for c in ids if c not in found]
        if missing:
            raise _PayloadProblem(f"{job.payload_path} no longer holds {', '.join(missing[:5])}")
        return [found[c] for c in ids]

    def _batch_requests(self, job: JobRecord, ref: BatchRef, index: _PayloadIndex) -> _BatchRequests:
        """The requests of a batch as the compact UTF-8 JSON sent, read from the payload as it is sent."""
        ids = self._ref_ids(job, ref)
        if index.stamp != _stamp(index.path.stat()):
            # Changed since it was checked (by hand, between two creates): check it again.
            fresh = self._scan_payload(job, ref.round)
            index.stamp, index.spans = fresh.stamp, fresh.spans
        missing = [c for c in ids if c not in index.spans]
        if missing:
            raise _PayloadProblem(f"{job.payload_path} no longer holds {', '.join(missing[:5])}")
        return _BatchRequests(index.path, index.stamp, [(c, *index.spans[c]) for c in ids])

    def _metas_for(self, job: JobRecord, ids: Iterable[str]) -> _Metas:
        """custom_id -> its meta as the settled line holds it, read from the payload's bytes.

        Only the meta is decoded (not the prompts), and it is kept as the JSON a settled result
        writes: the engine's own payload lines already hold that text, so a model is made only
        for a meta in another shape. At 100,000 requests a model per item held most of the
        reconcile's memory, and parsing every 4 KB payload line most of its time.
        """
        # Filled in advance: the dict is then the set of wanted ids too, and its keys are the ids'
        # own strings (100,000 of them, not a second copy from the index).
        out = _Metas(dict.fromkeys(ids, _NO_META), {})
        json_of = out.json
        try:
            path = self.layout.resolve_ops_path(job.payload_path)
            indexed = self._indexed_metas(job)
            if indexed is not None and indexed.canonical:
                # Every meta was found canonical when the index was written: nothing to test per item.
                for cid, meta_json in indexed:
                    if cid in json_of:
                        json_of[cid] = meta_json
            else:
                pairs = indexed if indexed is not None else ((m.custom_id, m.meta) for m in iter_payload_meta(path))
                self._join_checked(job, pairs, out)
        except (OSError, ValueError, KeyError, RecursionError, BatchOpsError) as exc:
            # Results are still settled; they only lose the ticket they came from.
            self.warn(f"{job.id}: {job.payload_path} unreadable for the join ({type(exc).__name__}: {exc})")
        return out

    def _join_checked(self, job: JobRecord, pairs: Iterable[tuple[str, str]], out: _Metas) -> None:
        """``_metas_for``'s join over metas of any shape: a canonical one is kept as its text."""
        canonical = CANONICAL_META.fullmatch
        json_of = out.json
        for cid, meta_json in pairs:
            if cid in json_of:
                if canonical(meta_json):
                    json_of[cid] = meta_json
                    continue
                try:
                    meta = ItemMeta.model_validate_json(meta_json)
                except ValueError:
                    self.warn(f"{job.id}: {job.payload_path}: meta of {cid} is not an object; ignored")
                    continue
                json_of[cid] = meta.model_dump_json()
                out.ticket[cid] = meta.ticket_id

    def _indexed_metas(self, job: JobRecord) -> IndexedMetas | None:
        """The payload's metas from its meta index (``payload.read_meta_index``); None to read the payload.

        The index's path is the payload's with ``.meta`` added, held inside .backlog-ops/ as the
        payload's is; a queue from before the index, or an index that is not the payload's, is None.
        """
        try:
            path = self.layout.resolve_ops_path(job.payload_path)
            index = self.layout.resolve_ops_path(job.payload_path + META_INDEX_SUFFIX)
        except BatchOpsError:
            return None
        return read_meta_index(path, index)

    # -- create ---------------------------------------------------------------------------------

    def _create_batch(
        self, queue: Queue, job: JobRecord, ref: BatchRef, summary: RunSummary, index: _PayloadIndex
    ) -> None:
        requests = self._batch_requests(job, ref, index)

        def attempt() -> tuple[BatchInfo, bool]:
            # Before every create, a create that may have worked is looked for first.
            found = self._resolve_doubt(queue, ref)
            if found is not None:
                return found, True
            ref.create_attempts += 1
            job.attempts += 1
            ref.doubt = "unanswered"
            ref.last_create_at = time.time()
            ref.last_failure_at = None
            job.touch()
            queue.save()  # durable intent: from here on a batch may exist that the queue does not name
            crashpoint("submit.intent-saved")
            try:
                info = self.provider.create_batch_json(requests)
            except ProviderCallError as exc:
                ref.doubt = _doubt_after(exc)
                ref.last_failure_at = time.time()
                queue.save()
                raise
            crashpoint("submit.created")
            return info, False

        try:
            info, adopted = self._call(attempt)
        except PersistentFailure as exc:
            self._reject(queue, job, ref, exc, summary)
            return
        except (AuthStop, OutageError) as exc:
            self._pause_for(exc)
            queue.save()
            raise
        self._record_created(queue, job, ref, info, adopted=adopted, summary=summary)

    def _record_created(
        self, queue: Queue, job: JobRecord, ref: BatchRef, info: BatchInfo, *, adopted: bool, summary: RunSummary
    ) -> None:
        ref.id = info.id
        ref.status = "ended" if info.status == "ended" else "in_progress"
        ref.doubt = None
        ref.submitted_at = iso(utcnow())
        if job.status == "queued":
            job.transition("submitted")
        job.next_attempt_at = None
        job.error = None
        job.touch()
        queue.save()
        crashpoint("submit.recorded")
        (summary.adopted_batches if adopted else summary.submitted_batches).append(info.id)

    def _reject(self, queue: Queue, job: JobRecord, ref: BatchRef, exc: PersistentFailure, summary: RunSummary) -> None:
        """The provider refused this batch: its requests settle as failed, unprocessed (no ledger line)."""
        ids = self._ref_ids(job, ref)
        metas = self._metas_for(job, ids)
        error = f"{FAIL_REJECTED}: {exc}"
        lines = [
            SettledResult(
                custom_id=cid, status="failed", meta=ItemMeta.model_validate_json(metas.json[cid]), error=error,
                attempts=ref.round,
            ).model_dump_json()
            + "\n"
            for cid in ids
        ]
        atomic_write_text(self._ref_file(job, ref, "settled.jsonl"), "".join(lines))
        atomic_write_text(self._ref_file(job, ref, "retry.jsonl"), "")
        ref.status = "rejected"
        ref.doubt = None
        ref.error = str(exc)
        job.settled["failed"] = job.settled.get("failed", 0) + len(ids)
        job.touch()
        queue.save()
        summary.settled["failed"] = summary.settled.get("failed", 0) + len(ids)
        summary.notes.append(f"{job.id}: the provider rejected a batch of {len(ids)} request(s): {exc}")

    def _pause_for(self, exc: AuthStop | OutageError) -> None:
        kind = PAUSE_AUTH if isinstance(exc, AuthStop) else PAUSE_OUTAGE
        current = read_pause(self.layout)
        # The first reason stays (its "since" is when trouble began), unless auth follows an outage:
        # no amount of waiting fixes a key, so that is what the operator must see.
        if current is None or (kind == PAUSE_AUTH and current.kind != PAUSE_AUTH):
            write_pause(self.layout, kind, str(exc))

    # -- reconcile ----------------------------------------------------------------------------

    def reconcile(self, summary: RunSummary) -> None:
        # What is alive now (the SDK, pydantic's schemas, the config: some 170,000 objects) lives
        # for the whole run; frozen, the full collections that settling 100,000 results sets off
        # walk only what the reconcile made (they were a quarter of its time). Memory only.
        gc.freeze()
        try:
            self._reconcile(summary)
        finally:
            gc.unfreeze()

    def _reconcile(self, summary: RunSummary) -> None:
        with self.store.locked() as queue:
            for job in self._ordered(queue):
                if job.terminal or not job.batches:
                    continue
                try:
                    self._reconcile_job(queue, job, summary)
                except (OutageError, AuthStop) as exc:
                    self._pause_for(exc)
                    queue.save()
                    raise
                except DeadlineReached as exc:
                    summary.notes.append(f"{job.id}: {exc}; the next run picks it up")
                    return
            pause = read_pause(self.layout)
            if pause is not None:
                summary.notes.append(f"queue paused ({pause.kind}): follow-up batches wait for `batch-ops resume`")
            elif not self.config.policy.enabled:
                summary.notes.append("llmOps.batchPolicy.enabled is false: follow-up batches are not sent")
            else:
                # Follow-up rounds created while settling go out in the same run, and slots that
                # ended batches freed are filled with jobs waiting for one (maxConcurrentBatchJobs).
                self._submit_locked(queue, summary)
                self._run_interactive(queue, summary)

    def _run_interactive(self, queue: Queue, summary: RunSummary) -> None:
        """Jobs in mode "interactive" go through the Messages API (interactive.py), then settle here."""
        interactive.run_jobs(self, queue, summary)

    def _reconcile_job(self, queue: Queue, job: JobRecord, summary: RunSummary) -> None:
        for ref in job.batches:
            if ref.status == "in_progress" and ref.id:
                self._poll(queue, job, ref, summary)
            fresh: _Download | None = None
            if ref.status == "ended":
                fresh = self._download(queue, job, ref)
            if fresh is not None or ref.status in ("downloaded", "lost"):
                self._settle(queue, job, ref, summary, fresh)
        self._advance(queue, job, summary)

    def _poll(self, queue: Queue, job: JobRecord, ref: BatchRef, summary: RunSummary) -> None:
        assert ref.id is not None
        try:
            info: BatchInfo = self._call(functools.partial(self.provider.retrieve_batch, ref.id))
        except PersistentFailure as exc:
            self._lose(queue, job, ref, exc)
            return
        ref.counts = info.counts
        if info.status == "ended":
            ref.status = "ended"
            ref.ended_at = iso(info.ended_at or utcnow())
            ref.results_url = info.results_url  # the download needs no second retrieve
            summary.ended_batches.append(ref.id)
        elif job.status == "submitted":
            job.transition("running")
        job.touch()
        queue.save()
        crashpoint("reconcile.polled")

    def _lose(self, queue: Queue, job: JobRecord, ref: BatchRef, exc: PersistentFailure) -> None:
        """The provider no longer has the batch (deleted, 404): its requests count as without a result."""
        self.warn(f"{job.id}: batch {ref.id} is gone ({exc}); its requests are retried or failed")
        ref.status = "lost"
        ref.error = str(exc)
        job.touch()
        queue.save()

    def _download(self, queue: Queue, job: JobRecord, ref: BatchRef) -> _Download | None:
        """The ref's results, downloaded whole to a side file whose fsync runs in the background;
        None if the batch is gone. ``_settle`` reads that file and, before it commits anything,
        waits for the fsync and marks the ref downloaded (``_Download.commit``)."""
        assert ref.id is not None
        batch_id = ref.id
        target = self._ref_file(job, ref, RAW_RESULTS)
        tmp = target.with_name(target.name + ".part")
        target.parent.mkdir(parents=True, exist_ok=True)

        def fetch() -> int:
            # The provider's own bytes, as they come: each line is checked once, when it settles.
            # From the results_url the poll saw: one retrieve per in-flight batch, one results
            # stream per ended batch (the SDK's results() retrieves the batch again first).
            with open(tmp, "wb") as fh:
                return self.provider.download_results(batch_id, _FirstWrite(fh), results_url=ref.results_url)

        try:
            self._call(fetch)
        except PersistentFailure as exc:
            self._lose(queue, job, ref, exc)
            return None
        return _Download(tmp, target)

    def _history(self, job: JobRecord, rnd: int) -> dict[str, list[str]]:
        """custom_id -> what happened to it in the rounds before ``rnd``."""
        out: dict[str, list[str]] = {}
        for ref in job.batches:
            if ref.round == rnd - 1:
                for entry in self._read_retry(job, ref):
                    out[entry["custom_id"]] = list(entry.get("history") or [])
        return out

    def _read_retry(self, job: JobRecord, ref: BatchRef) -> list[dict[str, Any]]:
        path = self._ref_file(job, ref, "retry.jsonl")
        if not path.exists():
            return []
        entries: list[dict[str, Any]] = []
        # "\n" only: a history entry may hold U+2028 from an error message, and splitlines() cuts there.
        for line in path.read_text(encoding="utf-8", errors="replace").split("\n"):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
            except (ValueError, RecursionError):
                self.warn(f"{job.id}: {self.layout.rel_or_abs(path)}: a line is unreadable; skipped")
                continue
            if isinstance(entry, dict) and isinstance(entry.get("custom_id"), str):
                entries.append(entry)
        return entries

    def _result_source(
        self, job: JobRecord, ref: BatchRef, raw_path: Path | None = None
    ) -> tuple[Path, Callable[[bytes, int], ResultLine | None]]:
        """The file of the ref's results and the reader of its lines (None for an unreadable line).

        A batch's download (``raw_path``, or the one in place) is the provider's own JSONL, read by
        the provider; interactive answers (and a download made before that) are ``ProviderResult`` lines.
        """
        raw_path = raw_path or self._ref_file(job, ref, RAW_RESULTS)
        if raw_path.exists():
            return raw_path, self.provider.read_result_line
        return self._ref_file(job, ref, "results.jsonl"), _provider_result_line

    def _settle(
        self, queue: Queue, job: JobRecord, ref: BatchRef, summary: RunSummary, fresh: _Download | None = None
    ) -> None:
        phase = self.phases.get(job.phase)
        if phase is None:
            raise StateError(f"job {job.id}: unknown phase {job.phase!r}")
        price = self.config.price(job.model_alias)
        max_retries = self.config.policy.retry_policy.max_retries
        ids = self._ref_ids(job, ref)
        joined = self._metas_for(job, ids)
        # custom_id -> its meta's JSON, for the custom_ids this batch holds; a custom_id's entry is
        # set to "" when its result settles (a meta is never empty): one dict says both which
        # results are expected and which came already, where a set of the seen ones cost 4 MB more.
        metas = joined.json
        history = self._history(job, ref.round)
        can_retry = ref.round <= max_retries
        where = ref.id or f"round {ref.round}"
        retry_lines: list[str] = []
        counts: dict[str, int] = {"succeeded": 0}
        # Crash window: lines may be in the ledger before the ref says so; skip what is there.
        present = keys_for_batch(self.layout.ledger_file, job.id, ref.id) if ref.ledger_state == "appending" else set()
        # Settled lines and ledger lines are written as they are made (the ledger's staged in a
        # side file and appended in one go below): memory holds the join map, not the results.
        ledger = LedgerAppend(self.layout.ledger_file, self._ref_file(job, ref, "ledger.part"))
        settled_path = self._ref_file(job, ref, "settled.jsonl")
        self._failed_lines.pop(settled_path, None)
        settled_out = atomic_writer(settled_path, binary=True)
        out = settled_out.__enter__()
        # The parts of every settled and ledger line that are the same for the whole batch.
        lines = _LineParts(job, ref, price, ledger)
        settled_row, ledger_row = lines.settled, lines.ledger
        pending: list[_SettledRow] = []
        pending_ledger: list[LedgerRow | msgspec.Raw] = []
        failures = _Failures()
        ticket_id_in = joined.ticket_id_in
        output_json = phase.output_json

        def flush() -> None:
            out.write(_encode_lines(pending))
            pending.clear()
            ledger.add_bytes(_encode_lines(pending_ledger))
            pending_ledger.clear()

        def settle_one(result: ResultLine, verdict: str, meta: str, what: str | None = None) -> None:
            """Any result: the loop below settles most succeeded ones itself, as this would."""
            cid = result.custom_id
            past: list[str] = []
            if verdict != "succeeded":  # the history is only written for a retry or a failure
                past = [*history.get(cid, []), f"attempt {ref.round} ({where}): {what or _describe(result)}"]
            if verdict == "retry" and can_retry:
                retry_lines.append(json.dumps({"custom_id": cid, "history": past}, ensure_ascii=False) + "\n")
                return
            status, output, error = self._outcome(phase, ref, result, verdict, past)
            counts[status] = counts.get(status, 0) + 1
            pending.append(settled_row(result, meta, status, output, error))
            ticket_id = ticket_id_in(cid, meta)
            if status == "failed":
                failures.add(cid, ticket_id, error)
            if cid not in present:
                pending_ledger.append(ledger_row(result, ticket_id, status, error))
            if len(pending) >= 256:
                flush()

        rejected: dict[str, int] = {}

        def reject(kind: str, message: str) -> None:
            rejected[kind] = rejected.get(kind, 0) + 1
            self.warn(f"{job.id}/{ref.id}: {message}")

        owners: dict[str, str] | None = None

        def admitted(result: ResultLine, meta: str | None) -> bool:
            """Whether a line that is malformed, unknown, foreign or a duplicate settles (a malformed
            line for an expected custom_id does, as an error); the others are reported and skipped."""
            nonlocal owners
            cid = result.custom_id
            if result.error_type == MALFORMED:
                reject("malformed", f"{result.error_message or 'malformed result line'}; not applied")
                return bool(meta)
            if meta is None:
                if owners is None:
                    owners = self._custom_id_owners(queue, job)
                owner = owners.get(cid)
                if owner is None:
                    reject("unknown", f"result for unknown custom_id {cid!r} ignored")
                else:
                    reject("foreign", f"result for {cid!r} belongs to {owner}; not applied")
                return False
            reject("duplicate", f"duplicate result for {cid!r} ignored")
            return False

        succeeded = 0
        try:
            if fresh is not None or ref.status == "downloaded":
                path, read = self._result_source(job, ref, fresh.tmp if fresh is not None else None)
                # Every line is checked on its own: one odd line is reported and skipped, never fatal.
                # The usual line (an expected result whose answer fits the schema) settles right
                # here, without a call per line: at 100,000 lines a batch, every call shows.
                with open(path, "rb") as fh:
                    for number, raw in enumerate(fh, start=1):
                        if raw.isspace():  # not strip(): that copies each 2 KB line
                            continue
                        result = read(raw, number)
                        if result is None:
                            reject("unreadable", f"results line {number} is unreadable; ignored")
                            continue
                        cid = result.custom_id
                        meta = metas.get(cid)
                        if not meta or result.error_type == MALFORMED:
                            if not admitted(result, meta):
                                continue
                            assert meta
                        metas[cid] = ""
                        if result.outcome != "succeeded" or result.stop_reason == "max_tokens":
                            settle_one(result, settle_outcome(result.outcome, result.error_type), meta)
                            continue
                        try:
                            output = output_json(result.text or "")
                        except OutputError:
                            settle_one(result, "succeeded", meta)  # says why, as a failure
                            continue
                        succeeded += 1
                        pending.append(settled_row(result, meta, "succeeded", output, None))
                        if cid not in present:
                            pending_ledger.append(ledger_row(result, ticket_id_in(cid, meta), "succeeded", None))
                        if len(pending) >= 256:  # a write per 256 lines: one per line cost more than the line
                            flush()
            missing = [(cid, meta) for cid, meta in metas.items() if meta]
            if missing and (fresh is not None or ref.status == "downloaded"):
                self.warn(f"{job.id}/{ref.id}: {len(missing)} request(s) had no result line")
            for cid, meta in missing:
                gone = ResultLine(custom_id=cid, outcome="expired", error_message="no result returned")
                what = f"no result ({ref.error})" if ref.status == "lost" else "no result returned"
                settle_one(gone, "retry", meta, what)
            flush()
        except BaseException as exc:
            settled_out.__exit__(type(exc), exc, exc.__traceback__)
            ledger.discard()
            raise
        settled_out.__exit__(None, None, None)
        self._failed_lines[settled_path] = failures
        if rejected:
            shown = ", ".join(f"{kind} {n}" for kind, n in sorted(rejected.items()))
            summary.notes.append(f"{job.id}/{ref.id}: result lines rejected, not applied ({shown})")
        atomic_write_text(self._ref_file(job, ref, "retry.jsonl"), "".join(retry_lines))
        crashpoint("reconcile.settled-files")
        if fresh is not None:
            # Nothing is committed before the download is: a crash until here downloads again.
            fresh.commit()
            crashpoint("reconcile.downloaded-file")
            ref.status = "downloaded"
            job.touch()
            queue.save()
            crashpoint("reconcile.downloaded")
        ref.ledger_state = "appending"
        queue.save()
        crashpoint("reconcile.ledger-marked")
        summary.ledger_lines += ledger.commit()
        crashpoint("reconcile.ledger-appended")
        ref.ledger_state = "done"
        ref.status = "settled"
        counts["succeeded"] += succeeded
        for key, n in counts.items():
            if not n:
                continue
            job.settled[key] = job.settled.get(key, 0) + n
            summary.settled[key] = summary.settled.get(key, 0) + n
        if retry_lines:
            summary.settled["retry"] = summary.settled.get("retry", 0) + len(retry_lines)
        job.touch()
        queue.save()
        crashpoint("reconcile.settled")

    def _custom_id_owners(self, queue: Queue, job: JobRecord) -> dict[str, str]:
        """custom_id -> who else expects it: another batch of this job, or another job."""
        owners: dict[str, str] = {}
        for other in queue.jobs:
            try:
                for cid, _data in self._payload_lines(other):
                    owners.setdefault(
                        cid, f"another batch of job {job.id}" if other.id == job.id else f"job {other.id}"
                    )
            except (OSError, ValueError, _PayloadProblem, BatchOpsError):
                continue
        return owners

    def _outcome(
        self, phase: Phase, ref: BatchRef, result: ResultLine, verdict: str, history: list[str]
    ) -> tuple[str, str | None, str | None]:
        """(status, the output as compact JSON or None, error) of a request that settles now."""
        if verdict == "succeeded":
            if result.stop_reason == "max_tokens":
                # A truncated answer may still parse; half an answer is never applied.
                return "failed", None, f"{FAIL_ANSWER}: answer cut off at max_tokens"
            try:
                return "succeeded", phase.output_json(result.text or ""), None
            except OutputError as exc:
                return "failed", None, f"{FAIL_ANSWER}: {exc}"
        if verdict == "failed":
            message = f"{FAIL_INVALID}: {_describe(result)}"
            if len(history) > 1:
                message += " (history: " + "; ".join(history) + ")"
            return "failed", None, message
        return "failed", None, f"{FAIL_GAVE_UP} after {ref.round} attempt(s): " + "; ".join(history)

    def _advance(self, queue: Queue, job: JobRecord, summary: RunSummary) -> None:
        """When every batch of the round is settled: send the unsettled requests again, or finish."""
        rnd = job.round
        current = [b for b in job.batches if b.round == rnd]
        if not job.round_submitted or not current or any(b.status not in ("settled", "rejected") for b in current):
            return
        retry_ids: list[str] = []
        for ref in current:
            retry_ids.extend(entry["custom_id"] for entry in self._read_retry(job, ref))
        if retry_ids:
            unique = list(dict.fromkeys(retry_ids))
            atomic_write_text(self._job_dir(job) / f"round-{rnd + 1}.ids", "".join(c + "\n" for c in unique))
            crashpoint("reconcile.next-round")
            job.round = rnd + 1
            job.round_submitted = False
            job.transition("queued")
            queue.save()
            summary.requeued_items += len(unique)
            return
        self._finish(queue, job, summary)

    def _finish(self, queue: Queue, job: JobRecord, summary: RunSummary) -> None:
        """Every request settled: merge the results, apply them, and close the job."""
        result_path = self.layout.results_dir / f"{safe_file_name(job.id)}.jsonl"
        parts = [p for p in (self._ref_file(job, ref, "settled.jsonl") for ref in job.batches) if p.exists()]
        if len(parts) != 1 or not _link_into(parts[0], result_path):
            # Streamed: the batches' settled files are copied, never held in memory together.
            with atomic_writer(result_path) as out:
                for path in parts:
                    with open(path, encoding="utf-8") as part:
                        shutil.copyfileobj(part, out, 1 << 20)
        crashpoint("finish.results-written")
        job.result_path = self.layout.rel(result_path)
        queue.save()
        phase = self.phases[job.phase]
        # What the settle counted is what the file holds: a phase that only counts need not read it.
        applied = phase.apply(self.context(), job.id, SettledFile(result_path, dict(job.settled)))
        crashpoint("finish.applied")
        if phase.edits_tickets:
            self._scan = None  # tickets were rewritten: later applies in this run must read them again
        if applied.report_path:
            job.report_path = applied.report_path
            summary.reports.append(applied.report_path)
        failed = _Failures()
        if all(p in self._failed_lines for p in parts):
            # Every part was written in this run: what its failed lines say is known, in file order.
            for p in parts:
                failed.extend(self._failed_lines.pop(p))
        else:
            for res in iter_failed(result_path):
                failed.add(res.custom_id, res.meta.ticket_id, res.error)
        if failed.count and failed.count >= job.request_count:
            job.transition("failed", error=self._failure_text(job, failed, job_failed=True))
            summary.failed_jobs.append(job.id)
        else:
            text = self._failure_text(job, failed, job_failed=False) if failed.count else None
            job.transition("completed", error=text)
            summary.completed_jobs.append(job.id)
        queue.save()
        crashpoint("finish.closed")
        # The merged results file is the record; per-batch working files would only bloat the repository.
        shutil.rmtree(self._job_dir(job), ignore_errors=True)

    @staticmethod
    def _failure_text(job: JobRecord, failed: _Failures, *, job_failed: bool) -> str:
        """What happened, to which requests, and what to fix: one paragraph for the queue and alerts."""
        parts: list[str] = []
        for kind, (n, shown) in failed.kinds.items():
            more = f"; and {n - len(shown)} more" if n > len(shown) else ""
            advice = _FAILURE_KINDS.get(kind, "see the error")
            parts.append(f"{n} {kind} ({advice}): {'; '.join(shown)}{more}")
        total = job.request_count or failed.count
        if job_failed:
            action = f"fix what is named above, then run `batch-ops retry {job.id}` (allowed once)"
        else:
            action = (
                "fix what is named above; a changed ticket is sent again by the next `batch-ops enqueue`, "
                f"or `batch-ops retry {job.id}` sends the failed requests again as a new job (once)"
            )
        return f"{failed.count} of {total} request(s) failed. " + " | ".join(parts) + f". What to do: {action}"

    # -- operator retry -------------------------------------------------------------------------

    def retry_job(self, job_id: str) -> str:
        """Re-queue a failed job once (after the operator fixed its payload); returns what was done.

        A completed job whose requests partly failed gets a new job of just those requests instead,
        so the settled ones are neither sent nor paid for twice.
        """
        with self.store.locked() as queue:
            job = queue.get(job_id)
            if job.retried_by_operator:
                raise PolicyRefusal(f"{job.id} was already retried once; fix the tickets and enqueue them again")
            if job.status == "failed":
                count = sum(1 for _ in self._checked_payload(job))
                shutil.rmtree(self._job_dir(job), ignore_errors=True)
                job.previous_batches.extend(job.batches)
                job.batches = []
                job.round = 1
                job.round_submitted = False
                job.settled = {}
                job.result_path = None
                job.next_attempt_at = None
                job.request_count = count
                job.retried_by_operator = True
                job.transition("queued")
                job.error = None
                queue.save()
                return f"re-queued {job.id} ({count} request(s)); `batch-ops submit` sends it"
            if job.status == "completed" and job.result_path:
                failed = {
                    r.custom_id
                    for r in iter_settled(self.layout.resolve_ops_path(job.result_path))
                    if r.status == "failed"
                }
                if not failed:
                    raise PolicyRefusal(f"{job.id} completed without failed requests: nothing to retry")
                records = [data for cid, data in self._checked_payload(job) if cid in failed]
                items = [
                    PlannedItem(
                        custom_id=d["custom_id"], params=d["params"], meta=ItemMeta.model_validate(d.get("meta") or {})
                    )
                    for d in records
                ]
                phase = self.phases.get(job.phase)
                if phase is None:
                    raise StateError(f"job {job.id}: unknown phase {job.phase!r}")
                new = self._new_job(queue, phase, job.model_alias, items)
                job.retried_by_operator = True
                job.touch()
                queue.save()
                return (
                    f"queued {new.id} with the {len(items)} failed request(s) of {job.id}; `batch-ops submit` sends it"
                )
            raise PolicyRefusal(f"{job.id} is {job.status}: only a failed job (or failed requests) can be retried")

    def _checked_payload(self, job: JobRecord) -> list[tuple[str, dict[str, Any]]]:
        try:
            return list(self._payload_lines(job))
        except _PayloadProblem as exc:
            raise PolicyRefusal(f"{job.id}: {exc}; fix it first") from None


# The same bytes as providers.base.compact_json_bytes measures when the chunks are planned.
_compact = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def _stamp(st: os.stat_result) -> tuple[int, int, int, int]:
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns


@dataclass
class _PayloadIndex:
    """Where the requests of one round sit in the payload, from one checked pass (``_scan_payload``)."""

    path: Path
    stamp: tuple[int, int, int, int]  # the file as it was checked: a create first makes sure it still is
    # custom_id -> (offset of its line, n): the request is the line's first n bytes and "}" for n > 0,
    # or, for -n, the line's length and a full parse and re-serialisation (a line in another shape).
    spans: dict[str, tuple[int, int]]
    todo: list[PlanItem]  # the round's requests in no batch yet, in payload order


class _BatchRequests:
    """One batch's requests (compact UTF-8 JSON each), read from the payload each time it is iterated.

    A create streams its body from this: memory holds one read buffer, not the batch (up to
    256 MB), and a retried create iterates it again. Each request's bytes are checked to start
    with its own head, so a payload changed behind the index's back is never sent as another
    request; the index has checked the whole line before.
    """

    def __init__(self, path: Path, stamp: tuple[int, int, int, int], spans: list[tuple[str, int, int]]) -> None:
        self.path = path
        self.stamp = stamp
        self.spans = spans

    def __len__(self) -> int:
        return len(self.spans)

    def __iter__(self) -> Iterator[bytes]:
        with open(self.path, "rb", buffering=_READ_BUFFER) as fh:
            if _stamp(os.fstat(fh.fileno())) != self.stamp:
                raise StateError(f"{self.path.name} changed while its batch was being sent")
            for cid, offset, n in self.spans:
                fh.seek(offset)  # requests are mostly in payload order: within the buffer, no system call
                if n > 0:
                    data = fh.read(n)
                    if not data.startswith(b'{"custom_id":"%s","params":' % cid.encode()):
                        raise StateError(f"{self.path.name} changed while its batch was being sent")
                    yield data + b"}"
                else:
                    data = json.loads(fh.read(-n).decode("utf-8", errors="replace"))
                    yield _compact({"custom_id": cid, "params": data["params"]}).encode("utf-8")


_READ_BUFFER = 1 << 20


def wait_until(deadline: float) -> float:
    return max(0.0, deadline - time.monotonic())
