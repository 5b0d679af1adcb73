"""Stopping a process group: the servers and commands dev tooling and tests start in groups of their own."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path


def alive(pid: int) -> bool:
    """Whether the process runs: not gone, and not a zombie (exited, only not reaped yet). Reads Linux's /proc."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _running(process: subprocess.Popen | int) -> bool:
    if isinstance(process, subprocess.Popen):
        return process.poll() is None  # through Popen, so that its returncode stays known
    with contextlib.suppress(ChildProcessError):
        os.waitpid(process, os.WNOHANG)  # reaps it when this process started it
    return alive(process)


def stop_process_group(process: subprocess.Popen | int, timeout: float = 10) -> None:
    """Stop the process group that `process` (a Popen, or a pid) leads: SIGTERM to the group, then, once the leader
    has exited or `timeout` seconds have passed, SIGKILL to whatever is left of it (func's workers, for one)."""
    pid = process if isinstance(process, int) else process.pid
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return  # nothing of the group is left
        deadline = time.monotonic() + timeout
        while _running(process) and time.monotonic() < deadline:
            time.sleep(0.05)
