"""Azurite, the local Table and Queue Storage, for ./run.sh and the tests: the pinned npm package, started, stopped."""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Sequence

from devtools.processes import stop_process_group

ROOT = Path(__file__).resolve().parent.parent
NODE_MODULES = ROOT / "node_modules"
LOCK_STAMP = NODE_MODULES / ".package-lock.sha256"  # inside node_modules: `npm ci` deletes it with the rest
ACCOUNT = "devstoreaccount1"  # Azurite's well-known development account and key (public, not a secret)
KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


class NodeMissing(RuntimeError):
    """node or npm is not installed, or `npm ci` failed."""


def npm_ci() -> str:
    """`npm ci` of package-lock.json unless node_modules was installed from this very lock; returns node's path."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        raise NodeMissing("Node.js 20+ with npm is not installed")
    digest = hashlib.sha256((ROOT / "package-lock.json").read_bytes()).hexdigest()
    with open(ROOT / ".npm-ci.lock", "w") as lock:  # parallel test workers: one installs, the others wait
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (LOCK_STAMP.is_file() and LOCK_STAMP.read_text() == digest):
            done = subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=ROOT, stdin=subprocess.DEVNULL,
                                  capture_output=True, text=True, timeout=900)
            if done.returncode != 0:
                raise NodeMissing(f"npm ci failed ({done.returncode}): {(done.stdout + done.stderr)[-2000:]}")
            LOCK_STAMP.write_text(digest)
    return node


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def connection_string(port: int, account: str = ACCOUNT, queue_port: int | None = None) -> str:
    """AzureWebJobsStorage for an account of the Azurite whose Table service is on 127.0.0.1:port (and Queue
    service on queue_port, when given)."""
    queues = f"QueueEndpoint=http://127.0.0.1:{queue_port}/{account};" if queue_port else ""
    return (f"DefaultEndpointsProtocol=http;AccountName={account};AccountKey={KEY};"
            f"TableEndpoint=http://127.0.0.1:{port}/{account};{queues}")


class Azurite:
    """Azurite's Table service on 127.0.0.1:port and its Queue service beside it (on queue_port): in memory, or
    keeping its data in `location`. Besides the development account, it serves `accounts` (same key), each with
    tables and queues of its own."""

    def __init__(self, node: str, port: int, location: Path | None = None, debug_log: Path | None = None,
                 accounts: Sequence[str] = ()) -> None:
        self.node, self.port, self.location, self.debug_log = node, port, location, debug_log
        self.queue_port = free_port()
        self.accounts = (ACCOUNT, *accounts)
        self.proc: subprocess.Popen | None = None
        self.connection_string = connection_string(port, ACCOUNT, self.queue_port)

    def start(self, timeout: float = 60) -> Azurite:
        storage = ["--location", str(self.location)] if self.location else ["--inMemoryPersistence"]
        if self.debug_log:  # one "RequestMethod=" line per request it serves: how benchmarks count operations
            storage += ["--debug", str(self.debug_log)]
        self.proc = subprocess.Popen(
            [self.node, str(NODE_MODULES / "azurite/dist/src/azurite.js"), *storage, "--disableTelemetry",
             "--skipApiVersionCheck", "--tablePort", str(self.port), "--queuePort", str(self.queue_port),
             "--blobPort", str(free_port())],  # the blob service starts too: nothing uses it
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
            env={**os.environ, "AZURITE_ACCOUNTS": ";".join(f"{account}:{KEY}" for account in self.accounts)})
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None and time.monotonic() < deadline:
            try:
                for port in (self.port, self.queue_port):
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise NodeMissing(f"Azurite did not start on port {self.port}")

    def stop(self) -> None:
        """Stop Azurite and anything it started (its own process group)."""
        if self.proc is not None:
            stop_process_group(self.proc)
            self.proc = None
