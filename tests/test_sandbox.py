"""Tests for devtools.sandbox, driven through the real twilio SDK and stdlib HTTP."""

from __future__ import annotations

import http.client
import json
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response
from twilio.request_validator import RequestValidator
from twilio.rest import Client

from devtools.sandbox import TwilioSandbox

REPO_ROOT = Path(__file__).resolve().parents[1]
ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
AUTH_TOKEN = "test-auth-token-0123456789"
API_KEY_SID = "SK" + "fedcba9876543210" * 2
API_KEY_SECRET = "test-api-key-secret"
SENDER = "+15005550006"
CUSTOMER = "+15551234567"
SID_RE = {"SM": re.compile(r"^SM[0-9a-f]{32}$"), "CA": re.compile(r"^CA[0-9a-f]{32}$")}

VOICE_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response><Say>Hello from the app</Say></Response>'
SMS_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response><Message>Thanks, got it!</Message></Response>'


# -- helpers ------------------------------------------------------------------
class SandboxHttpClient(TwilioHttpClient):
    """TwilioHttpClient that sends every request to the sandbox origin (path unchanged)."""

    def __init__(self, base_url: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.base_url = base_url

    def request(  # type: ignore[override]
        self,
        method: str,
        url: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,
        allow_redirects: bool = False,
    ) -> Response:
        parts = urlsplit(url)
        target = self.base_url + parts.path + (f"?{parts.query}" if parts.query else "")
        return super().request(method, target, params, data, headers, auth, timeout, allow_redirects)


class FakeApp:
    """A tiny stdlib web app standing in for the function app's webhooks."""

    ROUTES: dict[str, tuple[int, str | None, str]] = {
        "/voice": (200, "text/xml; charset=utf-8", VOICE_TWIML),
        "/sms": (200, "application/xml", SMS_TWIML),
        "/empty": (204, None, ""),
        "/status": (204, None, ""),
        "/text": (200, "text/plain", "hello there"),
        "/broken": (200, "text/xml", "<Response><Say>oops</Response>"),
        "/error": (500, "text/html", "<h1>boom</h1>"),
    }

    def __init__(self, auth_token: str) -> None:
        self.validator = RequestValidator(auth_token)
        self.received: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        app = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                self.handle_any()

            def do_POST(self) -> None:  # noqa: N802
                self.handle_any()

            def handle_any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode() if length else ""
                url = f"http://127.0.0.1:{app.port}{self.path}"
                signature = self.headers.get("X-Twilio-Signature", "")
                if self.command == "GET":
                    params = dict(parse_qsl(urlsplit(self.path).query, keep_blank_values=True))
                    valid = app.validator.validate(url, {}, signature)
                else:
                    params = dict(parse_qsl(body, keep_blank_values=True))
                    valid = app.validator.validate(url, params, signature)
                path = urlsplit(self.path).path
                with app.lock:
                    app.received.append(
                        {
                            "method": self.command,
                            "path": path,
                            "params": params,
                            "headers": dict(self.headers.items()),
                            "valid": valid,
                        }
                    )
                status, content_type, reply = app.ROUTES.get(path, (404, "text/plain", "not found"))
                data = reply.encode()
                self.send_response(status)
                if content_type:
                    self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.01})

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def requests_to(self, path: str) -> list[dict[str, Any]]:
        with self.lock:
            return [r for r in self.received if r["path"] == path]


def closed_port() -> int:
    """A loopback port with nothing listening."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def control(sandbox: TwilioSandbox, method: str, route: str, payload: Any = None) -> requests.Response:
    return requests.request(method, f"{sandbox.base_url}/_sandbox{route}", json=payload, timeout=5)


# -- fixtures -------------------------------------------------------------------
@pytest.fixture(autouse=True)
def no_thread_leaks() -> Iterator[None]:
    before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + 1.0
    leaked: list[threading.Thread] = []
    while time.monotonic() < deadline:
        leaked = [t for t in threading.enumerate() if t not in before and t.is_alive()]
        if not leaked:
            break
        time.sleep(0.02)
    assert not leaked, f"threads leaked: {leaked}"


@pytest.fixture
def sandbox() -> Iterator[TwilioSandbox]:
    sb = TwilioSandbox(
        account_sid=ACCOUNT_SID,
        auth_token=AUTH_TOKEN,
        api_keys={API_KEY_SID: API_KEY_SECRET},
        host="127.0.0.1",
        port=0,
        step_delay=0.002,
    ).start()
    yield sb
    started = time.monotonic()
    sb.stop()
    assert time.monotonic() - started < 1.0


@pytest.fixture
def http_client(sandbox: TwilioSandbox) -> SandboxHttpClient:
    return SandboxHttpClient(sandbox.base_url, timeout=5)


@pytest.fixture
def client(http_client: SandboxHttpClient) -> Client:
    return Client(ACCOUNT_SID, AUTH_TOKEN, http_client=http_client)


@pytest.fixture
def app() -> Iterator[FakeApp]:
    fake = FakeApp(AUTH_TOKEN)
    fake.thread.start()
    yield fake
    fake.server.shutdown()
    fake.server.server_close()
    fake.thread.join(1)


# -- messages -------------------------------------------------------------------
def test_messages_create_valid_params_returns_queued_instance(client: Client, sandbox: TwilioSandbox) -> None:
    message = client.messages.create(to=CUSTOMER, from_=SENDER, body="Hello there")

    assert SID_RE["SM"].match(message.sid)
    assert message.status == "queued"
    assert message.account_sid == ACCOUNT_SID
    assert (message.to, message.from_, message.body) == (CUSTOMER, SENDER, "Hello there")
    assert message.direction == "outbound-api"
    assert message.api_version == "2010-04-01"
    assert message.num_segments == "1" and message.num_media == "0"
    assert isinstance(message.date_created, datetime) and message.date_created.tzinfo is not None
    assert message.price is None and message.error_code is None
    assert message.uri == f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/{message.sid}.json"
    assert sandbox.messages[0]["sid"] == message.sid
    last = sandbox.requests[-1]
    assert last["method"] == "POST" and last["path"].endswith("/Messages.json")
    assert last["form"]["Body"] == ["Hello there"]


def test_messages_create_repeated_media_url_counts_media(client: Client, sandbox: TwilioSandbox) -> None:
    urls = ["https://example.com/a.jpg", "https://example.com/b.png"]
    message = client.messages.create(to=CUSTOMER, from_=SENDER, media_url=urls)

    assert message.num_media == "2"
    assert sandbox.requests[-1]["form"]["MediaUrl"] == urls


def test_messages_fetch_and_list_known_messages_returns_them(client: Client) -> None:
    first = client.messages.create(to=CUSTOMER, from_=SENDER, body="one")
    second = client.messages.create(to="+15557654321", from_=SENDER, body="two")
    third = client.messages.create(to=CUSTOMER, from_=SENDER, body="three")

    assert client.messages(second.sid).fetch().body == "two"
    assert [m.sid for m in client.messages.list()] == [third.sid, second.sid, first.sid]
    assert [m.sid for m in client.messages.list(to=CUSTOMER)] == [third.sid, first.sid]
    assert [m.sid for m in client.messages.stream(page_size=2)] == [third.sid, second.sid, first.sid]


def test_messages_api_key_credentials_succeeds(http_client: SandboxHttpClient) -> None:
    key_client = Client(API_KEY_SID, API_KEY_SECRET, ACCOUNT_SID, http_client=http_client)

    message = key_client.messages.create(to=CUSTOMER, from_=SENDER, body="via key")

    assert message.status == "queued"


def test_messages_messaging_service_without_from_returns_accepted(client: Client) -> None:
    message = client.messages.create(to=CUSTOMER, messaging_service_sid="MG" + "1" * 32, body="hi")

    assert message.status == "accepted"
    assert message.messaging_service_sid == "MG" + "1" * 32


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [
        ({"to": "", "from_": SENDER, "body": "x"}, 21604),
        ({"to": CUSTOMER, "body": "x"}, 21603),
        ({"to": CUSTOMER, "from_": SENDER}, 21602),
    ],
)
def test_messages_create_missing_param_raises_validation_code(
    client: Client, kwargs: dict[str, str], code: int
) -> None:
    with pytest.raises(TwilioRestException) as caught:
        client.messages.create(**kwargs)

    assert (caught.value.status, caught.value.code) == (400, code)


@pytest.mark.parametrize(
    ("to", "from_", "code"),
    [
        ("+15005550001", SENDER, 21211),
        ("+15005550002", SENDER, 21612),
        ("+15005550003", SENDER, 21408),
        ("+15005550004", SENDER, 21610),
        ("+15005550009", SENDER, 21614),
        (CUSTOMER, "+15005550001", 21212),
        (CUSTOMER, "+15005550007", 21606),
        (CUSTOMER, "+15005550008", 21611),
    ],
)
def test_messages_magic_number_raises_documented_code(client: Client, to: str, from_: str, code: int) -> None:
    with pytest.raises(TwilioRestException) as caught:
        client.messages.create(to=to, from_=from_, body="magic")

    assert (caught.value.status, caught.value.code) == (400, code)


def test_messages_error_body_has_twilio_shape(sandbox: TwilioSandbox) -> None:
    response = requests.post(
        f"{sandbox.base_url}/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json",
        data={"To": "+15005550001", "From": SENDER, "Body": "x"},
        auth=(ACCOUNT_SID, AUTH_TOKEN),
        timeout=5,
    )

    assert response.status_code == 400
    body = response.json()
    assert set(body) == {"code", "message", "more_info", "status"}
    assert body["more_info"] == "https://www.twilio.com/docs/errors/21211"


# -- auth and routing -------------------------------------------------------------
def test_rest_wrong_token_raises_20003(http_client: SandboxHttpClient) -> None:
    bad_client = Client(ACCOUNT_SID, "wrong-token", http_client=http_client)

    with pytest.raises(TwilioRestException) as caught:
        bad_client.messages.create(to=CUSTOMER, from_=SENDER, body="x")

    assert (caught.value.status, caught.value.code) == (401, 20003)


def test_rest_other_account_in_path_raises_20003(http_client: SandboxHttpClient) -> None:
    other = Client(API_KEY_SID, API_KEY_SECRET, "AC" + "9" * 32, http_client=http_client)

    with pytest.raises(TwilioRestException) as caught:
        other.messages.create(to=CUSTOMER, from_=SENDER, body="x")

    assert (caught.value.status, caught.value.code) == (401, 20003)


def test_rest_unknown_sid_raises_20404(client: Client) -> None:
    with pytest.raises(TwilioRestException) as caught:
        client.messages("SM" + "0" * 32).fetch()

    assert (caught.value.status, caught.value.code) == (404, 20404)


def test_rest_keep_alive_connection_serves_several_requests(sandbox: TwilioSandbox) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", int(sandbox.base_url.rsplit(":", 1)[1]), timeout=5)
    try:
        for _ in range(3):
            conn.request("GET", "/_sandbox/messages")
            response = conn.getresponse()
            assert response.status == 200 and json.loads(response.read()) == []
            assert not response.will_close
    finally:
        conn.close()


# -- calls -------------------------------------------------------------------------
def test_calls_create_and_fetch_returns_queued_call(client: Client, app: FakeApp) -> None:
    call = client.calls.create(to=CUSTOMER, from_=SENDER, url=app.url("/voice"))

    assert SID_RE["CA"].match(call.sid)
    assert call.status == "queued" and call.direction == "outbound-api"
    assert isinstance(call.date_created, datetime)
    assert client.calls(call.sid).fetch().sid == call.sid
    assert [c.sid for c in client.calls.list()] == [call.sid]


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [
        ({"to": "", "from_": SENDER, "url": "http://127.0.0.1/x"}, 21201),
        ({"to": CUSTOMER, "from_": SENDER}, 21205),
    ],
)
def test_calls_create_missing_param_raises_validation_code(client: Client, kwargs: dict[str, str], code: int) -> None:
    with pytest.raises(TwilioRestException) as caught:
        client.calls.create(**kwargs)

    assert caught.value.code == code


@pytest.mark.parametrize(
    ("to", "from_", "code"),
    [
        ("+15005550001", SENDER, 21217),
        ("+15005550002", SENDER, 21214),
        ("+15005550003", SENDER, 21215),
        ("+15005550004", SENDER, 21216),
        (CUSTOMER, "+15005550001", 21212),
        (CUSTOMER, "+15005550007", 21210),
    ],
)
def test_calls_magic_number_raises_documented_code(client: Client, to: str, from_: str, code: int) -> None:
    with pytest.raises(TwilioRestException) as caught:
        client.calls.create(to=to, from_=from_, twiml="<Response/>")

    assert (caught.value.status, caught.value.code) == (400, code)


def test_call_flow_url_fetched_with_valid_signature(client: Client, sandbox: TwilioSandbox, app: FakeApp) -> None:
    call = client.calls.create(to=CUSTOMER, from_=SENDER, url=app.url("/voice"))

    assert sandbox.wait_for(lambda: sandbox.calls[0]["status"] == "completed")
    (fetch,) = app.requests_to("/voice")
    assert fetch["valid"] and fetch["method"] == "POST"
    assert fetch["params"]["CallSid"] == call.sid
    assert fetch["params"]["AccountSid"] == ACCOUNT_SID
    assert fetch["params"]["Direction"] == "outbound-api"
    assert fetch["params"]["CallStatus"] in ("ringing", "in-progress")
    assert (fetch["params"]["From"], fetch["params"]["To"]) == (SENDER, CUSTOMER)
    assert fetch["headers"]["User-Agent"] == "TwilioProxy/1.1"
    assert fetch["headers"]["Content-Type"] == "application/x-www-form-urlencoded"
    assert fetch["headers"]["I-Twilio-Idempotency-Token"]
    recorded = sandbox.calls[0]["sandbox"]
    assert (recorded["twiml"], recorded["webhook_status"], recorded["twilio_error"]) == (VOICE_TWIML, 200, None)
    assert client.calls(call.sid).fetch().status == "completed"


def test_call_flow_get_method_signs_full_url(client: Client, sandbox: TwilioSandbox, app: FakeApp) -> None:
    client.calls.create(to=CUSTOMER, from_=SENDER, url=app.url("/voice?lang=en"), method="GET")

    assert sandbox.wait_for(lambda: sandbox.calls[0]["status"] == "completed")
    (fetch,) = app.requests_to("/voice")
    assert fetch["method"] == "GET" and fetch["valid"]
    assert fetch["params"]["lang"] == "en" and fetch["params"]["CallStatus"]


@pytest.mark.parametrize(
    ("path", "code"),
    [("/text", 12300), ("/broken", 12100), ("/error", 11200), (None, 11200)],
)
def test_call_flow_bad_reply_records_twilio_error(
    client: Client, sandbox: TwilioSandbox, app: FakeApp, path: str | None, code: int
) -> None:
    url = app.url(path) if path else f"http://127.0.0.1:{closed_port()}/voice"

    client.calls.create(to=CUSTOMER, from_=SENDER, url=url)

    assert sandbox.wait_for(lambda: sandbox.calls[0]["status"] == "failed")
    recorded = sandbox.calls[0]["sandbox"]
    assert recorded["twilio_error"]["code"] == code and recorded["twiml"] is None
    (event,) = [e for e in sandbox.activity if e["type"] == "call.webhook"]
    assert event["twilio_error"]["code"] == code and event["url"] == url


def test_call_flow_inline_twiml_completes_without_fetch(client: Client, sandbox: TwilioSandbox) -> None:
    client.calls.create(to=CUSTOMER, from_=SENDER, twiml="<Response><Hangup/></Response>")

    assert sandbox.wait_for(lambda: sandbox.calls[0]["status"] == "completed")
    assert sandbox.calls[0]["sandbox"]["twiml"] == "<Response><Hangup/></Response>"


# -- status callbacks ------------------------------------------------------------------
def test_status_callbacks_message_posts_queued_sent_delivered_in_order(
    client: Client, sandbox: TwilioSandbox, app: FakeApp
) -> None:
    message = client.messages.create(to=CUSTOMER, from_=SENDER, body="track me", status_callback=app.url("/status"))

    assert sandbox.wait_for(lambda: len(app.requests_to("/status")) == 3)
    callbacks = app.requests_to("/status")
    assert [c["params"]["MessageStatus"] for c in callbacks] == ["queued", "sent", "delivered"]
    assert all(c["valid"] for c in callbacks)
    assert {c["params"]["MessageSid"] for c in callbacks} == {message.sid}
    assert callbacks[0]["params"]["SmsStatus"] == "queued" and callbacks[0]["params"]["SmsSid"] == message.sid
    assert sandbox.wait_for(lambda: sandbox.messages[0]["status"] == "delivered")
    assert client.messages(message.sid).fetch().date_sent is not None


def test_status_callbacks_call_posts_lifecycle_in_order(client: Client, sandbox: TwilioSandbox, app: FakeApp) -> None:
    call = client.calls.create(to=CUSTOMER, from_=SENDER, url=app.url("/voice"), status_callback=app.url("/status"))

    assert sandbox.wait_for(lambda: len(app.requests_to("/status")) == 4)
    statuses = [(r["path"], r["params"]["CallStatus"]) for r in app.received]
    assert statuses == [
        ("/status", "initiated"),
        ("/status", "ringing"),
        ("/status", "in-progress"),
        ("/voice", "in-progress"),
        ("/status", "completed"),
    ]
    assert all(r["valid"] and r["params"]["CallSid"] == call.sid for r in app.received)


def test_status_callbacks_call_event_filter_sends_only_requested(
    client: Client, sandbox: TwilioSandbox, app: FakeApp
) -> None:
    client.calls.create(
        to=CUSTOMER,
        from_=SENDER,
        twiml="<Response/>",
        status_callback=app.url("/status"),
        status_callback_event=["completed"],
    )

    assert sandbox.wait_for(lambda: sandbox.calls[0]["status"] == "completed")
    assert sandbox.wait_for(lambda: len(app.requests_to("/status")) == 1)
    assert app.requests_to("/status")[0]["params"]["CallStatus"] == "completed"


# -- faults ----------------------------------------------------------------------------
def test_fault_status_429_with_retry_after_reaches_sdk(
    client: Client, http_client: SandboxHttpClient, sandbox: TwilioSandbox
) -> None:
    sandbox.inject_fault("status", status=429, headers={"Retry-After": "2"}, path_contains="/Messages")

    with pytest.raises(TwilioRestException) as caught:
        client.messages.create(to=CUSTOMER, from_=SENDER, body="x")

    assert (caught.value.status, caught.value.code) == (429, 20429)
    assert http_client._test_only_last_response is not None
    assert http_client._test_only_last_response.headers["Retry-After"] == "2"
    assert client.messages.create(to=CUSTOMER, from_=SENDER, body="x").status == "queued"
    assert len(sandbox.messages) == 1


def test_fault_status_500_custom_body_forever_until_cleared(client: Client, sandbox: TwilioSandbox) -> None:
    sandbox.inject_fault("status", status=500, body={"code": 20500, "message": "kaboom", "status": 500}, times=None)

    for _ in range(2):
        with pytest.raises(TwilioRestException) as caught:
            client.messages("SM" + "1" * 32).fetch()
        assert caught.value.status == 500 and "kaboom" in caught.value.msg
    with pytest.raises(TwilioException, match="Unable to fetch page"):  # how the SDK reports list failures
        client.messages.list()
    sandbox.clear_faults()
    assert client.messages.list() == []


def test_fault_path_and_method_filters_skip_other_requests(client: Client, sandbox: TwilioSandbox) -> None:
    sandbox.inject_fault("status", status=503, path_contains="/Calls", method="POST")

    assert client.messages.create(to=CUSTOMER, from_=SENDER, body="x").status == "queued"
    assert client.calls.list() == []
    with pytest.raises(TwilioRestException) as caught:
        client.calls.create(to=CUSTOMER, from_=SENDER, twiml="<Response/>")
    assert caught.value.status == 503


def test_fault_hang_client_read_timeout_then_release(sandbox: TwilioSandbox) -> None:
    sandbox.inject_fault("hang")
    hung_client = Client(ACCOUNT_SID, AUTH_TOKEN, http_client=SandboxHttpClient(sandbox.base_url, timeout=0.2))

    with pytest.raises(requests.exceptions.ReadTimeout):
        hung_client.messages.list()

    sandbox.release_hangs()
    assert hung_client.messages.list() == []


def test_fault_hang_stop_returns_within_one_second() -> None:
    sb = TwilioSandbox(account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN).start()
    sb.inject_fault("hang")
    errors: list[BaseException] = []

    def call() -> None:
        try:
            requests.get(f"{sb.base_url}/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json", timeout=5)
        except requests.RequestException as exc:
            errors.append(exc)

    worker = threading.Thread(target=call)
    worker.start()
    assert sb.wait_for(lambda: any(e["type"] == "rest.fault" for e in sb.activity))
    started = time.monotonic()
    sb.stop()
    worker.join(2)

    assert time.monotonic() - started < 1.0
    assert not worker.is_alive() and isinstance(errors[0], requests.exceptions.ConnectionError)


def test_fault_reset_raises_requests_connection_error(client: Client, sandbox: TwilioSandbox) -> None:
    sandbox.inject_fault("reset", method="POST")

    with pytest.raises(requests.exceptions.ConnectionError):
        client.messages.create(to=CUSTOMER, from_=SENDER, body="x")

    assert sandbox.messages == []
    assert client.messages.create(to=CUSTOMER, from_=SENDER, body="x").status == "queued"


def test_fault_injected_via_control_endpoint_applies(client: Client, sandbox: TwilioSandbox) -> None:
    created = control(sandbox, "POST", "/faults", {"kind": "status", "status": 500, "times": None})
    assert created.status_code == 201 and created.json()["times"] is None
    assert control(sandbox, "POST", "/faults", {"kind": "bogus"}).status_code == 400

    with pytest.raises(TwilioException):
        client.messages.list()
    assert control(sandbox, "DELETE", "/faults").status_code == 200
    assert client.messages.list() == []


# -- inbound ------------------------------------------------------------------------------
def test_inbound_sms_api_posts_signed_params_and_records_reply(sandbox: TwilioSandbox, app: FakeApp) -> None:
    result = sandbox.simulate_inbound_sms(app.url("/sms"), CUSTOMER, SENDER, "hello app")

    assert result["status"] == 200 and result["twiml"] == SMS_TWIML
    assert result["content_type"] == "application/xml" and "twilio_error" not in result
    (received,) = app.requests_to("/sms")
    params = received["params"]
    assert received["valid"]
    assert (params["From"], params["To"], params["Body"]) == (CUSTOMER, SENDER, "hello app")
    assert params["MessageSid"] == params["SmsSid"] == params["SmsMessageSid"]
    assert (params["NumMedia"], params["SmsStatus"], params["AccountSid"]) == ("0", "received", ACCOUNT_SID)
    assert "MessagingServiceSid" not in params and params["FromCountry"] == "US"
    (reply,) = sandbox.messages
    assert (reply["to"], reply["from"], reply["body"]) == (CUSTOMER, SENDER, "Thanks, got it!")
    assert reply["direction"] == "outbound-reply"


def test_inbound_sms_empty_reply_is_not_an_error(sandbox: TwilioSandbox, app: FakeApp) -> None:
    result = sandbox.simulate_inbound_sms(app.url("/empty"), CUSTOMER, SENDER, "stop")

    assert result["status"] == 204 and "twilio_error" not in result
    assert sandbox.messages == []


def test_inbound_sms_text_plain_reply_reports_12300(sandbox: TwilioSandbox, app: FakeApp) -> None:
    result = sandbox.simulate_inbound_sms(app.url("/text"), CUSTOMER, SENDER, "hi")

    assert result["twilio_error"]["code"] == 12300 and result["twiml"] is None


def test_inbound_call_api_returns_twiml(sandbox: TwilioSandbox, app: FakeApp) -> None:
    result = sandbox.simulate_inbound_call(app.url("/voice"), CUSTOMER, SENDER)

    assert result["twiml"] == VOICE_TWIML and "twilio_error" not in result
    (received,) = app.requests_to("/voice")
    assert received["valid"]
    assert received["params"]["CallStatus"] == "ringing" and received["params"]["Direction"] == "inbound"
    assert SID_RE["CA"].match(received["params"]["CallSid"])


def test_inbound_control_endpoints_return_simulation_result(sandbox: TwilioSandbox, app: FakeApp) -> None:
    sms_payload = {"url": app.url("/sms"), "from": CUSTOMER, "to": SENDER, "body": "x"}
    sms = control(sandbox, "POST", "/inbound/sms", sms_payload)
    call = control(sandbox, "POST", "/inbound/call", {"url": app.url("/broken"), "from": CUSTOMER, "to": SENDER})

    assert sms.status_code == 200 and sms.json()["twiml"] == SMS_TWIML
    assert call.status_code == 200 and call.json()["twilio_error"]["code"] == 12100
    assert control(sandbox, "POST", "/inbound/sms", {"url": app.url("/sms")}).status_code == 400
    assert [m["body"] for m in control(sandbox, "GET", "/messages").json()] == ["Thanks, got it!"]
    assert [e["type"] for e in control(sandbox, "GET", "/activity").json()] == ["inbound.sms", "inbound.call"]


def run_cli(*args: str, timeout: float = 10) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "devtools.sandbox", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_cli_sms_call_activity_print_results(sandbox: TwilioSandbox, app: FakeApp) -> None:
    sms = run_cli(
        "sms",
        "--sandbox",
        sandbox.base_url,
        "--url",
        app.url("/sms"),
        "--from",
        CUSTOMER,
        "--to",
        SENDER,
        "--body",
        "hi from cli",
    )
    call = run_cli("call", "--sandbox", sandbox.base_url, "--url", app.url("/text"), "--from", CUSTOMER, "--to", SENDER)
    activity = run_cli("activity", "--sandbox", sandbox.base_url)

    assert sms.returncode == 0 and sms.stdout.strip() == SMS_TWIML
    assert app.requests_to("/sms")[0]["params"]["Body"] == "hi from cli"
    assert call.returncode == 1 and "12300" in call.stderr
    assert activity.returncode == 0
    assert [e["type"] for e in json.loads(activity.stdout)] == ["inbound.sms", "inbound.call"]


def test_cli_serve_prints_base_url_and_stops_on_sigint() -> None:
    port = closed_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "devtools.sandbox",
            "serve",
            "--port",
            str(port),
            "--account-sid",
            ACCOUNT_SID,
            "--auth-token",
            AUTH_TOKEN,
        ],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        base_url = process.stdout.readline().strip()
        assert base_url == f"http://127.0.0.1:{port}"
        response = requests.get(
            f"{base_url}/2010-04-01/Accounts/{ACCOUNT_SID}/Calls.json", auth=(ACCOUNT_SID, AUTH_TOKEN), timeout=5
        )
        assert response.status_code == 200 and response.json()["calls"] == []
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=5) == 0
        assert process.stderr is not None and AUTH_TOKEN not in process.stderr.read()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()


# -- activity, redaction, lifecycle ----------------------------------------------------------
def test_activity_log_orders_rest_then_flow_events(client: Client, sandbox: TwilioSandbox, app: FakeApp) -> None:
    client.calls.create(to=CUSTOMER, from_=SENDER, url=app.url("/voice"), status_callback=app.url("/status"))

    assert sandbox.wait_for(lambda: len(app.requests_to("/status")) == 4)
    assert sandbox.wait_for(lambda: sum(e["type"] == "status_callback" for e in sandbox.activity) == 4)
    events = sandbox.activity
    assert [e["type"] for e in events] == [
        "rest.request",
        "rest.response",
        "status_callback",
        "status_callback",
        "status_callback",
        "call.webhook",
        "status_callback",
    ]
    assert [e["seq"] for e in events] == sorted(e["seq"] for e in events)
    assert events[1]["status"] == 201
    webhook = events[5]
    assert (webhook["status"], webhook["twiml"], webhook["twilio_error"]) == (200, VOICE_TWIML, None)
    assert webhook["content_type"].startswith("text/xml") and webhook["params"]["CallStatus"]
    json.dumps(events)


def test_requests_and_activity_never_contain_secrets(client: Client, sandbox: TwilioSandbox) -> None:
    client.messages.create(to=CUSTOMER, from_=SENDER, body="x")

    assert sandbox.requests[0]["headers"]["Authorization"] == "<redacted>"
    dumped = json.dumps([sandbox.requests, sandbox.activity, sandbox.messages, sandbox.calls])
    assert AUTH_TOKEN not in dumped and API_KEY_SECRET not in dumped
    assert AUTH_TOKEN not in repr(sandbox)


def test_sandbox_context_manager_stops_and_frees_port() -> None:
    with TwilioSandbox(account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN) as sb:
        base_url = sb.base_url
        assert requests.get(f"{base_url}/_sandbox/calls", timeout=5).json() == []

    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(f"{base_url}/_sandbox/calls", timeout=1)


def test_sandbox_reset_while_call_flow_runs_ends_the_flow_quietly(logs):
    """reset() during a call's progression used to crash the flow thread with KeyError('account_sid')."""
    import time as _time

    import requests as _requests

    from devtools.sandbox import TwilioSandbox

    sb = TwilioSandbox(step_delay=0.05).start()
    try:
        response = _requests.post(
            f"{sb.base_url}/2010-04-01/Accounts/{sb.account_sid}/Calls.json",
            data={"To": "+14155550123", "From": "+15005550006", "Url": "http://127.0.0.1:9/twiml"},
            auth=(sb.account_sid, sb.auth_token), timeout=5)
        assert response.status_code == 201
        _time.sleep(0.02)  # the flow has read the call and is waiting for its first step
        sb.reset()
        _time.sleep(0.4)  # the flow's remaining steps run against an empty store
    finally:
        sb.stop()
    failures = [text for name, text in logs.records if name == "devtools.sandbox" and "failed" in text]
    assert failures == []
