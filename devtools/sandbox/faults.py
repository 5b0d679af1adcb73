"""Fault injection rules (status / hang / reset) applied to REST requests."""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from .errors import status_fault_body

FaultKind = Literal["status", "hang", "reset"]
FAULT_KINDS: tuple[FaultKind, ...] = ("status", "hang", "reset")


@dataclass
class Fault:
    """One injected fault; `remaining` None means it never runs out."""

    kind: FaultKind
    status: int = 500
    body: str | bytes | Mapping[str, Any] | list[Any] | None = None
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    remaining: int | None = 1
    path_contains: str | None = None
    method: str | None = None
    id: int = 0

    def matches(self, method: str, path: str) -> bool:
        """Whether this fault applies to a request."""
        if self.method is not None and self.method.upper() != method.upper():
            return False
        return self.path_contains is None or self.path_contains in path

    def body_bytes(self) -> bytes:
        """Encoded response body (Twilio error JSON for the status by default)."""
        body = self.body if self.body is not None else status_fault_body(self.status)
        if isinstance(body, bytes):
            return body
        if isinstance(body, str):
            return body.encode("utf-8")
        return json.dumps(body).encode("utf-8")

    def describe(self) -> dict[str, Any]:
        """JSON-serialisable view of the fault."""
        body = self.body.decode("utf-8", "replace") if isinstance(self.body, bytes) else self.body
        return {
            "id": self.id,
            "kind": self.kind,
            "status": self.status,
            "body": body,
            "content_type": self.content_type,
            "headers": dict(self.headers),
            "times": self.remaining,
            "path_contains": self.path_contains,
            "method": self.method,
        }


class FaultRegistry:
    """Ordered, thread-safe list of faults plus the gate that holds hung requests."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self._ids = itertools.count(1)
        self._release = threading.Event()
        self._closed = False

    def add(
        self,
        kind: str,
        *,
        status: int = 500,
        body: str | bytes | Mapping[str, Any] | list[Any] | None = None,
        content_type: str = "application/json",
        headers: Mapping[str, str] | None = None,
        times: int | None = 1,
        path_contains: str | None = None,
        method: str | None = None,
    ) -> Fault:
        """Register a fault; raises ValueError on bad arguments."""
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; expected one of {FAULT_KINDS}")
        if not 100 <= int(status) <= 599:
            raise ValueError(f"invalid HTTP status {status!r}")
        if times is not None and int(times) < 1:
            raise ValueError("times must be >= 1 or None")
        fault = Fault(
            kind=kind,
            status=int(status),
            body=body,
            content_type=content_type,
            headers={str(k): str(v) for k, v in (headers or {}).items()},
            remaining=None if times is None else int(times),
            path_contains=path_contains,
            method=method.upper() if method else None,
            id=next(self._ids),
        )
        with self._lock:
            self._faults.append(fault)
        return fault

    def take(self, method: str, path: str) -> Fault | None:
        """Consume one use of the first matching fault (None if no fault applies)."""
        with self._lock:
            for fault in self._faults:
                if fault.matches(method, path):
                    if fault.remaining is not None:
                        fault.remaining -= 1
                        if fault.remaining <= 0:
                            self._faults.remove(fault)
                    return fault
        return None

    def active(self) -> list[dict[str, Any]]:
        """Descriptions of faults still armed."""
        with self._lock:
            return [fault.describe() for fault in self._faults]

    def clear(self) -> None:
        """Disarm every fault (hung requests stay hung until released)."""
        with self._lock:
            self._faults.clear()

    def hang_gate(self) -> threading.Event:
        """The event a hung request waits on (set when hangs are released)."""
        with self._lock:
            return self._release

    def release_hangs(self) -> None:
        """Let every currently hung request end; later hangs wait on a fresh gate."""
        with self._lock:
            self._release.set()
            if not self._closed:
                self._release = threading.Event()

    def close(self) -> None:
        """Release hangs permanently (used by stop())."""
        with self._lock:
            self._closed = True
            self._release.set()
