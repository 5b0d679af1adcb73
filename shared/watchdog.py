"""A socket watchdog: one HTTP exchange's total time budget, enforced by shutting its socket down."""

from __future__ import annotations

import contextlib
import socket
import threading

from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

_watched = threading.local()  # .deadline: the Deadline of the Twilio request this thread is making


class Deadline:
    """A total time budget for one HTTP exchange: when it runs out, the exchange's socket is shut down, which ends
    a read in progress. A per-read timeout alone lets an answer trickling in a few bytes at a time run forever."""

    def __init__(self, seconds: float):
        self.expired = False
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def __enter__(self) -> Deadline:
        _watched.deadline = self
        self._timer.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._timer.cancel()
        _watched.deadline = None

    def watch(self, sock: socket.socket | None) -> None:
        """The socket the exchange reads its answer from (shut down at once if the budget is already spent)."""
        with self._lock:
            self._sock = sock
            if self.expired:
                self._shut()

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            self._shut()

    def _shut(self) -> None:
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.shutdown(socket.SHUT_RDWR)


class _WatchedConnection(HTTPConnection):
    def getresponse(self):  # type: ignore[override]
        deadline = getattr(_watched, "deadline", None)
        if deadline is not None:
            deadline.watch(self.sock)
        return super().getresponse()


class _WatchedHTTPSConnection(_WatchedConnection, HTTPSConnection):
    pass


class WatchedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _WatchedConnection


class WatchedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection
