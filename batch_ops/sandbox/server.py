"""The HTTP side of the sandbox: routing, auth, faults, validation and the server lifecycle."""

from __future__ import annotations

import contextlib
import json
import re
import signal
import socket
import sys
import threading
import time
import traceback
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType, TracebackType
from typing import Any, cast
from urllib.parse import parse_qs, urlsplit

from .model import compact, validate_params
from .scenario import ENDPOINTS, Fault, FaultCursor, Scenario, ScenarioError, error_type_for, parse_scenario
from .state import Batch, Store, error_body, new_id

MAX_BODY_BYTES = 256 * 1024 * 1024
MAX_REQUESTS = 100_000
# fullmatch, not match with "$": "$" also matches before a trailing newline.
_CUSTOM_ID_RE = re.compile(r"[a-zA-Z0-9_-]{1,64}")
_BATCH_PATH_RE = re.compile(r"^/v1/messages/batches/([^/]+)(/cancel|/results)?$")
_CHUNK_BYTES = 64 * 1024


_WS = re.compile(r"[ \t\n\r]*")
_DECODER = json.JSONDecoder()


def _split_create_body(text: str) -> tuple[dict[str, Any], list[tuple[int, int]]] | None:
    """Parse a create body, keeping where each element of ``requests`` lies in ``text``.

    The same values as ``json.loads`` (every value is decoded by the json module itself; only the
    outer object and the array are walked here), plus the spans, so each request can be kept as
    the bytes it came in instead of being serialised again. None for anything unexpected: the
    caller then parses the body with ``json.loads`` and reports its error.
    """
    pos = _WS.match(text, 0).end()  # type: ignore[union-attr]
    if not text.startswith("{", pos):
        return None
    body: dict[str, Any] = {}
    spans: list[tuple[int, int]] = []
    pos = _WS.match(text, pos + 1).end()  # type: ignore[union-attr]
    if text.startswith("}", pos):
        return (body, spans) if not text[pos + 1 :].strip(" \t\n\r") else None
    while True:
        key, pos = _DECODER.raw_decode(text, pos)
        if not isinstance(key, str):
            return None
        pos = _WS.match(text, pos).end()  # type: ignore[union-attr]
        if not text.startswith(":", pos):
            return None
        pos = _WS.match(text, pos + 1).end()  # type: ignore[union-attr]
        if key == "requests" and text.startswith("[", pos):
            items: list[Any] = []
            spans = []
            pos = _WS.match(text, pos + 1).end()  # type: ignore[union-attr]
            if text.startswith("]", pos):
                pos += 1
            else:
                while True:
                    start = pos
                    value, pos = _DECODER.raw_decode(text, pos)
                    items.append(value)
                    spans.append((start, pos))
                    pos = _WS.match(text, pos).end()  # type: ignore[union-attr]
                    if text.startswith(",", pos):
                        pos = _WS.match(text, pos + 1).end()  # type: ignore[union-attr]
                        continue
                    if text.startswith("]", pos):
                        pos += 1
                        break
                    return None
            body[key] = items
        else:
            body[key], pos = _DECODER.raw_decode(text, pos)
        pos = _WS.match(text, pos).end()  # type: ignore[union-attr]
        if text.startswith(",", pos):
            pos = _WS.match(text, pos + 1).end()  # type: ignore[union-attr]
            continue
        if text.startswith("}", pos):
            break
        return None
    return (body, spans) if not text[pos + 1 :].strip(" \t\n\r") else None


class _ApiError(Exception):
    def __init__(self, status: int, message: str, error_type: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.error_type = error_type or error_type_for(status)
        self.message = message


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    app: SandboxServer


class _HTTPServer6(_HTTPServer):
    address_family = socket.AF_INET6


def _route(method: str, path: str) -> tuple[str, str | None] | None:
    if path == "/v1/messages/batches":
        return {"POST": ("create", None), "GET": ("list", None)}.get(method)
    if path == "/v1/messages" and method == "POST":
        return "messages", None
    match = _BATCH_PATH_RE.match(path)
    if match is None:
        return None
    batch_id, suffix = match.group(1), match.group(2)
    table = {
        (None, "GET"): "retrieve",
        (None, "DELETE"): "delete",
        ("/cancel", "POST"): "cancel",
        ("/results", "GET"): "results",
    }
    endpoint = table.get((suffix, method))
    return (endpoint, batch_id) if endpoint else None


class _Handler(BaseHTTPRequestHandler):
    _endpoint: str | None = None
    _work_from = 0.0
    protocol_version = "HTTP/1.1"
    server_version = "batch-ops-sandbox"

    @property
    def app(self) -> SandboxServer:
        return cast(_HTTPServer, self.server).app

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def setup(self) -> None:
        super().setup()
        self.app._track(self.connection, add=True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.app._track(self.connection, add=False)

    def handle_one_request(self) -> None:
        self._endpoint = None
        super().handle_one_request()
        if self._endpoint is not None:
            # Time this request kept the sandbox busy once its body was in: what a client waits on
            # the server for, which a benchmark of the client subtracts.
            self.app._add_busy(str(self._endpoint), time.perf_counter() - self._work_from)

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def _handle(self, method: str) -> None:
        self._body_read = False
        self._streaming = False
        self._endpoint = None
        self._work_from = time.perf_counter()
        try:
            self._dispatch(method)
        except _ApiError as exc:
            self._send_error(exc.status, exc.error_type, exc.message)
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
            self.close_connection = True
        except Exception as exc:
            # A sandbox bug must surface as a 500 the client can see, not a hung connection;
            # mid-stream, a cut-off chunked body is the only signal left.
            traceback.print_exc(file=sys.stderr)
            if self._streaming:
                self._drop_connection()
                return
            self.close_connection = True
            with contextlib.suppress(OSError):
                self._send_error(500, "api_error", f"sandbox internal error: {exc!r}")

    # -- plumbing ---------------------------------------------------------------------------

    def _read_body(self) -> bytes:
        self._body_read = True
        length_header = self.headers.get("Content-Length")
        limit = self.app.max_body_bytes
        if length_header is not None:
            try:
                length = int(length_header)
            except ValueError:
                self.close_connection = True
                raise _ApiError(400, "invalid Content-Length header") from None
            if length > limit:
                self._discard(length)
                raise _ApiError(413, f"Request exceeds the maximum allowed size of {limit} bytes")
            data = self.rfile.read(length)
            self._work_from = time.perf_counter()
            return data
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            parts: list[bytes] = []
            total = 0
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                total += size
                if total > limit:
                    self.close_connection = True
                    raise _ApiError(413, f"Request exceeds the maximum allowed size of {limit} bytes")
                parts.append(self.rfile.read(size))
                self.rfile.readline()
            self._work_from = time.perf_counter()
            return b"".join(parts)
        return b""

    def _discard(self, length: int) -> None:
        # Read rather than leave unread: closing a socket with unread input sends a TCP reset,
        # which can destroy the answer before the client has read it.
        while length > 0:
            got = len(self.rfile.read(min(length, 1 << 20)))
            if got == 0:
                break
            length -= got

    def _json_body(self) -> Any:
        return self._parse_json(self._read_body())

    @staticmethod
    def _parse_json(raw: bytes) -> Any:
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise _ApiError(400, f"Request body is not valid JSON: {exc}") from None

    def _send_json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload, ensure_ascii=False).encode()
        if not self._body_read:
            self._body_read = True
            try:
                self._discard(int(self.headers.get("Content-Length") or 0))
            except ValueError:
                self.close_connection = True
            if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                self.close_connection = True
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("request-id", new_id("req_"))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)

    def _send_error(
        self, status: int, error_type: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        body = error_body(error_type, message)
        body["request_id"] = new_id("req_")
        self._send_json(status, body, headers)

    def _send_stream(self, lines: Iterator[bytes]) -> None:
        self._streaming = True
        self.send_response(200)
        self.send_header("Content-Type", "application/binary")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("request-id", new_id("req_"))
        self.end_headers()
        pending: list[bytes] = []
        size = 0
        for line in lines:
            pending.append(line)
            size += len(line)
            if size >= _CHUNK_BYTES:
                self._write_chunk(b"".join(pending))
                pending, size = [], 0
        if pending:
            self._write_chunk(b"".join(pending))
        self.wfile.write(b"0\r\n\r\n")

    def _write_chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))

    def _drop_connection(self) -> None:
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def _base_url(self) -> str:
        host = self.headers.get("Host")
        return f"http://{host}" if host else self.app.url

    def _authorized(self) -> bool:
        if self.headers.get("x-api-key", "").strip():
            return True
        scheme, _, token = self.headers.get("Authorization", "").partition(" ")
        return scheme.lower() == "bearer" and bool(token.strip())

    # -- dispatch ---------------------------------------------------------------------------

    def _dispatch(self, method: str) -> None:
        url = urlsplit(self.path)
        path = url.path.rstrip("/") or "/"
        if path.startswith("/_sandbox/"):
            self._admin(method, path)
            return
        route = _route(method, path)
        if route is None:
            raise _ApiError(404, f"{method} {path} is not an endpoint of this API")
        endpoint, batch_id = route
        self._endpoint = endpoint
        fault = self.app._next_call(endpoint)
        if fault.kind == "reset":
            self._drop_connection()
            return
        raw = self._read_body() if method == "POST" else b""
        if fault.kind == "status":
            headers = {"retry-after": fault.retry_after} if fault.retry_after is not None else None
            message = f"sandbox fault: HTTP {fault.status}"
            if self.app._scenario().echo_credentials:
                sent = self.headers.get("x-api-key") or self.headers.get("Authorization", "")
                message += f" (credentials sent: {sent})"
            self._send_error(fault.status, error_type_for(fault.status), message, headers)
            return
        if fault.kind == "timeout":
            self.app._sleep(self.app._scenario().timeout_seconds)
        if not self._authorized():
            raise _ApiError(401, "x-api-key header is required")
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        if endpoint == "create":
            self._create(raw, fault)
            return
        body = self._parse_json(raw) if raw.strip() else None
        if endpoint == "list":
            self._list(query)
        elif endpoint == "messages":
            self._messages(body)
        else:
            assert batch_id is not None
            batch = self.app._store.batches.get(batch_id)
            if batch is None:
                raise _ApiError(404, f"message batch {batch_id!r} not found")
            {"retrieve": self._retrieve, "cancel": self._cancel, "delete": self._delete,
             "results": self._results}[endpoint](batch)

    def _admin(self, method: str, path: str) -> None:
        app = self.app
        if (method, path) == ("POST", "/_sandbox/scenario"):
            raw = self._json_body()
            try:
                app.set_scenario(raw)
            except ScenarioError as exc:
                raise _ApiError(400, f"malformed scenario: {exc}") from None
            self._send_json(200, {"ok": True})
        elif (method, path) == ("GET", "/_sandbox/stats"):
            self._send_json(200, {"calls": app.calls, "busy_seconds": app.busy_seconds,
                                  "batches": app.batch_summaries()})
        elif (method, path) == ("POST", "/_sandbox/reset"):
            self._read_body()
            app.reset()
            self._send_json(200, {"ok": True})
        else:
            raise _ApiError(404, f"{method} {path} is not a sandbox admin endpoint")

    # -- endpoints --------------------------------------------------------------------------

    def _create(self, raw: bytes, fault: Fault) -> None:
        app = self.app
        spans: list[tuple[int, int]] | None = None
        text = ""
        body: Any = None
        if raw.strip():
            try:
                text = raw.decode("utf-8")
                parsed = _split_create_body(text)
            except (UnicodeDecodeError, ValueError):
                parsed = None
            if parsed is not None:
                body, spans = parsed
            else:
                body = self._parse_json(raw)
        if not isinstance(body, dict):
            raise _ApiError(400, "Request body must be a JSON object")
        requests = body.get("requests")
        if not isinstance(requests, list):
            raise _ApiError(400, "requests: Field required")
        if not requests:
            raise _ApiError(400, "requests: List should have at least 1 item after validation, not 0")
        if len(requests) > app.max_requests:
            raise _ApiError(400, f"requests: a batch may hold at most {app.max_requests} requests, "
                                 f"got {len(requests)}")
        custom_ids: list[str] = []
        params: list[bytes] = []
        seen: set[str] = set()
        for i, item in enumerate(requests):
            if not isinstance(item, dict):
                raise _ApiError(400, f"requests.{i}: Input should be an object")
            custom_id = item.get("custom_id")
            if not isinstance(custom_id, str):
                raise _ApiError(400, f"requests.{i}.custom_id: Field required")
            if not _CUSTOM_ID_RE.fullmatch(custom_id):
                raise _ApiError(400, f"requests.{i}.custom_id: String should match pattern "
                                     f"'^[a-zA-Z0-9_-]{{1,64}}$'")
            if custom_id in seen:
                raise _ApiError(400, f"requests.{i}.custom_id: duplicate custom_id {custom_id!r}; "
                                     "custom_id must be unique within a batch")
            seen.add(custom_id)
            if not isinstance(item.get("params"), dict):
                raise _ApiError(400, f"requests.{i}.params: Field required")
            custom_ids.append(custom_id)
            # The request's own JSON as sent when the body was split in place (no second dump).
            params.append(text[spans[i][0] : spans[i][1]].encode() if spans is not None else compact(item).encode())
        now = time.time()
        batch = app._store.create(custom_ids, params, app._scenario(), now)
        payload = app._store.batch_json(batch, self._base_url(), now)
        if fault.kind == "created-then-timeout":
            app._sleep(app._scenario().timeout_seconds)
        self._send_json(200, payload)

    def _retrieve(self, batch: Batch) -> None:
        self._send_json(200, self.app._store.batch_json(batch, self._base_url(), time.time()))

    def _list(self, query: dict[str, str]) -> None:
        try:
            limit = int(query.get("limit", "20"))
        except ValueError:
            raise _ApiError(400, "limit: Input should be a valid integer") from None
        if not 1 <= limit <= 1000:
            raise _ApiError(400, "limit: Input should be between 1 and 1000")
        after_id, before_id = query.get("after_id"), query.get("before_id")
        if after_id and before_id:
            raise _ApiError(400, "only one of after_id and before_id may be given")
        batches = self.app._store.newest_first()
        ids = [b.id for b in batches]
        if after_id:
            if after_id not in ids:
                raise _ApiError(400, f"after_id: unknown message batch {after_id!r}")
            candidates = batches[ids.index(after_id) + 1:]
            page = candidates[:limit]
        elif before_id:
            if before_id not in ids:
                raise _ApiError(400, f"before_id: unknown message batch {before_id!r}")
            # The page sits right before the cursor, so its newest items are the far end.
            candidates = batches[: ids.index(before_id)]
            page = candidates[-limit:]
        else:
            candidates = batches
            page = candidates[:limit]
        now = time.time()
        base = self._base_url()
        data = [self.app._store.batch_json(b, base, now) for b in page]
        self._send_json(200, {
            "data": data,
            "has_more": len(candidates) > len(page),
            "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None,
        })

    def _cancel(self, batch: Batch) -> None:
        store = self.app._store
        now = time.time()
        with store.lock:
            if batch.status(now) == "ended":
                raise _ApiError(400, f"message batch {batch.id} has already ended and cannot be canceled")
            store.cancel(batch, now)
            payload = store.batch_json(batch, self._base_url(), now)
        self._send_json(200, payload)

    def _delete(self, batch: Batch) -> None:
        store = self.app._store
        with store.lock:
            if batch.status(time.time()) != "ended":
                raise _ApiError(400, f"message batch {batch.id} is still processing; cancel it and wait "
                                     "until it has ended before deleting it")
            store.batches.pop(batch.id, None)
        self._send_json(200, {"id": batch.id, "type": "message_batch_deleted"})

    def _results(self, batch: Batch) -> None:
        if batch.status(time.time()) != "ended":
            raise _ApiError(400, f"message batch {batch.id} has not ended yet; results are not available")
        self._send_stream(self.app._store.result_lines(batch))

    def _messages(self, body: Any) -> None:
        problem = validate_params(body)
        if problem is not None:
            raise _ApiError(400, problem)
        app = self.app
        self._send_json(200, app._store.interactive(body, app._scenario(), time.time()))


class SandboxServer:
    """A local stand-in for the Message Batches and Messages APIs, served over HTTP.

    The socket is bound at construction, so ``url`` is known before ``start()``.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        processing_seconds: float = 2.0,
        scenario: dict[str, Any] | None = None,
        *,
        max_body_bytes: int = MAX_BODY_BYTES,
        max_requests: int = MAX_REQUESTS,
    ) -> None:
        self.max_body_bytes = max_body_bytes
        self.max_requests = max_requests
        self._store = Store(processing_seconds)
        self._cursor = FaultCursor(parse_scenario(scenario))
        self._calls = dict.fromkeys(ENDPOINTS, 0)
        self._busy = dict.fromkeys(ENDPOINTS, 0.0)
        self._stopping = threading.Event()
        self._connections: set[socket.socket] = set()
        self._thread: threading.Thread | None = None
        server_class = _HTTPServer6 if ":" in host else _HTTPServer
        self._httpd = server_class((host, port), _Handler)
        self._httpd.app = self
        self.host = host
        self.port = int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        # A wildcard bind is reached through loopback; the wildcard itself is not an address.
        host = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}.get(self.host, self.host)
        return f"http://[{host}]:{self.port}" if ":" in host else f"http://{host}:{self.port}"

    def start(self) -> SandboxServer:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                name=f"batch-ops-sandbox-{self.port}", daemon=True,
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._stopping.is_set():
            return
        self._stopping.set()
        if self._thread is not None:
            self._httpd.shutdown()
        # Keep-alive connections would otherwise keep being served by their handler threads.
        with self._store.lock:
            connections = list(self._connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def set_scenario(self, scenario: dict[str, Any] | None) -> None:
        """Replace the fault scenario; its endpoint lists start from their first entry again."""
        parsed = parse_scenario(scenario)
        with self._store.lock:
            self._cursor = FaultCursor(parsed)

    @property
    def busy_seconds(self) -> dict[str, float]:
        """Seconds spent per endpoint from each request's body being read to its answer sent."""
        with self._store.lock:
            return dict(self._busy)

    def _add_busy(self, endpoint: str, seconds: float) -> None:
        with self._store.lock:
            self._busy[endpoint] = self._busy.get(endpoint, 0.0) + seconds

    @property
    def calls(self) -> dict[str, int]:
        with self._store.lock:
            return dict(self._calls)

    def batch_summaries(self) -> list[dict[str, Any]]:
        return self._store.summaries(time.time())

    def reset(self) -> None:
        """Forget batches, the prompt cache and call counts; the scenario restarts from its top."""
        with self._store.lock:
            self._store.reset()
            self._calls = dict.fromkeys(ENDPOINTS, 0)
            self._busy = dict.fromkeys(ENDPOINTS, 0.0)
            self._cursor = FaultCursor(self._cursor.scenario)

    def _scenario(self) -> Scenario:
        with self._store.lock:
            return self._cursor.scenario

    def _next_call(self, endpoint: str) -> Fault:
        with self._store.lock:
            self._calls[endpoint] += 1
            return self._cursor.next(endpoint)

    def _sleep(self, seconds: float) -> None:
        self._stopping.wait(seconds)

    def _track(self, conn: socket.socket, *, add: bool) -> None:
        with self._store.lock:
            if add:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)


def serve(
    host: str = "127.0.0.1",
    port: int = 0,
    processing_seconds: float = 2.0,
    scenario_path: str | None = None,
    *,
    max_body_bytes: int | None = None,
) -> int:
    """Run a sandbox in the foreground until SIGINT or SIGTERM; the exit code to return."""
    scenario: Any = None
    if scenario_path is not None:
        try:
            with open(scenario_path, encoding="utf-8") as fh:
                scenario = json.load(fh)
            parse_scenario(scenario)
        except (OSError, ValueError) as exc:
            print(f"sandbox: cannot use scenario {scenario_path}: {exc}", file=sys.stderr)
            return 2
    try:
        server = SandboxServer(
            host, port, processing_seconds, scenario, max_body_bytes=max_body_bytes or MAX_BODY_BYTES
        )
    except OSError as exc:
        print(f"sandbox: cannot listen on {host}:{port}: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous: dict[signal.Signals, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, on_signal)
    try:
        server.start()
        print(f"sandbox listening on {server.url}", flush=True)
        # Polling keeps the main thread responsive to signals on every platform.
        while not stop.wait(0.2):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0
