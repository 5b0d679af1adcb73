"""2. Connection reuse: sequential send_sms invocations in one process against a local HTTPS Twilio."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Callable, Iterator

import certifi

from bench.common import (BENCH, PYTHON, Table, app, app_settings, child_env, environment, http_request, median,
                          ms, naive, request_spec, spread)

SECTION = "2. connection reuse (send_sms over HTTPS)"


def make_certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed RSA-2048 certificate for 127.0.0.1, made with the openssl command."""
    openssl = shutil.which("openssl")
    if openssl is None:
        raise RuntimeError("the connection-reuse benchmark needs the `openssl` command to make a test certificate")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "2", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    return cert, key


@contextlib.contextmanager
def tls_twilio(cert: Path, key: Path, names: tuple[str, ...]) -> Iterator[tuple[dict[str, int], Callable]]:
    """Run bench/tls_twilio.py; yield (its ports by name, a function returning connections accepted by name)."""
    with subprocess.Popen([PYTHON, str(BENCH / "tls_twilio.py"), str(cert), str(key), *names], text=True,
                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=child_env({})) as proc:

        def counts() -> dict[str, int]:
            proc.stdin.write("counts\n")
            proc.stdin.flush()
            return json.loads(proc.stdout.readline())

        try:
            yield json.loads(proc.stdout.readline())["ports"], counts
        finally:
            proc.kill()  # it keeps nothing worth a graceful exit


def new_connection(port: int, bundle: Path) -> float:
    """Time one new HTTPS connection made as urllib3 makes it: load the CA bundle, TCP connect, TLS handshake."""
    started = time.perf_counter()
    context = ssl.create_default_context(cafile=str(bundle))
    with context.wrap_socket(socket.create_connection(("127.0.0.1", port)), server_hostname="127.0.0.1"):
        return time.perf_counter() - started


def run(table: Table, invocations: int) -> None:
    times: dict[str, list[float]] = {"app": [], "naive": [], "connection": []}
    mains = {"app": app("send_sms").load_main(), "naive": naive("send_sms").load_main()}
    spec = request_spec("send_sms")
    with tempfile.TemporaryDirectory(prefix="bench-tls-") as tmp:
        cert, key = make_certificate(Path(tmp))
        bundle = Path(tmp) / "bundle.pem"  # certifi's bundle, as in production, plus the test certificate
        bundle.write_bytes(Path(certifi.where()).read_bytes() + b"\n" + cert.read_bytes())
        with tls_twilio(cert, key, ("app", "naive", "reference")) as (ports, counts):
            urls = {name: f"https://127.0.0.1:{port}" for name, port in ports.items()}
            with environment(app_settings(urls["app"], REQUESTS_CA_BUNDLE=str(bundle))):
                for i in range(invocations):
                    for name in ("app", "naive") if i % 2 == 0 else ("naive", "app"):  # interleaved
                        os.environ["TWILIO_API_BASE_URL"] = urls[name]  # the app always sees its own
                        req = http_request(spec)
                        started = time.perf_counter()
                        response = mains[name](req)
                        times[name].append(time.perf_counter() - started)
                        if response.status_code != 201:
                            raise RuntimeError(f"{name} send_sms over HTTPS answered {response.status_code}: "
                                               f"{response.get_body()[:300]!r}")
                    times["connection"].append(new_connection(ports["reference"], bundle))
            connections = counts()
    app_s, naive_s, connection_s = (median(times[name]) for name in ("app", "naive", "connection"))
    saved = naive_s - app_s
    table.add(SECTION, f"app: TCP connections for {invocations} invocations", str(connections["app"]), goal="1",
              met=connections["app"] == 1)
    table.add(SECTION, f"naive: TCP connections for {invocations} invocations", str(connections["naive"]))
    table.add(SECTION, "app send_sms invocation", ms(app_s), spread(times["app"]), f"{app_s / naive_s:.2f}× naive")
    table.add(SECTION, "naive send_sms invocation", ms(naive_s), spread(times["naive"]), "1.00× naive")
    table.add(SECTION, "saved per invocation (naive − app)", ms(saved), "", f"{saved / connection_s:.2f}× new "
              "connection", "≥ 0.8× a new connection", saved >= 0.8 * connection_s)
    table.add(SECTION, "one new HTTPS connection (CA bundle + TCP + TLS)", ms(connection_s),
              spread(times["connection"]))
    table.notes.append(
        f"Connection reuse: {invocations} send_sms invocations per variant in one process, app and naive "
        f"alternating call by call, against a local HTTPS Twilio stand-in (bench/tls_twilio.py, its own process, "
        f"self-signed RSA-2048 certificate) that counts accepted TCP connections. Both trust certifi's CA bundle "
        f"plus the test certificate (REQUESTS_CA_BUNDLE): urllib3 loads the bundle for every new connection, as "
        f"in production. The reference is one such new connection, timed after each pair of calls. On loopback "
        f"a handshake costs only CPU; over a real network it also costs 1–2 round trips to api.twilio.com.")
