"""Shared fixtures: a clean app environment, the Twilio sandbox on loopback, and request builders for each main."""

from __future__ import annotations

import fcntl
import functools
import json
import logging
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, NamedTuple
from urllib.parse import parse_qsl, urlencode, urlsplit

import azure.functions as func
import pytest
from twilio.request_validator import RequestValidator
from werkzeug.datastructures import MultiDict

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from devtools.processes import stop_process_group  # noqa: E402
from shared.settings import SETTING_NAMES  # noqa: E402

if TYPE_CHECKING:
    from devtools.sandbox import TwilioSandbox

# Recognisable fake credentials: the secret-hygiene tests search every output for them.
ACCOUNT_SID = "AC" + "5ec7e75ec7e75ec7e75ec7e75ec7e75e"
AUTH_TOKEN = "authtoken-SECRET-4f1d2e3c"
API_KEY_SID = "SK" + "6b1e6b1e6b1e6b1e6b1e6b1e6b1e6b1e"
API_KEY_SECRET = "apikeysecret-SECRET-9a8b7c0d1e2f3a4b"  # 32+ bytes, as a real one
SENDER = "+15005550006"  # Twilio's magic "always succeeds" sender
RECIPIENT = "+14155550123"

APP_SETTINGS = SETTING_NAMES  # every setting the app reads: cleared before each test


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """For ./test.sh's `--dist worksteal`, which gives each worker an equal, contiguous part of the collection and
    lets an idle worker steal from the end of the busiest one's: each part starts with its share of the `slow`
    tests, so that the workers finish together (without a worker, the slow tests simply run first)."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    slow = [item for item in items if item.get_closest_marker("slow")]
    fast = [item for item in items if not item.get_closest_marker("slow")]
    share = -(-len(fast) // workers)
    items[:] = [item for part in range(workers) for item in slow[part::workers] + fast[part * share:][:share]]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test starts with none of the app's settings set."""
    for name in APP_SETTINGS:
        monkeypatch.delenv(name, raising=False)


UNMASKED_NUMBER = re.compile(r"\+\d{7,}")
APP_LOGGERS = ("shared", "send_sms", "make_call", "sms_webhook", "voice_webhook")


class LogRecorder(logging.Handler):
    """Keeps every log record, formatted with its traceback."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[tuple[str, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if record.exc_info:
            text += "\n" + logging.Formatter().formatException(record.exc_info)
        self.records.append((record.name, text))


@pytest.fixture(autouse=True)
def logs() -> Iterator[LogRecorder]:
    """Every test's log records (DEBUG and up, every logger); after the test, none may hold a secret,
    and the app's own records may hold no unmasked phone number."""
    recorder = LogRecorder()
    root = logging.getLogger()
    previous = root.level
    root.addHandler(recorder)
    root.setLevel(logging.DEBUG)
    yield recorder
    root.removeHandler(recorder)
    root.setLevel(previous)
    for name, text in recorder.records:
        for secret in (AUTH_TOKEN, API_KEY_SECRET):
            assert secret not in text, f"secret in a log record of {name}: {text!r}"
        if name.split(".")[0] in APP_LOGGERS:
            assert not UNMASKED_NUMBER.search(text), f"unmasked phone number in a log record of {name}: {text!r}"
            assert ACCOUNT_SID not in text, f"account SID in a log record of {name}: {text!r}"


@pytest.fixture
def sandbox() -> Iterator[TwilioSandbox]:
    """A Twilio REST sandbox on a free loopback port."""
    from devtools.sandbox import TwilioSandbox

    sb = TwilioSandbox(account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN, api_keys={API_KEY_SID: API_KEY_SECRET},
                       host="127.0.0.1", port=0).start()
    yield sb
    sb.stop()


@pytest.fixture
def app_env(monkeypatch: pytest.MonkeyPatch, sandbox: TwilioSandbox) -> TwilioSandbox:
    """The app configured against the sandbox (2 s Twilio timeout); returns the sandbox."""
    monkeypatch.setenv("TWILIO_ACCOUNT_SID", ACCOUNT_SID)
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", AUTH_TOKEN)
    monkeypatch.setenv("TWILIO_PHONE_NUMBER", SENDER)
    monkeypatch.setenv("TWILIO_API_BASE_URL", sandbox.base_url)
    monkeypatch.setenv("TWILIO_HTTP_TIMEOUT_SECONDS", "2")
    return sandbox


@functools.lru_cache(maxsize=1)
def openapi_document() -> dict[str, Any]:
    """openapi.yaml, parsed once per test process (libyaml's parser: PyYAML's pure-Python one takes 0.12 s)."""
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return yaml.load((ROOT / "openapi.yaml").read_text(encoding="utf-8"), Loader=loader)  # noqa: S506 (a safe loader)


def query_params(url: str) -> dict[str, str]:
    """The query parameters as the Functions host hands them to a function (req.params: last value wins)."""
    return dict(parse_qsl(urlsplit(url).query, keep_blank_values=True))


@pytest.fixture
def stateful(app_env: TwilioSandbox, azurite: Storage, monkeypatch: pytest.MonkeyPatch) -> TwilioSandbox:
    """The app against the sandbox and Azurite, callers signed in through App Service Authentication (their
    identity is the X-MS-CLIENT-PRINCIPAL-ID header); returns the sandbox."""
    monkeypatch.setenv("AUTH_EASY_AUTH", "true")
    monkeypatch.setenv("WEBSITE_AUTH_ENABLED", "True")
    return app_env


def json_request(url: str, payload: Any, method: str = "POST", headers: dict[str, str] | None = None) -> func.HttpRequest:
    """A mobile-API request with a JSON body (payload may be bytes to send as is)."""
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return func.HttpRequest(method, url, headers={"content-type": "application/json", **(headers or {})},
                            params=query_params(url), body=body)


def form_request(url: str, pairs: list[tuple[str, str]] | dict[str, str], method: str = "POST",
                 headers: dict[str, str] | None = None) -> func.HttpRequest:
    """A form-encoded request (pairs may repeat a key)."""
    return func.HttpRequest(method, url, body=urlencode(pairs).encode(), params=query_params(url),
                            headers={"content-type": "application/x-www-form-urlencoded", **(headers or {})})


def sign(url: str, params: Any, token: str = AUTH_TOKEN) -> str:
    """X-Twilio-Signature for url + params, computed by Twilio's own algorithm."""
    return RequestValidator(token).compute_signature(url, params)


def signed_form(url: str, pairs: list[tuple[str, str]] | dict[str, str], *, token: str = AUTH_TOKEN,
                signed_url: str | None = None, headers: dict[str, str] | None = None) -> func.HttpRequest:
    """A webhook POST as Twilio sends it: form body, signed over signed_url (default: url) and every parameter."""
    items = list(pairs.items()) if isinstance(pairs, dict) else list(pairs)
    signature = sign(signed_url or url, MultiDict(items), token)
    return form_request(url, items, headers={"x-twilio-signature": signature, **(headers or {})})


def signed_get(url: str, *, token: str = AUTH_TOKEN, signed_url: str | None = None,
               headers: dict[str, str] | None = None) -> func.HttpRequest:
    """A webhook GET as Twilio sends it: parameters only in the URL, signed over the URL."""
    return func.HttpRequest("GET", url, body=b"", params=query_params(url),
                            headers={"x-twilio-signature": sign(signed_url or url, {}, token), **(headers or {})})


def body_of(response: func.HttpResponse) -> Any:
    """A response's JSON body."""
    return json.loads(response.get_body())


def creates(sandbox: TwilioSandbox, resource: str) -> int:
    """How many create requests (POST .../Messages.json or .../Calls.json) reached the sandbox."""
    return sum(1 for r in sandbox.requests if r["method"] == "POST" and r["path"].endswith(f"/{resource}.json"))


# -- node tools and Azurite (Table Storage) ------------------------------------------------------------------------
STATE_TABLES = ("TwilioQuotas", "TwilioIdempotency", "TwilioSends")


def free_port() -> int:
    from devtools.azurite import free_port as free

    return free()


def node() -> str:
    """node's path after `npm ci` of the pinned packages; skips without node (fails when CI is set)."""
    from devtools.azurite import NodeMissing, npm_ci

    try:
        return npm_ci()
    except NodeMissing as exc:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"{exc}; CI is set, so this fails instead of skipping", pytrace=False)
        pytest.skip(f"{exc}: needed by the tests that use Azurite or Prism (see package.json)")


def entities(connection_string: str, table: str) -> list[dict[str, Any]]:
    from azure.data.tables import TableClient

    with TableClient.from_connection_string(connection_string, table) as client:
        return list(client.list_entities())


def clear_tables(connection_string: str) -> None:
    """Delete every entity of the app's tables (the tables stay: the app remembers it created them)."""
    from azure.core.exceptions import ResourceNotFoundError
    from azure.data.tables import TableClient

    for table in STATE_TABLES:
        with TableClient.from_connection_string(connection_string, table) as client:
            try:
                for entity in client.list_entities(select=["PartitionKey", "RowKey"]):
                    client.delete_entity(entity["PartitionKey"], entity["RowKey"])
            except ResourceNotFoundError:
                pass


# -- servers shared by the run's test processes ----------------------------------------------------------------------
# Node servers (Azurite, Prism) take about 2 s of CPU each to start: one of each serves every xdist worker.
SERVERS = pytest.StashKey[Path]()


def pytest_configure(config: pytest.Config) -> None:
    if not hasattr(config, "workerinput"):  # the controller, or a run without xdist
        config.stash[SERVERS] = Path(tempfile.mkdtemp(prefix="pytest-servers-"))


@pytest.hookimpl(optionalhook=True)  # an xdist hook: a run without xdist has no workers to tell
def pytest_configure_node(node: Any) -> None:
    """xdist: every worker finds the run's servers in the controller's folder."""
    node.workerinput["servers"] = str(node.config.stash[SERVERS])


def pytest_unconfigure(config: pytest.Config) -> None:
    """The run is over: stop the servers its processes started."""
    if SERVERS in config.stash:
        for description in config.stash[SERVERS].glob("*.server.json"):
            stop_process_group(json.loads(description.read_text())["pid"])
        shutil.rmtree(config.stash[SERVERS], ignore_errors=True)


def shared_server(config: pytest.Config, name: str, start: Callable[[Path], dict[str, Any]]) -> dict[str, Any]:
    """The run's one `name` server. The first test process that needs it calls `start(folder)`, which starts it in a
    process group of its own and returns how to reach it, with the group's `pid`; pytest_unconfigure stops it."""
    folder = Path(config.workerinput["servers"]) if hasattr(config, "workerinput") else config.stash[SERVERS]
    with open(folder / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        description = folder / f"{name}.server.json"
        if not description.exists():
            description.write_text(json.dumps(start(folder)))
        return json.loads(description.read_text())


class Storage(NamedTuple):
    connection_string: str


@pytest.fixture(scope="session")
def azurite_server(pytestconfig: pytest.Config) -> Storage:
    """The run's in-memory Azurite (Table service), with a storage account per xdist worker (gw0, gw1, ...): each
    test process has tables of its own."""
    from devtools.azurite import ACCOUNT, Azurite, connection_string

    def start(folder: Path) -> dict[str, Any]:
        workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0"))
        server = Azurite(node(), free_port(), accounts=[f"gw{n}" for n in range(workers)]).start()
        return {"pid": server.proc.pid, "port": server.port}

    port = shared_server(pytestconfig, "azurite", start)["port"]
    return Storage(connection_string(port, os.environ.get("PYTEST_XDIST_WORKER", ACCOUNT)))


@pytest.fixture
def azurite(azurite_server: Storage, monkeypatch: pytest.MonkeyPatch) -> Iterator[Storage]:
    """The app's AzureWebJobsStorage pointed at the session's Azurite; its tables are emptied after the test."""
    monkeypatch.setenv("AzureWebJobsStorage", azurite_server.connection_string)
    yield azurite_server
    clear_tables(azurite_server.connection_string)
