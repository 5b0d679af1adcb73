"""Stopping a process group: the servers and commands dev tooling and tests start in groups of their own."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path


def alive(pid: int) -> bool:
    """Whether the process runs (Linux's /proc): not gone, and not a zombie; reaped if this process started it."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def stop_process_group(process: subprocess.Popen | int, timeout: float = 10) -> None:
    """Stop the process group that `process` (a Popen, polled through Popen so its returncode stays known; or a pid)
    leads: SIGTERM to the group, then SIGKILL to whatever is left of it (func's workers, say) once the leader has
    exited or `timeout` seconds have passed."""
    pid = process if isinstance(process, int) else process.pid
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return  # nothing of the group is left
        deadline = time.monotonic() + timeout
        while (alive(pid) if pid is process else process.poll() is None) and time.monotonic() < deadline:
            time.sleep(0.05)
