"""The Anthropic Message Batches provider, through the official SDK.

The SDK's own retries are off (``max_retries=0``): ``policy`` owns the one retry layer. SDK
exceptions become ``ProviderCallError`` with status, error type and retry-after only; their
text is rebuilt from those parts so that headers and request bodies never reach a log.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import anthropic
import httpx2
import orjson
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


_BODY_PIECE = 1 << 20

# What the fast reader below accepts without the SDK's model: the common shape of a result line,
# every key known and every value of the type the SDK's types require. Each set is no wider than
# what ``MessageBatchIndividualResponse`` accepts in any SDK version this package allows, so a
# line the fast reader takes is one the SDK's type takes too; anything else goes to the SDK.
_LINE_KEYS = frozenset({"custom_id", "result"})
_MESSAGE_KEYS = frozenset({"id", "type", "role", "model", "content", "stop_reason", "stop_sequence", "usage"})
_STOP_REASONS = frozenset({None, "end_turn", "max_tokens", "stop_sequence", "tool_use"})
_TEXT_BLOCK_KEYS = frozenset({"type", "text", "citations"})
_USAGE_KEYS = frozenset(
    {"input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens", "cache_creation",
     "service_tier"}
)  # fmt: skip
_CACHE_KEYS = frozenset({"ephemeral_1h_input_tokens", "ephemeral_5m_input_tokens"})
_TIERS = frozenset({None, "standard", "priority", "batch"})
_ERROR_KEYS = frozenset({"type", "error", "request_id"})
_ERROR_OBJECT_KEYS = frozenset({"type", "message"})
_ERROR_TYPES = frozenset(
    {"invalid_request_error", "authentication_error", "billing_error", "permission_error", "not_found_error",
     "rate_limit_error", "timeout_error", "api_error", "overloaded_error"}
)  # fmt: skip


_SUCCEEDED_KEYS = frozenset({"type", "message"})
_ERRORED_KEYS = frozenset({"type", "error"})
_ONE_TEXT_BLOCK = frozenset({"type", "text"})


def _opt_int(value: Any) -> bool:
    return value is None or type(value) is int


def _fast_usage(usage: Any) -> TokenCounts | None:
    if type(usage) is not dict or not usage.keys() <= _USAGE_KEYS:
        return None
    get = usage.get
    inp, out = get("input_tokens"), get("output_tokens")
    write, read = get("cache_creation_input_tokens"), get("cache_read_input_tokens")
    if type(inp) is not int or type(out) is not int or not _opt_int(write) or not _opt_int(read):
        return None
    if get("service_tier") not in _TIERS:
        return None
    one_hour = 0
    breakdown = get("cache_creation")
    if breakdown is not None:
        if type(breakdown) is not dict or breakdown.keys() != _CACHE_KEYS:
            return None
        one_hour, five_min = breakdown["ephemeral_1h_input_tokens"], breakdown["ephemeral_5m_input_tokens"]
        if type(one_hour) is not int or type(five_min) is not int:
            return None
    return TokenCounts(inp, out, write or 0, read or 0, one_hour)


def _fast_text(content: list[Any]) -> str | None:
    """The text of content made only of plain text blocks (no citations); None for anything else."""
    if len(content) == 1:  # the usual answer: one block, tested without the loop
        block = content[0]
        if type(block) is dict and block.keys() == _ONE_TEXT_BLOCK and block["type"] == "text":
            text = block["text"]
            return text if type(text) is str else None
    parts: list[str] = []
    for block in content:
        if (
            type(block) is not dict
            or block.get("type") != "text"
            or not block.keys() <= _TEXT_BLOCK_KEYS
            or block.get("citations") is not None
        ):
            return None
        text = block.get("text")
        if type(text) is not str:
            return None
        parts.append(text)
    return "".join(parts)


def _fast_result(data: Any) -> ResultLine | None:
    """``ResultLine.of(_from_item(...))`` for a line in the common shape; None for any other line."""
    if type(data) is not dict or not data.keys() <= _LINE_KEYS:
        return None
    custom_id, result = data.get("custom_id"), data.get("result")
    if type(custom_id) is not str or type(result) is not dict:
        return None
    kind = result.get("type")
    if kind == "succeeded":
        message = result.get("message")
        if result.keys() != _SUCCEEDED_KEYS or type(message) is not dict or not message.keys() <= _MESSAGE_KEYS:
            return None
        get = message.get
        model, content, stop, sequence = get("model"), get("content"), get("stop_reason"), get("stop_sequence")
        if (
            get("type") != "message"
            or get("role") != "assistant"
            or type(get("id")) is not str
            or type(model) is not str
            or type(content) is not list
            or stop not in _STOP_REASONS
            or (sequence is not None and type(sequence) is not str)
        ):
            return None
        text = _fast_text(content)
        if text is None:
            return None
        usage = _fast_usage(get("usage"))
        if usage is None:
            return None
        return ResultLine(custom_id, "succeeded", text, model, stop, usage)
    if kind == "errored":
        outer = result.get("error")
        if result.keys() != _ERRORED_KEYS or type(outer) is not dict or not outer.keys() <= _ERROR_KEYS:
            return None
        inner, request_id = outer.get("error"), outer.get("request_id")
        if outer.get("type") != "error" or (request_id is not None and type(request_id) is not str):
            return None
        if type(inner) is not dict or not inner.keys() <= _ERROR_OBJECT_KEYS:
            return None
        etype, message = inner.get("type"), inner.get("message")
        if etype not in _ERROR_TYPES or type(message) is not str:
            return None
        return ResultLine(custom_id, "errored", error_type=etype, error_message=message[:500])
    if kind in ("expired", "canceled") and len(result) == 1:
        return ResultLine(custom_id, kind)
    return None


def read_result_line(raw: bytes, number: int) -> ResultLine:
    """One line of a downloaded results file, checked as ``result_from_line`` checks it; never raises.

    A line in the common shape is read from its JSON alone (``_fast_result``): at 100,000 lines a
    batch, building the SDK's model per line was most of the reconcile's time. Any other line,
    odd or merely unusual (a thinking block, an unknown stop reason), is decided by the SDK's type
    exactly as before.
    """
    if len(raw) <= MAX_RESULT_LINE_CHARS:
        try:
            # orjson: a third of pydantic_core's time on these lines. It accepts only strict JSON and
            # valid UTF-8 (and no lone surrogate), so what it takes is what the SDK's parse takes.
            fast = _fast_result(orjson.loads(raw))
        except (ValueError, TypeError):  # not JSON, not UTF-8, too deep, a list as a stop reason...
            fast = None  # ...the slow path says which
        if fast is not None:
            return fast
    return ResultLine.of(result_from_line(raw.rstrip(b"\r\n").decode("utf-8", errors="replace"), number))


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
                # Pieces as they are read: a fixed chunk size makes httpx copy every byte twice more.
                for chunk in response.iter_bytes():
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

    def read_result_line(self, raw: bytes, number: int) -> ResultLine:
        return read_result_line(raw, number)

    def create_message(self, request: ProviderRequest) -> ProviderResult:
        try:
            message = self._client.messages.create(**request.params)
        except anthropic.AnthropicError as exc:
            raise translate(exc, f"message {request.custom_id}") from None
        return _from_message(request.custom_id, message)
