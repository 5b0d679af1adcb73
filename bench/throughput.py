"""4. Per-instance HTTP throughput: sms_webhook vs the trivial function, both through devtools' LocalHost."""

from __future__ import annotations

import http.client
import itertools
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

from bench.common import (BENCH, FUNCTIONS, PYTHON, ROOT, Table, app_settings, child_env, median, percentile,
                          signature, sms_webhook_form)

SECTION = "4. HTTP throughput per instance (LocalHost)"
POOL = 64  # distinct signed requests cycled through


def make_app_root(directory: Path) -> Path:
    """host.json + the floor function + copies of the real function folders and shared/.

    Copies, not symlinks: LocalHost resolves module paths and refuses folders that resolve outside its root.
    """
    root = directory / "app"
    root.mkdir()
    shutil.copy2(ROOT / "host.json", root / "host.json")
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(BENCH / "floor", root / "floor", ignore=ignore)
    for name in FUNCTIONS + ("shared",):
        shutil.copytree(ROOT / name, root / name, ignore=ignore)
    return root


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process (Linux /proc), None elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError, AttributeError):
        return None


class Host:
    """bench/host_runner.py in its own process."""

    def __init__(self, root: Path, functions: tuple[str, ...], env: dict[str, str]) -> None:
        self.proc = subprocess.Popen([PYTHON, str(BENCH / "host_runner.py"), str(root), *functions],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, text=True)
        line = self.proc.stdout.readline()  # type: ignore[union-attr]
        if not line:
            self.stop()
            raise RuntimeError("LocalHost child did not start")
        self.urls: dict[str, str] = json.loads(line)["urls"]

    def stop(self) -> None:
        try:
            self.proc.stdin.close()  # type: ignore[union-attr]
            self.proc.wait(10)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()


def signed_pool(url: str) -> list[tuple[bytes, dict[str, str]]]:
    """POOL distinct inbound-SMS form bodies, each validly signed for url."""
    pool = []
    for n in range(POOL):
        form = sms_webhook_form(n)
        pool.append((urlencode(form).encode(), {"Content-Type": "application/x-www-form-urlencoded",
                                                "X-Twilio-Signature": signature(url, form)}))
    return pool


def load(url: str, pool: list[tuple[bytes, dict[str, str]]], total: int, concurrency: int,
         time_limit: float) -> dict[str, Any]:
    """POST `total` requests with `concurrency` keep-alive connections (bounded by time_limit seconds)."""
    parts = urlsplit(url)
    host, port, path = parts.hostname, parts.port, parts.path
    counter = itertools.count()
    lock = threading.Lock()
    latencies: list[float] = []
    errors: list[str] = []
    deadline = time.perf_counter() + time_limit

    def worker() -> None:
        conn = http.client.HTTPConnection(host, port, timeout=10)
        mine: list[float] = []
        bad: list[str] = []
        while True:
            with lock:
                i = next(counter)
            if i >= total or time.perf_counter() > deadline:
                break
            body, headers = pool[i % len(pool)]
            started = time.perf_counter()
            try:
                conn.request("POST", path, body=body, headers=headers)
                response = conn.getresponse()
                response.read()
                if response.status != 200:
                    bad.append(f"HTTP {response.status}")
                mine.append(time.perf_counter() - started)
            except (OSError, http.client.HTTPException) as exc:
                bad.append(type(exc).__name__)
                conn.close()
                conn = http.client.HTTPConnection(host, port, timeout=10)
        conn.close()
        with lock:
            latencies.extend(mine)
            errors.extend(bad)

    threads = [threading.Thread(target=worker, name=f"load-{n}", daemon=True) for n in range(concurrency)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(time_limit + 15)
    elapsed = time.perf_counter() - started
    return {"latencies": latencies, "errors": errors, "elapsed": elapsed}


def run(table: Table, total: int, concurrency: int, rounds: int, warmup: int, time_limit: float) -> None:
    env = child_env(app_settings("http://127.0.0.1:1"))  # sms_webhook never calls Twilio's REST API
    names = {"floor": "floor (trivial function)", "sms_webhook": "app sms_webhook"}
    with tempfile.TemporaryDirectory(prefix="bench-host-") as tmp:
        host = Host(make_app_root(Path(tmp)), ("floor", "sms_webhook"), env)
        try:
            pools = {name: signed_pool(url) for name, url in host.urls.items()}
            for name, url in host.urls.items():
                result = load(url, pools[name], warmup, concurrency, time_limit)
                if result["errors"]:
                    raise RuntimeError(f"{name} warm-up errors through LocalHost: {result['errors'][:5]}")
            per_round = max(1, total // rounds)
            results: dict[str, list[dict[str, Any]]] = {name: [] for name in host.urls}
            order = list(host.urls)
            for i in range(rounds):  # ABBA order: drift hits both alike
                for name in (order if i % 2 == 0 else order[::-1]):
                    cpu_before = cpu_seconds(host.proc.pid)
                    result = load(host.urls[name], pools[name], per_round, concurrency, time_limit)
                    cpu_after = cpu_seconds(host.proc.pid)
                    if cpu_before is not None and cpu_after is not None and result["latencies"]:
                        result["server_cpu"] = (cpu_after - cpu_before) / len(result["latencies"])
                    results[name].append(result)
        finally:
            host.stop()
    summary = {}
    for name, parts in results.items():
        latencies = sorted(x for part in parts for x in part["latencies"])
        summary[name] = {"rates": [len(part["latencies"]) / part["elapsed"] for part in parts],
                         "p50": percentile(latencies, 50), "p99": percentile(latencies, 99),
                         "errors": [e for part in parts for e in part["errors"]], "done": len(latencies),
                         "cpu": [part["server_cpu"] for part in parts if "server_cpu" in part]}
    # Each app round is paired with the floor round next to it, so machine noise largely cancels in the ratio.
    paired = [a / f for a, f in zip(summary["sms_webhook"]["rates"], summary["floor"]["rates"])]
    for name in ("floor", "sms_webhook"):
        s = summary[name]
        errors = f"{len(s['errors'])} errors" + (f" ({', '.join(sorted(set(s['errors'])))})" if s["errors"] else "")
        latency = f"p50 {s['p50'] * 1000:.1f} ms, p99 {s['p99'] * 1000:.1f} ms"
        spread = f"{min(s['rates']):,.0f} – {max(s['rates']):,.0f} req/s"
        label = f"{names[name]}: {s['done']:,} req, {errors}, {latency}"
        if name == "floor":
            table.add(SECTION, label, f"{median(s['rates']):,.0f} req/s", spread, "1.00× floor")
        else:
            r = median(paired)
            table.add(SECTION, label, f"{median(s['rates']):,.0f} req/s", spread,
                      f"{r:.2f}× floor (rounds {min(paired):.2f}–{max(paired):.2f})", "≥ 0.80× floor, 0 errors",
                      r >= 0.8 and not s["errors"] and s["done"] >= per_round * rounds)
    if summary["floor"]["cpu"] and summary["sms_webhook"]["cpu"]:
        floor_cpu, app_cpu = median(summary["floor"]["cpu"]), median(summary["sms_webhook"]["cpu"])
        table.add(SECTION, "LocalHost process CPU per request: floor", f"{floor_cpu * 1e6:,.0f} µs",
                  f"{min(summary['floor']['cpu']) * 1e6:,.0f} – {max(summary['floor']['cpu']) * 1e6:,.0f} µs", "")
        table.add(SECTION, "LocalHost process CPU per request: app sms_webhook", f"{app_cpu * 1e6:,.0f} µs",
                  f"{min(summary['sms_webhook']['cpu']) * 1e6:,.0f} – "
                  f"{max(summary['sms_webhook']['cpu']) * 1e6:,.0f} µs",
                  f"{floor_cpu / app_cpu:.2f}× floor's req/CPU-s")
    table.note(f"Throughput: {per_round * rounds:,} POSTs per variant ({rounds} rounds of {per_round:,}, ABBA "
               f"order; median of the per-round rates; ratio = median of adjacent-round ratios) at concurrency "
               f"{concurrency} over keep-alive connections, validly signed (floor: the same bodies, ignored), after "
               f"{warmup} warm-up requests each. LocalHost (werkzeug, threaded) runs in its own process, the "
               f"pure-Python load generator (threads + http.client) in this one: on 2 cores the generator competes "
               f"with the server for CPU, so absolute req/s understate the host and the ratio is the figure. The "
               f"server's CPU time per request (from /proc; steadier on a shared VM) gives the ratio the server "
               f"would reach with a core to itself. Each round is bounded to {time_limit:g} s.")
