"""Threaded werkzeug server with HTTP/1.1 keep-alive and no werkzeug access log."""

from __future__ import annotations

import io
import logging
import socket
import threading
from collections.abc import Callable
from typing import Any

from werkzeug.serving import DechunkedInput, ThreadedWSGIServer, WSGIRequestHandler

from .config import LOGGER_NAME

__all__ = ["LocalServer", "MAX_BODY_BYTES", "make_local_server"]

# werkzeug 3.1's ``WSGIRequestHandler`` always answers ``Connection: close`` (it cannot
# drain a request body safely), whatever ``protocol_version`` says.  This handler reuses
# werkzeug's environ building but reads the whole request body first (Content-Length or
# chunked), so the connection is always positioned at the next request and can be kept
# alive.  The server tracks open connections so ``stop()`` can close idle keep-alive ones.

log = logging.getLogger(LOGGER_NAME)

MAX_BODY_BYTES = 100 * 1024 * 1024  # the Functions host's default request size limit
_MANAGED = frozenset({"content-length", "connection", "transfer-encoding", "keep-alive"})


class _BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class _KeepAliveHandler(WSGIRequestHandler):
    """Buffers each request body, calls the app, writes a Content-Length response, keeps the connection."""

    protocol_version = "HTTP/1.1"
    timeout = 75  # seconds an idle keep-alive connection (or a stalled read) may last
    disable_nagle_algorithm = True  # headers and body are separate writes; avoid 40 ms stalls

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass  # the app logs one line per request itself, without the query string

    def log(self, type: str, message: str, *args: Any) -> None:  # noqa: A002 - werkzeug's signature
        log.debug("server %s: %s", type, message % args if args else message)

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            body = DechunkedInput(self.rfile).read()  # type: ignore[arg-type]
            if len(body) > MAX_BODY_BYTES:
                raise _BadRequest(413, "request body too large")
            return body or b""
        raw = self.headers.get("Content-Length")
        if raw is None:
            return b""
        try:
            length = int(raw)
        except ValueError:
            raise _BadRequest(400, "invalid Content-Length") from None
        if length < 0:
            raise _BadRequest(400, "invalid Content-Length")
        if length > MAX_BODY_BYTES:
            raise _BadRequest(413, "request body too large")
        body = self.rfile.read(length)
        if len(body) != length:
            raise ConnectionError("client closed the connection mid-body")
        return body

    def run_wsgi(self) -> None:
        # "Expect: 100-continue" was already answered by http.server's parse_request().
        try:
            body = self._read_body()
        except _BadRequest as exc:
            self.close_connection = True
            self.send_error(exc.status, str(exc))
            return
        except (OSError, ValueError):
            self.close_connection = True
            return
        environ = self.make_environ()
        environ.pop("wsgi.input_terminated", None)
        environ.pop("HTTP_TRANSFER_ENCODING", None)
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        started: list[Any] = []
        chunks: list[bytes] = []

        def start_response(status: str, headers: list[tuple[str, str]],
                           exc_info: Any = None) -> Callable[[bytes], None]:
            started[:] = [status, headers]
            return chunks.append

        try:
            result = self.server.app(environ, start_response)
            try:
                chunks.extend(result)
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()
            status, headers = started
        except Exception:  # noqa: BLE001 - the app should never raise; answer 500 if it does
            log.exception("WSGI application error")
            self.close_connection = True
            status, headers, chunks = "500 INTERNAL SERVER ERROR", [("Content-Type", "text/plain")], [b"error"]
        data = b"".join(chunks)
        code_text, _, reason = status.partition(" ")
        code = int(code_text)
        self.send_response(code, reason)
        length = str(len(data))
        for key, value in headers:
            if key.lower() == "content-length" and self.command == "HEAD":
                length = value  # what GET would have sent
            elif key.lower() not in _MANAGED:
                self.send_header(key, value)
        no_body = code in (204, 304) or 100 <= code < 200
        if not no_body:
            self.send_header("Content-Length", length)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if not no_body and self.command != "HEAD":
            self.wfile.write(data)
        self.wfile.flush()

    def handle(self) -> None:
        try:
            super().handle()
        except (ConnectionError, TimeoutError, OSError):
            pass  # client went away or the host is stopping


class LocalServer(ThreadedWSGIServer):
    """``ThreadedWSGIServer`` that remembers open connections so they can be closed on stop."""

    def __init__(self, host: str, port: int, app: Any) -> None:
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(host, port, app, handler=_KeepAliveHandler)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._connections_lock:
                self._connections.discard(request)

    def close_connections(self) -> None:
        """Shut down every open client connection (idle keep-alive ones included)."""
        with self._connections_lock:
            connections = list(self._connections)
        for conn in connections:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def make_local_server(host: str, port: int, app: Any) -> LocalServer:
    """Bind a threaded keep-alive server for ``app`` (port 0 picks a free port)."""
    return LocalServer(host, port, app)
