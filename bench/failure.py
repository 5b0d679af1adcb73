"""3. Bounded failure: send_sms when Twilio accepts the connection and never answers."""

from __future__ import annotations

import threading
import time
from typing import Any

from bench.common import (Table, Variant, app, app_settings, environment, http_request, median, ms, naive,
                          request_spec, spread)

SECTION = "3. bounded failure (Twilio hangs, timeout 2 s)"
GOAL_S = 2.5
APP_BOUND_S = 10.0


def answer_within(variant: Variant, bound: float) -> tuple[float | None, Any, threading.Thread]:
    """Call variant's main in a daemon thread: (seconds, status, thread); seconds None if no answer in bound."""
    main = variant.load_main()
    req = http_request(request_spec("send_sms"))
    outcome: dict[str, Any] = {}

    def call() -> None:
        try:
            outcome["status"] = main(req).status_code
        except Exception as exc:  # noqa: BLE001 - the naive function lets errors escape (the host says 500)
            outcome["status"] = f"raised {type(exc).__name__}"
        outcome["seconds"] = time.perf_counter() - started

    started = time.perf_counter()
    thread = threading.Thread(target=call, name=f"bench-{variant.label}", daemon=True)
    thread.start()
    thread.join(bound)
    return outcome.get("seconds"), outcome.get("status", f"no answer in {bound:g} s"), thread


def run(table: Table, sandbox: Any, app_runs: int, naive_bound: float) -> None:
    app_times: list[float] = []
    statuses: set[Any] = set()
    with environment(app_settings(sandbox.base_url, timeout="2")):
        sandbox.inject_fault("hang", times=None)
        try:
            for _ in range(app_runs):
                seconds, status, thread = answer_within(app("send_sms"), APP_BOUND_S)
                app_times.append(float("inf") if seconds is None else seconds)
                statuses.add(status)
                if seconds is None:
                    sandbox.release_hangs()
                    thread.join(5)
            naive_seconds, naive_status, naive_thread = answer_within(naive("send_sms"), naive_bound)
        finally:
            sandbox.clear_faults()
            sandbox.release_hangs()  # ends the naive request still waiting (its socket is closed)
        naive_thread.join(5)
    app_median = median(app_times)
    table.add(SECTION, f"app send_sms (answered {', '.join(sorted(map(str, statuses)))})", ms(app_median),
              spread(app_times), "", f"≤ {GOAL_S:g} s, 504", app_median <= GOAL_S and statuses == {504})
    if naive_seconds is None:
        table.add(SECTION, "naive send_sms (no timeout)", f"no answer within {naive_bound:g} s")
    else:
        table.add(SECTION, f"naive send_sms (answered {naive_status})", ms(naive_seconds))
    table.notes.append(
        f"Bounded failure: the sandbox accepts every connection and never replies; TWILIO_HTTP_TIMEOUT_SECONDS=2; "
        f"{app_runs} app run(s). The naive Client has no timeout and is abandoned after {naive_bound:g} s (then "
        f"the hang is released so its thread can end).")
