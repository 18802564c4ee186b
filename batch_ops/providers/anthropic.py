"""The Anthropic Message Batches provider, through the official SDK.

The SDK's own retries are off (``max_retries=0``): ``policy`` owns the one retry layer. SDK
exceptions become ``ProviderCallError`` with status, error type and retry-after only; their
text is rebuilt from those parts so that headers and request bodies never reach a log.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Literal

import anthropic
import httpx2
import msgspec
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
# every key known (``forbid_unknown_fields``) and every value of the type the SDK's types require,
# decoded and checked in one pass in C by msgspec. Each type is no wider than what
# ``MessageBatchIndividualResponse`` accepts in any SDK version this package allows, so a line the
# fast reader takes is one the SDK's type takes too; anything else goes to the SDK. (msgspec, like
# the SDK's parse, takes only strict JSON in valid UTF-8, with no lone surrogate; it refuses a
# bool or a float where an int is due, and an int beyond 64 bits, which the SDK then reads.)
_StopReason = Literal["end_turn", "max_tokens", "stop_sequence", "tool_use"]
_ErrorType = Literal[
    "invalid_request_error", "authentication_error", "billing_error", "permission_error", "not_found_error",
    "rate_limit_error", "timeout_error", "api_error", "overloaded_error",
]  # fmt: skip


class _Closed(msgspec.Struct, forbid_unknown_fields=True):
    pass


class _CacheCreation(_Closed):
    ephemeral_1h_input_tokens: int
    ephemeral_5m_input_tokens: int


class _Usage(_Closed):
    input_tokens: int
    output_tokens: int
    cache_creation_input_tokens: int | None = None
    cache_read_input_tokens: int | None = None
    cache_creation: _CacheCreation | None = None
    service_tier: Literal["standard", "priority", "batch"] | None = None


class _TextBlock(_Closed):
    type: Literal["text"]
    text: str
    citations: None = None  # a block with citations is the SDK's to read


class _Message(_Closed):
    id: str
    type: Literal["message"]
    role: Literal["assistant"]
    model: str
    content: list[_TextBlock]
    usage: _Usage
    stop_reason: _StopReason | None = None
    stop_sequence: str | None = None


class _Succeeded(_Closed, tag_field="type", tag="succeeded"):
    message: _Message


class _ErrorObject(_Closed):
    type: _ErrorType
    message: str


class _ErrorResponse(_Closed):
    type: Literal["error"]
    error: _ErrorObject
    request_id: str | None = None


class _Errored(_Closed, tag_field="type", tag="errored"):
    error: _ErrorResponse


class _Expired(_Closed, tag_field="type", tag="expired"):
    pass


class _Canceled(_Closed, tag_field="type", tag="canceled"):
    pass


class _Line(_Closed):
    custom_id: str
    result: _Succeeded | _Errored | _Expired | _Canceled


_read_line = msgspec.json.Decoder(_Line).decode


def _fast_result(line: _Line) -> ResultLine:
    """``ResultLine.of(_from_item(...))`` for a line the fast reader took."""
    result = line.result
    if type(result) is _Succeeded:
        message = result.message
        content = message.content
        # The usual answer is one block: its text as it stands, without a join.
        text = content[0].text if len(content) == 1 else "".join(block.text for block in content)
        u = message.usage
        breakdown = u.cache_creation
        usage = TokenCounts(
            u.input_tokens, u.output_tokens, u.cache_creation_input_tokens or 0, u.cache_read_input_tokens or 0,
            breakdown.ephemeral_1h_input_tokens if breakdown is not None else 0,
        )  # fmt: skip
        return ResultLine(line.custom_id, "succeeded", text, message.model, message.stop_reason, usage)
    if type(result) is _Errored:
        inner = result.error.error
        return ResultLine(line.custom_id, "errored", error_type=inner.type, error_message=inner.message[:500])
    return ResultLine(line.custom_id, "expired" if type(result) is _Expired else "canceled")


def read_result_line(raw: bytes, number: int) -> ResultLine:
    """One line of a downloaded results file, checked as ``result_from_line`` checks it; never raises.

    A line in the common shape is read by the fast reader above: at 100,000 lines a batch,
    building the SDK's model per line was most of the reconcile's time, and a dict per line then
    checked key by key most of what was left. Any other line, odd or merely unusual (a thinking
    block, an unknown stop reason), is decided by the SDK's type exactly as before.
    """
    if len(raw) <= MAX_RESULT_LINE_CHARS:
        try:
            return _fast_result(_read_line(raw))
        except msgspec.DecodeError:  # not JSON, not UTF-8, not the common shape: the slow path says which
            pass
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
        size = 0
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
                # Nothing is scanned here (counting 200 MB of line breaks cost a tenth of a second):
                # the settle reads every line anyway.
                for chunk in response.iter_bytes():
                    if chunk:
                        size += out.write(chunk)
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
            size += out.write(b"\n")
        return size

    # One call per result line: the module's function itself, not a method around it.
    read_result_line = staticmethod(read_result_line)

    def create_message(self, request: ProviderRequest) -> ProviderResult:
        try:
            message = self._client.messages.create(**request.params)
        except anthropic.AnthropicError as exc:
            raise translate(exc, f"message {request.custom_id}") from None
        return _from_message(request.custom_id, message)
