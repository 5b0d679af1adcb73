"""Tracked background threads that stop promptly when the sandbox stops."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

_log = logging.getLogger("devtools.sandbox")


class TaskRunner:
    """Starts daemon worker threads, remembers them, and joins them on close()."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._threads: set[threading.Thread] = set()
        self._stopping = threading.Event()

    @property
    def stopping(self) -> bool:
        """True once close() has begun."""
        return self._stopping.is_set()

    def sleep(self, seconds: float) -> bool:
        """Wait, but wake early on close(); returns False if stopping."""
        if seconds > 0:
            return not self._stopping.wait(seconds)
        return not self._stopping.is_set()

    def spawn(self, name: str, target: Callable[[], None]) -> bool:
        """Run target in a new tracked daemon thread (refused once stopping)."""

        def run() -> None:
            try:
                target()
            except Exception:  # a sandbox bug must not kill silently without trace
                _log.exception("sandbox task %s failed", name)
            finally:
                with self._lock:
                    self._threads.discard(threading.current_thread())

        with self._lock:
            if self._stopping.is_set():
                return False
            thread = threading.Thread(target=run, name=f"sandbox-{name}", daemon=True)
            self._threads.add(thread)
            thread.start()
        return True

    def close(self, timeout: float = 1.0) -> None:
        """Signal stop and wait (bounded) for running tasks."""
        self._stopping.set()
        deadline = time.monotonic() + timeout
        with self._lock:
            pending = list(self._threads)
        for thread in pending:
            thread.join(max(0.0, deadline - time.monotonic()))
