"""Azurite, the local Table and Queue Storage, for ./run.sh and the tests: the pinned npm package, started on ports it
picks itself by default, stopped."""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
from pathlib import Path
from typing import Sequence

from devtools.processes import listening_port, stop_process_group

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


def connection_string(port: int, account: str = ACCOUNT, queue_port: int | None = None) -> str:
    """AzureWebJobsStorage for an account of the Azurite whose Table service is on 127.0.0.1:port (and Queue
    service on queue_port, when given)."""
    queues = f"QueueEndpoint=http://127.0.0.1:{queue_port}/{account};" if queue_port else ""
    return (f"DefaultEndpointsProtocol=http;AccountName={account};AccountKey={KEY};"
            f"TableEndpoint=http://127.0.0.1:{port}/{account};{queues}")


class Azurite:
    """Azurite's Table service on 127.0.0.1:port and its Queue service beside it on queue_port (0: one the system
    gives each, known once started): in memory, or keeping their data in `location`. Besides the development
    account, they serve `accounts` (same key), each with tables and queues of its own."""

    def __init__(self, node: str, port: int = 0, location: Path | None = None, debug_log: Path | None = None,
                 accounts: Sequence[str] = (), queue_port: int = 0) -> None:
        self.node, self.port, self.location, self.debug_log = node, port, location, debug_log
        self.accounts = (ACCOUNT, *accounts)
        self.proc: subprocess.Popen | None = None
        self.queue_proc: subprocess.Popen | None = None
        self.queue_port = queue_port

    @property
    def queue_debug_log(self) -> Path | None:
        return self.debug_log.with_name(self.debug_log.name + ".queue") if self.debug_log else None

    @property
    def connection_string(self) -> str:
        return connection_string(self.port, ACCOUNT, self.queue_port)

    def start(self, timeout: float = 60) -> Azurite:
        storage = ["--location", str(self.location)] if self.location else ["--inMemoryPersistence"]
        logs = [["--debug", str(log)] if log else [] for log in (self.debug_log, self.queue_debug_log)]
        env = {**os.environ, "AZURITE_ACCOUNTS": ";".join(f"{account}:{KEY}" for account in self.accounts)}
        try:  # each service a process of its own, which tells the one port it listens on
            # one "RequestMethod=" line per request each serves in its debug log: how benchmarks count operations
            self.proc = self._service("table", [*storage, *logs[0], "--tablePort", str(self.port)], env)
            self.queue_proc = self._service("queue", [*storage, *logs[1], "--queuePort", str(self.queue_port)], env)
            # Azurite prints the port it was given, not the one it bound: ask the system which one it listens on
            self.port = listening_port(self.proc, timeout)
            self.queue_port = listening_port(self.queue_proc, timeout)
        except (OSError, TimeoutError) as exc:
            self.stop()  # never a service left running without the other
            raise NodeMissing(f"Azurite did not start: {exc}") from None
        return self

    def _service(self, name: str, options: list[str], env: dict[str, str]) -> subprocess.Popen:
        return subprocess.Popen(
            [self.node, str(NODE_MODULES / f"azurite/dist/src/{name}/main.js"), *options, "--disableTelemetry",
             "--skipApiVersionCheck", f"--{name}Host", "127.0.0.1"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
            env=env)

    def stop(self) -> None:
        """Stop Azurite's services and anything they started (each its own process group)."""
        for proc in (self.proc, self.queue_proc):
            if proc is not None:
                stop_process_group(proc)
        self.proc = self.queue_proc = None
