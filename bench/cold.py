"""1. Cold path: a fresh interpreter imports one function and serves its first request (Twilio = sandbox)."""

from __future__ import annotations

import json
import subprocess
import time
from typing import Any

from bench.common import (BENCH, FLOOR, FUNCTIONS, PYTHON, ROOT, WEBHOOKS, Table, Variant, app, app_settings,
                          child_env, median, ms, naive, request_spec, spread)

SECTION = "1. cold path (process start → first response)"
HEAVY_SECTION = "1. cold path: heavy modules loaded by then"
FORBIDDEN = ("twilio.rest", "jwt", "azure.data.tables", "azure.identity")  # never on a webhook's cold path
HEAVY = FORBIDDEN + ("aiohttp", "requests", "phonenumbers")
CHILD_TIMEOUT_S = 30.0


def run_child(variant: Variant, env: dict[str, str], request: dict[str, Any] | None = None,
              preload: tuple[str, ...] = ()) -> dict[str, Any]:
    """Run cold_runner.py for variant (its request_spec unless `request`; `preload` imported first); its report
    plus total_s, the time from process start to exit."""
    job = json.dumps({"path": str(variant.import_path), "module": variant.function, "heavy": HEAVY,
                      "request": request or request_spec(variant.function), "preload": preload})
    started = time.perf_counter()
    proc = subprocess.run([PYTHON, str(BENCH / "cold_runner.py"), job], capture_output=True, env=env, cwd=ROOT,
                          timeout=CHILD_TIMEOUT_S)
    total_s = time.perf_counter() - started
    if proc.returncode != 0 or not proc.stdout:
        raise RuntimeError(f"{variant.label}: cold runner failed (exit {proc.returncode}):\n"
                           + proc.stderr.decode(errors="replace")[-2000:])
    result = json.loads(proc.stdout)
    if result["status"] != variant.expected_status:
        raise RuntimeError(f"{variant.label}: answered {result['status']}, expected {variant.expected_status}")
    return {**result, "total_s": total_s}


def run(table: Table, sandbox: Any, runs: int) -> None:
    variants = [FLOOR] + [v for f in FUNCTIONS for v in (app(f), naive(f))]
    env = child_env(app_settings(sandbox.base_url))
    for variant in variants:  # warm-up: bytecode caches written, files in the page cache; not counted
        run_child(variant, env)
    results: dict[Variant, list[dict[str, Any]]] = {v: [] for v in variants}
    for i in range(runs):
        shift = i % len(variants)  # rotate the order so drift and noise hit every variant alike
        for variant in variants[shift:] + variants[:shift]:
            results[variant].append(run_child(variant, env))

    def total(v: Variant) -> list[float]:
        return [r["total_s"] for r in results[v]]

    def inner(v: Variant) -> float:
        return median([r["import_s"] + r["call_s"] for r in results[v]])

    floor = median(total(FLOOR))
    table.add(SECTION, "floor (trivial function)", ms(floor), spread(total(FLOOR)), "1.00× floor")
    for variant in variants[1:]:
        value = median(total(variant))
        goal, met = "", None
        if variant.kind == "app" and variant.function in WEBHOOKS:
            goal, met = "≤ 1.20× floor", value <= 1.2 * floor
        elif variant.kind == "app":
            naive_value = median(total(naive(variant.function)))
            goal, met = f"≤ naive ({ms(naive_value)})", value <= naive_value
        table.add(SECTION, variant.label, ms(value), spread(total(variant)), f"{value / floor:.2f}× floor", goal, met)
    for variant in variants[1:]:
        loaded = sorted({name for r in results[variant] for name in r["heavy"]})
        goal, met = "", None
        if variant.kind == "app" and variant.function in WEBHOOKS:
            goal, met = "none of " + ", ".join(FORBIDDEN), not set(loaded) & set(FORBIDDEN)
        table.add(HEAVY_SECTION, variant.label, ", ".join(loaded) or "none", goal=goal, met=met)
    parts = ", ".join(f"{v.label} {ms(inner(v))}" for v in variants)
    table.notes.append(
        f"Cold path: median of {runs} fresh interpreters per variant, the order rotated each round; the figure is "
        f"process start → first response (Python start-up + imports + first invocation; interpreter teardown "
        f"skipped); bytecode caches warm. Import + first call alone, measured inside the child: {parts}. Heavy "
        f"modules: which of {', '.join(HEAVY)} are in sys.modules after the first response.")
