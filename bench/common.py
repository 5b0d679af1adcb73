"""What every benchmark shares: paths, fake credentials, the variants, signed requests, app settings, the table."""

from __future__ import annotations

import datetime
import importlib
import json
import os
import platform
import statistics
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence
from unittest import mock
from urllib.parse import urlencode

from shared.settings import SETTING_NAMES

ROOT = Path(__file__).resolve().parent.parent  # the function app's root
BENCH = Path(__file__).resolve().parent
PYTHON = sys.executable

ACCOUNT_SID = "AC" + "be4c" * 8
AUTH_TOKEN = "bench-auth-token-0123456789abcdef"
SENDER = "+15005550006"
RECIPIENT = "+14155550123"

REST_FUNCTIONS = ("make_call", "send_sms")
WEBHOOKS = ("voice_webhook", "sms_webhook")
FUNCTIONS = WEBHOOKS + REST_FUNCTIONS

# Environment that would change what is measured: every app setting (each benchmark sets its own), CA bundles,
# proxies, Python start-up.
_SCRUB = {*SETTING_NAMES, "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE", "HTTPS_PROXY", "HTTP_PROXY",
          "https_proxy", "http_proxy", "ALL_PROXY", "all_proxy", "PYTHONDONTWRITEBYTECODE", "PYTHONPATH",
          "PYTHONPROFILEIMPORTTIME", "PYTHONSTARTUP", "FUNCTIONS_HOST_KEY"}

# Where the mobile-API requests claim to come from: make_call derives voice_webhook's URL from it, and the
# sandbox's call flow then fetches that URL; port 1 on loopback refuses at once, so no stray traffic.
MOBILE_ORIGIN = "http://127.0.0.1:1"
WEBHOOK_ORIGIN = "http://127.0.0.1:7071"


@dataclass(frozen=True)
class Variant:
    """One implementation of one function: the app's, the naive quick-start one, or the trivial floor."""

    kind: str  # "floor" | "app" | "naive"
    function: str  # the function it implements; also its module name under import_path

    @property
    def label(self) -> str:
        return "floor" if self.kind == "floor" else f"{self.kind} {self.function}"

    @property
    def import_path(self) -> Path:
        """The sys.path entry a fresh interpreter needs (the worker puts the app root there)."""
        return {"floor": BENCH, "app": ROOT, "naive": BENCH / "naive"}[self.kind]

    @property
    def expected_status(self) -> int:
        return 201 if self.function in REST_FUNCTIONS else 200

    def load_main(self) -> Callable[[Any], Any]:
        """Import this variant's main into this process (naive under bench.naive: no name clash)."""
        module = {"floor": "bench.floor", "app": self.function, "naive": f"bench.naive.{self.function}"}[self.kind]
        return importlib.import_module(module).main


FLOOR = Variant("floor", "floor")


def app(function: str) -> Variant:
    return Variant("app", function)


def naive(function: str) -> Variant:
    return Variant("naive", function)


def request_spec(function: str) -> dict[str, Any]:
    """A JSON-able request (method, url, headers, body) for a function; webhooks validly signed.

    The floor gets sms_webhook's signed request: the same bytes, ignored.
    """
    if function in REST_FUNCTIONS:
        payload = ({"to": RECIPIENT, "body": "Your order has shipped"} if function == "send_sms"
                   else {"to": RECIPIENT, "message": "Your code is 4 2 7 1"})
        return {"method": "POST", "url": f"{MOBILE_ORIGIN}/api/{function}",
                "headers": {"content-type": "application/json"}, "body": json.dumps(payload)}
    from twilio.request_validator import RequestValidator

    if function == "voice_webhook":
        form = {"AccountSid": ACCOUNT_SID, "ApiVersion": "2010-04-01", "CallSid": "CA" + "0" * 32,
                "CallStatus": "ringing", "Called": SENDER, "Caller": RECIPIENT, "Direction": "inbound",
                "From": RECIPIENT, "To": SENDER}
    else:
        form = {"ToCountry": "US", "SmsMessageSid": "SM" + "0" * 32, "NumMedia": "0", "SmsSid": "SM" + "0" * 32,
                "SmsStatus": "received", "Body": "Hello there", "To": SENDER, "NumSegments": "1",
                "MessageSid": "SM" + "0" * 32, "AccountSid": ACCOUNT_SID, "From": RECIPIENT,
                "ApiVersion": "2010-04-01"}
    url = f"{WEBHOOK_ORIGIN}/api/{'sms_webhook' if function == 'floor' else function}"
    return {"method": "POST", "url": url, "body": urlencode(form),
            "headers": {"content-type": "application/x-www-form-urlencoded",
                        "x-twilio-signature": RequestValidator(AUTH_TOKEN).compute_signature(url, form)}}


def http_request(spec: dict[str, Any]) -> Any:
    """A func.HttpRequest from a request_spec."""
    import azure.functions as func

    return func.HttpRequest(spec["method"], spec["url"], headers=spec["headers"], body=spec["body"].encode())


def app_settings(api_base_url: str, timeout: str = "10", **extra: str) -> dict[str, str]:
    """The app settings every benchmark uses (Twilio faked at api_base_url)."""
    return {"TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": AUTH_TOKEN, "TWILIO_PHONE_NUMBER": SENDER,
            "TWILIO_API_BASE_URL": api_base_url, "TWILIO_HTTP_TIMEOUT_SECONDS": timeout, **extra}


def child_env(settings: dict[str, str]) -> dict[str, str]:
    """This process's environment without anything that changes the measurement, plus settings."""
    return {**{k: v for k, v in os.environ.items() if k not in _SCRUB}, **settings}


def environment(settings: dict[str, str]) -> Any:
    """Context manager: run in this process with exactly these app settings (the app reads them per request)."""
    return mock.patch.dict(os.environ, child_env(settings), clear=True)


# -- figures and the table ----------------------------------------------------------------------------------
def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def ms(seconds: float) -> str:
    if seconds != seconds:  # NaN
        return "n/a"
    if seconds >= 1:
        return f"{seconds:.2f} s"
    value = seconds * 1000
    return f"{value:.0f} ms" if value >= 100 else f"{value:.1f} ms" if value >= 1 else f"{value * 1000:.0f} µs"


def spread(values: Sequence[float]) -> str:
    return f"{ms(min(values))} – {ms(max(values))}" if values else ""


@dataclass
class Table:
    """The results: one row per figure (section, variant, figure, min – max, ratio, goal, verdict) and notes."""

    rows: list[tuple[str, ...]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, section: str, variant: str, figure: str, spread: str = "", ratio: str = "", goal: str = "",
            met: bool | None = None) -> None:
        verdict = "" if met is None else "met" if met else "MISSED"
        self.rows.append((section, variant, figure, spread, ratio, goal, verdict))

    def markdown(self) -> str:
        head = ("benchmark", "variant", "figure", "min – max", "ratio", "goal", "verdict")
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        previous = None
        for section, *cells in self.rows:
            lines.append("| " + " | ".join([section if section != previous else "", *cells]) + " |")
            previous = section
        return "\n".join(lines + [""] + [f"- {note}" for note in self.notes])


def machine_description() -> str:
    """One line: CPU, cores, Python, OS and the date (no paths)."""
    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        cpu = next((line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines()
                    if line.startswith("model name")), cpu)
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return (f"{now}; {cpu}, {os.cpu_count()} cores; Python {platform.python_version()}; "
            f"{platform.system()} {platform.release()}; load average {os.getloadavg()[0]:.1f} at start")
