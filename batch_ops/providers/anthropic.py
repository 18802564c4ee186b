"""The Anthropic Message Batches provider, through the official SDK.

The SDK's own retries are off (``max_retries=0``): ``policy`` owns the one retry layer. SDK
exceptions become ``ProviderCallError`` with status, error type and retry-after only; their
text is rebuilt from those parts so that headers and request bodies never reach a log.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import anthropic
import httpx2
import pydantic
from anthropic.types import Message
from anthropic.types.messages import MessageBatch, MessageBatchIndividualResponse

from batch_ops.errors import BatchOpsError
from batch_ops.ledger import TokenCounts, Usage
from batch_ops.providers.base import (
    MALFORMED,
    BatchInfo,
    BytesSink,
    ProviderCallError,
    ProviderRequest,
    ProviderResult,
    ResultLine,
    compact_json_bytes,
)
from batch_ops.secrets import redact

DEFAULT_TIMEOUT_SECONDS = 60.0
# The SDK sends {"requests":[r1,r2,...]} encoded compact and without ASCII escapes (its
# ``openapi_dumps``); sizes are measured the same way so the 256 MB limit holds on the bytes sent.
_ENVELOPE = len('{"requests":[]}')


class MissingApiKey(BatchOpsError):
    pass


def _retry_after(headers: Any) -> float | None:
    try:
        value = headers.get("retry-after") if headers is not None else None
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _error_type(body: object) -> str | None:
    if isinstance(body, dict):
        inner = body.get("error")
        if isinstance(inner, dict) and isinstance(inner.get("type"), str):
            return str(inner["type"])
        if isinstance(body.get("type"), str) and body.get("type") != "error":
            return str(body["type"])
    return None


def _error_message(body: object) -> str:
    if isinstance(body, dict):
        inner = body.get("error")
        if isinstance(inner, dict) and isinstance(inner.get("message"), str):
            return str(inner["message"])[:300]
    return ""


def translate(exc: Exception, what: str) -> ProviderCallError:
    """Turn an SDK exception into a ProviderCallError that is safe to print.

    Built from the status, the error type and the body's short message only (never ``str(exc)``,
    the request or its headers); the message is redacted because a server may quote the key back.
    """
    err = _translate(exc, what)
    err.message = redact(err.message)
    err.args = (err.message,)
    return err


def _translate(exc: Exception, what: str) -> ProviderCallError:
    if isinstance(exc, anthropic.APITimeoutError):
        return ProviderCallError(f"{what}: timed out", timeout=True, connection=True)
    if isinstance(exc, anthropic.APIConnectionError):
        return ProviderCallError(
            f"{what}: connection failed ({type(exc.__cause__ or exc).__name__})", connection=True
        )
    if isinstance(exc, anthropic.APIStatusError):
        etype = _error_type(exc.body)
        detail = _error_message(exc.body)
        text = (
            f"{what}: HTTP {exc.status_code}"
            + (f" {etype}" if etype else "")
            + (f": {detail}" if detail else "")
        )
        return ProviderCallError(
            text, status=exc.status_code, error_type=etype, retry_after=_retry_after(exc.response.headers)
        )
    if isinstance(exc, anthropic.APIResponseValidationError):
        return ProviderCallError(f"{what}: response did not match the API's schema", status=exc.status_code)
    return ProviderCallError(f"{what}: {type(exc).__name__}")


def _info(batch: MessageBatch) -> BatchInfo:
    counts = batch.request_counts
    count_map = {
        "processing": counts.processing,
        "succeeded": counts.succeeded,
        "errored": counts.errored,
        "canceled": counts.canceled,
        "expired": counts.expired,
    }
    return BatchInfo(
        id=batch.id,
        status=batch.processing_status,
        created_at=batch.created_at,
        request_count=sum(count_map.values()),
        counts=count_map,
        ended_at=batch.ended_at,
        results_url=batch.results_url,
    )


def _usage(raw: Any) -> Usage:
    if raw is None:
        return Usage()
    one_hour = 0
    breakdown = getattr(raw, "cache_creation", None)
    if breakdown is not None:
        one_hour = int(getattr(breakdown, "ephemeral_1h_input_tokens", 0) or 0)
    return Usage(
        input_tokens=int(raw.input_tokens or 0),
        output_tokens=int(raw.output_tokens or 0),
        cache_creation_input_tokens=int(raw.cache_creation_input_tokens or 0),
        cache_read_input_tokens=int(raw.cache_read_input_tokens or 0),
        cache_creation_1h_input_tokens=one_hour,
    )


def _answer_text(message: Message) -> str:
    """The text blocks joined, or a tool_use block's input as JSON when the request forced a tool."""
    parts: list[str] = []
    for block in message.content:
        if block.type == "tool_use":
            return json.dumps(block.input, ensure_ascii=False)
        if block.type == "text":
            parts.append(block.text)
    return "".join(parts)


def _from_message(custom_id: str, message: Message) -> ProviderResult:
    return ProviderResult(
        custom_id=custom_id,
        outcome="succeeded",
        text=_answer_text(message),
        model=message.model,
        stop_reason=message.stop_reason,
        usage=_usage(message.usage),
    )


def _from_item(item: MessageBatchIndividualResponse) -> ProviderResult:
    result = item.result
    if result.type == "succeeded":
        return _from_message(item.custom_id, result.message)
    if result.type == "errored":
        err = result.error.error
        return ProviderResult(
            custom_id=item.custom_id,
            outcome="errored",
            error_type=getattr(err, "type", None),
            error_message=str(getattr(err, "message", ""))[:500],
        )
    return ProviderResult(custom_id=item.custom_id, outcome=result.type)


_OUTCOMES = frozenset({"succeeded", "errored", "expired", "canceled"})
_BODY_PIECE = 1 << 20


def _int(value: Any) -> int:
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"token count {value!r} is not an integer")
    return value


def _raw_usage(raw: Any) -> TokenCounts:
    if not isinstance(raw, dict):
        return TokenCounts()
    breakdown = raw.get("cache_creation")
    one_hour = _int(breakdown.get("ephemeral_1h_input_tokens")) if isinstance(breakdown, dict) else 0
    return TokenCounts(
        _int(raw.get("input_tokens")),
        _int(raw.get("output_tokens")),
        _int(raw.get("cache_creation_input_tokens")),
        _int(raw.get("cache_read_input_tokens")),
        one_hour,
    )


def _raw_answer_text(content: Any) -> str:
    """Same as ``_answer_text``, on the JSON of a message's content blocks."""
    parts: list[str] = []
    for block in content if isinstance(content, list) else ():
        if not isinstance(block, dict):
            continue
        if block.get("type") == "tool_use":
            return json.dumps(block.get("input"), ensure_ascii=False)
        if block.get("type") == "text":
            parts.append(str(block.get("text", "")))
    return "".join(parts)


def parse_result_line(raw: bytes | str) -> ResultLine:
    """A results-JSONL line of the Message Batches API, read without building SDK objects per line.

    It keeps what ``_from_item`` keeps from the SDK's ``MessageBatchIndividualResponse``; at
    100,000 lines a batch, the per-line model construction was most of the reconcile's time.
    """
    try:
        data = json.loads(raw)
        custom_id = data["custom_id"]
        result = data["result"]
        kind = result["type"]
        if not isinstance(custom_id, str) or kind not in _OUTCOMES:
            raise ValueError(f"unexpected custom_id or result type {kind!r}")
        if kind == "succeeded":
            message = result["message"]
            model, stop = message.get("model"), message.get("stop_reason")
            return ResultLine(
                custom_id,
                "succeeded",
                _raw_answer_text(message.get("content")),
                model if isinstance(model, str) else None,
                stop if isinstance(stop, str) else None,
                _raw_usage(message.get("usage")),
            )
        if kind == "errored":
            outer = result.get("error")
            err = outer.get("error") if isinstance(outer, dict) else None
            err = err if isinstance(err, dict) else {}
            etype = err.get("type")
            return ResultLine(
                custom_id,
                "errored",
                error_type=etype if isinstance(etype, str) else None,
                error_message=str(err.get("message", ""))[:500],
            )
        return ResultLine(custom_id, kind)
    except (KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"not a batch result line ({type(exc).__name__}: {exc})") from None


def _body(requests: Iterable[bytes]) -> Iterator[bytes]:
    """``{"requests": [...]}`` from serialised requests, in pieces of about 1 MB."""
    pending: list[bytes] = [b'{"requests":[']
    size = 0
    for i, request in enumerate(requests):
        if i:
            pending.append(b",")
        pending.append(request)
        size += len(request)
        if size >= _BODY_PIECE:
            yield b"".join(pending)
            pending, size = [], 0
    pending.append(b"]}")
    yield b"".join(pending)


MAX_RESULT_LINE_CHARS = 8_000_000


def _malformed(custom_id: object, number: int, why: str) -> ProviderResult:
    cid = custom_id if isinstance(custom_id, str) else ""
    return ProviderResult(
        custom_id=cid, outcome="errored", error_type=MALFORMED, error_message=f"result line {number}: {why}"
    )


def result_from_line(line: str, number: int) -> ProviderResult:
    """One line of a results stream, checked against the SDK's type; never raises."""
    if len(line) > MAX_RESULT_LINE_CHARS:
        return _malformed(None, number, f"longer than {MAX_RESULT_LINE_CHARS} characters")
    try:
        data = json.loads(line)
    except (ValueError, RecursionError):
        return _malformed(None, number, "not JSON")
    custom_id = data.get("custom_id") if isinstance(data, dict) else None
    try:
        item = MessageBatchIndividualResponse.model_validate(data)
        return _from_item(item)
    except (pydantic.ValidationError, ValueError, TypeError, AttributeError, RecursionError) as exc:
        where = ""
        if isinstance(exc, pydantic.ValidationError) and exc.errors():
            where = ": " + ".".join(str(p) for p in exc.errors()[0]["loc"])
        return _malformed(custom_id, number, f"does not match the API's result shape{where}")


class AnthropicProvider:
    name = "anthropic"

    def __init__(
        self, *, api_key: str | None = None, base_url: str | None = None, timeout: float | None = None
    ) -> None:
        key = api_key if api_key is not None else os.environ.get("ANTHROPIC_API_KEY", "")
        if not key:
            raise MissingApiKey(
                "ANTHROPIC_API_KEY is not set (use `batch-ops demo` to try the sandbox without one)"
            )
        self._client = anthropic.Anthropic(
            api_key=key,
            base_url=base_url or os.environ.get("ANTHROPIC_BASE_URL") or None,
            max_retries=0,
            timeout=timeout or float(os.environ.get("BATCH_OPS_HTTP_TIMEOUT", DEFAULT_TIMEOUT_SECONDS)),
        )

    def request_bytes(self, request: ProviderRequest) -> int:
        return self.request_json_bytes(compact_json_bytes({"custom_id": request.custom_id, "params": request.params}))

    def request_json_bytes(self, size: int) -> int:
        return size + 1  # the comma before the next request (counted on the last one too: a byte to spare)

    def envelope_bytes(self) -> int:
        return _ENVELOPE

    def create_batch(self, requests: Sequence[ProviderRequest]) -> BatchInfo:
        body: Any = [{"custom_id": r.custom_id, "params": r.params} for r in requests]
        try:
            return _info(self._client.messages.batches.create(requests=body))
        except anthropic.AnthropicError as exc:
            raise translate(exc, "create batch") from None

    def retrieve_batch(self, batch_id: str) -> BatchInfo:
        try:
            return _info(self._client.messages.batches.retrieve(batch_id))
        except anthropic.AnthropicError as exc:
            raise translate(exc, f"retrieve {batch_id}") from None

    def list_batches(self, *, page_size: int = 100) -> Iterator[BatchInfo]:
        try:
            for batch in self._client.messages.batches.list(limit=page_size):
                yield _info(batch)
        except anthropic.AnthropicError as exc:
            raise translate(exc, "list batches") from None

    def cancel_batch(self, batch_id: str) -> BatchInfo:
        try:
            return _info(self._client.messages.batches.cancel(batch_id))
        except anthropic.AnthropicError as exc:
            raise translate(exc, f"cancel {batch_id}") from None

    def iter_results(self, batch_id: str, *, results_url: str | None = None) -> Iterator[ProviderResult]:
        """Stream and check each line on its own: one odd line must not cost the whole download.

        The SDK's own decoder builds its types without validation and stops at the first line that
        is not JSON, so the lines are read from the SDK's streaming response and validated here
        against the SDK's ``MessageBatchIndividualResponse``. A line that does not fit becomes an
        ``errored`` result of type ``malformed_result`` (retried if its custom_id is known).

        With ``results_url`` (from the retrieve that saw the batch end) the stream is fetched
        directly: the SDK's ``batches.results()`` would retrieve the batch again first.
        """
        try:
            if results_url:
                streamed: Any = self._client.get(
                    results_url,
                    cast_to=httpx2.Response,
                    stream=True,
                    options={"headers": {"Accept": "application/binary"}},
                )
                opened: Any = contextlib.closing(streamed)
            else:
                opened = self._client.messages.batches.with_streaming_response.results(batch_id)
            with opened as response:
                number = 0
                try:
                    for line in response.iter_lines():
                        number += 1
                        if line.strip():
                            yield result_from_line(line, number)
                except anthropic.AnthropicError:
                    raise
                except Exception as exc:  # the transport broke off mid-stream (httpx errors and the like)
                    raise ProviderCallError(
                        f"results of {batch_id}: stream broke off after {number} line(s) ({type(exc).__name__})",
                        connection=True,
                    ) from None
        except anthropic.AnthropicError as exc:
            raise translate(exc, f"results of {batch_id}") from None

    def create_batch_json(self, requests: Iterable[bytes]) -> BatchInfo:
        try:
            batch = self._client.post(
                "/v1/messages/batches",
                cast_to=MessageBatch,
                content=_body(requests),
                options={"headers": {"Content-Type": "application/json"}},
            )
            return _info(batch)
        except anthropic.AnthropicError as exc:
            raise translate(exc, "create batch") from None

    def download_results(self, batch_id: str, out: BytesSink, *, results_url: str | None = None) -> int:
        lines = 0
        last = b"\n"
        try:
            url = results_url or self._client.messages.batches.retrieve(batch_id).results_url
            if not url:
                raise ProviderCallError(f"results of {batch_id}: the batch has no results yet")
            response = self._client.get(
                url, cast_to=httpx2.Response, stream=True, options={"headers": {"Accept": "application/binary"}}
            )
            try:
                for chunk in response.iter_bytes(_BODY_PIECE):
                    if chunk:
                        out.write(chunk)
                        lines += chunk.count(b"\n")
                        last = chunk[-1:]
            finally:
                response.close()
        except anthropic.AnthropicError as exc:
            raise translate(exc, f"results of {batch_id}") from None
        except httpx2.HTTPError as exc:
            raise ProviderCallError(
                f"results of {batch_id}: connection failed ({type(exc).__name__})", connection=True
            ) from None
        if last != b"\n":
            out.write(b"\n")
            lines += 1
        return lines

    def parse_result_line(self, raw: bytes | str) -> ResultLine:
        return parse_result_line(raw)

    def create_message(self, request: ProviderRequest) -> ProviderResult:
        try:
            message = self._client.messages.create(**request.params)
        except anthropic.AnthropicError as exc:
            raise translate(exc, f"message {request.custom_id}") from None
        return _from_message(request.custom_id, message)
