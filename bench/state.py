"""4. State: Table operations per send_sms (counted at Azurite) and the added p50 of sign-in, quotas and an
Idempotency-Key, side by side; the cold path with all of it vs the same code importing everything at the top."""

from __future__ import annotations

import itertools
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.cold import run_child
from bench.common import (Table, app, app_settings, child_env, environment, http_request, median, ms, request_spec,
                          spread)

SECTION = "4. sign-in, quotas, Idempotency-Key (send_sms, Azurite)"
EVERYTHING = ("twilio.rest", "jwt", "azure.data.tables", "azure.identity", "phonenumbers", "requests")
QUOTAS = {"QUOTA_SMS_PER_USER_PER_DAY": "1000000", "QUOTA_PER_DESTINATION_PER_HOUR": "1000000"}
# variant: (what it adds, goal for the Table operations of one send, the limit)
VARIANTS = {
    "plain": ("no sign-in, no quota, no key (the send's record only)", "1", 1),
    "quotas": ("a bearer token and 2 quotas", "≤ 2 per quota + the record (5)", 5),
    "key": ("an Idempotency-Key (a new one each send)", "≤ 4 (in flight, create attempted, outcome, record)", 4),
}


def run(table: Table, sandbox: Any, sends: int, cold_runs: int) -> None:
    from devtools.azurite import Azurite, npm_ci

    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "azurite.log"
        azurite = Azurite(npm_ci(), debug_log=log).start()
        try:
            base = {**app_settings(sandbox.base_url), "AzureWebJobsStorage": azurite.connection_string}
            settings = {"plain": base, "key": base,
                        "quotas": {**base, **QUOTAS, "AUTH_ISSUER": sandbox.idp.issuer,
                                   "AUTH_AUDIENCE": sandbox.idp.audience}}
            spec = request_spec("send_sms")
            token = {"authorization": "Bearer " + sandbox.idp.token()}
            keys = (f"bench-{n}" for n in itertools.count())
            headers = {"plain": lambda: {}, "quotas": lambda: token, "key": lambda: {"idempotency-key": next(keys)}}
            main = app("send_sms").load_main()
            counter = Operations(log)

            def send(variant: str) -> tuple[float, int]:
                request = {**spec, "headers": {**spec["headers"], **headers[variant]()}}
                with environment(settings[variant]):
                    counter.mark()
                    started = time.perf_counter()
                    status = main(http_request(request)).status_code
                    seconds = time.perf_counter() - started
                if status != 201:
                    raise RuntimeError(f"send_sms ({variant}) answered {status}")
                return seconds, counter.since_mark()

            for variant in VARIANTS:  # warm-up: tables created, the JWKS fetched
                send(variant)
            times: dict[str, list[float]] = {v: [] for v in VARIANTS}
            operations: dict[str, list[int]] = {v: [] for v in VARIANTS}
            for _ in range(sends):  # interleaved, so machine noise hits every variant alike
                for variant in VARIANTS:
                    seconds, ops = send(variant)
                    times[variant].append(seconds)
                    operations[variant].append(ops)
            authorized = {**spec, "headers": {**spec["headers"], **token}}
            cold_app, cold_naive = [], []
            for _ in range(cold_runs):  # the same request and network work; only where the imports happen differs
                cold_app.append(run_child(app("send_sms"), child_env(settings["quotas"]), authorized)["total_s"])
                cold_naive.append(run_child(app("send_sms"), child_env(settings["quotas"]), authorized,
                                            preload=EVERYTHING)["total_s"])
        finally:
            azurite.stop()
    plain = median(times["plain"])
    for variant, (adds, goal, limit) in VARIANTS.items():
        # Azurite writes its log a little late now and then: a send's line can land in the next send's count, so
        # the figure is the total over every send divided by their number.
        mean = sum(operations[variant]) / len(operations[variant])
        table.add(SECTION, f"send_sms with {adds}: Table operations per send", f"{mean:.2f}", "", "", goal,
                  mean <= limit + 0.05)
        value = median(times[variant])
        table.add(SECTION, f"send_sms with {adds}: p50", ms(value), spread(times[variant]),
                  f"{value / plain:.2f}× plain (+{ms(value - plain)})")
    table.add(SECTION, "cold path: app send_sms, signed in + 2 quotas", ms(median(cold_app)), spread(cold_app),
              f"{median(cold_app) / median(cold_naive):.2f}× naive", f"≤ naive ({ms(median(cold_naive))})",
              median(cold_app) <= median(cold_naive))
    table.add(SECTION, "cold path: the same, every module imported at the top (naive)", ms(median(cold_naive)),
              spread(cold_naive), "1.00× naive")
    table.notes.append(f"State: {sends} interleaved rounds of the three variants in one process against Azurite "
                       f"on loopback; operations are the requests Azurite logged during each send; cold path: "
                       f"{cold_runs} fresh interpreters each, interleaved, both fetching the JWKS and creating the "
                       f"tables; naive imports {', '.join(EVERYTHING)} at the top.")


class Operations:
    """Counts the requests Azurite logs (one `RequestMethod=` line each, in each of its services' logs) since the
    last mark()."""

    def __init__(self, *logs: Path) -> None:
        self.logs, self.offsets = logs, [0] * len(logs)

    def mark(self) -> None:
        self.offsets = [log.stat().st_size if log.exists() else 0 for log in self.logs]

    def since_mark(self) -> int:
        count = 0
        for log, offset in zip(self.logs, self.offsets):
            with open(log, "rb") as handle:
                handle.seek(offset)
                count += handle.read().count(b"RequestMethod=")
        return count
