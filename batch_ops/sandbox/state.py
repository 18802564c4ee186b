"""Batches as they age, their per-request outcomes, and the JSON the API returns for them."""

from __future__ import annotations

import array
import itertools
import json
import random
import secrets
import string
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from .model import PromptCache, analyze, derived_id, min_cacheable, respond, seed_of, validate_params
from .scenario import Scenario

SUCCEEDED, ERRORED, INVALID, EXPIRED, CANCELED, BAD_PARAMS = range(6)
EXPIRY_SECONDS = 24 * 3600.0
# Rendered results kept for repeat downloads (the real API serves a stored file); oldest go first.
RENDERED_CACHE_BYTES = 1 << 30
_RENDER_PIECE_BYTES = 256 * 1024
_ID_ALPHABET = string.ascii_letters + string.digits
_DEFAULT_MESSAGES = {
    "overloaded_error": "Overloaded",
    "api_error": "Internal server error",
    "rate_limit_error": "Number of request tokens has exceeded your per-minute rate limit",
    "timeout_error": "Request timed out",
    "authentication_error": "invalid x-api-key",
    "billing_error": "Your credit balance is too low to access the Anthropic API",
    "permission_error": "Your API key does not have permission to use the specified resource",
    "not_found_error": "Not found",
    "invalid_request_error": "Invalid request",
}


def new_id(prefix: str) -> str:
    return prefix + "".join(secrets.choice(_ID_ALPHABET) for _ in range(24))


def iso(t: float | None) -> str | None:
    if t is None:
        return None
    return datetime.fromtimestamp(t, tz=UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def error_body(error_type: str, message: str | None = None) -> dict[str, Any]:
    return {"type": "error", "error": {"type": error_type, "message": message or _DEFAULT_MESSAGES.get(
        error_type, "Error")}}


@dataclass
class Finished:
    """Outcome of every request, decided once when the batch ends so repeat downloads agree."""

    outcomes: bytearray
    cache_read: array.array[int]
    cache_write: array.array[int]
    write_1h: bytearray
    counts: dict[str, int]


@dataclass
class Batch:
    id: str
    seq: int
    created_at: float
    processing_seconds: float
    custom_ids: list[str]
    # Each request's JSON ({"custom_id", "params"}) as bytes: a 100k x 2 KB batch costs about its
    # own body size, not dicts. ``params_of`` reads one back.
    params: list[bytes]
    scenario: Scenario
    cancel_seconds: float
    canceled_at: float | None = None
    processed_before_cancel: int | None = None
    finished: Finished | None = field(default=None, repr=False)
    # The results file once rendered in full: whole lines joined into pieces of ~256 KB.
    rendered: list[bytes] | None = field(default=None, repr=False)
    rendered_bytes: int = 0

    def params_of(self, i: int) -> Any:
        return json.loads(self.params[i])["params"]

    def ended_at(self) -> float:
        natural = self.created_at + self.processing_seconds
        if self.canceled_at is not None:
            return min(self.canceled_at + self.cancel_seconds, natural)
        return natural

    def status(self, now: float) -> str:
        if now >= self.ended_at():
            return "ended"
        return "canceling" if self.canceled_at is not None else "in_progress"


class Store:
    """All mutable sandbox state. One re-entrant lock guards it; streaming reads finished batches."""

    def __init__(self, processing_seconds: float) -> None:
        self.lock = threading.RLock()
        self.processing_seconds = processing_seconds
        self.cancel_seconds = min(0.5, processing_seconds / 4)
        self.batches: dict[str, Batch] = {}
        self.cache = PromptCache()
        self._seq = 0

    def reset(self) -> None:
        with self.lock:
            self.batches.clear()
            self.cache.clear()

    def create(self, custom_ids: list[str], params: list[bytes], scenario: Scenario, now: float) -> Batch:
        with self.lock:
            self._seq += 1
            batch = Batch(
                id=new_id("msgbatch_"),
                seq=self._seq,
                created_at=now,
                processing_seconds=self.processing_seconds,
                custom_ids=custom_ids,
                params=params,
                scenario=scenario,
                cancel_seconds=self.cancel_seconds,
            )
            self.batches[batch.id] = batch
            return batch

    def cancel(self, batch: Batch, now: float) -> None:
        with self.lock:
            if batch.canceled_at is not None:
                return
            # Requests are taken in submission order at a steady rate, so the share already
            # processed when the cancel arrives keeps its outcome and the rest become canceled.
            share = (now - batch.created_at) / batch.processing_seconds if batch.processing_seconds else 1.0
            batch.canceled_at = now
            batch.processed_before_cancel = int(len(batch.custom_ids) * min(max(share, 0.0), 1.0))

    def finish(self, batch: Batch) -> Finished:
        with self.lock:
            if batch.finished is None:
                batch.finished = self._decide(batch)
            return batch.finished

    def _decide(self, batch: Batch) -> Finished:
        n = len(batch.custom_ids)
        faults = batch.scenario.requests
        outcomes = bytearray(n)
        cache_read = array.array("q", bytes(8 * n))
        cache_write = array.array("q", bytes(8 * n))
        write_1h = bytearray(n)
        now = batch.ended_at()
        limit = batch.processed_before_cancel

        def every(k: int, i: int) -> bool:
            return k > 0 and (i + 1) % k == 0

        for i in range(n):
            if limit is not None and i >= limit:
                outcomes[i] = CANCELED
            elif every(faults.errored_every, i):
                outcomes[i] = ERRORED
            elif every(faults.invalid_every, i):
                outcomes[i] = INVALID
            elif every(faults.expired_every, i):
                outcomes[i] = EXPIRED
            elif every(faults.canceled_every, i):
                outcomes[i] = CANCELED
            else:
                params = batch.params_of(i)
                if validate_params(params) is not None:
                    outcomes[i] = BAD_PARAMS
                    continue
                info = analyze(params)
                minimum = min_cacheable(str(params["model"]), batch.scenario.min_cacheable)
                read, written, ttl = self.cache.apply(info, minimum, now)
                cache_read[i], cache_write[i] = read, written
                write_1h[i] = ttl == "1h"
        counts = {"processing": 0, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0}
        names = {SUCCEEDED: "succeeded", ERRORED: "errored", INVALID: "errored", BAD_PARAMS: "errored",
                 EXPIRED: "expired", CANCELED: "canceled"}
        for code in outcomes:
            counts[names[code]] += 1
        return Finished(outcomes, cache_read, cache_write, write_1h, counts)

    def batch_json(self, batch: Batch, base_url: str, now: float) -> dict[str, Any]:
        with self.lock:
            status = batch.status(now)
            if status == "ended":
                counts = dict(self.finish(batch).counts)
            else:
                counts = {"processing": len(batch.custom_ids), "succeeded": 0, "errored": 0,
                          "canceled": 0, "expired": 0}
            ended = status == "ended"
            return {
                "id": batch.id,
                "type": "message_batch",
                "processing_status": status,
                "request_counts": counts,
                "ended_at": iso(batch.ended_at()) if ended else None,
                "created_at": iso(batch.created_at),
                "expires_at": iso(batch.created_at + EXPIRY_SECONDS),
                "archived_at": None,
                "cancel_initiated_at": iso(batch.canceled_at),
                "results_url": f"{base_url}/v1/messages/batches/{batch.id}/results" if ended else None,
            }

    def newest_first(self) -> list[Batch]:
        with self.lock:
            return sorted(self.batches.values(), key=lambda b: -b.seq)

    def summaries(self, now: float) -> list[dict[str, Any]]:
        with self.lock:
            return [
                {
                    "id": b.id,
                    "created_at": iso(b.created_at),
                    "request_count": len(b.custom_ids),
                    "processing_status": b.status(now),
                }
                for b in sorted(self.batches.values(), key=lambda b: b.seq)
            ]

    def result_lines(self, batch: Batch) -> Iterator[bytes]:
        """Yield the results JSONL in a shuffled order: whole lines, one or more per piece.

        The first full download renders each line on demand and keeps the rendered file (within
        ``RENDERED_CACHE_BYTES`` over all batches), so a repeat download is served like the stored
        file it is on the real API, at the speed of the socket.
        """
        with self.lock:
            rendered = batch.rendered
        if rendered is not None:
            yield from rendered
            return
        finished = self.finish(batch)
        order = list(range(len(batch.custom_ids)))
        random.Random(batch.id).shuffle(order)
        if len(order) > 1 and all(a < b for a, b in itertools.pairwise(order)):
            order.reverse()
        pieces: list[bytes] = []
        pending: list[bytes] = []
        pending_size = total = 0
        for i in order:
            if batch.custom_ids[i] in batch.scenario.drop_results:
                continue
            line = {"custom_id": batch.custom_ids[i], "result": self._result(batch, finished, i)}
            data = (json.dumps(line, separators=(",", ":"), ensure_ascii=False) + "\n").encode()
            pending.append(data)
            pending_size += len(data)
            if pending_size >= _RENDER_PIECE_BYTES:
                pieces.append(b"".join(pending))
                total += pending_size
                pending, pending_size = [], 0
            yield data
        for extra in batch.scenario.append_results:
            data = (extra.rstrip("\n") + "\n").encode()
            pending.append(data)
            pending_size += len(data)
            yield data
        if pending:
            pieces.append(b"".join(pending))
            total += pending_size
        self._keep_rendered(batch, pieces, total)

    def _keep_rendered(self, batch: Batch, pieces: list[bytes], total: int) -> None:
        if total > RENDERED_CACHE_BYTES:
            return
        with self.lock:
            if batch.id not in self.batches or batch.rendered is not None:
                return
            kept = sorted((b for b in self.batches.values() if b.rendered is not None), key=lambda b: b.seq)
            used = sum(b.rendered_bytes for b in kept)
            for old in kept:
                if used + total <= RENDERED_CACHE_BYTES:
                    break
                used -= old.rendered_bytes
                old.rendered, old.rendered_bytes = None, 0
            batch.rendered, batch.rendered_bytes = pieces, total

    def _result(self, batch: Batch, finished: Finished, i: int) -> dict[str, Any]:
        code = finished.outcomes[i]
        if code == EXPIRED:
            return {"type": "expired"}
        if code == CANCELED:
            return {"type": "canceled"}
        if code == ERRORED:
            return {"type": "errored", "error": error_body(batch.scenario.requests.errored_type)}
        if code == INVALID:
            return {"type": "errored", "error": error_body("invalid_request_error",
                                                           "sandbox: scripted invalid request")}
        params = batch.params_of(i)
        problem = validate_params(params)
        if code == BAD_PARAMS or problem is not None:
            return {"type": "errored", "error": error_body("invalid_request_error", problem)}
        message = build_message(
            params,
            batch.scenario,
            msg_id=derived_id("msg_", batch.id, batch.custom_ids[i]),
            cache=(finished.cache_read[i], finished.cache_write[i], "1h" if finished.write_1h[i] else "5m"),
            service_tier="batch",
        )
        return {"type": "succeeded", "message": message}

    def interactive(self, params: Mapping[str, Any], scenario: Scenario, now: float) -> dict[str, Any]:
        info = analyze(params)
        with self.lock:
            cache = self.cache.apply(info, min_cacheable(str(params["model"]), scenario.min_cacheable), now)
        return build_message(params, scenario, msg_id=new_id("msg_"), cache=cache, service_tier="standard")


def build_message(
    params: Mapping[str, Any],
    scenario: Scenario,
    *,
    msg_id: str,
    cache: tuple[int, int, str],
    service_tier: str,
) -> dict[str, Any]:
    info = analyze(params)
    reply = respond(params, info, scenario.responses, seed_of(params))
    read, written, ttl = cache
    return {
        "id": msg_id,
        "type": "message",
        "role": "assistant",
        "model": params["model"],
        "content": reply.content,
        "stop_reason": reply.stop_reason,
        "stop_sequence": None,
        "usage": {
            "input_tokens": info.input_tokens - read - written,
            "output_tokens": reply.output_tokens,
            "cache_creation_input_tokens": written,
            "cache_read_input_tokens": read,
            "cache_creation": {
                "ephemeral_5m_input_tokens": written if ttl == "5m" else 0,
                "ephemeral_1h_input_tokens": written if ttl == "1h" else 0,
            },
            "service_tier": service_tier,
        },
    }
