"""2. Connection reuse: sequential send_sms invocations in one process against a local HTTPS Twilio."""

from __future__ import annotations

import json
import os
import sys
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import (BENCH, PYTHON, Table, app, app_settings, child_env, environment, http_request,
                          load_main, median, ms, naive, request_spec, spread_ms)

SECTION = "2. connection reuse (send_sms over HTTPS)"


def make_certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed RSA-2048 certificate for 127.0.0.1 (cryptography if installed, else the openssl CLI)."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    try:
        _make_with_cryptography(cert, key)
    except ImportError:
        openssl = shutil.which("openssl")
        if openssl is None:
            raise RuntimeError("need the `cryptography` package or the `openssl` command to make a test "
                               "certificate") from None
        subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                        str(cert), "-days", "2", "-subj", "/CN=127.0.0.1",
                        "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
                       check=True, capture_output=True)
    return cert, key


def _make_with_cryptography(cert_path: Path, key_path: Path) -> None:
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                                        x509.DNSName("localhost")]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


class TLSTwilio:
    """bench/tls_twilio.py in a child process: one counting HTTPS listener per name."""

    def __init__(self, cert: Path, key: Path, names: tuple[str, ...]) -> None:
        self.proc = subprocess.Popen([PYTHON, str(BENCH / "tls_twilio.py"), str(cert), str(key), *names],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                     env=child_env({}))
        self.ports: dict[str, int] = json.loads(self.proc.stdout.readline())["ports"]  # type: ignore[union-attr]

    def command(self, text: str) -> dict[str, int]:
        self.proc.stdin.write(text + "\n")  # type: ignore[union-attr]
        self.proc.stdin.flush()  # type: ignore[union-attr]
        return json.loads(self.proc.stdout.readline())  # type: ignore[union-attr]

    def stop(self) -> None:
        try:
            self.proc.stdin.close()  # type: ignore[union-attr]
            self.proc.wait(5)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()


def handshake_time(port: int, context: ssl.SSLContext) -> tuple[float, float]:
    """(TCP connect, TCP connect + TLS handshake) times of fresh connections to 127.0.0.1:port."""
    started = time.perf_counter()
    sock = socket.create_connection(("127.0.0.1", port))
    connect = time.perf_counter() - started
    sock.close()
    started = time.perf_counter()
    sock = socket.create_connection(("127.0.0.1", port))
    tls = context.wrap_socket(sock, server_hostname="127.0.0.1")  # handshake on connect
    full = time.perf_counter() - started
    tls.close()
    return connect, full


def run(table: Table, invocations: int, bundle_invocations: int) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-tls-") as tmp:
        cert, key = make_certificate(Path(tmp))
        big_bundle = Path(tmp) / "certifi-plus-test.pem"
        import certifi

        big_bundle.write_bytes(Path(certifi.where()).read_bytes() + b"\n" + cert.read_bytes())
        server = TLSTwilio(cert, key, ("app", "naive", "handshake"))
        try:
            main = _measure(server, cert, cert, invocations)
            server.command("reset")
            big = _measure(server, cert, big_bundle, bundle_invocations) if bundle_invocations else None
        finally:
            server.stop()
    _report(table, main, big, invocations, bundle_invocations)


def _measure(server: TLSTwilio, cert: Path, bundle: Path, invocations: int) -> dict[str, Any]:
    """Interleaved app / naive send_sms invocations (and one timed handshake per round) with this CA bundle."""
    urls = {name: f"https://127.0.0.1:{port}" for name, port in server.ports.items()}
    variants = {"app": app("send_sms"), "naive": naive("send_sms")}
    times: dict[str, list[float]] = {"app": [], "naive": [], "connect": [], "handshake": []}
    context = ssl.create_default_context(cafile=str(cert))
    with environment(app_settings(urls["app"], REQUESTS_CA_BUNDLE=str(bundle))):
        mains = {name: load_main(v) for name, v in variants.items()}
        spec = request_spec("send_sms")
        server.command("reset")
        for i in range(invocations):
            for name in (("app", "naive") if i % 2 == 0 else ("naive", "app")):  # interleaved
                os.environ["TWILIO_API_BASE_URL"] = urls[name]  # the app's stays the same: its client is kept
                req = http_request(spec)
                started = time.perf_counter()
                response = mains[name](req)
                times[name].append(time.perf_counter() - started)
                if response.status_code != 201:
                    raise RuntimeError(f"{name} send_sms over HTTPS answered {response.status_code}: "
                                       f"{response.get_body()[:300]!r}")
            for _ in range(3):  # handshakes are short and noisy: three per round
                connect, handshake = handshake_time(server.ports["handshake"], context)
                times["connect"].append(connect)
                times["handshake"].append(handshake)
        counts = server.command("counts")
    shared_client = sys.modules.get("shared.twilio_client")
    if shared_client is not None:
        shared_client._cached = None  # type: ignore[attr-defined]  # next measurement starts from a new client
    return {"times": times, "counts": counts}


def _report(table: Table, main: dict[str, Any], big: dict[str, Any] | None, invocations: int,
            bundle_invocations: int) -> None:
    times, counts = main["times"], main["counts"]
    app_median, naive_median = median(times["app"]), median(times["naive"])
    tls_median = median(times["handshake"])
    saved = naive_median - app_median
    table.add(SECTION, f"app: TCP connections for {invocations} invocations", str(counts["app"]), "", "",
              "1", counts["app"] == 1)
    table.add(SECTION, f"naive: TCP connections for {invocations} invocations", str(counts["naive"]), "", "",
              f"({invocations} expected)", None)
    table.add(SECTION, "app send_sms invocation", ms(app_median), spread_ms(times["app"]),
              f"{app_median / naive_median:.2f}× naive", "faster than naive by ≈ 1 handshake",
              saved >= 0.8 * tls_median)
    table.add(SECTION, "naive send_sms invocation", ms(naive_median), spread_ms(times["naive"]), "1.00× naive")
    table.add(SECTION, "saved per invocation (naive − app medians)", ms(saved), "",
              f"{saved / tls_median:.2f}× handshake")
    table.add(SECTION, "TCP connect + TLS handshake (RSA-2048)", ms(tls_median), spread_ms(times["handshake"]))
    table.add(SECTION, "TCP connect alone", ms(median(times["connect"])), spread_ms(times["connect"]))
    if big is not None:
        t, c = big["times"], big["counts"]
        b_app, b_naive = median(t["app"]), median(t["naive"])
        table.add(SECTION, f"with certifi's CA bundle (+ test cert): app, {c['app']} connection(s)", ms(b_app),
                  spread_ms(t["app"]), f"{b_app / b_naive:.2f}× naive")
        table.add(SECTION, f"with certifi's CA bundle (+ test cert): naive, {c['naive']} connections",
                  ms(b_naive), spread_ms(t["naive"]), f"saved {ms(b_naive - b_app)}")
    table.note(f"Connection reuse: {invocations} send_sms invocations per variant in this process, app and naive "
               "interleaved call by call (three timed handshakes per round), against a local HTTPS Twilio stand-in "
               "(bench/tls_twilio.py, its own process, self-signed certificate trusted through "
               "REQUESTS_CA_BUNDLE) that counts accepted TCP connections. On loopback a handshake costs only "
               "CPU; over a real network it also costs 1–2 round trips to api.twilio.com, so the saving in "
               "production is larger. requests/urllib3 load the CA bundle for every new connection: with a "
               f"production-size bundle (certifi's, as without REQUESTS_CA_BUNDLE; {bundle_invocations} "
               "invocations each) every naive request pays that too.")
