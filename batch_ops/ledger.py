"""The usage ledger: ``.backlog-ops/usage-ledger.jsonl``, append-only, one line per settled request.

Costs come from the usage the API returned and the config's prices, never from estimates.
An append writes whole lines at the end of the file (staged in a side file first when there are
many) and fsyncs. If a kill cut the last line short, the next append starts on a fresh line, and
the reader reports the fragment instead of failing.

Beside the ledger, ``usage-ledger.summary.json`` keeps running totals by day, phase, model, mode
and status, so ``status`` and reports need not read a million lines. It is a cache, never the
record: it says which prefix of the ledger it covers (a byte count, with hashes of the bytes at
both ends of that prefix), every append brings it up to date, and a reader adds whatever lies past
its prefix. A summary that does not match the ledger (missing, damaged, or from another history of
the file) is rebuilt from the ledger. Because coverage is counted in bytes, a crash between an
append and the summary's update cannot count a line twice: the next reader simply reads it.

The summary also keeps what ``batch-ops report`` prints, so the report need not price and group a
million lines either: one *cell* per (day, job, phase, model alias, model, mode) with its request,
success and cache-read counts, token sums and cost sums. Cost sums are kept exactly (in units of
2**-1074, of which every float is a whole number), so they add up the same whichever way the lines
were split into appends, and a summary kept current append by append equals one rebuilt from the
ledger bit for bit. The cells grow with jobs and days, not with lines.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from batch_ops.config import ModelPrice

Mode = Literal["batch", "interactive"]


class Usage(BaseModel):
    model_config = ConfigDict(extra="ignore")

    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0
    # Part of cache_creation_input_tokens written with the 1-hour TTL (priced at its own rate).
    cache_creation_1h_input_tokens: int = 0


# Input, output, cache-write and cache-read tokens, then cost, interactive cost and savings.
Sums = tuple[int, int, int, int, float, float, float]


class TokenCounts(msgspec.Struct, gc=False):
    """``Usage`` as a plain record, for code that reads 100,000 results a batch.

    A msgspec struct, not a dataclass: it is made once per result line, and a struct's ``__init__``
    (in C) costs half a dataclass's; ``gc=False`` because it holds only ints.
    """

    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0
    cache_creation_1h_input_tokens: int = 0


class Cost(BaseModel):
    cost_usd: float
    interactive_cost_usd: float
    savings_usd: float


def price_usage(usage: Usage, price: ModelPrice, mode: Mode) -> Cost:
    """What the tokens cost in this mode, and what they would have cost interactively."""
    cost, interactive, savings = cost_values(usage, price, mode)
    return Cost(cost_usd=cost, interactive_cost_usd=interactive, savings_usd=savings)


def cost_values(usage: Usage | TokenCounts, price: ModelPrice, mode: Mode) -> tuple[float, float, float]:
    """``price_usage`` as a plain (cost, interactive cost, savings) tuple."""
    return Rates.of(price, mode).costs(usage)


@dataclass(frozen=True, slots=True)
class Rates:
    """A model's price in one mode, as the factors each request's costs are computed from.

    Made once per batch by the settle (100,000 lines a batch: the price's attributes and a call per
    line were a tenth of its ledger work); ``cost_values`` makes one per call.
    """

    per_in: float  # USD per input token
    write_5m: float  # multipliers of per_in
    write_1h: float
    read: float
    per_out: float  # USD per output token
    discount: float  # the batch discount, or 1.0 outside batch mode

    @classmethod
    def of(cls, price: ModelPrice, mode: Mode) -> Rates:
        return cls(
            price.input_usd_per_mtok / 1_000_000, price.cache_write_5m_multiplier, price.cache_write_1h_multiplier,
            price.cache_read_multiplier, price.output_usd_per_mtok / 1_000_000,
            price.batch_discount if mode == "batch" else 1.0,
        )  # fmt: skip

    def costs(self, usage: Usage | TokenCounts) -> tuple[float, float, float]:
        """(cost, interactive cost, savings) of one request's tokens."""
        per_in = self.per_in
        write_1h = min(usage.cache_creation_1h_input_tokens, usage.cache_creation_input_tokens)
        write_5m = usage.cache_creation_input_tokens - write_1h
        interactive = (
            usage.input_tokens * per_in
            + write_5m * per_in * self.write_5m
            + write_1h * per_in * self.write_1h
            + usage.cache_read_input_tokens * per_in * self.read
            + usage.output_tokens * self.per_out
        )
        cost = interactive * self.discount  # times 1.0 outside batch mode: exactly the interactive cost
        return cost, interactive, interactive - cost


class LedgerLine(BaseModel):
    # A hand-edited Infinity/NaN would poison every total: such a line is a problem, not a cost.
    model_config = ConfigDict(extra="allow", allow_inf_nan=False)

    timestamp: str
    workflow: str
    phase: str
    job_id: str
    batch_id: str | None
    custom_id: str
    ticket_id: str | None
    provider: str
    model_alias: str
    model: str
    mode: Mode
    input_tokens: int
    output_tokens: int
    cache_creation_input_tokens: int
    cache_read_input_tokens: int
    cost_usd: float
    interactive_cost_usd: float
    savings_usd: float
    status: str
    attempts: int = 1
    error: str | None = None


class LedgerRow(msgspec.Struct, gc=False):
    """A ledger line for msgspec: ``LedgerLine``'s fields in its order, with its types.

    Both ways at 100,000 lines and more: the settle writes its lines as rows (msgspec writes
    strings, ints and floats below 1e16 as ``model_dump_json`` does), and the summary's rebuild
    reads every line as one. msgspec's strict decoder takes only what the model takes, with the
    same values (other keys are ignored, as the model keeps them aside).
    """

    timestamp: str
    workflow: str
    phase: str
    job_id: str
    batch_id: str | None
    custom_id: str
    ticket_id: str | None
    provider: str
    model_alias: str
    model: str
    mode: Mode
    input_tokens: int
    output_tokens: int
    cache_creation_input_tokens: int
    cache_read_input_tokens: int
    cost_usd: float
    interactive_cost_usd: float
    savings_usd: float
    status: str
    attempts: int = 1
    error: str | None = None


_decode_row = msgspec.json.Decoder(LedgerRow).decode


def _read_row(raw: bytes) -> LedgerRow | None:
    """A ledger line read by msgspec, or None for the model to read (and, if it must, say what is wrong).

    Rebuilding the summary reads every line of the ledger: at 1,000,000 lines, a model per line
    was most of that time. Anything the strict decoder refuses (a number as a string, invalid
    UTF-8, a cost too large to be finite, which the model refuses too) goes to the model.
    """
    try:
        line = _decode_row(raw)
    except (msgspec.DecodeError, RecursionError):  # nested too deep for msgspec: the model says so
        return None
    if math.isfinite(line.cost_usd) and math.isfinite(line.interactive_cost_usd) and math.isfinite(line.savings_usd):
        return line
    return None


class LedgerProblem(BaseModel):
    line_number: int
    reason: str


def append_lines(path: Path, lines: Iterable[LedgerLine]) -> int:
    """Append whole lines; returns how many were written. Keeps the summary up to date."""
    acc = _Totals()
    parts: list[str] = []
    for line in lines:
        parts.append(line.model_dump_json() + "\n")
        acc.add(line)
    if not parts:
        return 0
    data = "".join(parts).encode("utf-8")
    _append(path, [data], acc, len(parts))
    return len(parts)


class LineSums:
    """Running sums of ledger lines that differ only in model and status (say, one batch's).

    Per (model, status): lines, the four token sums, the three costs summed as floats in line
    order (as the summary's groups sum them) and exactly (``units``, as its report cells do),
    and the lines with a cache read.
    """

    __slots__ = ("by", "day", "job_id", "mode", "model_alias", "phase", "workflow")

    def __init__(self, day: str, workflow: str, phase: str, model_alias: str, mode: str, job_id: str) -> None:
        self.day, self.workflow, self.phase = day, workflow, phase
        self.model_alias, self.mode, self.job_id = model_alias, mode, job_id
        self.by: dict[tuple[str, str], list[Any]] = {}

    def add(
        self, model: str, status: str, tokens_in: int, tokens_out: int, cache_write: int, cache_read: int,
        cost: float, interactive: float, savings: float,
    ) -> None:  # fmt: skip
        acc = self.by.get((model, status))
        if acc is None:
            acc = self.by[model, status] = [0, 0, 0, 0, 0, 0.0, 0.0, 0.0, 0, 0, 0, 0]
        acc[0] += 1
        acc[1] += tokens_in
        acc[2] += tokens_out
        acc[3] += cache_write
        acc[4] += cache_read
        acc[5] += cost
        acc[6] += interactive
        acc[7] += savings
        acc[8] += cache_read > 0
        # Exact units, one conversion where the floats allow: at the batch discount of one half the
        # interactive cost is twice the cost (exactly, in floats) and the savings equal it.
        cost_units = units(cost)
        acc[9] += cost_units
        if interactive == cost:
            acc[10] += cost_units
        elif interactive == cost + cost:
            acc[10] += cost_units << 1
        else:
            acc[10] += units(interactive)
        acc[11] += cost_units if savings == cost else units(savings)


class LedgerAppend:
    """Many ledger lines staged in a side file, then appended to the ledger in one go.

    ``add`` keeps nothing in memory but the running totals; ``commit`` appends the staged lines,
    fsyncs and updates the summary. A crash before ``commit`` leaves the ledger as it was.
    """

    def __init__(self, path: Path, stage: Path) -> None:
        self.path = path
        self.stage = stage
        self.count = 0
        self._totals = _Totals()
        self._line_sums: list[LineSums] = []
        stage.parent.mkdir(parents=True, exist_ok=True)
        # Binary: the settle hands over blocks of lines msgspec has already written as UTF-8.
        self._fh = open(stage, "wb")  # noqa: SIM115 - closed by commit or discard

    def add(self, line: LedgerLine) -> None:
        self._fh.write(line.model_dump_json().encode("utf-8") + b"\n")
        self._totals.add(line)
        self.count += 1

    def lines_of(self, day: str, workflow: str, phase: str, model_alias: str, mode: str, job_id: str) -> LineSums:
        """Sums for lines the caller serialises itself (``add_bytes``), all of one job, day and mode.

        The settle's hot loop: one ``LineSums.add`` per line instead of a group and cell lookup per
        line. ``commit`` adds the sums in and counts their lines.
        """
        sums = LineSums(day, workflow, phase, model_alias, mode, job_id)
        self._line_sums.append(sums)
        return sums

    def add_bytes(self, data: bytes) -> None:
        """Lines already serialised as UTF-8 (each ending in a newline), each given once to a ``LineSums.add``."""
        self._fh.write(data)

    def add_fields(self, fields: dict[str, Any]) -> None:
        """One line given as a dict of every ``LedgerLine`` field (the caller vouches for the types)."""
        self._fh.write(_encode(fields).encode("utf-8") + b"\n")
        self._totals.add_fields(fields)
        self.count += 1

    def commit(self) -> int:
        self._fh.close()
        for sums in self._line_sums:
            self.count += self._totals.add_line_sums(sums)
        self._line_sums.clear()
        if self.count:
            with open(self.stage, "rb") as fh:
                _append(self.path, iter(lambda: fh.read(_BLOCK), b""), self._totals, self.count)
        self.stage.unlink(missing_ok=True)
        return self.count

    def discard(self) -> None:
        self._fh.close()
        self.stage.unlink(missing_ok=True)


_BLOCK = 1 << 20
_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def _append(path: Path, blocks: Iterable[bytes], totals: _Totals, count: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        before = os.fstat(fd).st_size
        torn = _ends_mid_line(path)
        if torn:
            _write_all(fd, b"\n")
        for block in blocks:
            _write_all(fd, block)
        os.fsync(fd)
    finally:
        os.close(fd)
    _note_append(path, before, torn, totals, count)


def _ends_mid_line(path: Path) -> bool:
    size = path.stat().st_size
    if size == 0:
        return False
    with open(path, "rb") as fh:
        fh.seek(size - 1)
        return fh.read(1) != b"\n"


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def iter_ledger(path: Path, problems: list[LedgerProblem] | None = None) -> Iterator[LedgerLine]:
    """Stream the ledger; unparseable lines are reported into ``problems`` and skipped."""
    if not path.exists():
        return
    with open(path, encoding="utf-8", errors="replace") as fh:
        for number, raw in enumerate(fh, start=1):
            if not raw.strip():
                continue
            try:
                yield LedgerLine.model_validate_json(raw)
            except ValidationError as exc:
                if problems is not None:
                    first = exc.errors()[0]
                    where = ".".join(str(p) for p in first["loc"]) or "(line)"
                    problems.append(LedgerProblem(line_number=number, reason=f"{where}: {first['msg']}"))


def keys_for_batch(path: Path, job_id: str, batch_id: str | None) -> set[str]:
    """custom_ids already in the ledger for one batch of a job: used only when recovering a crash."""
    keys: set[str] = set()
    needle = f'"job_id":"{job_id}"'
    if not path.exists():
        return keys
    with open(path, encoding="utf-8", errors="replace") as fh:
        for raw in fh:
            if needle not in raw:
                continue
            try:
                data = json.loads(raw)
            except (ValueError, RecursionError):
                continue
            if isinstance(data, dict) and data.get("batch_id") == batch_id:
                keys.add(str(data.get("custom_id")))
    return keys


# -- the summary ------------------------------------------------------------------------------

SUMMARY_VERSION = 2  # 2: the report's cells
MAX_PROBLEMS_KEPT = 200
_FINGERPRINT_BYTES = 4096
_GROUP_KEYS = ("day", "workflow", "phase", "model_alias", "model", "mode", "status")
_COUNTS = ("input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
_COSTS = ("cost_usd", "interactive_cost_usd", "savings_usd")


class LedgerGroup(BaseModel):
    """Totals of the ledger lines that share a day (UTC, from the timestamp), phase, model, mode, status."""

    day: str
    workflow: str
    phase: str
    model_alias: str
    model: str
    mode: str
    status: str
    requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0
    cost_usd: float = 0.0
    interactive_cost_usd: float = 0.0
    savings_usd: float = 0.0


# One cell of the cost report: day, job_id, phase, model_alias, model, mode; then requests,
# succeeded, input, output, cache-write and cache-read tokens, requests with a cache read; then
# cost_usd, interactive_cost_usd and savings_usd, each exact as (m, e) meaning m * 2**e.
# The exponent's bounds are checked while parsing: a hand-edited 10**9 would make a number of a
# billion bits. (The mantissa is bounded by the file's own length.)
Exact = tuple[int, Annotated[int, Field(ge=-1074, le=1100)]]
ReportCell = tuple[str, str, str, str, str, str, int, int, int, int, int, int, int, Exact, Exact, Exact]
CELL_KEYS = ("day", "job_id", "phase", "model_alias", "model", "mode")
UNIT_BITS = 1074  # the smallest float is 2**-1074: every float is a whole number of these units


def units(value: float) -> int:
    """``value`` as a whole number of 2**-1074 (exact: every finite float is one)."""
    n, d = value.as_integer_ratio()  # d is a power of two, at most 2**1074
    return n << (UNIT_BITS + 1 - d.bit_length())


def exact_pair(total: int) -> Exact:
    """A sum in units, stored short: (m, e) with total * 2**-1074 == m * 2**e."""
    if total == 0:
        return (0, 0)
    zeros = (total & -total).bit_length() - 1
    return (total >> zeros, zeros - UNIT_BITS)


def pair_units(pair: Exact) -> int:
    m, e = pair
    return m << (e + UNIT_BITS)


def units_float(total: int) -> float:
    """The float nearest to the exact sum (int / int is correctly rounded)."""
    return total / (1 << UNIT_BITS)


class LedgerSummary(BaseModel):
    version: int = SUMMARY_VERSION
    ledger_bytes: int = 0  # covers the ledger's first ledger_bytes bytes: whole lines only
    lines: int = 0  # physical lines in that prefix, blank and unparseable ones included
    head_sha256: str = ""  # of the prefix's first 4096 bytes
    tail_sha256: str = ""  # of the prefix's last 4096 bytes
    problem_count: int = 0
    problems: list[LedgerProblem] = Field(default_factory=list)  # the first MAX_PROBLEMS_KEPT
    groups: list[LedgerGroup] = Field(default_factory=list)
    # Sorted by their six keys when the file was last compacted; an append between compactions
    # adds its cells at the end, so a key may appear more than once: a cell's figures are the
    # sums of all its lines (every reader sums cells anyway).
    cells: list[ReportCell] = Field(default_factory=list)
    cells_compacted: int = 0  # how many cells there were at the last compaction

    def totals(self) -> dict[str, Any]:
        out: dict[str, Any] = {"requests": 0, **dict.fromkeys(_COUNTS, 0), **dict.fromkeys(_COSTS, 0.0)}
        for group in self.groups:
            out["requests"] += group.requests
            for name in (*_COUNTS, *_COSTS):
                out[name] += getattr(group, name)
        return out


class _Totals:
    """Running sums by group key and by report cell, cheap to feed one line at a time."""

    def __init__(self) -> None:
        self.groups: dict[tuple[str, ...], list[float]] = {}
        # cell key -> requests, succeeded, 4 token sums, requests with a cache read, 3 cost sums in units
        self.cells: dict[tuple[str, ...], list[int]] = {}

    def add(self, line: LedgerLine) -> None:
        self.add_fields(line.__dict__)

    def add_sums(self, key: tuple[str, ...], values: Sums, job_id: str) -> None:
        """``key`` is (day, workflow, phase, model_alias, model, mode, status)."""
        sums = self.groups.get(key)
        if sums is None:
            sums = self.groups[key] = [0, 0, 0, 0, 0, 0.0, 0.0, 0.0]
        tokens_in, tokens_out, cache_write, cache_read, cost, interactive, savings = values
        sums[0] += 1
        sums[1] += tokens_in
        sums[2] += tokens_out
        sums[3] += cache_write
        sums[4] += cache_read
        sums[5] += cost
        sums[6] += interactive
        sums[7] += savings
        day, _workflow, phase, alias, model, mode, status = key
        cell_key = (day, job_id, phase, alias, model, mode)
        cell = self.cells.get(cell_key)
        if cell is None:
            cell = self.cells[cell_key] = [0] * 10
        cell[0] += 1
        cell[1] += status == "succeeded"
        cell[2] += tokens_in
        cell[3] += tokens_out
        cell[4] += cache_write
        cell[5] += cache_read
        cell[6] += cache_read > 0
        cell[7] += units(cost)
        cell[8] += units(interactive)
        cell[9] += units(savings)

    def add_line_sums(self, sums: LineSums) -> int:
        """Add what a ``LineSums`` gathered; returns how many lines that was."""
        lines = 0
        for (model, status), acc in sums.by.items():
            key = (sums.day, sums.workflow, sums.phase, sums.model_alias, model, sums.mode, status)
            group = self.groups.get(key)
            if group is None:
                group = self.groups[key] = [0, 0, 0, 0, 0, 0.0, 0.0, 0.0]
            for i in range(8):
                group[i] += acc[i]
            cell_key = (sums.day, sums.job_id, sums.phase, sums.model_alias, model, sums.mode)
            cell = self.cells.get(cell_key)
            if cell is None:
                cell = self.cells[cell_key] = [0] * 10
            more = (acc[0], acc[0] if status == "succeeded" else 0, *acc[1:5], acc[8], *acc[9:12])
            for i, value in enumerate(more):
                cell[i] += value
            lines += acc[0]
        return lines

    def add_row(self, f: LedgerRow) -> None:
        key = (f.timestamp[:10], f.workflow, f.phase, f.model_alias, f.model, f.mode, f.status)
        values = (
            f.input_tokens, f.output_tokens, f.cache_creation_input_tokens, f.cache_read_input_tokens,
            f.cost_usd, f.interactive_cost_usd, f.savings_usd,
        )  # fmt: skip
        self.add_sums(key, values, f.job_id)

    def add_fields(self, f: dict[str, Any]) -> None:
        key = (f["timestamp"][:10], f["workflow"], f["phase"], f["model_alias"], f["model"], f["mode"], f["status"])
        values = (
            f["input_tokens"], f["output_tokens"], f["cache_creation_input_tokens"], f["cache_read_input_tokens"],
            f["cost_usd"], f["interactive_cost_usd"], f["savings_usd"],
        )  # fmt: skip
        self.add_sums(key, values, f["job_id"])

    def merge_into(self, summary: LedgerSummary) -> None:
        if not self.groups and not self.cells:
            return  # nothing to add (a reader whose summary was current): no index to build
        index = {tuple(getattr(g, k) for k in _GROUP_KEYS): g for g in summary.groups}
        added = False
        for key, sums in self.groups.items():
            group = index.get(key)
            if group is None:
                group = LedgerGroup.model_validate(dict(zip(_GROUP_KEYS, key, strict=True)))
                summary.groups.append(group)
                index[key] = group
                added = True
            group.requests += int(sums[0])
            for name, value in zip((*_COUNTS, *_COSTS), sums[1:], strict=True):
                setattr(group, name, getattr(group, name) + value)
        if added:
            summary.groups.sort(key=lambda g: tuple(getattr(g, k) for k in _GROUP_KEYS))
        self.groups.clear()
        if self.cells:
            _merge_cells(summary, self.cells)
            self.cells.clear()

    def take_cells(self) -> list[ReportCell]:
        """The cells added since the last merge, as cells (the groups stay to be merged)."""
        cells = [_cell(key, acc) for key, acc in self.cells.items()]
        self.cells.clear()
        return cells


def _cell(key: tuple[str, ...], acc: list[int]) -> ReportCell:
    return (
        key[0], key[1], key[2], key[3], key[4], key[5], acc[0], acc[1], acc[2], acc[3], acc[4], acc[5], acc[6],
        exact_pair(acc[7]), exact_pair(acc[8]), exact_pair(acc[9]),
    )  # fmt: skip


def _cell_sums(cell: ReportCell) -> list[int]:
    return [*cell[6:13], *(pair_units(p) for p in cell[13:])]


def _merge_cells(summary: LedgerSummary, cells: dict[tuple[str, ...], list[int]]) -> None:
    """Add ``cells`` into the summary's and compact: one cell per key, sorted."""
    merged: dict[tuple[str, ...], list[int]] = {}
    for cell in summary.cells:
        sums = _cell_sums(cell)
        acc = merged.get(cell[:6])
        merged[cell[:6]] = sums if acc is None else [a + b for a, b in zip(acc, sums, strict=True)]
    for key, more in cells.items():
        acc = merged.get(key)
        merged[key] = list(more) if acc is None else [a + b for a, b in zip(acc, more, strict=True)]
    summary.cells = [_cell(key, acc) for key, acc in sorted(merged.items())]
    summary.cells_compacted = len(summary.cells)


def summary_path(ledger: Path) -> Path:
    return ledger.with_name(ledger.name.removesuffix(".jsonl") + ".summary.json")


def _fingerprints(path: Path, size: int) -> tuple[str, str]:
    with open(path, "rb") as fh:
        head = fh.read(min(size, _FINGERPRINT_BYTES))
        fh.seek(max(0, size - _FINGERPRINT_BYTES))
        tail = fh.read(min(size, _FINGERPRINT_BYTES))
    return hashlib.sha256(head).hexdigest(), hashlib.sha256(tail).hexdigest()


_CELLS_MARK = ',\n"cells": ['
_CELLS_END = "\n]\n}\n"


@dataclass(slots=True)
class _CellLines:
    """The summary file's cells as written: ``text`` is the lines joined by ",\n"."""

    text: str
    count: int


def _without_cells(text: str) -> tuple[str, _CellLines] | None:
    """(the summary's JSON without its cells, the cells' lines as written), if laid out as written here.

    ``_summary_text`` writes the cells last, one a line; a raw newline never occurs inside JSON
    text, so the mark cannot sit inside a string. Any other layout (a hand-edited file) gives
    None, and the whole file is parsed instead.
    """
    at = text.rfind(_CELLS_MARK)
    if at < 0:
        return None
    head = text[:at] + "\n}"
    start = at + len(_CELLS_MARK)
    if text.startswith("]\n}", start) and not text[start + 3 :].strip():
        return head, _CellLines("", 0)
    if not text.startswith("\n", start) or not text.endswith(_CELLS_END):
        return None
    body = text[start + 1 : -len(_CELLS_END)]
    return head, _CellLines(body, body.count(",\n") + 1)


def _stored_summary(path: Path) -> LedgerSummary | None:
    """The summary file if it describes a prefix of this very ledger, else None."""
    stored = _stored(path, cells=True)
    return stored[0] if stored is not None else None


def _stored(path: Path, *, cells: bool) -> tuple[LedgerSummary, _CellLines | None] | None:
    """The stored summary if it matches the ledger; with ``cells`` False, its cells left unparsed.

    Unparsed, the cells come back as the file's lines (None when they were parsed after all):
    status needs none of them, and an append only adds lines after them.
    """
    lines: _CellLines | None = None
    try:
        text = summary_path(path).read_text(encoding="utf-8")
        split = None if cells else _without_cells(text)
        if split is not None:
            text, lines = split
        summary = LedgerSummary.model_validate_json(text)
        size = path.stat().st_size
    except (OSError, ValueError):
        return None
    if summary.version != SUMMARY_VERSION or summary.ledger_bytes > size:
        return None
    if summary.ledger_bytes and (summary.head_sha256, summary.tail_sha256) != _fingerprints(
        path, summary.ledger_bytes
    ):
        return None
    return summary, lines


def _problem(summary: LedgerSummary, number: int, exc: ValidationError) -> LedgerProblem:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "(line)"
    return LedgerProblem(line_number=number, reason=f"{where}: {first['msg']}")


def _catch_up(path: Path, summary: LedgerSummary) -> LedgerSummary:
    """Add the whole lines past the summary's prefix; the returned summary covers them too."""
    totals = _Totals()
    # Counted in locals, set once at the end: a model's attribute write costs a call.
    lines, covered = summary.lines, summary.ledger_bytes
    with open(path, "rb") as fh:
        fh.seek(covered)
        for raw in fh:
            if not raw.endswith(b"\n"):
                break  # a line being written, or a torn one: covered once it is complete
            lines += 1
            covered += len(raw)
            if not raw.strip():
                continue
            row = _read_row(raw)
            if row is not None:
                totals.add_row(row)
                continue
            try:
                totals.add(LedgerLine.model_validate_json(raw.decode("utf-8", errors="replace")))
            except ValidationError as exc:
                summary.problem_count += 1
                if len(summary.problems) < MAX_PROBLEMS_KEPT:
                    summary.problems.append(_problem(summary, lines, exc))
    summary.lines, summary.ledger_bytes = lines, covered
    totals.merge_into(summary)
    if summary.ledger_bytes:
        summary.head_sha256, summary.tail_sha256 = _fingerprints(path, summary.ledger_bytes)
    return summary


def read_summary(path: Path, *, save: bool = False, cells: bool = True) -> LedgerSummary:
    """Totals of the whole ledger as it is now, from the summary plus the lines past it.

    Reads only, unless ``save``: then a summary that had to be rebuilt or caught up is written
    back (whole lines only), so the next reader starts from it. Any summary written is one of a
    prefix of the ledger, so a write racing an append's cannot leave a wrong one.

    A last line without its newline (torn by a kill, or being appended right now) is counted if
    it parses and reported if it does not, as ``iter_ledger`` would, but never marked as covered.

    With ``cells`` False the report's cells are left out (status and the budget need none).
    """
    if not path.exists():
        return LedgerSummary()
    # Without ``cells`` (status, the budget) the report's cells are not parsed: the returned
    # summary's cells then hold only what lies past the stored prefix. Never saved that way.
    found = _stored(path, cells=cells or save)
    stored = found[0] if found is not None else None
    covered = stored.ledger_bytes if stored is not None else -1
    summary = _catch_up(path, stored or LedgerSummary())
    if save and summary.ledger_bytes != covered:
        _write_summary(path, summary)
    with open(path, "rb") as fh:
        fh.seek(summary.ledger_bytes)
        rest = fh.read()
    if rest.strip():
        # Copied as deep as the merge below writes: groups are updated in place, cells replaced.
        partial = summary.model_copy(
            update={
                "groups": [g.model_copy() for g in summary.groups],
                "cells": list(summary.cells),
                "problems": list(summary.problems),
            }
        )
        number = summary.lines + 1
        try:
            totals = _Totals()
            totals.add(LedgerLine.model_validate_json(rest.decode("utf-8", errors="replace")))
            totals.merge_into(partial)
        except ValidationError as exc:
            partial.problem_count += 1
            if len(partial.problems) < MAX_PROBLEMS_KEPT:
                partial.problems.append(_problem(partial, number, exc))
        return partial
    return summary


def refresh_summary(path: Path) -> LedgerSummary:
    """Bring the summary file up to date with the ledger (rebuilding it if it does not match)."""
    if not path.exists():
        return LedgerSummary()
    summary = _catch_up(path, _stored_summary(path) or LedgerSummary())
    _write_summary(path, summary)
    return summary


def _write_summary(path: Path, summary: LedgerSummary, cell_lines: _CellLines | None = None) -> None:
    """Write the summary; ``cell_lines``: its cells as already-written lines (plus ``summary.cells``)."""
    target = summary_path(path)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(_summary_text(summary, cell_lines))
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, target)


_GROUPS_JSON: TypeAdapter[list[LedgerGroup]] = TypeAdapter(list[LedgerGroup])
_CELLS_JSON: TypeAdapter[list[ReportCell]] = TypeAdapter(list[ReportCell])


def _summary_text(summary: LedgerSummary, cell_lines: _CellLines | None = None) -> str:
    """The summary as JSON with one group or cell per line: a commit's diff stays short.

    Each list is dumped by pydantic in one call, then cut into lines where one entry ends and the
    next begins: '},{"' between groups (flat objects), ']],["' between cells (each ends with an
    exact pair and starts with a string). Inside a JSON string a quote is always escaped, so
    neither sequence can occur there: the cuts fall only between entries.
    """
    head = {
        "version": summary.version,
        "ledger_bytes": summary.ledger_bytes,
        "lines": summary.lines,
        "head_sha256": summary.head_sha256,
        "tail_sha256": summary.tail_sha256,
        "problem_count": summary.problem_count,
        "cells_compacted": summary.cells_compacted,
    }
    parts = [f"{_encode(name)}: {_encode(value)}" for name, value in head.items()]
    problems = ",\n".join(_encode(p.model_dump(mode="json")) for p in summary.problems)
    groups = _GROUPS_JSON.dump_json(summary.groups).decode("utf-8")[1:-1].replace('},{"', '},\n{"')
    cells = _CELLS_JSON.dump_json(summary.cells).decode("utf-8")[1:-1].replace(']],["', ']],\n["')
    if cell_lines is not None and cell_lines.count:
        cells = cell_lines.text + ",\n" + cells if cells else cell_lines.text
    for name, body in (("problems", problems), ("groups", groups), ("cells", cells)):
        parts.append(f"{_encode(name)}: [\n{body}\n]" if body else f"{_encode(name)}: []")
    return "{\n" + ",\n".join(parts) + "\n}\n"


# Between compactions the cells may grow to twice what they were, plus this many lines.
_CELLS_SLACK = 64


def _note_append(path: Path, before: int, torn: bool, totals: _Totals, count: int) -> None:
    """After an append: add its totals if the summary covered exactly what was there before.

    The report's cells are not parsed here: the append's own cells are written after the stored
    ones, as lines (the stored lines are copied as they are; every reader validates them). Once
    the cells have doubled since the last compaction, they are parsed, merged and sorted again.
    """
    stored = _stored(path, cells=False)
    if stored is None and before == 0:
        stored = (LedgerSummary(), _CellLines("", 0))  # a new ledger: nothing before this append to cover
    if stored is None or torn or stored[0].ledger_bytes != before:
        refresh_summary(path)  # rebuild or catch up: reads the new lines from the file
        return
    summary, lines = stored
    if lines is not None and lines.count + len(totals.cells) > 2 * summary.cells_compacted + _CELLS_SLACK:
        summary.cells = _CELLS_JSON.validate_json("[" + lines.text + "]") if lines.count else []
        lines = None
    if lines is None:
        totals.merge_into(summary)  # the cells are parsed: merged and compacted
    else:
        summary.cells = totals.take_cells()
        totals.merge_into(summary)  # the groups; the new cells go after the stored lines
    summary.lines += count
    summary.ledger_bytes = path.stat().st_size
    summary.head_sha256, summary.tail_sha256 = _fingerprints(path, summary.ledger_bytes)
    _write_summary(path, summary, lines)
