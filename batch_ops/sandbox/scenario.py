"""Fault scenarios: what the sandbox does wrong, and when.

A scenario is JSON (every key optional)::

    {"endpoints": {"create": ["429:2", "ok"], "retrieve": ["500", "529", "ok"],
                   "results": ["reset", "ok"]},
     "requests": {"errored_every": 0, "errored_type": "overloaded_error",
                  "invalid_every": 0, "expired_every": 0, "canceled_every": 0},
     "timeout_seconds": 3.0,
     "responses": [{"match": "substring", "text": "exact reply"}],
     "result_lines": {"drop": ["custom_id"], "append": ["raw JSONL line"]},
     "echo_credentials": false,
     "min_cacheable": {"model-id-prefix": 1024}}

``echo_credentials: true`` makes every scripted error message quote the request's credentials (as
a careless proxy might), to test that a client never repeats what a server echoes.

``result_lines`` makes results streams wrong on purpose: requests named in ``drop`` get no result
line, and every ``append`` string is sent as one extra line (verbatim: malformed JSON, a duplicate
or someone else's ``custom_id``) after the real ones, in every batch created under the scenario.

Endpoint lists are consumed one entry per call and the last entry repeats. Entries: ``ok``,
``NNN`` (status with the API's error body), ``NNN:S`` (plus ``retry-after: S``), ``timeout``
(answer after ``timeout_seconds``), ``reset`` (close the connection, no answer) and, for create
only, ``created-then-timeout`` (the batch is created, the answer is late).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

ENDPOINTS = ("create", "retrieve", "list", "cancel", "delete", "results", "messages")
ERROR_TYPES = frozenset(
    {
        "invalid_request_error",
        "authentication_error",
        "billing_error",
        "permission_error",
        "not_found_error",
        "rate_limit_error",
        "timeout_error",
        "api_error",
        "overloaded_error",
    }
)
_STATUS_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    422: "invalid_request_error",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}
_STATUS_RE = re.compile(r"^([1-5][0-9]{2})(?::([0-9]+(?:\.[0-9]+)?))?$")
_KEYS = frozenset({"endpoints", "requests", "timeout_seconds", "responses", "min_cacheable", "result_lines",
                   "echo_credentials"})
_REQUEST_KEYS = ("errored_every", "invalid_every", "expired_every", "canceled_every")


class ScenarioError(ValueError):
    pass


def error_type_for(status: int) -> str:
    return _STATUS_ERROR_TYPES.get(status, "api_error")


@dataclass(frozen=True)
class Fault:
    kind: str  # ok | status | timeout | reset | created-then-timeout
    status: int = 0
    retry_after: str | None = None


OK = Fault("ok")


@dataclass(frozen=True)
class RequestFaults:
    errored_every: int = 0
    errored_type: str = "overloaded_error"
    invalid_every: int = 0
    expired_every: int = 0
    canceled_every: int = 0


@dataclass(frozen=True)
class Scenario:
    endpoints: Mapping[str, tuple[Fault, ...]] = field(default_factory=dict)
    requests: RequestFaults = RequestFaults()
    timeout_seconds: float = 3.0
    responses: tuple[tuple[str, str], ...] = ()
    min_cacheable: Mapping[str, int] = field(default_factory=dict)
    drop_results: frozenset[str] = frozenset()
    append_results: tuple[str, ...] = ()
    echo_credentials: bool = False


def _parse_fault(endpoint: str, entry: Any) -> Fault:
    if not isinstance(entry, str):
        raise ScenarioError(f"endpoints.{endpoint}: entries must be strings, got {entry!r}")
    if entry in ("ok", "timeout", "reset"):
        return Fault(entry)
    if entry == "created-then-timeout":
        if endpoint != "create":
            raise ScenarioError(f"endpoints.{endpoint}: 'created-then-timeout' applies to create only")
        return Fault(entry)
    match = _STATUS_RE.match(entry)
    if match is None or not 400 <= int(match.group(1)) <= 599:
        raise ScenarioError(
            f"endpoints.{endpoint}: unknown entry {entry!r} (ok, NNN, NNN:S, timeout, reset"
            + (", created-then-timeout)" if endpoint == "create" else ")")
        )
    return Fault("status", int(match.group(1)), match.group(2))


def _non_negative_int(where: str, value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ScenarioError(f"{where}: expected a non-negative integer, got {value!r}")
    return value


def parse_scenario(raw: Any) -> Scenario:
    """Validate scenario JSON strictly, so a typo fails loudly instead of silently doing nothing."""
    if raw is None:
        return Scenario()
    if not isinstance(raw, dict):
        raise ScenarioError("scenario must be a JSON object")
    unknown = sorted(set(raw) - _KEYS)
    if unknown:
        known = ", ".join(sorted(_KEYS))
        raise ScenarioError(f"unknown scenario keys: {', '.join(unknown)} (known: {known})")

    endpoints: dict[str, tuple[Fault, ...]] = {}
    raw_endpoints = raw.get("endpoints", {})
    if not isinstance(raw_endpoints, dict):
        raise ScenarioError("endpoints must be an object")
    for name, entries in raw_endpoints.items():
        if name not in ENDPOINTS:
            raise ScenarioError(f"endpoints: unknown endpoint {name!r} (known: {', '.join(ENDPOINTS)})")
        if isinstance(entries, str):
            entries = [entries]
        if not isinstance(entries, list) or not entries:
            raise ScenarioError(f"endpoints.{name}: expected a non-empty list")
        endpoints[name] = tuple(_parse_fault(name, e) for e in entries)

    raw_requests = raw.get("requests", {})
    if not isinstance(raw_requests, dict):
        raise ScenarioError("requests must be an object")
    unknown = sorted(set(raw_requests) - {*_REQUEST_KEYS, "errored_type"})
    if unknown:
        raise ScenarioError(f"requests: unknown keys: {', '.join(unknown)}")
    counts = {k: _non_negative_int(f"requests.{k}", raw_requests.get(k, 0)) for k in _REQUEST_KEYS}
    errored_type = raw_requests.get("errored_type", "overloaded_error")
    if errored_type not in ERROR_TYPES:
        raise ScenarioError(f"requests.errored_type: expected one of {', '.join(sorted(ERROR_TYPES))}")

    timeout = raw.get("timeout_seconds", 3.0)
    if not isinstance(timeout, int | float) or isinstance(timeout, bool) or timeout < 0:
        raise ScenarioError("timeout_seconds: expected a non-negative number")

    responses: list[tuple[str, str]] = []
    raw_responses = raw.get("responses", [])
    if not isinstance(raw_responses, list):
        raise ScenarioError("responses must be a list")
    for i, item in enumerate(raw_responses):
        if (
            not isinstance(item, dict)
            or not isinstance(item.get("match"), str)
            or not isinstance(item.get("text"), str)
        ):
            raise ScenarioError(f"responses.{i}: expected {{\"match\": str, \"text\": str}}")
        responses.append((item["match"], item["text"]))

    raw_min = raw.get("min_cacheable", {})
    if not isinstance(raw_min, dict):
        raise ScenarioError("min_cacheable must be an object")
    min_cacheable = {str(k): _non_negative_int(f"min_cacheable.{k}", v) for k, v in raw_min.items()}

    raw_lines = raw.get("result_lines", {})
    if not isinstance(raw_lines, dict) or set(raw_lines) - {"drop", "append"}:
        raise ScenarioError('result_lines: expected {"drop": [custom_id, ...], "append": [line, ...]}')
    drop = raw_lines.get("drop", [])
    append = raw_lines.get("append", [])
    for name, items in (("drop", drop), ("append", append)):
        if not isinstance(items, list) or not all(isinstance(x, str) for x in items):
            raise ScenarioError(f"result_lines.{name}: expected a list of strings")

    echo = raw.get("echo_credentials", False)
    if not isinstance(echo, bool):
        raise ScenarioError("echo_credentials: expected true or false")

    return Scenario(
        echo_credentials=echo,
        drop_results=frozenset(drop),
        append_results=tuple(append),
        endpoints=endpoints,
        requests=RequestFaults(errored_type=errored_type, **counts),
        timeout_seconds=float(timeout),
        responses=tuple(responses),
        min_cacheable=min_cacheable,
    )


class FaultCursor:
    """Per-endpoint position in the scenario's lists. Callers serialise access."""

    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario
        self._position: dict[str, int] = {}

    def next(self, endpoint: str) -> Fault:
        entries = self.scenario.endpoints.get(endpoint)
        if not entries:
            return OK
        i = self._position.get(endpoint, 0)
        self._position[endpoint] = i + 1
        return entries[min(i, len(entries) - 1)]
