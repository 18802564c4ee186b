"""The usage ledger: ``.backlog-ops/usage-ledger.jsonl``, append-only, one line per settled request.

Costs come from the usage the API returned and the config's prices, never from estimates.
Appends are one ``write`` of whole lines followed by fsync. If a kill cut the last line short,
the next append starts on a fresh line, and the reader reports the fragment instead of failing.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, ValidationError

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


class Cost(BaseModel):
    cost_usd: float
    interactive_cost_usd: float
    savings_usd: float


def price_usage(usage: Usage, price: ModelPrice, mode: Mode) -> Cost:
    """What the tokens cost in this mode, and what they would have cost interactively."""
    per_in = price.input_usd_per_mtok / 1_000_000
    per_out = price.output_usd_per_mtok / 1_000_000
    write_1h = min(usage.cache_creation_1h_input_tokens, usage.cache_creation_input_tokens)
    write_5m = usage.cache_creation_input_tokens - write_1h
    interactive = (
        usage.input_tokens * per_in
        + write_5m * per_in * price.cache_write_5m_multiplier
        + write_1h * per_in * price.cache_write_1h_multiplier
        + usage.cache_read_input_tokens * per_in * price.cache_read_multiplier
        + usage.output_tokens * per_out
    )
    cost = interactive * price.batch_discount if mode == "batch" else interactive
    return Cost(cost_usd=cost, interactive_cost_usd=interactive, savings_usd=interactive - cost)


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


class LedgerProblem(BaseModel):
    line_number: int
    reason: str


def append_lines(path: Path, lines: Iterable[LedgerLine]) -> int:
    """Append whole lines in one write; returns how many were written."""
    payload = "".join(line.model_dump_json() + "\n" for line in lines)
    if not payload:
        return 0
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        if _ends_mid_line(path):
            payload = "\n" + payload
        data = payload.encode("utf-8")
        written = 0
        while written < len(data):
            written += os.write(fd, data[written:])
        os.fsync(fd)
    finally:
        os.close(fd)
    return payload.count("\n") - payload.startswith("\n")


def _ends_mid_line(path: Path) -> bool:
    size = path.stat().st_size
    if size == 0:
        return False
    with open(path, "rb") as fh:
        fh.seek(size - 1)
        return fh.read(1) != b"\n"


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
