"""The servers and commands dev tooling and tests start (in process groups of their own): the port one listens on,
whether it runs, stopping its group."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path


def listening_port(process: subprocess.Popen, timeout: float) -> int:
    """The TCP port `process` listens on, once it does: how a server started on port 0 tells the port it bound, with
    no window in which another process could take it (Linux's /proc: the process's socket in LISTEN state).
    TimeoutError when it exits first or does not listen within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while process.poll() is None and time.monotonic() < deadline:
        inodes = set()
        with contextlib.suppress(FileNotFoundError):  # /proc/<pid>/fd: gone if it just exited
            for fd in os.scandir(f"/proc/{process.pid}/fd"):
                with contextlib.suppress(OSError):
                    target = os.readlink(fd.path)
                    if target.startswith("socket:["):
                        inodes.add(target[8:-1])
        for table in ("tcp", "tcp6"):
            with contextlib.suppress(FileNotFoundError):
                for line in Path(f"/proc/{process.pid}/net/{table}").read_text().splitlines()[1:]:
                    fields = line.split()  # sl, local_address (hex ip:port), rem_address, st (0A: LISTEN), ..., inode
                    if fields[3] == "0A" and fields[9] in inodes:
                        return int(fields[1].rsplit(":", 1)[1], 16)
        time.sleep(0.05)
    raise TimeoutError(f"process {process.pid} did not listen on a TCP port within {timeout:.0f} s"
                       + (f" (it exited with code {process.returncode})" if process.returncode is not None else ""))


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
