"""What a phase is: build requests from tickets with zero tokens, check an answer, apply results.

A new phase is one new module with a ``Phase`` subclass, listed in ``phases/__init__.py``.
"""

from __future__ import annotations

import abc
import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pydantic_core
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from batch_ops.backlog import BacklogScan
from batch_ops.config import Config
from batch_ops.ledger import Usage
from batch_ops.paths import Layout
from batch_ops.triage import TriageResult

_CUSTOM_ID_BAD = re.compile(r"[^A-Za-z0-9_-]")


class OutputError(Exception):
    """A model answer that does not fit the phase's schema: that item fails, nothing is applied."""


class ItemMeta(BaseModel):
    """What the engine keeps beside each request so results map back without the ticket."""

    model_config = ConfigDict(extra="allow")

    ticket_id: str | None = None
    ticket_path: str | None = None
    content_hash: str | None = None


class PlannedItem(BaseModel):
    custom_id: str
    params: dict[str, Any]
    meta: ItemMeta = Field(default_factory=ItemMeta)


class PlannedJob(BaseModel):
    """One job's worth of requests, all for one model alias."""

    model_alias: str
    items: list[PlannedItem]


class SettledResult(BaseModel):
    """The final word on one request of a job, as stored in the job's results file."""

    custom_id: str
    status: Literal["succeeded", "failed"]
    meta: ItemMeta = Field(default_factory=ItemMeta)
    output: dict[str, Any] | None = None
    error: str | None = None
    batch_id: str | None = None
    attempts: int = 1
    usage: Usage = Field(default_factory=Usage)
    model: str | None = None


@dataclass
class PhaseContext:
    layout: Layout
    config: Config
    scan: BacklogScan
    triage: dict[str, TriageResult]
    # Things derived once per context and shared by phases (the conventions text, say).
    memo: dict[str, Any] = field(default_factory=dict)


class ApplySummary(BaseModel):
    applied: int = 0
    failed: int = 0
    skipped: int = 0
    report_path: str | None = None
    notes: list[str] = Field(default_factory=list)


def make_custom_id(code: str, *parts: str) -> str:
    """``{code}-{part}[--{part}]``: valid for the API (``^[a-zA-Z0-9_-]{1,64}$``) and readable back."""
    body = "--".join(_CUSTOM_ID_BAD.sub("_", p) for p in parts)
    cid = f"{code}-{body}"
    if len(cid) > 64:
        digest = hashlib.sha256(cid.encode()).hexdigest()[:10]
        cid = f"{cid[:53]}_{digest}"
    return cid


def parse_answer(model: type[BaseModel], text: str, what: str, **dump: Any) -> dict[str, Any]:
    """Validate a model answer against the phase's schema; OutputError names the first problem."""
    try:
        return model.model_validate_json(text).model_dump(**dump)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(answer)"
        raise OutputError(f"answer does not fit the {what} schema: {where}: {first['msg']}") from None


def read_settled(path: Path) -> Iterator[SettledResult]:
    """Stream a job's results file; a line that does not parse is skipped (the engine wrote it)."""
    if not path.exists():
        return
    with open(path, encoding="utf-8", errors="replace") as fh:
        for raw in fh:
            if raw.strip():
                try:
                    yield SettledResult.model_validate_json(raw)
                except ValidationError:
                    continue


class SettledFile(Iterator[SettledResult]):
    """A job's results file as the engine hands it to ``apply``: streamed like ``read_settled``.

    ``statuses`` is what the engine counted by status as it wrote the file, so a phase that only
    counts (``count_results``) need not parse 100,000 lines again; it is None when unknown.
    """

    def __init__(self, path: Path, statuses: dict[str, int] | None = None) -> None:
        self.path = path
        self.statuses = statuses
        self._lines: Iterator[SettledResult] | None = None

    def __iter__(self) -> SettledFile:
        return self

    def __next__(self) -> SettledResult:
        if self._lines is None:
            self._lines = read_settled(self.path)
        return next(self._lines)

    def counted(self) -> dict[str, int] | None:
        """The counts by status if nothing has been read yet (what is left is then the whole file)."""
        return dict(self.statuses) if self.statuses is not None and self._lines is None else None


def answer_json(model: type[BaseModel], text: str, what: str, *, as_dumped: re.Pattern[str] | None = None) -> str:
    """``parse_answer`` as the JSON a settled result holds, without the dict in between.

    ``as_dumped`` matches only text that is valid for ``model`` and already its ``model_dump_json``
    (compact, fields in order, strings without escapes, every bound of the schema in the pattern):
    such an answer is kept as it came, without building the model. Any other text is validated.
    """
    if as_dumped is not None and as_dumped.fullmatch(text):
        return text
    try:
        validated = model.model_validate_json(text)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(answer)"
        raise OutputError(f"answer does not fit the {what} schema: {where}: {first['msg']}") from None
    return validated.model_dump_json()


def count_results(results: Iterator[SettledResult]) -> ApplySummary:
    """An ApplySummary with the succeeded results counted as applied and the rest as failed."""
    summary = ApplySummary()
    known = results.counted() if isinstance(results, SettledFile) else None
    if known is not None:
        summary.applied = known.pop("succeeded", 0)
        summary.failed = sum(known.values())
        return summary
    for res in results:
        if res.status == "succeeded":
            summary.applied += 1
        else:
            summary.failed += 1
    return summary


class Phase(abc.ABC):
    name: str
    workflow: str
    code: str  # custom_id prefix, e.g. "btv"
    max_output_tokens: int = 1024
    # A phase that reads what the others produce (the cost report reads the ledger): `cycle --wait`
    # enqueues it once the other phases' jobs have ended.
    runs_last: bool = False
    # A phase whose apply rewrites ticket files (refinement): the engine reads the backlog again after it.
    edits_tickets: bool = False

    @abc.abstractmethod
    def plan(self, ctx: PhaseContext) -> list[PlannedJob]:
        """Zero-token: the requests this phase would send now, grouped by model alias."""

    @abc.abstractmethod
    def parse_output(self, text: str) -> dict[str, Any]:
        """Validate a model answer; raise OutputError with the reason if it does not fit."""

    def output_json(self, text: str) -> str:
        """``parse_output`` as ``SettledResult.model_dump_json`` writes it (a phase may do both in one step).

        Raises OutputError. pydantic's encoder, so the settled line is the model's text exactly.
        """
        return pydantic_core.to_json(self.parse_output(text)).decode("utf-8")

    @abc.abstractmethod
    def apply(self, ctx: PhaseContext, job_id: str, results: Iterator[SettledResult]) -> ApplySummary:
        """Apply a completed job's settled results (reports, ticket edits)."""
