"""What every benchmark shares: paths, fake credentials, signed requests, app settings, statistics, the table."""

from __future__ import annotations

import contextlib
import datetime as _dt
import importlib
import json
import os
import platform
import statistics
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent  # the function app's root
BENCH = Path(__file__).resolve().parent
PYTHON = sys.executable

ACCOUNT_SID = "AC" + "be4c" * 8
AUTH_TOKEN = "bench-auth-token-0123456789abcdef"
SENDER = "+15005550006"
RECIPIENT = "+14155550123"

REST_FUNCTIONS = ("make_call", "send_sms")
WEBHOOKS = ("voice_webhook", "sms_webhook")
FUNCTIONS = REST_FUNCTIONS + WEBHOOKS

APP_SETTINGS = (
    "TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "TWILIO_API_KEY_SID", "TWILIO_API_KEY_SECRET",
    "TWILIO_PHONE_NUMBER", "TWILIO_MESSAGING_SERVICE_SID", "TWILIO_API_BASE_URL", "TWILIO_HTTP_TIMEOUT_SECONDS",
    "PUBLIC_BASE_URL", "VOICE_GREETING", "VOICE_NAME", "VOICE_LANGUAGE", "SMS_AUTO_REPLY", "BLOCKED_NUMBERS",
    "ALLOWED_DESTINATION_PREFIXES", "DEFAULT_REGION",
)
# Environment that would change what is measured (CA bundles, proxies, Python start-up).
_SCRUB = APP_SETTINGS + ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE", "HTTPS_PROXY", "HTTP_PROXY",
                         "https_proxy", "http_proxy", "ALL_PROXY", "all_proxy", "PYTHONDONTWRITEBYTECODE",
                         "PYTHONPATH", "PYTHONPROFILEIMPORTTIME", "PYTHONSTARTUP", "FUNCTIONS_HOST_KEY")

# Where the mobile-API requests claim to come from: make_call derives voice_webhook's URL from it, and the
# sandbox's call flow then fetches that URL; port 1 on loopback refuses at once, so no stray traffic.
MOBILE_ORIGIN = "http://127.0.0.1:1"


# -- variants ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Variant:
    """One implementation of one function: the app's, the naive tutorial one, or the trivial floor."""

    kind: str  # "floor" | "app" | "naive"
    function: str  # the function it implements ("floor" for the floor)

    @property
    def label(self) -> str:
        return "floor" if self.kind == "floor" else f"{self.kind} {self.function}"

    @property
    def import_path(self) -> Path:
        """The sys.path entry a fresh interpreter needs (the worker puts the app root there)."""
        return {"floor": BENCH, "app": ROOT, "naive": BENCH / "naive"}[self.kind]

    @property
    def module(self) -> str:
        """Top-level module name under import_path."""
        return self.function

    @property
    def in_process_module(self) -> str:
        """Module name for importing it into this process next to the others (no name clashes)."""
        return {"floor": "bench.floor", "app": self.function, "naive": f"bench.naive.{self.function}"}[self.kind]

    @property
    def expected_status(self) -> int:
        return 201 if self.function in REST_FUNCTIONS else 200


FLOOR = Variant("floor", "floor")


def app(function: str) -> Variant:
    return Variant("app", function)


def naive(function: str) -> Variant:
    return Variant("naive", function)


def load_main(variant: Variant) -> Callable[[Any], Any]:
    """Import a variant's main into this process."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    return importlib.import_module(variant.in_process_module).main


# -- requests ------------------------------------------------------------------------------------------------
class _MultiParams(dict):
    def getall(self, name: str) -> list[str]:
        return self[name]


def signature(url: str, pairs: Sequence[tuple[str, str]], token: str = AUTH_TOKEN) -> str:
    """X-Twilio-Signature over url and every form parameter, by Twilio's own algorithm."""
    from twilio.request_validator import RequestValidator

    params = _MultiParams()
    for key, value in pairs:
        params.setdefault(key, []).append(value)
    return RequestValidator(token).compute_signature(url, params)


def sms_webhook_form(n: int = 0) -> list[tuple[str, str]]:
    """An inbound SMS as Twilio posts it (n varies the SIDs)."""
    sid = f"{n:032x}"
    return [("ToCountry", "US"), ("SmsMessageSid", "SM" + sid), ("NumMedia", "0"), ("SmsSid", "SM" + sid),
            ("SmsStatus", "received"), ("Body", "Hello there"), ("To", SENDER), ("NumSegments", "1"),
            ("MessageSid", "SM" + sid), ("AccountSid", ACCOUNT_SID), ("From", RECIPIENT), ("ApiVersion", "2010-04-01")]


def voice_webhook_form(n: int = 0) -> list[tuple[str, str]]:
    """An inbound call as Twilio posts it."""
    return [("AccountSid", ACCOUNT_SID), ("ApiVersion", "2010-04-01"), ("CallSid", "CA" + f"{n:032x}"),
            ("CallStatus", "ringing"), ("Called", SENDER), ("Caller", RECIPIENT), ("Direction", "inbound"),
            ("From", RECIPIENT), ("To", SENDER)]


def request_spec(function: str, origin: str = "http://127.0.0.1:7071", n: int = 0,
                 path: str | None = None) -> dict[str, Any]:
    """A JSON-able request (method, url, headers, body) for a function; webhooks validly signed.

    The floor gets sms_webhook's signed request: the same bytes, ignored.
    """
    if function in REST_FUNCTIONS:
        payload = ({"to": RECIPIENT, "body": "Your order has shipped"} if function == "send_sms"
                   else {"to": RECIPIENT, "message": "Your code is 4 2 7 1"})
        return {"method": "POST", "url": f"{MOBILE_ORIGIN}/api/{function}",
                "headers": {"content-type": "application/json"}, "body": json.dumps(payload)}
    if function == "voice_webhook":
        url, form = f"{origin}{path or '/api/voice_webhook'}", voice_webhook_form(n)
    else:
        url, form = f"{origin}{path or '/api/' + ('sms_webhook' if function == 'floor' else function)}", \
            sms_webhook_form(n)
    return {"method": "POST", "url": url, "body": urlencode(form),
            "headers": {"content-type": "application/x-www-form-urlencoded",
                        "x-twilio-signature": signature(url, form)}}


def http_request(spec: dict[str, Any]) -> Any:
    """A func.HttpRequest from a request_spec."""
    import azure.functions as func

    return func.HttpRequest(spec["method"], spec["url"], headers=spec["headers"], body=spec["body"].encode())


# -- app settings ------------------------------------------------------------------------------------------
def app_settings(api_base_url: str, timeout: str = "10", **extra: str) -> dict[str, str]:
    """The app settings every benchmark uses (Twilio faked at api_base_url)."""
    settings = {"TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": AUTH_TOKEN, "TWILIO_PHONE_NUMBER": SENDER,
                "TWILIO_API_BASE_URL": api_base_url, "TWILIO_HTTP_TIMEOUT_SECONDS": timeout}
    settings.update(extra)
    return settings


def child_env(settings: dict[str, str]) -> dict[str, str]:
    """This process's environment without anything that changes the measurement, plus settings."""
    env = {k: v for k, v in os.environ.items() if k not in _SCRUB}
    env.update(settings)
    return env


@contextlib.contextmanager
def environment(settings: dict[str, str]) -> Iterator[None]:
    """Run in this process with exactly these app settings (and no CA/proxy overrides unless given).

    The app reads its settings once per process (Azure restarts the worker when they change), so entering and
    leaving resets them, as that restart would."""
    from shared.settings import reset_settings

    saved = {k: os.environ.get(k) for k in set(_SCRUB) | set(settings)}
    for key in _SCRUB:
        os.environ.pop(key, None)
    os.environ.update(settings)
    reset_settings()
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        reset_settings()


# -- statistics and the table ---------------------------------------------------------------------------------
def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of already sorted values."""
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, int(round(q / 100 * len(sorted_values) + 0.5)) - 1))
    return sorted_values[index]


def ms(seconds: float) -> str:
    if seconds != seconds:  # NaN
        return "n/a"
    if seconds >= 1:
        return f"{seconds:.2f} s"
    value = seconds * 1000
    return f"{value:.0f} ms" if value >= 100 else f"{value:.1f} ms" if value >= 1 else f"{value * 1000:.0f} µs"


def spread_ms(values: Sequence[float]) -> str:
    return f"{ms(min(values))} – {ms(max(values))}" if values else "n/a"


def ratio(value: float, reference: float) -> str:
    return f"{value / reference:.2f}×" if reference and value == value else "n/a"


@dataclass
class Row:
    section: str
    variant: str
    median: str
    spread: str = ""
    ratio: str = ""
    goal: str = ""
    verdict: str = ""  # "met" | "MISSED" | "" (informational)


@dataclass
class Table:
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, section: str, variant: str, median: str, spread: str = "", ratio: str = "", goal: str = "",
            met: bool | None = None) -> None:
        verdict = "" if met is None else ("met" if met else "MISSED")
        self.rows.append(Row(section, variant, median, spread, ratio, goal, verdict))

    def note(self, text: str) -> None:
        self.notes.append(text)

    def markdown(self) -> str:
        head = ("benchmark", "variant", "median", "min – max", "ratio", "goal", "verdict")
        lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
        previous = None
        for row in self.rows:
            section = row.section if row.section != previous else ""
            previous = row.section
            cells = (section, row.variant, row.median, row.spread, row.ratio, row.goal, row.verdict)
            lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
        text = "\n".join(lines)
        if self.notes:
            text += "\n\n" + "\n".join(f"- {n}" for n in self.notes)
        return text


def machine_description() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cores = os.cpu_count()
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = cores
    now = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return (f"CPU: {cpu}; cores: {cores} ({usable} usable); Python {platform.python_version()} "
            f"({platform.python_implementation()}, {sys.executable}); {platform.system()} {platform.release()}; "
            f"date: {now}")
