"""1. Cold path: a fresh interpreter imports one function and serves its first request (Twilio = sandbox)."""

from __future__ import annotations

import json
import subprocess
import tempfile
import time
from typing import Any

from bench.common import (BENCH, FLOOR, FUNCTIONS, PYTHON, REST_FUNCTIONS, WEBHOOKS, Table, Variant, app,
                          app_settings, child_env, median, ms, naive, ratio, request_spec, spread_ms)

SECTION = "1. cold path (process start → first response)"
CHILD_TIMEOUT_S = 30.0


def run_child(variant: Variant, request: dict[str, Any], env: dict[str, str]) -> dict[str, Any]:
    """Spawn the runner for variant; time process start -> its answer line (teardown excluded)."""
    job = json.dumps({"path": str(variant.import_path), "module": variant.module, "request": request})
    with tempfile.TemporaryFile() as stderr:
        started = time.perf_counter()
        proc = subprocess.Popen([PYTHON, str(BENCH / "cold_runner.py"), job], stdout=subprocess.PIPE,
                                stderr=stderr, env=env, cwd=str(BENCH.parent))
        try:
            line = proc.stdout.readline()  # type: ignore[union-attr]
            total = time.perf_counter() - started
            proc.wait(CHILD_TIMEOUT_S)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            proc.stdout.close()  # type: ignore[union-attr]
        if not line:
            stderr.seek(0)
            raise RuntimeError(f"{variant.label}: cold runner gave no answer (exit {proc.returncode}):\n"
                               + stderr.read().decode(errors="replace")[-2000:])
    result = json.loads(line)
    result["total_s"] = total
    if result["status"] != variant.expected_status:
        raise RuntimeError(f"{variant.label}: answered {result['status']}, expected {variant.expected_status}")
    return result


def run(table: Table, sandbox: Any, runs: int) -> None:
    variants = [FLOOR] + [app(f) for f in FUNCTIONS] + [naive(f) for f in FUNCTIONS]
    env = child_env(app_settings(sandbox.base_url))
    requests = {v: request_spec(v.function) for v in variants}
    for variant in variants:  # warm-up: bytecode caches written, files in the page cache; not counted
        run_child(variant, requests[variant], env)
    results: dict[Variant, list[dict[str, Any]]] = {v: [] for v in variants}
    for i in range(runs):
        shift = i % len(variants)  # rotate the order so drift and noise hit every variant alike
        for variant in variants[shift:] + variants[:shift]:
            results[variant].append(run_child(variant, requests[variant], env))

    def totals(v: Variant) -> list[float]:
        return [r["total_s"] for r in results[v]]

    def inner(v: Variant) -> list[float]:
        return [r["import_s"] + r["call_s"] for r in results[v]]

    floor_total, floor_inner = median(totals(FLOOR)), median(inner(FLOOR))
    table.add(SECTION, "floor (trivial function)", ms(floor_total), spread_ms(totals(FLOOR)), "1.00×")
    for function in WEBHOOKS + REST_FUNCTIONS:
        for variant in (app(function), naive(function)):
            total = median(totals(variant))
            if variant.kind == "app" and function in WEBHOOKS:
                goal, met = "≤ 1.20× floor", total <= 1.2 * floor_total
            elif variant.kind == "app":
                naive_total = median(totals(naive(function)))
                goal, met = f"≤ naive ({ms(naive_total)})", total <= naive_total
            else:
                goal, met = "", None
            table.add(SECTION, variant.label, ms(total), spread_ms(totals(variant)),
                      f"{ratio(total, floor_total)} floor", goal, met)
    # The part the function itself controls: import + first call, measured inside the child.
    parts = ", ".join(f"{v.label} {ms(median(inner(v)))} ({ratio(median(inner(v)), floor_inner)})"
                      for v in variants[1:])
    table.note(f"Cold path: median of {runs} fresh interpreters per variant, interleaved; the figure is process "
               f"start → first response (Python start-up + imports + first invocation; teardown excluded); "
               f"bytecode caches warm. Import + first call alone, measured inside the child: floor "
               f"{ms(floor_inner)}; {parts}.")
