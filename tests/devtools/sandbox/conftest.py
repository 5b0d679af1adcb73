"""Fixtures of the sandbox's tests (`sandbox` is the root conftest's): no leaked thread, the SDK, a fake app."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from twilio.rest import Client

from devtools.sandbox import TwilioSandbox
from tests.devtools.sandbox.support import FakeApp, SandboxHttpClient
from tests.support import ACCOUNT_SID, AUTH_TOKEN


@pytest.fixture(autouse=True)
def no_thread_leaks() -> Iterator[None]:
    before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + 2.0
    while (leaked := [t for t in threading.enumerate() if t not in before]) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not leaked, f"threads still running: {leaked}"


@pytest.fixture
def client(sandbox: TwilioSandbox) -> Client:
    return Client(ACCOUNT_SID, AUTH_TOKEN, http_client=SandboxHttpClient(sandbox.base_url))


@pytest.fixture
def app() -> Iterator[FakeApp]:
    fake = FakeApp()
    fake.thread.start()
    yield fake
    fake.server.shutdown()
    fake.thread.join(1)
