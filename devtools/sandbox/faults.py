"""Injected faults: what matches a REST request, and the raw-socket misbehaviours (hang, reset, raw, trickle)."""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import json
import socket
import struct
import threading
from typing import Any

from werkzeug.http import HTTP_STATUS_CODES

from .state import status_body

KINDS = ("status", "hang", "reset", "raw", "trickle", "odd")
SOCKET_KINDS = ("hang", "reset", "raw")  # answered on the raw socket before the REST API runs
DEFAULT_RAW = b"NOT-HTTP garbage\r\n\r\n"
LOGIN_URL = "https://www.twilio.com/login"
# Odd answers for hardening tests: name -> (status, content type, body, extra headers).
PRESETS: dict[str, tuple[int, str, bytes, dict[str, str]]] = {
    "html": (200, "text/html; charset=utf-8",
             b"<!DOCTYPE html><html><head><title>Twilio</title></head><body><h1>Maintenance</h1></body></html>", {}),
    "list": (201, "application/json", b"[]", {}),
    "no_sid": (201, "application/json", b"{}", {}),
    "redirect": (302, "text/html; charset=utf-8", f'<a href="{LOGIN_URL}">Found</a>'.encode(), {"Location": LOGIN_URL}),
    "truncated": (201, "application/json", b'{"sid": "SM' + b"0" * 32 + b'", "status": "queued", "to": "+1', {}),
}


class ConnectionTaken(ConnectionAbortedError):
    """Raised once a fault has answered on the raw socket: werkzeug then writes nothing more."""


@dataclasses.dataclass
class Fault:
    """One armed fault; times None never runs out."""

    kind: str
    status: int = 500
    body: str | bytes | dict[str, Any] | list[Any] | None = None
    content_type: str = "application/json"
    headers: dict[str, str] = dataclasses.field(default_factory=dict)
    times: int | None = 1
    path_contains: str | None = None
    method: str | None = None
    preset: str | None = None
    chunk_bytes: int = 4
    interval: float = 0.2
    id: int = 0

    def body_bytes(self) -> bytes:
        """The body to send: given bytes, text or JSON; else a Twilio error for the status (raw: non-HTTP bytes)."""
        body = self.body if self.body is not None else (DEFAULT_RAW if self.kind == "raw" else status_body(self.status))
        if isinstance(body, bytes):
            return body
        return body.encode() if isinstance(body, str) else json.dumps(body).encode()

    def describe(self) -> dict[str, Any]:
        """A JSON-serialisable view."""
        body = self.body.decode("utf-8", "replace") if isinstance(self.body, bytes) else self.body
        return {**dataclasses.asdict(self), "body": body}


class FaultRegistry:
    """The ordered, thread-safe list of faults, the gate hung requests wait on, and the stop signal."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self._ids = itertools.count(1)
        self._gate = threading.Event()
        self.closed = threading.Event()  # the sandbox is stopping

    def add(self, kind: str, **options: Any) -> Fault:
        """Arm a fault (options: the Fault fields); ValueError on a bad kind, preset or number."""
        if kind not in KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; expected one of {', '.join(KINDS)}")
        fault = Fault(kind, **options, id=next(self._ids))
        fault.method = fault.method.upper() if fault.method else None
        fault.headers = {str(name): str(value) for name, value in (fault.headers or {}).items()}
        if kind == "odd":
            if fault.preset not in PRESETS:
                raise ValueError(f"odd needs preset= one of {', '.join(PRESETS)}")
            fault.status, fault.content_type, fault.body, extra = PRESETS[fault.preset]
            fault.headers = {**extra, **fault.headers}
        if not 100 <= fault.status <= 599 or (fault.times is not None and fault.times < 1):
            raise ValueError("status must be 100-599 and times at least 1 (or None: forever)")
        if fault.chunk_bytes < 1 or fault.interval < 0:
            raise ValueError("chunk_bytes must be at least 1 and interval at least 0")
        with self._lock:
            self._faults.append(fault)
        return fault

    def take(self, method: str, path: str) -> Fault | None:
        """Use up one turn of the first fault matching the request (None when none does)."""
        with self._lock:
            for fault in self._faults:
                if fault.method in (None, method.upper()) and (fault.path_contains or "") in path:
                    fault.times = None if fault.times is None else fault.times - 1
                    if fault.times == 0:
                        self._faults.remove(fault)
                    return dataclasses.replace(fault)
        return None

    def active(self) -> list[dict[str, Any]]:
        """The faults still armed."""
        with self._lock:
            return [fault.describe() for fault in self._faults]

    def clear(self) -> None:
        """Disarm every fault (requests already hung stay hung)."""
        with self._lock:
            self._faults.clear()

    def release_hangs(self) -> None:
        """End every request currently hung; later hangs wait again."""
        with self._lock:
            self._gate.set()
            if not self.closed.is_set():
                self._gate = threading.Event()

    def close(self) -> None:
        """Release hangs and end trickles for good (the sandbox is stopping)."""
        self.closed.set()
        self.release_hangs()

    def answer_on_socket(self, fault: Fault, sock: socket.socket) -> None:
        """hang: hold until released, then close; reset: TCP RST; raw: write the bytes, then close (ConnectionTaken)."""
        if fault.kind == "reset":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            _end(sock, socket.SHUT_RD)  # the server reads no more; the last close sends RST, not FIN
            sock.close()
            raise ConnectionTaken(fault.kind)
        if fault.kind == "hang":
            self._gate.wait()
        else:
            with contextlib.suppress(OSError):
                sock.sendall(fault.body_bytes())
        _end(sock, socket.SHUT_RDWR)
        raise ConnectionTaken(fault.kind)

    def trickle(self, fault: Fault, sock: socket.socket, status: int, headers: dict[str, str], body: bytes) -> None:
        """Write a whole HTTP response chunk_bytes at a time, interval seconds apart, then close (ConnectionTaken)."""
        lines = [f"HTTP/1.1 {status} {HTTP_STATUS_CODES.get(status, 'Unknown')}",
                 *(f"{name}: {value}" for name, value in headers.items()),
                 f"Content-Length: {len(body)}", "Connection: close"]
        data = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            for start in range(0, len(data), fault.chunk_bytes):
                if start and self.closed.wait(fault.interval):
                    break
                sock.sendall(data[start:start + fault.chunk_bytes])
        _end(sock, socket.SHUT_RDWR)
        raise ConnectionTaken(fault.kind)


def _end(sock: socket.socket, how: int) -> None:
    """Shut a connection down, ignoring a client that is already gone."""
    with contextlib.suppress(OSError):
        sock.shutdown(how)
