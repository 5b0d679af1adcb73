"""HTTP layer: a keep-alive ThreadingHTTPServer with raw-socket fault injection."""

from __future__ import annotations

import contextlib
import json
import logging
import selectors
import socket
import struct
import threading
import time
import uuid
from collections.abc import Mapping
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from .control import CONTROL_PREFIX, handle_control
from .faults import Fault

if TYPE_CHECKING:
    from .core import TwilioSandbox

_log = logging.getLogger("devtools.sandbox")
MAX_REQUEST_BYTES = 10 * 1024 * 1024
REDACTED_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie"})


def redact_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Copy headers with credentials replaced by a marker (secrets are never recorded)."""
    return {k: ("<redacted>" if k.lower() in REDACTED_HEADERS else v) for k, v in headers.items()}


def _loggable(body: bytes) -> Any:
    """A response body for the activity log: parsed JSON when possible, else text."""
    text = body.decode("utf-8", "replace")
    try:
        return json.loads(text)
    except ValueError:
        return text


class SandboxRequestHandler(BaseHTTPRequestHandler):
    """One HTTP/1.1 connection; dispatches to REST emulation or control endpoints."""

    protocol_version = "HTTP/1.1"
    server_version = "TwilioSandbox/1.0"
    sys_version = ""
    timeout = 120  # idle keep-alive connections close after this many seconds
    server: SandboxHTTPServer

    def version_string(self) -> str:
        return self.server_version

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes; without NODELAY, Nagle plus the
        # client's delayed ACK add ~40 ms to every keep-alive response.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_GET(self) -> None:  # noqa: N802 (stdlib naming)
        self._dispatch()

    def do_POST(self) -> None:  # noqa: N802
        self._dispatch()

    def do_DELETE(self) -> None:  # noqa: N802
        self._dispatch()

    def do_PUT(self) -> None:  # noqa: N802
        self._dispatch()

    def do_PATCH(self) -> None:  # noqa: N802
        self._dispatch()

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        # Method, path without query (no phone numbers) and status; never headers or bodies.
        path = urlsplit(getattr(self, "path", "")).path
        _log.debug("%s %s -> %s", getattr(self, "command", "-"), path, code)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (stdlib signature)
        _log.debug("http server: %s", format % args)

    # -- plumbing -----------------------------------------------------------
    def _read_body(self) -> bytes | None:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks: list[bytes] = []
            total = 0
            while True:
                size_line = self.rfile.readline(1024)
                size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                total += size
                if total > MAX_REQUEST_BYTES:
                    return None
                chunks.append(self.rfile.read(size))
                self.rfile.readline(1024)
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_REQUEST_BYTES:
            return None
        return self.rfile.read(length) if length > 0 else b""

    def _send(self, status: int, body: bytes, headers: Mapping[str, str]) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _send_json(self, status: int, payload: Any, headers: Mapping[str, str] | None = None) -> bytes:
        body = json.dumps(payload).encode("utf-8")
        merged = {"Content-Type": "application/json; charset=utf-8", **(headers or {})}
        self._send(status, body, merged)
        return body

    def _dispatch(self) -> None:
        try:
            body = self._read_body()
        except ValueError:
            body = None
        if body is None:
            self.close_connection = True
            self._send_json(413, {"error": "request body too large or malformed"})
            return
        target = urlsplit(self.path)
        if target.path == CONTROL_PREFIX or target.path.startswith(CONTROL_PREFIX + "/"):
            status, payload = handle_control(self.server.sandbox, self.command, target.path, body)
            self._send_json(status, payload)
            return
        self._rest(target.path, target.query, body)

    # -- REST ---------------------------------------------------------------
    def _rest(self, path: str, raw_query: str, body: bytes) -> None:
        sandbox = self.server.sandbox
        request_id = "RQ" + uuid.uuid4().hex
        query = parse_qs(raw_query, keep_blank_values=True)
        content_type = self.headers.get("Content-Type", "")
        form: dict[str, list[str]] = {}
        if body and (not content_type or "x-www-form-urlencoded" in content_type.lower()):
            form = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
        headers = redact_headers(dict(self.headers.items()))
        sandbox.store.record_request(
            {"method": self.command, "path": path, "query": query, "form": form, "headers": headers}
        )
        sandbox.store.log("rest.request", request_id=request_id, method=self.command, path=path, query=query, form=form)
        fault = sandbox.fault_registry.take(self.command, self.path)
        if fault is not None:
            self._apply_fault(fault, request_id)
            return
        response = sandbox.rest.handle(self.command, path, query, form, self.headers.get("Authorization"))
        response.headers.setdefault("Twilio-Request-Id", request_id)
        sandbox.store.log("rest.response", request_id=request_id, status=response.status, body=response.body)
        self._send_json(response.status, response.body, response.headers)
        self.wfile.flush()
        if response.after is not None:
            response.after()

    def _apply_fault(self, fault: Fault, request_id: str) -> None:
        store = self.server.sandbox.store
        if fault.kind == "status":
            body = fault.body_bytes()
            headers = {"Content-Type": fault.content_type, "Twilio-Request-Id": request_id, **fault.headers}
            store.log(
                "rest.response",
                request_id=request_id,
                status=fault.status,
                body=_loggable(body),
                fault=fault.describe(),
            )
            self._send(fault.status, body, headers)
            return
        store.log("rest.fault", request_id=request_id, kind=fault.kind, fault=fault.describe())
        self.close_connection = True
        if fault.kind == "hang":
            self.server.sandbox.fault_registry.hang_gate().wait()
            return
        # reset: status line and some headers, no blank line, then an abortive close.
        try:
            phrase = HTTPStatus(fault.status).phrase
        except ValueError:
            phrase = "Error"
        partial = (
            f"HTTP/1.1 {fault.status} {phrase}\r\n"
            f"Content-Type: {fault.content_type}\r\n"
            f"Twilio-Request-Id: {request_id}\r\n"
            "Content-Length: 4096\r\n"
        ).encode("latin-1")
        try:
            self.wfile.write(partial)
            self.wfile.flush()
        except OSError:
            pass
        self.server.mark_for_reset(self.connection)


class SandboxHTTPServer(ThreadingHTTPServer):
    """ThreadingHTTPServer that tracks connections so stop() can end them all."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], sandbox: TwilioSandbox) -> None:
        self.sandbox = sandbox
        self._conn_lock = threading.Lock()
        self._connections: dict[socket.socket, threading.Thread] = {}
        self._reset: set[socket.socket] = set()
        self._closing = False
        self._stop_requested = threading.Event()
        self._loop_done = threading.Event()
        super().__init__(address, SandboxRequestHandler)
        self._wake_reader, self._wake_writer = socket.socketpair()

    def serve_until_stopped(self) -> None:
        """Accept loop (like serve_forever) that stop_serving() wakes immediately."""
        try:
            with selectors.DefaultSelector() as selector:
                selector.register(self, selectors.EVENT_READ)
                selector.register(self._wake_reader, selectors.EVENT_READ)
                while not self._stop_requested.is_set():
                    for key, _events in selector.select():
                        if key.fileobj is self and not self._stop_requested.is_set():
                            self._accept_one()
        finally:
            self._loop_done.set()

    def _accept_one(self) -> None:
        try:
            request, client_address = self.get_request()
        except OSError:
            return
        try:
            self.process_request(request, client_address)
        except Exception:
            self.handle_error(request, client_address)
            self.shutdown_request(request)

    def stop_serving(self, timeout: float = 0.5) -> None:
        """End serve_until_stopped() and close the listening socket."""
        self._stop_requested.set()
        with contextlib.suppress(OSError):
            self._wake_writer.send(b"x")
        self._loop_done.wait(timeout)
        self.server_close()
        self._wake_reader.close()
        self._wake_writer.close()

    def process_request(self, request: Any, client_address: Any) -> None:
        thread = threading.Thread(
            target=self._serve_connection, args=(request, client_address), name="sandbox-http", daemon=True
        )
        with self._conn_lock:
            refused = self._closing
            if not refused:
                self._connections[request] = thread
        if refused:
            self.shutdown_request(request)
            return
        thread.start()

    def _serve_connection(self, request: Any, client_address: Any) -> None:
        try:
            self.process_request_thread(request, client_address)
        finally:
            with self._conn_lock:
                self._connections.pop(request, None)

    def handle_error(self, request: Any, client_address: Any) -> None:
        _log.debug("connection from %s ended with an error", client_address, exc_info=True)

    def mark_for_reset(self, sock: socket.socket) -> None:
        """Close this connection with RST (SO_LINGER 0) instead of FIN when the handler ends."""
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        with self._conn_lock:
            self._reset.add(sock)

    def shutdown_request(self, request: Any) -> None:
        with self._conn_lock:
            abort = request in self._reset
            self._reset.discard(request)
        if abort:
            self.close_request(request)
        else:
            super().shutdown_request(request)

    def close_connections(self, timeout: float = 0.5) -> None:
        """Shut every open connection down and wait (bounded) for its thread."""
        with self._conn_lock:
            self._closing = True
            pending = dict(self._connections)
        for sock in pending:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        deadline = time.monotonic() + timeout
        for thread in pending.values():
            thread.join(max(0.0, deadline - time.monotonic()))
