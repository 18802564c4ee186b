"""The provider interface: the few calls the engine needs from a batch API.

A second provider (OpenAI Batch, say) is one new module implementing ``Provider`` and
raising ``ProviderCallError``; nothing else changes. Records here are provider-neutral.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Literal, Protocol

import msgspec
from pydantic import BaseModel, ConfigDict, Field

from batch_ops.ledger import TokenCounts, Usage

Outcome = Literal["succeeded", "errored", "expired", "canceled"]
# error_type of an ``errored`` result made from a results line that did not fit the API's shape.
MALFORMED = "malformed_result"


class ProviderRequest(BaseModel):
    model_config = ConfigDict(frozen=True)

    custom_id: str
    params: dict[str, Any]


class BatchInfo(BaseModel):
    id: str
    status: Literal["in_progress", "canceling", "ended"]
    created_at: dt.datetime
    request_count: int
    counts: dict[str, int] = Field(default_factory=dict)
    ended_at: dt.datetime | None = None
    # Where an ended batch's results stream from: kept so the download needs no second retrieve.
    results_url: str | None = None


class ProviderResult(BaseModel):
    """One request's outcome. ``text`` is the answer: the text, or a forced tool's input as JSON."""

    custom_id: str
    outcome: Outcome
    text: str | None = None
    model: str | None = None
    stop_reason: str | None = None
    usage: Usage = Field(default_factory=Usage)
    error_type: str | None = None
    error_message: str | None = None


class ResultLine(msgspec.Struct, gc=False):
    """``ProviderResult`` as a plain record: what ``read_result_line`` gives, once per result.

    A msgspec struct for the reason ``TokenCounts`` is one (its fields are strings and that
    struct: no cycle, so the garbage collector need not track 100,000 of them).
    """

    custom_id: str
    outcome: str
    text: str | None = None
    model: str | None = None
    stop_reason: str | None = None
    usage: TokenCounts = msgspec.field(default_factory=TokenCounts)
    error_type: str | None = None
    error_message: str | None = None

    @classmethod
    def of(cls, result: ProviderResult) -> ResultLine:
        u = result.usage
        return cls(
            result.custom_id, result.outcome, result.text, result.model, result.stop_reason,
            TokenCounts(u.input_tokens, u.output_tokens, u.cache_creation_input_tokens, u.cache_read_input_tokens,
                        u.cache_creation_1h_input_tokens),
            result.error_type, result.error_message,
        )  # fmt: skip


class ProviderCallError(Exception):
    """A failed call, described well enough for ``policy.classify`` and for a one-line message.

    ``message`` must never carry headers, keys or request bodies.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        error_type: str | None = None,
        retry_after: float | None = None,
        connection: bool = False,
        timeout: bool = False,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.error_type = error_type
        self.retry_after = retry_after
        self.connection = connection
        self.timeout = timeout


def compact_json_bytes(value: Any) -> int:
    """UTF-8 size of ``value`` as compact JSON without ASCII escapes: how JSON SDKs put it on the wire."""
    return len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))


class BytesSink(Protocol):
    def write(self, data: bytes, /) -> int: ...


class Provider(Protocol):
    name: str

    def request_bytes(self, request: ProviderRequest) -> int:
        """Bytes this request adds to a create-batch body, its separator included."""
        ...

    def request_json_bytes(self, size: int) -> int:
        """Bytes a request given to ``create_batch_json`` as ``size`` bytes of JSON adds to its body."""
        ...

    def envelope_bytes(self) -> int:
        """Bytes of a create-batch body around its requests."""
        ...

    def create_batch(self, requests: Sequence[ProviderRequest]) -> BatchInfo: ...

    def retrieve_batch(self, batch_id: str) -> BatchInfo: ...

    def list_batches(self, *, page_size: int = 100) -> Iterator[BatchInfo]:
        """Newest first."""
        ...

    def cancel_batch(self, batch_id: str) -> BatchInfo: ...

    def create_message(self, request: ProviderRequest) -> ProviderResult:
        """Run one request interactively (full price, immediate)."""
        ...

    def create_batch_json(self, requests: Iterable[bytes]) -> BatchInfo:
        """Create a batch from requests serialised as ``{"custom_id": ..., "params": ...}`` UTF-8 JSON.

        The body is streamed from ``requests`` as it is iterated (once per call): no per-request
        objects, and no more of the batch in memory than ``requests`` itself holds.
        """
        ...

    def download_results(self, batch_id: str, out: BytesSink, *, results_url: str | None = None) -> int:
        """Write an ended batch's results, as the provider's own JSONL, to ``out``; returns the bytes written.

        With ``results_url`` (from the retrieve that saw the batch end) no other call is made.
        """
        ...

    def read_result_line(self, raw: bytes, number: int) -> ResultLine:
        """Line ``number`` of what ``download_results`` wrote, checked against the provider's result type.

        Never raises: a line that does not fit is an ``errored`` result of type ``MALFORMED`` whose
        message names the line (with the custom_id if one could be read, else an empty one).
        """
        ...
