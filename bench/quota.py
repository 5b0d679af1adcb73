"""5. Quotas under load: 48 send_sms at once with the app-wide quota, and with three, against none; sustained sends
per second through two local hosts; Table operations per charged quota. BENCH_QUOTA_BASE=<git revision> measures
that revision's code side by side (before/after)."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Iterator

from bench.common import (PYTHON, ROOT, Table, app, app_settings, child_env, environment, http_request, median, ms,
                          request_spec, spread)
from bench.state import Operations

SECTION = "5. quotas under load (send_sms, Azurite, sign-in off)"
LIMIT = "1000000"  # never reached: what is measured is the counting, not the refusals
# variant -> the quotas it sets; sign-in is off, so the per-user counter is the one `anonymous` bucket
VARIANTS = {
    "none": {},
    "app-wide quota": {"QUOTA_SMS_PER_DAY": LIMIT},
    "three quotas": {"QUOTA_SMS_PER_DAY": LIMIT, "QUOTA_SMS_PER_USER_PER_DAY": LIMIT,
                     "QUOTA_PER_DESTINATION_PER_HOUR": LIMIT},
}
GOALS = {"app-wide quota": 2.0, "three quotas": 3.0}  # × the time with no quota
CONCURRENT = 48


def destination(n: int) -> str:
    """A different number for each send of a burst, as OTPs to many users are (+1 415 555 01xx)."""
    return f"+1415555{100 + n % 100:04d}"


# One process of the app: imports send_sms from the given root, then for each variant two sends to warm up
# (tables, connections), the same number of sends one at a time (no contention), then at once; prints both times.
BURST = f"""
import json, os, sys, time
from concurrent.futures import ThreadPoolExecutor
job = json.loads(sys.argv[1])
sys.path.insert(0, job["root"])
import azure.functions as func
import send_sms

def send(n):
    body = json.dumps({{"to": "+1415555" + format(100 + n % 100, "04d"), "body": "Your code is 4271"}}).encode()
    request = func.HttpRequest("POST", "http://127.0.0.1:1/api/send_sms", body=body,
                               headers={{"content-type": "application/json"}})
    return send_sms.main(request).status_code

seconds = {{}}
with ThreadPoolExecutor(max_workers={CONCURRENT}) as pool:
    for name, quotas in job["variants"]:
        for setting in {sorted(VARIANTS["three quotas"])!r}:
            os.environ.pop(setting, None)
        os.environ.update(quotas)
        statuses = [send(n) for n in range(2)]
        started = time.perf_counter()
        statuses += [send(n) for n in range({CONCURRENT})]
        middle = time.perf_counter()
        statuses += list(pool.map(send, range({CONCURRENT})))
        seconds[name] = (time.perf_counter() - middle, middle - started)
        if set(statuses) != {{201}}:
            sys.exit(f"{{name}}: answered {{sorted(set(statuses))}}")
print(json.dumps(seconds))
"""


def run(table: Table, sandbox: Any, rounds: int, sustain_seconds: float) -> None:
    from devtools.azurite import Azurite, npm_ci

    with tempfile.TemporaryDirectory() as tmp:
        codes = {"this code": ROOT}
        base = os.environ.get("BENCH_QUOTA_BASE")
        if base:
            codes[f"before ({base})"] = _extract(base, Path(tmp) / "base")
        log = Path(tmp) / "azurite.log"
        azurite = Azurite(npm_ci(), debug_log=log).start()  # its log counts the operations
        try:
            operations = _operations(sandbox, azurite.connection_string, Operations(log), sends=20)
            contended = _contended(codes, {**app_settings(sandbox.base_url),
                                           "AzureWebJobsStorage": azurite.connection_string}, Operations(log))
        finally:
            azurite.stop()
        azurite = Azurite(npm_ci()).start()  # no debug log: it would slow every variant down
        try:
            settings = {**app_settings(sandbox.base_url), "AzureWebJobsStorage": azurite.connection_string}
            bursts = _bursts(codes, settings, rounds)
            rates = _sustained(codes, settings, rounds, sustain_seconds)
        finally:
            azurite.stop()
    for code in codes:
        for mode, index in (("at once", 0), ("one at a time (no contention)", 1)):
            times = {variant: [burst[index] for burst in bursts[code][variant]] for variant in VARIANTS}
            none = median(times["none"])
            for variant in VARIANTS:
                value = median(times[variant])
                goal = GOALS.get(variant) if code == "this code" and index == 0 else None
                table.add(SECTION, f"{code}: {CONCURRENT} sends {mode}, {variant}", ms(value), spread(times[variant]),
                          f"{value / none:.2f}× none", f"≤ {goal:.0f}× none" if goal else "",
                          value / none <= goal if goal else None)
    for code in codes:
        none = median(rates[code]["none"])
        for variant in ("none", "app-wide quota"):
            value = median(rates[code][variant])
            low, high = min(rates[code][variant]), max(rates[code][variant])
            table.add(SECTION, f"{code}: sustained sends/s, two local hosts, {variant}", f"{value:.0f}/s",
                      f"{low:.0f} – {high:.0f}/s", f"{value / none:.2f}× none")
    for variant, per_quota in operations.items():
        table.add(SECTION, f"this code: Table operations per charged quota, {variant}", f"{per_quota:.2f}", "", "",
                  "≤ 2", per_quota <= 2.05)
    for code, per_charge in contended.items():
        table.add(SECTION, f"{code}: Table operations per charge, app-wide quota, two local hosts at once",
                  f"{per_charge:.2f}", "", "", "≤ 2" if code == "this code" else "",
                  per_charge <= 2.05 if code == "this code" else None)
    table.notes.append(
        f"Quotas under load: sign-in off (every caller `anonymous`), limits of {LIMIT} (never reached), each send "
        f"to another number; {rounds} rounds, each a fresh process per code measuring every variant (rotated), "
        f"{CONCURRENT} send_sms one at a time then at once, after 2 warm-up sends; sustained: two "
        f"`devtools.local_host` processes per variant, {sustain_seconds:.0f} s of 16 client threads alternating "
        f"between them, {max(1, rounds // 2)} round(s); operations: the requests "
        f"Azurite logged over 20 sequential sends, less those of a send with no quota, per quota; two local hosts at "
        f"once: the same over 3 s of the 16 client threads, after 1 s of warm-up.")


def _extract(revision: str, folder: Path) -> Path:
    """The app as it was at `revision` (git archive: nothing checked out, no worktree left behind)."""
    folder.mkdir()
    archive = subprocess.run(["git", "archive", revision], cwd=ROOT, capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    return folder


def _operations(sandbox: Any, connection_string: str, counter: Operations, sends: int) -> dict[str, float]:
    """Table operations per charged quota, from Azurite's log: (a send's operations - a plain send's) / quotas."""
    main = app("send_sms").load_main()
    spec = request_spec("send_sms")
    base = {**app_settings(sandbox.base_url), "AzureWebJobsStorage": connection_string}
    per_send: dict[str, float] = {}
    for variant, quotas in VARIANTS.items():
        with environment({**base, **quotas}):
            statuses = [main(http_request(spec)).status_code]  # tables created, rows there
            time.sleep(0.5)
            counter.mark()
            statuses += [main(http_request(spec)).status_code for _ in range(sends)]
            time.sleep(0.5)  # Azurite writes its log a little late: let the last send's lines land
            per_send[variant] = counter.since_mark() / sends
        if set(statuses) != {201}:
            raise RuntimeError(f"send_sms ({variant}) answered {sorted(set(statuses))}")
    return {variant: (per_send[variant] - per_send["none"]) / len(quotas)
            for variant, quotas in VARIANTS.items() if quotas}


def _bursts(codes: dict[str, Path], settings: dict[str, str],
            rounds: int) -> dict[str, dict[str, list[tuple[float, float]]]]:
    """code -> variant -> seconds of each burst: (at once, one at a time)."""
    results: dict[str, dict[str, list[tuple[float, float]]]] = {code: {v: [] for v in VARIANTS} for code in codes}
    names = list(VARIANTS)
    for round_ in range(rounds):
        order = names[round_ % len(names):] + names[:round_ % len(names)]  # noise hits every variant alike
        for code, root in codes.items():
            job = json.dumps({"root": str(root), "variants": [(name, VARIANTS[name]) for name in order]})
            done = subprocess.run([PYTHON, "-c", BURST, job], cwd=root, env=child_env(settings), capture_output=True,
                                  text=True, timeout=300)
            if done.returncode != 0:
                raise RuntimeError(f"burst ({code}) failed: {done.stderr[-1500:]}")
            for name, seconds in json.loads(done.stdout).items():
                results[code][name].append(seconds)
    return results


def _sustained(codes: dict[str, Path], settings: dict[str, str], rounds: int,
               seconds: float) -> dict[str, dict[str, list[float]]]:
    """code -> variant -> sends per second through two local-host processes, one figure per round."""
    results: dict[str, dict[str, list[float]]] = {code: {"none": [], "app-wide quota": []} for code in codes}
    for _ in range(max(1, rounds // 2)):
        for code, root in codes.items():
            for variant in results[code]:
                with _two_hosts(root, {**settings, **VARIANTS[variant]}) as urls:
                    results[code][variant].append(_send_for(urls, seconds)[0])
    return results


def _contended(codes: dict[str, Path], settings: dict[str, str], counter: Operations) -> dict[str, float]:
    """code -> Table operations per charge of the app-wide quota while two local hosts charge it at once (16 client
    threads): the operations Azurite logged per send, less those of a send with no quota."""
    per_send: dict[tuple[str, str], float] = {}
    for code, root in codes.items():
        for variant in ("none", "app-wide quota"):
            with _two_hosts(root, {**settings, **VARIANTS[variant]}) as urls:
                _send_for(urls, 1.0)  # each process has read the counter once
                time.sleep(0.5)
                counter.mark()
                sent = _send_for(urls, 3.0)[1]
                time.sleep(0.5)  # Azurite writes its log a little late
                per_send[code, variant] = counter.since_mark() / sent
    return {code: per_send[code, "app-wide quota"] - per_send[code, "none"] for code in codes}


@contextlib.contextmanager
def _two_hosts(root: Path, settings: dict[str, str]) -> Iterator[list[str]]:
    """Two `devtools.local_host` processes of the app at root (two instances of one app): their send_sms URLs."""
    from devtools.processes import listening_port

    hosts = [subprocess.Popen([PYTHON, "-m", "devtools.local_host", "--root", str(root), "--port", "0",
                               "--function-key", ""], cwd=root, env=child_env(settings),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for _ in range(2)]
    try:
        yield [f"http://127.0.0.1:{listening_port(host, 30)}/api/send_sms" for host in hosts]  # serving
    finally:
        for host in hosts:
            host.terminate()
            host.wait(timeout=10)


def _send_for(urls: list[str], seconds: float) -> tuple[float, int]:
    """Sends per second answered 201, and how many, from 16 threads (8 per host) sending one after another for
    `seconds`."""
    import requests

    sent: list[int] = []
    deadline = time.perf_counter() + seconds
    errors: list[int] = []

    def client(url: str, n: int) -> None:
        with requests.Session() as session:
            while time.perf_counter() < deadline:
                response = session.post(url, json={"to": destination(n), "body": "Your code is 4271"}, timeout=30)
                (sent if response.status_code == 201 else errors).append(response.status_code)
                n += 16

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(client, [urls[n % 2] for n in range(16)], range(16)))
    elapsed = time.perf_counter() - started
    if errors:
        raise RuntimeError(f"sustained sends answered {sorted(set(errors))}")
    return len(sent) / elapsed, len(sent)
