"""The Anthropic Message Batches provider, through the official SDK.

The SDK's own retries are off (``max_retries=0``): ``policy`` owns the one retry layer. SDK
exceptions become ``ProviderCallError`` with status, error type and retry-after only; their
text is rebuilt from those parts so that headers and request bodies never reach a log.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from typing import Any

import anthropic
import pydantic
from anthropic.types import Message
from anthropic.types.messages import MessageBatch, MessageBatchIndividualResponse

from batch_ops.errors import BatchOpsError
from batch_ops.ledger import Usage
from batch_ops.providers.base import (
    MALFORMED,
    BatchInfo,
    ProviderCallError,
    ProviderRequest,
    ProviderResult,
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
        return compact_json_bytes({"custom_id": request.custom_id, "params": request.params}) + 1

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

    def iter_results(self, batch_id: str) -> Iterator[ProviderResult]:
        """Stream and check each line on its own: one odd line must not cost the whole download.

        The SDK's own decoder builds its types without validation and stops at the first line that
        is not JSON, so the lines are read from the SDK's streaming response and validated here
        against the SDK's ``MessageBatchIndividualResponse``. A line that does not fit becomes an
        ``errored`` result of type ``malformed_result`` (retried if its custom_id is known).
        """
        try:
            with self._client.messages.batches.with_streaming_response.results(batch_id) as response:
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

    def create_message(self, request: ProviderRequest) -> ProviderResult:
        try:
            message = self._client.messages.create(**request.params)
        except anthropic.AnthropicError as exc:
            raise translate(exc, f"message {request.custom_id}") from None
        return _from_message(request.custom_id, message)
