"""4. Sign-in and quotas: Table operations per send_sms (counted at Azurite), added p50 and cold path, side by side."""

from __future__ import annotations

import json
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import (BENCH, PYTHON, ROOT, Table, app, app_settings, child_env, environment, http_request,
                          median, ms, request_spec, spread)

SECTION = "4. sign-in and quotas (send_sms, Azurite)"
EVERYTHING = ("twilio.rest", "jwt", "azure.data.tables", "azure.identity", "phonenumbers", "requests")
QUOTAS = {"QUOTA_SMS_PER_USER_PER_DAY": "1000000", "QUOTA_PER_DESTINATION_PER_HOUR": "1000000"}


def run(table: Table, sandbox: Any, sends: int, cold_runs: int) -> None:
    from devtools.azurite import Azurite, free_port, npm_ci

    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "azurite.log"
        azurite = Azurite(npm_ci(), free_port(), debug_log=log).start()
        try:
            plain = app_settings(sandbox.base_url)
            signed = {**plain, **QUOTAS, "AUTH_ISSUER": sandbox.idp.issuer, "AUTH_AUDIENCE": sandbox.idp.audience,
                      "AzureWebJobsStorage": azurite.connection_string}
            spec = request_spec("send_sms")
            authorized = {**spec, "headers": {**spec["headers"], "authorization": "Bearer " + sandbox.idp.token()}}
            main = app("send_sms").load_main()

            def send(settings: dict[str, str], request: dict[str, Any]) -> float:
                with environment(settings):
                    started = time.perf_counter()
                    status = main(http_request(request)).status_code
                    seconds = time.perf_counter() - started
                if status != 201:
                    raise RuntimeError(f"send_sms answered {status}")
                return seconds

            send(signed, authorized)  # warm-up: the table is created, the JWKS fetched
            before = operations(log)
            times: dict[str, list[float]] = {"plain": [], "signed": []}
            for _ in range(sends):  # interleaved, so machine noise hits both alike
                times["plain"].append(send(plain, spec))
                times["signed"].append(send(signed, authorized))
            per_send = (operations(log) - before) / sends
            cold_signed, cold_naive = [], []
            for _ in range(cold_runs):  # the same request and network work; only where the imports happen differs
                cold_signed.append(cold_start(child_env(signed), authorized))
                cold_naive.append(cold_start(child_env(signed), authorized, preload=EVERYTHING))
        finally:
            azurite.stop()
    table.add(SECTION, "Table operations per send_sms, 2 quotas (counted at Azurite)", f"{per_send:.1f}", "", "",
              "≤ 2 per quota (4)", per_send <= 4)
    p50_plain, p50_signed = median(times["plain"]), median(times["signed"])
    table.add(SECTION, "send_sms without sign-in or quotas: p50", ms(p50_plain), spread(times["plain"]), "1.00×")
    table.add(SECTION, "send_sms with a bearer token and 2 quotas: p50", ms(p50_signed), spread(times["signed"]),
              f"{p50_signed / p50_plain:.2f}× (+{ms(p50_signed - p50_plain)})")
    table.add(SECTION, "cold path: app send_sms, signed in + 2 quotas", ms(median(cold_signed)), spread(cold_signed),
              f"{median(cold_signed) / median(cold_naive):.2f}× naive", f"≤ naive ({ms(median(cold_naive))})",
              median(cold_signed) <= median(cold_naive))
    table.add(SECTION, "cold path: the same, every module imported at the top (naive)", ms(median(cold_naive)),
              spread(cold_naive), "1.00× naive")
    table.notes.append(f"Sign-in and quotas: {sends} interleaved pairs in one process against Azurite on loopback; "
                       f"operations are the requests Azurite logged; cold path: {cold_runs} fresh interpreters each, "
                       f"interleaved, both fetching the JWKS and creating the table; naive imports "
                       f"{', '.join(EVERYTHING)} at the top.")


def operations(log: Path) -> int:
    return log.read_text(errors="replace").count("RequestMethod=") if log.exists() else 0


def cold_start(env: dict[str, str], spec: dict[str, Any], preload: tuple[str, ...] = ()) -> float:
    """Seconds from a fresh interpreter's start to its first send_sms answer (as bench/cold.py measures it)."""
    job = json.dumps({"path": str(ROOT), "module": "send_sms", "heavy": [], "request": spec, "preload": preload})
    started = time.perf_counter()
    proc = subprocess.run([PYTHON, str(BENCH / "cold_runner.py"), job], capture_output=True, env=env, cwd=ROOT,
                          timeout=60)
    seconds = time.perf_counter() - started
    if proc.returncode != 0 or json.loads(proc.stdout)["status"] != 201:
        raise RuntimeError(f"cold send_sms failed: {proc.stderr.decode(errors='replace')[-1000:]}")
    return seconds
