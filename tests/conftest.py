"""Fixtures: a clean app environment, every log record checked for secrets, the Twilio sandbox, Azurite."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

import pytest

from tests.support import (ACCOUNT_SID, API_KEY_SECRET, API_KEY_SID, APP_LOGGERS, APP_SETTINGS, AUTH_TOKEN, SENDER,
                           UNMASKED_NUMBER, LogRecorder, Storage, clear_tables, refused_port)

if TYPE_CHECKING:
    from devtools.sandbox import TwilioSandbox

pytest_plugins = ("tests.servers", "tests.slow_first")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test starts with none of the app's settings set."""
    for name in APP_SETTINGS:
        monkeypatch.delenv(name, raising=False)


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


@pytest.fixture(name="refused_port")
def refused_port_fixture() -> Iterator[int]:
    """A loopback port that refuses every connection during the test (tests/support.py refused_port)."""
    with refused_port() as port:
        yield port


@pytest.fixture
def sandbox() -> Iterator[TwilioSandbox]:
    """A Twilio REST sandbox on a free loopback port, knowing the fake credentials (so that the `logs` check
    watches its secrets too), its lifecycles stepping every 2 ms; stopping it must take well under a second."""
    from devtools.sandbox import TwilioSandbox

    sb = TwilioSandbox(account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN, api_keys={API_KEY_SID: API_KEY_SECRET},
                       step_delay=0.002).start()
    yield sb
    started = time.monotonic()
    sb.stop()
    assert time.monotonic() - started < 1.0


@pytest.fixture
def app_env(monkeypatch: pytest.MonkeyPatch, sandbox: TwilioSandbox) -> TwilioSandbox:
    """The app configured against the sandbox (2 s Twilio timeout); returns the sandbox."""
    monkeypatch.setenv("TWILIO_ACCOUNT_SID", ACCOUNT_SID)
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", AUTH_TOKEN)
    monkeypatch.setenv("TWILIO_PHONE_NUMBER", SENDER)
    monkeypatch.setenv("TWILIO_API_BASE_URL", sandbox.base_url)
    monkeypatch.setenv("TWILIO_HTTP_TIMEOUT_SECONDS", "2")
    return sandbox


@pytest.fixture
def stateful(app_env: TwilioSandbox, azurite: Storage, monkeypatch: pytest.MonkeyPatch) -> TwilioSandbox:
    """The app against the sandbox and Azurite, callers signed in through App Service Authentication (their
    identity is the X-MS-CLIENT-PRINCIPAL-ID header); returns the sandbox."""
    monkeypatch.setenv("AUTH_EASY_AUTH", "true")
    monkeypatch.setenv("WEBSITE_AUTH_ENABLED", "True")
    return app_env


@pytest.fixture(scope="session")
def azurite_server(pytestconfig: pytest.Config) -> Storage:
    """The run's in-memory Azurite (Table service, tests/servers.py), with a storage account per xdist worker (gw0,
    gw1, ...): each test process has tables of its own."""
    from devtools.azurite import ACCOUNT, Azurite, connection_string
    from tests.servers import node, shared_server

    def start(folder: Path) -> dict[str, Any]:
        workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0"))
        server = Azurite(node(), accounts=[f"gw{n}" for n in range(workers)]).start()
        return {"pids": [server.proc.pid, server.queue_proc.pid], "port": server.port, "queue_port": server.queue_port}

    server = shared_server(pytestconfig, "azurite", start)
    return Storage(connection_string(server["port"], os.environ.get("PYTEST_XDIST_WORKER", ACCOUNT),
                                     server["queue_port"]))


@pytest.fixture
def azurite(azurite_server: Storage, monkeypatch: pytest.MonkeyPatch) -> Iterator[Storage]:
    """The app's AzureWebJobsStorage pointed at the session's Azurite; its tables are emptied after the test."""
    monkeypatch.setenv("AzureWebJobsStorage", azurite_server.connection_string)
    yield azurite_server
    clear_tables(azurite_server.connection_string)
