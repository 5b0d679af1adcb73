"""What tests share besides fixtures: the fake credentials, request builders for each main, and result readers."""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import re
import socket
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, NamedTuple
from urllib.parse import parse_qsl, urlencode, urlsplit

import azure.functions as func
from twilio.request_validator import RequestValidator
from werkzeug.datastructures import MultiDict

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from shared.settings import SETTING_NAMES  # noqa: E402

if TYPE_CHECKING:
    import pytest
    from devtools.sandbox import TwilioSandbox

# Recognisable fake credentials: the secret-hygiene tests search every output for them.
ACCOUNT_SID = "AC" + "5ec7e75ec7e75ec7e75ec7e75ec7e75e"
AUTH_TOKEN = "authtoken-SECRET-4f1d2e3c"
API_KEY_SID = "SK" + "6b1e6b1e6b1e6b1e6b1e6b1e6b1e6b1e"
API_KEY_SECRET = "apikeysecret-SECRET-9a8b7c0d1e2f3a4b"  # 32+ bytes, as a real one
SENDER = "+15005550006"  # Twilio's magic "always succeeds" sender
RECIPIENT = "+14155550123"

APP_SETTINGS = SETTING_NAMES  # every setting the app reads: cleared before each test

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


@functools.lru_cache(maxsize=1)
def openapi_document() -> dict[str, Any]:
    """openapi.yaml, parsed once per test process (libyaml's parser: PyYAML's pure-Python one takes 0.12 s)."""
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return yaml.load((ROOT / "openapi.yaml").read_text(encoding="utf-8"), Loader=loader)  # noqa: S506 (a safe loader)


def query_params(url: str) -> dict[str, str]:
    """The query parameters as the Functions host hands them to a function (req.params: last value wins)."""
    return dict(parse_qsl(urlsplit(url).query, keep_blank_values=True))


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


@contextlib.contextmanager
def refused_port() -> Iterator[int]:
    """A loopback port that refuses every connection while the block runs. A socket bound to it, never listening,
    holds it, so no bind(0) elsewhere is given it (binding port 0 and closing would free it for anyone). The socket
    has SO_REUSEADDR, so a server told to bind this very port later (with SO_REUSEADDR too, as werkzeug's servers)
    still can: Linux lets both bind while neither listens."""
    with socket.socket() as holder:
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        holder.bind(("127.0.0.1", 0))
        yield holder.getsockname()[1]


def body_of(response: func.HttpResponse) -> Any:
    """A response's JSON body."""
    return json.loads(response.get_body())


def creates(sandbox: TwilioSandbox, resource: str) -> int:
    """How many create requests (POST .../Messages.json or .../Calls.json) reached the sandbox."""
    return sum(1 for r in sandbox.requests if r["method"] == "POST" and r["path"].endswith(f"/{resource}.json"))


# -- Azurite (Table Storage) -----------------------------------------------------------------------------------------
class Storage(NamedTuple):
    connection_string: str


def entities(connection_string: str, table: str) -> list[dict[str, Any]]:
    from azure.data.tables import TableClient

    with TableClient.from_connection_string(connection_string, table) as client:
        return list(client.list_entities())


def clear_tables(connection_string: str) -> None:
    """Delete every entity of the app's tables (the tables stay: the app remembers it created them)."""
    from azure.core.exceptions import ResourceNotFoundError
    from azure.data.tables import TableClient

    from shared.state import TABLES, _views

    _views.clear()  # what this process remembers of the rows just deleted
    for table in TABLES:
        with TableClient.from_connection_string(connection_string, table) as client:
            try:
                for entity in client.list_entities(select=["PartitionKey", "RowKey"]):
                    client.delete_entity(entity["PartitionKey"], entity["RowKey"])
            except ResourceNotFoundError:
                pass


class TableFaults:
    """The app's Table operations counted from arm() (1, 2, ...), all of them or those on one table or partition;
    those numbered there raise ServiceRequestError, as when the storage account cannot be reached, and reach no
    storage."""

    OPERATIONS = ("get_entity", "create_entity", "update_entity", "delete_entity", "query_entities")

    def __init__(self, monkeypatch: Any, table: str | None = None) -> None:
        from azure.data.tables import TableClient

        self.table = table
        self.operations: list[str] = []  # the names of the operations counted since arm(), in order
        self.failing: set[int] = set()
        self.partition: str | None = None
        self._lock = threading.Lock()
        for name in self.OPERATIONS:
            monkeypatch.setattr(TableClient, name, self._counted(name, getattr(TableClient, name)))

    def arm(self, *numbers: int, partition: str | None = None) -> TableFaults:
        """Count afresh (only the operations on `partition`, if given): the operations with these numbers fail."""
        with self._lock:
            self.operations, self.failing, self.partition = [], set(numbers), partition
        return self

    def _counted(self, name: str, operation: Any) -> Any:
        from azure.core.exceptions import ServiceRequestError

        @functools.wraps(operation)
        def run(client: Any, *args: Any, **kwargs: Any) -> Any:
            if self.table not in (None, client.table_name) or self.partition not in (None, _partition(args, kwargs)):
                return operation(client, *args, **kwargs)
            with self._lock:
                self.operations.append(name)
                failing = len(self.operations) in self.failing
            if failing:
                raise ServiceRequestError(f"injected fault on {name}")
            return operation(client, *args, **kwargs)

        return run


def _partition(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str | None:
    """The PartitionKey a TableClient operation touches: an entity's, a key argument, or a query's @partition."""
    if "parameters" in kwargs:
        return kwargs["parameters"].get("partition")
    first = args[0] if args else kwargs.get("entity", kwargs.get("partition_key"))
    return first.get("PartitionKey") if isinstance(first, dict) else first
