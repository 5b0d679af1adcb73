"""5. Bounded failure: send_sms when Twilio accepts the connection and never answers."""

from __future__ import annotations

import threading
import time
from typing import Any

from bench.common import (Table, Variant, app, app_settings, environment, http_request, load_main, median, ms,
                          naive, request_spec, spread_ms)

SECTION = "5. bounded failure (Twilio hangs, timeout 2 s)"
GOAL_S = 2.5


def _answer_within(variant: Variant, bound: float) -> tuple[float | None, Any]:
    """Call main in a daemon thread; (seconds, status) or (None, None) if no answer within bound."""
    main = load_main(variant)
    req = http_request(request_spec("send_sms"))
    outcome: dict[str, Any] = {}

    def call() -> None:
        try:
            outcome["status"] = main(req).status_code
        except Exception as exc:  # noqa: BLE001 - the naive function lets errors escape (the host says 500)
            outcome["status"] = f"raised {type(exc).__name__}"
        outcome["elapsed"] = time.perf_counter() - started

    started = time.perf_counter()
    thread = threading.Thread(target=call, name=f"bench-{variant.label}", daemon=True)
    thread.start()
    thread.join(bound)
    if thread.is_alive():
        return None, thread
    return outcome["elapsed"], outcome["status"]


def run(table: Table, sandbox: Any, app_runs: int, naive_bound: float) -> None:
    app_times: list[float] = []
    statuses: list[Any] = []
    with environment(app_settings(sandbox.base_url, timeout="2")):
        sandbox.inject_fault("hang", times=None)
        try:
            for _ in range(app_runs):
                elapsed, status = _answer_within(app("send_sms"), 10.0)
                if elapsed is None:
                    sandbox.release_hangs()
                    status.join(5)
                    app_times.append(float("inf"))
                    statuses.append("no answer in 10 s")
                else:
                    app_times.append(elapsed)
                    statuses.append(status)
            naive_elapsed, naive_status = _answer_within(naive("send_sms"), naive_bound)
        finally:
            sandbox.clear_faults()
            sandbox.release_hangs()  # ends the naive request still waiting (its socket is closed)
        if naive_elapsed is None:
            naive_status.join(5)
    app_median = median(app_times)
    table.add(SECTION, f"app send_sms (statuses: {', '.join(sorted(set(map(str, statuses))))})", ms(app_median),
              spread_ms(app_times), "", f"≤ {GOAL_S:g} s, 504",
              app_median <= GOAL_S and all(s == 504 for s in statuses))
    if naive_elapsed is None:
        table.add(SECTION, "naive send_sms (no timeout)", f"did not answer within {naive_bound:g} s")
    else:
        table.add(SECTION, f"naive send_sms (answered {naive_status})", ms(naive_elapsed))
    table.note(f"Bounded failure: sandbox fault 'hang' (connection accepted, no reply) on every request, "
               f"TWILIO_HTTP_TIMEOUT_SECONDS=2; {app_runs} app run(s); the naive Client has no timeout and is "
               f"abandoned after {naive_bound:g} s (then the hang is released so it can end).")
