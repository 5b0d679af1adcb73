"""devtools.sandbox: REST surface, auth, magic numbers, faults, call flow, inbound simulation, activity log, CLI."""

from __future__ import annotations

import base64
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest
import requests
from twilio.base.exceptions import TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response as TwilioResponse
from twilio.request_validator import RequestValidator
from twilio.rest import Client
from werkzeug.datastructures import MultiDict
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from devtools.sandbox import DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN, TwilioSandbox
from devtools.sandbox.cli import main as cli_main
from devtools.sandbox.core import QuietHandler
from tests.support import ROOT

ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
AUTH_TOKEN = "test-auth-token-0123456789"
API_KEY_SID = "SK" + "fedcba9876543210" * 2
API_KEY_SECRET = "test-api-key-secret"
SENDER = "+15005550006"
CUSTOMER = "+15551234567"
SMS = MultiDict({"To": CUSTOMER, "From": SENDER, "Body": "Hello there"})
VOICE_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response><Say>Hello from the app</Say></Response>'
SMS_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response><Message>Thanks, got it!</Message></Response>'


# -- helpers -------------------------------------------------------------------------------------------------------
class FakeApp:
    """The function app's webhooks: a canned answer per path (ROUTES, plus voice() scripts); records every request
    and its signature's validity, and answers 403 to a request whose X-Twilio-Signature does not verify."""

    ROUTES: dict[str, tuple[int, str | None, str]] = {
        "/voice": (200, "text/xml; charset=utf-8", VOICE_TWIML),
        "/sms": (200, "application/xml", SMS_TWIML),
        "/empty": (204, None, ""),
        "/status": (204, None, ""),
        "/recording-status": (204, None, ""),
        "/text": (200, "text/plain", "hello there"),
        "/broken": (200, "text/xml", "<Response><Say>oops</Response>"),
        "/error": (500, "text/html", "<h1>boom</h1>"),
    }

    def __init__(self) -> None:
        self.routes = dict(self.ROUTES)
        self.received: list[dict[str, Any]] = []
        self.validator = RequestValidator(AUTH_TOKEN)
        self.server = make_server("127.0.0.1", 0, self.wsgi, threaded=True, request_handler=QuietHandler)
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.01})

    def wsgi(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        url = f"http://127.0.0.1:{self.server.port}{environ['RAW_URI']}"  # exactly what the sandbox asked for
        values: MultiDict[str, str] = request.args if request.method == "GET" else request.form
        signed = {} if request.method == "GET" else values.to_dict()
        valid = self.validator.validate(url, signed, request.headers["X-Twilio-Signature"])
        self.received.append({"method": request.method, "url": url, "path": request.path, "params": values.to_dict(),
                              "headers": dict(request.headers), "valid": valid})
        status, content_type, body = self.routes.get(request.path, (404, "text/plain", "not found"))
        if not valid:
            status, content_type, body = 403, "text/plain", "bad signature"
        return Response(body, status, content_type=content_type)(environ, start_response)

    def voice(self, **documents: str) -> None:
        """Script TwiML answers: voice(ivr="<Say>Hi</Say>") answers /ivr with <Response><Say>Hi</Say></Response>
        (a "__" in a name stands for "/": ivr__menu is /ivr/menu)."""
        for name, verbs in documents.items():
            self.routes["/" + name.replace("__", "/")] = (200, "text/xml", f"<Response>{verbs}</Response>")

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.port}{path}"

    def to(self, path: str) -> list[dict[str, Any]]:
        return [r for r in list(self.received) if r["path"] == path]


class SandboxHttpClient(TwilioHttpClient):
    """The Twilio SDK's HTTP client, sending every request to the sandbox's origin."""

    def __init__(self, base_url: str) -> None:
        super().__init__(timeout=5)
        self.base_url = base_url

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> TwilioResponse:
        return super().request(method, self.base_url + urlsplit(url).path, *args, **kwargs)


def api(sandbox: TwilioSandbox, resource: str, sid: str | None = None) -> str:
    """The URL of a collection ("Messages", "Calls") or of one of its resources."""
    return f"{sandbox.base_url}/2010-04-01/Accounts/{ACCOUNT_SID}/{resource}{'/' + sid if sid else ''}.json"


def create(sandbox: TwilioSandbox, resource: str, form: MultiDict[str, str],
           auth: tuple[str, str] | None = (ACCOUNT_SID, AUTH_TOKEN), **kwargs: Any) -> requests.Response:
    """POST a form (repeated names allowed) to a collection."""
    kwargs.setdefault("timeout", 5)
    return requests.post(api(sandbox, resource), data=list(form.items(multi=True)), auth=auth, **kwargs)


def call_form(url: str, **extra: str) -> MultiDict[str, str]:
    return MultiDict({"To": CUSTOMER, "From": SENDER, "Url": url, **extra})


def raw_create(sandbox: TwilioSandbox, form: MultiDict[str, str] = SMS) -> socket.socket:
    """Send a create-message request on a plain socket (to watch exactly what comes back)."""
    body = urlencode(list(form.items(multi=True)))
    credentials = base64.b64encode(f"{ACCOUNT_SID}:{AUTH_TOKEN}".encode()).decode()
    path = urlsplit(api(sandbox, "Messages")).path
    sock = socket.create_connection(urlsplit(sandbox.base_url).netloc.split(":"), timeout=5)  # type: ignore[arg-type]
    sock.sendall(f"POST {path} HTTP/1.1\r\nHost: sandbox\r\nAuthorization: Basic {credentials}\r\n"
                 f"Content-Type: application/x-www-form-urlencoded\r\n"
                 f"Content-Length: {len(body)}\r\n\r\n{body}".encode())
    return sock


def read_pieces(sock: socket.socket) -> list[tuple[float, bytes]]:
    """Every recv() until the server closes: (arrival time, bytes)."""
    pieces = []
    with sock:
        while data := sock.recv(65536):
            pieces.append((time.monotonic(), data))
    return pieces


def split_response(raw: bytes) -> tuple[str, dict[str, str], bytes]:
    """(status line, headers, body) of a raw HTTP response."""
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    return status_line, dict(line.split(": ", 1) for line in lines), body


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def control(sandbox: TwilioSandbox, method: str, route: str, payload: Any = None) -> requests.Response:
    return requests.request(method, f"{sandbox.base_url}/_sandbox{route}", json=payload, timeout=5)


def event_types(sandbox: TwilioSandbox) -> list[str]:
    return [event["type"] for event in sandbox.activity]


# -- fixtures ------------------------------------------------------------------------------------------------------
@pytest.fixture(autouse=True)
def no_thread_leaks() -> Iterator[None]:
    before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + 2.0
    while (leaked := [t for t in threading.enumerate() if t not in before]) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not leaked, f"threads still running: {leaked}"


@pytest.fixture
def sandbox() -> Iterator[TwilioSandbox]:
    sb = TwilioSandbox(account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN, api_keys={API_KEY_SID: API_KEY_SECRET},
                       step_delay=0.002).start()
    yield sb
    started = time.monotonic()
    sb.stop()
    assert time.monotonic() - started < 1.0


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


# -- messages ------------------------------------------------------------------------------------------------------
def test_messages_create_and_fetch_through_sdk_return_twilio_shape(client: Client, sandbox: TwilioSandbox) -> None:
    created = client.messages.create(to=CUSTOMER, from_=SENDER, body="Hello there")
    fetched = client.messages(created.sid).fetch()

    assert created.sid.startswith("SM") and len(created.sid) == 34
    assert (created.status, created.direction, created.account_sid) == ("queued", "outbound-api", ACCOUNT_SID)
    assert (fetched.sid, fetched.to, fetched.from_, fetched.body) == (created.sid, CUSTOMER, SENDER, "Hello there")
    assert isinstance(created.date_created, datetime) and created.date_created.tzinfo is not None
    assert created.uri == f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/{created.sid}.json"
    assert sandbox.messages[0]["sid"] == created.sid
    assert sandbox.requests[0]["form"]["Body"] == ["Hello there"]


def test_messages_repeated_media_url_counts_media_and_keeps_every_value(sandbox: TwilioSandbox) -> None:
    urls = ["https://example.com/a.jpg", "https://example.com/b.png"]
    form = MultiDict([("To", CUSTOMER), ("From", SENDER), ("MediaUrl", urls[0]), ("MediaUrl", urls[1])])

    response = create(sandbox, "Messages", form)

    assert response.status_code == 201 and response.json()["num_media"] == "2"
    assert sandbox.requests[0]["form"]["MediaUrl"] == urls


def test_messages_service_without_from_is_accepted_then_given_a_sender(sandbox: TwilioSandbox) -> None:
    form = MultiDict({"To": CUSTOMER, "MessagingServiceSid": "MG" + "1" * 32, "Body": "hi"})

    response = create(sandbox, "Messages", form)

    assert (response.status_code, response.json()["status"], response.json()["from"]) == (201, "accepted", None)
    assert sandbox.wait_for(lambda: sandbox.messages[0]["status"] == "delivered")
    assert sandbox.messages[0]["from"] == SENDER


@pytest.mark.parametrize(("drop", "extra", "code"), [
    ("To", {}, 21604), ("From", {}, 21603), ("Body", {}, 21602), (None, {"Body": "x" * 1601}, 21617)])
def test_messages_missing_or_bad_param_returns_400_with_code(sandbox: TwilioSandbox, drop: str | None,
                                                             extra: dict[str, str], code: int) -> None:
    form = MultiDict({**{k: v for k, v in SMS.items() if k != drop}, **extra})

    response = create(sandbox, "Messages", form)

    assert (response.status_code, response.json()["code"]) == (400, code)
    assert sandbox.messages == []


@pytest.mark.parametrize(("to", "from_", "code"), [
    ("+15005550001", SENDER, 21211), ("+15005550002", SENDER, 21612), ("+15005550003", SENDER, 21408),
    ("+15005550004", SENDER, 21610), ("+15005550009", SENDER, 21614), (CUSTOMER, "+15005550001", 21212),
    (CUSTOMER, "+15005550007", 21606), (CUSTOMER, "+15005550008", 21611)])
def test_messages_magic_number_raises_documented_code(client: Client, to: str, from_: str, code: int) -> None:
    with pytest.raises(TwilioRestException) as caught:
        client.messages.create(to=to, from_=from_, body="magic")

    assert (caught.value.status, caught.value.code) == (400, code)


def test_messages_error_body_has_exactly_twilio_error_fields(sandbox: TwilioSandbox) -> None:
    response = create(sandbox, "Messages", MultiDict({"To": "+15005550001", "From": SENDER, "Body": "x"}))

    assert response.json() == {"code": 21211, "message": "The 'To' number +15005550001 is not a valid phone number.",
                               "more_info": "https://www.twilio.com/docs/errors/21211", "status": 400}


# -- calls ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("to", "from_", "code"), [
    ("+15005550001", SENDER, 21217), ("+15005550002", SENDER, 21214), ("+15005550003", SENDER, 21215),
    ("+15005550004", SENDER, 21216), (CUSTOMER, "+15005550001", 21212), (CUSTOMER, "+15005550007", 21210)])
def test_calls_magic_number_raises_documented_code(client: Client, to: str, from_: str, code: int) -> None:
    with pytest.raises(TwilioRestException) as caught:
        client.calls.create(to=to, from_=from_, url="https://example.com/voice")

    assert (caught.value.status, caught.value.code) == (400, code)


@pytest.mark.parametrize(("form", "code"), [
    ({"From": SENDER, "Url": "https://example.com/v"}, 21201),
    ({"To": CUSTOMER, "Url": "https://example.com/v"}, 21213),
    ({"To": CUSTOMER, "From": SENDER}, 21205), ({"To": CUSTOMER, "From": SENDER, "Url": "ftp://x.example"}, 21205),
])
def test_calls_missing_or_bad_param_returns_400_with_code(sandbox: TwilioSandbox, form: dict[str, str],
                                                          code: int) -> None:
    response = create(sandbox, "Calls", MultiDict(form))

    assert (response.status_code, response.json()["code"]) == (400, code)
    assert sandbox.calls == []


def test_calls_create_and_fetch_through_sdk_return_queued_call(client: Client, app: FakeApp) -> None:
    created = client.calls.create(to=CUSTOMER, from_=SENDER, url=app.url("/voice"))

    assert created.sid.startswith("CA") and (created.status, created.direction) == ("queued", "outbound-api")
    assert client.calls(created.sid).fetch().to == CUSTOMER


# -- auth and routing ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("auth", [None, (ACCOUNT_SID, "wrong-token"), (API_KEY_SID, "wrong-secret"),
                                  ("SK" + "1" * 32, API_KEY_SECRET)])
def test_auth_missing_or_wrong_credentials_returns_401_20003(sandbox: TwilioSandbox, auth: Any) -> None:
    response = create(sandbox, "Messages", SMS, auth=auth)

    assert (response.status_code, response.json()["code"]) == (401, 20003)
    assert response.headers["WWW-Authenticate"].startswith("Basic")
    assert sandbox.messages == []


def test_auth_api_key_and_secret_are_accepted(sandbox: TwilioSandbox) -> None:
    response = create(sandbox, "Messages", SMS, auth=(API_KEY_SID, API_KEY_SECRET))

    assert response.status_code == 201


def test_auth_other_account_in_path_returns_401_20003(sandbox: TwilioSandbox) -> None:
    url = api(sandbox, "Messages").replace(ACCOUNT_SID, "AC" + "9" * 32)

    response = requests.post(url, data=SMS, auth=(API_KEY_SID, API_KEY_SECRET), timeout=5)

    assert (response.status_code, response.json()["code"]) == (401, 20003)


def test_rest_unknown_sid_or_path_returns_404_20404(sandbox: TwilioSandbox) -> None:
    unknown_sid = requests.get(api(sandbox, "Messages", "SM" + "0" * 32), auth=(ACCOUNT_SID, AUTH_TOKEN), timeout=5)
    unknown_path = requests.get(api(sandbox, "Queues"), auth=(ACCOUNT_SID, AUTH_TOKEN), timeout=5)

    assert (unknown_sid.status_code, unknown_sid.json()["code"]) == (404, 20404)
    assert (unknown_path.status_code, unknown_path.json()["code"]) == (404, 20404)


def test_rest_list_or_update_returns_405_20004(sandbox: TwilioSandbox) -> None:
    sid = create(sandbox, "Messages", SMS).json()["sid"]

    listing = requests.get(api(sandbox, "Messages"), auth=(ACCOUNT_SID, AUTH_TOKEN), timeout=5)
    update = requests.post(api(sandbox, "Messages", sid), data={"Body": "x"}, auth=(ACCOUNT_SID, AUTH_TOKEN), timeout=5)

    assert (listing.status_code, listing.json()["code"]) == (405, 20004)
    assert (update.status_code, update.json()["code"]) == (405, 20004)


def test_request_id_header_matches_activity_and_request_log(sandbox: TwilioSandbox) -> None:
    sandbox.inject_fault("status", status=503, method="GET")
    answers = [create(sandbox, "Messages", SMS), create(sandbox, "Messages", MultiDict({"To": CUSTOMER})),
               requests.get(api(sandbox, "Messages", "SM" + "0" * 32), auth=(ACCOUNT_SID, AUTH_TOKEN), timeout=5)]

    header_ids = [answer.headers["Twilio-Request-Id"] for answer in answers]
    events = sandbox.activity
    assert [answer.status_code for answer in answers] == [201, 400, 503]
    assert header_ids == [entry["request_id"] for entry in sandbox.requests]
    assert header_ids == [e["request_id"] for e in events if e["type"] == "rest.request"]
    assert header_ids == [e["request_id"] for e in events if e["type"] == "rest.response"]
    assert len(set(header_ids)) == 3 and all(rid.startswith("RQ") for rid in header_ids)


# -- call flow and status callbacks --------------------------------------------------------------------------------
def test_call_flow_fetches_url_signed_with_call_params_and_records_twiml(sandbox: TwilioSandbox, app: FakeApp) -> None:
    sid = create(sandbox, "Calls", call_form(app.url("/voice"))).json()["sid"]

    assert sandbox.wait_for(lambda: sandbox.calls[0]["status"] == "completed")
    (fetch,) = app.to("/voice")
    assert fetch["valid"] and fetch["method"] == "POST"
    assert fetch["params"] | {"CallStatus": "?"} == {
        "AccountSid": ACCOUNT_SID, "ApiVersion": "2010-04-01", "CallSid": sid, "CallStatus": "?", "Called": CUSTOMER,
        "Caller": SENDER, "Direction": "outbound-api", "From": SENDER, "To": CUSTOMER}
    assert fetch["headers"]["User-Agent"] == "TwilioProxy/1.1" and fetch["headers"]["I-Twilio-Idempotency-Token"]
    assert fetch["headers"]["Content-Type"] == "application/x-www-form-urlencoded"
    recorded = sandbox.calls[0]["sandbox"]
    assert (recorded["twiml"], recorded["webhook_status"], recorded["twilio_error"]) == (VOICE_TWIML, 200, None)
    assert sandbox.calls[0]["duration"] is not None and sandbox.calls[0]["end_time"] is not None


def test_call_flow_get_method_signs_the_full_url(sandbox: TwilioSandbox, app: FakeApp) -> None:
    create(sandbox, "Calls", call_form(app.url("/voice?lang=en"), Method="GET"))

    assert sandbox.wait_for(lambda: sandbox.calls[0]["status"] == "completed")
    (fetch,) = app.to("/voice")
    assert fetch["method"] == "GET" and fetch["valid"]
    assert fetch["params"]["lang"] == "en" and fetch["params"]["CallStatus"] == "in-progress"


@pytest.mark.parametrize(("path", "code"), [("/text", 12300), ("/broken", 12100), ("/error", 11200), (None, 11200)])
def test_call_flow_bad_answer_fails_call_with_twilio_error(sandbox: TwilioSandbox, app: FakeApp, path: str | None,
                                                           code: int) -> None:
    url = app.url(path) if path else f"http://127.0.0.1:{closed_port()}/voice"

    create(sandbox, "Calls", call_form(url))

    assert sandbox.wait_for(lambda: sandbox.calls[0]["status"] == "failed")
    recorded = sandbox.calls[0]["sandbox"]
    assert recorded["twilio_error"]["code"] == code and recorded["twiml"] is None
    (event,) = [e for e in sandbox.activity if e["type"] == "call.webhook"]
    assert (event["twilio_error"]["code"], event["url"]) == (code, url)


def test_call_flow_status_callbacks_are_signed_and_in_order(sandbox: TwilioSandbox, app: FakeApp) -> None:
    sid = create(sandbox, "Calls", call_form(app.url("/voice"), StatusCallback=app.url("/status"))).json()["sid"]

    assert sandbox.wait_for(lambda: len(app.to("/status")) == 4)
    assert [(r["path"], r["params"]["CallStatus"]) for r in app.received] == [
        ("/status", "initiated"), ("/status", "ringing"), ("/status", "in-progress"), ("/voice", "in-progress"),
        ("/status", "completed")]
    assert all(r["valid"] and r["params"]["CallSid"] == sid for r in app.received)
    assert [r["params"]["SequenceNumber"] for r in app.to("/status")] == ["0", "1", "2", "3"]
    assert "CallDuration" in app.to("/status")[-1]["params"]


def test_message_status_callbacks_queued_sent_delivered_are_signed(sandbox: TwilioSandbox, app: FakeApp) -> None:
    sid = create(sandbox, "Messages", MultiDict({**SMS, "StatusCallback": app.url("/status")})).json()["sid"]

    assert sandbox.wait_for(lambda: len(app.to("/status")) == 3)
    callbacks = app.to("/status")
    assert [c["params"]["MessageStatus"] for c in callbacks] == ["queued", "sent", "delivered"]
    assert all(c["valid"] and c["params"]["MessageSid"] == c["params"]["SmsSid"] == sid for c in callbacks)
    assert sandbox.wait_for(lambda: sandbox.messages[0]["date_sent"] is not None)


# -- faults --------------------------------------------------------------------------------------------------------
def test_fault_status_429_sends_headers_and_twilio_body_then_runs_out(sandbox: TwilioSandbox) -> None:
    sandbox.inject_fault("status", status=429, headers={"Retry-After": "2"}, times=2)

    answers = [create(sandbox, "Messages", SMS) for _ in range(3)]

    assert [a.status_code for a in answers] == [429, 429, 201]
    assert answers[0].headers["Retry-After"] == "2"
    assert answers[0].json() == {"code": 20429, "message": "Too Many Requests", "status": 429,
                                 "more_info": "https://www.twilio.com/docs/errors/20429"}
    assert len(sandbox.messages) == 1 and len(sandbox.requests) == 3
    assert sandbox.faults == []


def test_fault_status_custom_body_and_content_type_until_cleared(sandbox: TwilioSandbox) -> None:
    sandbox.inject_fault("status", status=502, body="<html>down</html>", content_type="text/html", times=None)

    first, second = create(sandbox, "Messages", SMS), create(sandbox, "Messages", SMS)
    armed = sandbox.faults
    sandbox.clear_faults()

    assert [(a.status_code, a.text, a.headers["Content-Type"]) for a in (first, second)] == [
        (502, "<html>down</html>", "text/html")] * 2
    assert [(f["kind"], f["times"]) for f in armed] == [("status", None)]
    assert create(sandbox, "Messages", SMS).status_code == 201


def test_fault_path_and_method_filters_skip_other_requests(sandbox: TwilioSandbox, app: FakeApp) -> None:
    sandbox.inject_fault("status", status=503, path_contains="/Calls", method="post")

    message = create(sandbox, "Messages", SMS)
    fetch = requests.get(api(sandbox, "Calls", "CA" + "0" * 32), auth=(ACCOUNT_SID, AUTH_TOKEN), timeout=5)
    call = create(sandbox, "Calls", call_form(app.url("/voice")))

    assert (message.status_code, fetch.status_code, call.status_code) == (201, 404, 503)


def test_fault_hang_holds_the_request_until_released_then_closes_without_answer(sandbox: TwilioSandbox) -> None:
    sandbox.inject_fault("hang")

    with pytest.raises(requests.exceptions.ReadTimeout):
        create(sandbox, "Messages", SMS, timeout=0.2)
    sock = raw_create(sandbox)  # the fault ran out: answered at once
    assert read_pieces(sock)[0][1].startswith(b"HTTP/1.1 201")
    sandbox.inject_fault("hang")
    hung = raw_create(sandbox)
    assert sandbox.wait_for(lambda: event_types(sandbox).count("rest.fault") == 2)
    sandbox.release_hangs()

    assert read_pieces(hung) == []
    assert len(sandbox.messages) == 1 and len(sandbox.requests) == 3


def test_fault_hang_and_trickle_end_when_the_sandbox_stops() -> None:
    sb = TwilioSandbox(account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN).start()
    sb.inject_fault("hang")
    hung = raw_create(sb)
    assert sb.wait_for(lambda: len(sb.requests) == 1)
    sb.inject_fault("trickle")
    trickling = raw_create(sb)
    assert sb.wait_for(lambda: len(sb.requests) == 2)

    started = time.monotonic()
    sb.stop()

    assert time.monotonic() - started < 1.0
    assert read_pieces(hung) == []
    assert len(b"".join(piece for _, piece in read_pieces(trickling))) < 100


def test_fault_reset_sends_tcp_reset_after_reading_the_request(sandbox: TwilioSandbox) -> None:
    sandbox.inject_fault("reset")
    sock = raw_create(sandbox)

    with sock, pytest.raises(ConnectionResetError):
        sock.recv(1024)

    assert sandbox.requests[0]["form"]["Body"] == ["Hello there"]
    assert sandbox.messages == []


def test_fault_reset_raises_connection_error_in_the_sdk(client: Client, sandbox: TwilioSandbox) -> None:
    sandbox.inject_fault("reset")

    with pytest.raises(requests.exceptions.ConnectionError):
        client.messages.create(to=CUSTOMER, from_=SENDER, body="x")


def test_fault_raw_writes_exactly_the_given_bytes_then_closes(sandbox: TwilioSandbox) -> None:
    malformed = b"HTTP/1.1 201 Created\r\nContent-Length: 50\r\nContent-Type: application/json\r\n\r\n{\"sid\""
    sandbox.inject_fault("raw", body=malformed)

    assert b"".join(piece for _, piece in read_pieces(raw_create(sandbox))) == malformed
    assert sandbox.messages == []


def test_fault_raw_default_bytes_are_not_http(sandbox: TwilioSandbox) -> None:
    sandbox.inject_fault("raw")

    with pytest.raises(requests.exceptions.ConnectionError, match="BadStatusLine"):
        create(sandbox, "Messages", SMS)


def test_fault_trickle_sends_the_whole_answer_in_small_pieces_over_time(sandbox: TwilioSandbox) -> None:
    sandbox.inject_fault("trickle", chunk_bytes=100, interval=0.05)

    pieces = read_pieces(raw_create(sandbox))

    status_line, headers, body = split_response(b"".join(piece for _, piece in pieces))
    assert status_line == "HTTP/1.1 201 Created" and headers["Connection"] == "close"
    assert json.loads(body)["sid"] == sandbox.messages[0]["sid"] and headers["Content-Length"] == str(len(body))
    assert len(pieces) >= 4 and all(len(piece) <= 100 for _, piece in pieces)
    assert pieces[-1][0] - pieces[0][0] >= 0.15


def test_fault_trickle_never_trips_a_per_read_timeout(sandbox: TwilioSandbox) -> None:
    sandbox.inject_fault("trickle", chunk_bytes=200, interval=0.1)
    started = time.monotonic()

    response = create(sandbox, "Messages", SMS, timeout=(2, 0.3))

    assert response.status_code == 201 and response.json()["status"] == "queued"
    assert time.monotonic() - started > 0.3
    (answer,) = [e for e in sandbox.activity if e["type"] == "rest.response"]
    assert answer["fault"]["kind"] == "trickle"


@pytest.mark.parametrize(("preset", "status", "content_type", "body"), [
    ("html", 200, "text/html; charset=utf-8", None), ("list", 201, "application/json", []),
    ("no_sid", 201, "application/json", {}), ("redirect", 302, "text/html; charset=utf-8", None),
    ("truncated", 201, "application/json", None)])
def test_fault_odd_preset_answers_its_odd_body(sandbox: TwilioSandbox, preset: str, status: int, content_type: str,
                                               body: Any) -> None:
    sandbox.inject_fault("odd", preset=preset)

    response = create(sandbox, "Messages", SMS, allow_redirects=False)

    assert (response.status_code, response.headers["Content-Type"]) == (status, content_type)
    if body is not None:
        assert response.json() == body
    elif preset == "html":
        assert response.text.startswith("<!DOCTYPE html>")
    elif preset == "redirect":
        assert response.headers["Location"] == "https://www.twilio.com/login"
    else:
        assert response.text.startswith('{"sid": "SM')
        with pytest.raises(ValueError):
            json.loads(response.text)
    assert sandbox.messages == []


@pytest.mark.parametrize(("kind", "options", "problem"), [
    ("bogus", {}, "unknown fault kind"), ("odd", {}, "preset"), ("odd", {"preset": "weird"}, "preset"),
    ("status", {"times": 0}, "times"), ("status", {"status": 99}, "status"), ("trickle", {"chunk_bytes": 0}, "chunk")])
def test_fault_bad_arguments_raise_value_error(sandbox: TwilioSandbox, kind: str, options: dict[str, Any],
                                               problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        sandbox.inject_fault(kind, **options)

    assert sandbox.faults == []


def test_fault_control_endpoints_arm_and_clear(sandbox: TwilioSandbox) -> None:
    armed = control(sandbox, "POST", "/faults", {"kind": "odd", "preset": "list", "times": None})
    refused = [control(sandbox, "POST", "/faults", payload).status_code
               for payload in ({"kind": "bogus"}, {"kind": "status", "colour": "red"}, [1])]
    faulted = create(sandbox, "Messages", SMS)
    listed = control(sandbox, "GET", "/faults").json()
    cleared = control(sandbox, "DELETE", "/faults")

    assert armed.status_code == 201 and armed.json()["status"] == 201 and armed.json()["times"] is None
    assert refused == [400, 400, 400]
    assert faulted.json() == [] and [f["preset"] for f in listed] == ["list"]
    assert cleared.status_code == 200 and create(sandbox, "Messages", SMS).status_code == 201


# -- inbound simulation --------------------------------------------------------------------------------------------
def test_inbound_sms_posts_signed_params_and_stores_the_reply(sandbox: TwilioSandbox, app: FakeApp) -> None:
    result = sandbox.simulate_inbound_sms(app.url("/sms"), CUSTOMER, SENDER, "hello app",
                                          media_urls=["https://example.com/cat.png"])

    assert (result["status"], result["content_type"], result["twiml"]) == (200, "application/xml", SMS_TWIML)
    assert "twilio_error" not in result
    (received,) = app.to("/sms")
    params = received["params"]
    assert received["valid"] and received["method"] == "POST"
    assert (params["From"], params["To"], params["Body"], params["AccountSid"]) == (CUSTOMER, SENDER, "hello app",
                                                                                   ACCOUNT_SID)
    assert params["MessageSid"] == params["SmsSid"] == result["sid"] and params["SmsStatus"] == "received"
    assert (params["NumMedia"], params["MediaUrl0"], params["MediaContentType0"]) == (
        "1", "https://example.com/cat.png", "image/png")
    (reply,) = sandbox.messages
    assert (reply["to"], reply["from"], reply["body"], reply["direction"]) == (
        CUSTOMER, SENDER, "Thanks, got it!", "outbound-reply")


@pytest.mark.parametrize(("path", "code"), [("/empty", None), ("/text", 12300), ("/broken", 12100), ("/error", 11200)])
def test_inbound_sms_answer_is_judged_as_twilio_does(sandbox: TwilioSandbox, app: FakeApp, path: str,
                                                     code: int | None) -> None:
    result = sandbox.simulate_inbound_sms(app.url(path), CUSTOMER, SENDER, "hi")

    assert result.get("twilio_error", {}).get("code") == code
    assert sandbox.messages == []


def test_inbound_call_posts_signed_ringing_params_and_returns_twiml(sandbox: TwilioSandbox, app: FakeApp) -> None:
    result = sandbox.simulate_inbound_call(app.url("/voice"), CUSTOMER, SENDER)

    assert (result["status"], result["twiml"]) == (200, VOICE_TWIML) and "twilio_error" not in result
    (received,) = app.to("/voice")
    assert received["valid"] and received["params"]["CallSid"] == result["sid"]
    assert (received["params"]["CallStatus"], received["params"]["Direction"]) == ("ringing", "inbound")


def test_inbound_get_method_sends_signed_query(sandbox: TwilioSandbox, app: FakeApp) -> None:
    result = sandbox.simulate_inbound_call(app.url("/voice"), CUSTOMER, SENDER, method="GET")

    (received,) = app.to("/voice")
    assert result["twiml"] == VOICE_TWIML and received["method"] == "GET" and received["valid"]
    assert received["params"]["From"] == CUSTOMER


def test_inbound_control_endpoints_return_the_simulation_result(sandbox: TwilioSandbox, app: FakeApp) -> None:
    payload = {"url": app.url("/sms"), "from": CUSTOMER, "to": SENDER, "body": "x"}
    sms = control(sandbox, "POST", "/inbound/sms", payload)
    call = control(sandbox, "POST", "/inbound/call", {"url": app.url("/broken"), "from": CUSTOMER, "to": SENDER})
    incomplete = control(sandbox, "POST", "/inbound/sms", {"url": app.url("/sms")})
    unknown = control(sandbox, "GET", "/nothing")

    assert (sms.status_code, sms.json()["twiml"]) == (200, SMS_TWIML)
    assert (call.status_code, call.json()["twilio_error"]["code"]) == (200, 12100)
    assert (incomplete.status_code, unknown.status_code) == (400, 404)
    assert [m["body"] for m in control(sandbox, "GET", "/messages").json()] == ["Thanks, got it!"]
    assert [e["type"] for e in control(sandbox, "GET", "/activity").json()] == ["inbound.sms", "call.step",
                                                                                 "inbound.call"]


# -- multi-step inbound calls: the caller's side -------------------------------------------------------------------
IVR = {"ivr": '<Gather action="/dial" numDigits="1"><Say>Press 1 for sales</Say></Gather><Say>Goodbye</Say>',
       "dial": '<Dial action="/after" timeout="20"><Number>+14155550123</Number><Client>bob</Client></Dial>',
       "after": '<Say>Leave a message</Say><Record action="/recorded" maxLength="30" playBeep="true" '
                'recordingStatusCallback="/recording-status"/><Say>No message recorded</Say>',
       "recorded": "<Say>Thanks for your message</Say>"}


def test_inbound_call_gather_with_digits_requests_relative_action_with_query_signed(sandbox: TwilioSandbox,
                                                                                      app: FakeApp) -> None:
    app.voice(ivr__start='<Gather action="menu?step=menu&amp;attempt=2"><Say>Your code?</Say></Gather><Say>No</Say>',
              ivr__menu='<Say>Thanks</Say><Redirect method="GET">../done?from=menu</Redirect><Say>never</Say>',
              done="<Say>Bye</Say><Hangup/><Say>never</Say>")

    result = sandbox.simulate_inbound_call(app.url("/ivr/start"), CUSTOMER, SENDER, digits=["42#"])

    assert [(r["method"], r["url"]) for r in app.received[:2]] == [
        ("POST", app.url("/ivr/start")), ("POST", app.url("/ivr/menu?step=menu&attempt=2"))]
    assert app.received[2]["method"] == "GET" and app.received[2]["url"].startswith(app.url("/done?from=menu&"))
    assert all(r["valid"] and r["params"]["CallSid"] == result["sid"] for r in app.received)
    start, menu, done = (r["params"] for r in app.received)
    assert (start["CallStatus"], menu["CallStatus"], done["CallStatus"]) == ("ringing", "in-progress", "in-progress")
    assert menu["Digits"] == "42" and done["from"] == "menu" and "ApplicationSid" not in start
    assert [(step["url"], step["params"], step["status"]) for step in result["steps"]] == [
        (app.url("/ivr/start"), {}, 200), (app.url("/ivr/menu?step=menu&attempt=2"), {"Digits": "42"}, 200),
        (app.url("/done?from=menu"), {}, 200)]
    assert (result["said"], result["ended"], result["status"]) == (["Your code?", "Thanks", "Bye"], "hangup", 200)
    assert result["twiml"] == result["steps"][0]["twiml"] and "Your code?" in result["twiml"]


def test_inbound_call_gather_no_input_with_action_on_empty_result_posts_empty_digits(sandbox: TwilioSandbox,
                                                                                     app: FakeApp) -> None:
    app.voice(ivr='<Gather action="/menu" actionOnEmptyResult="true"/><Say>unreached</Say>', menu="<Say>Hm?</Say>")

    result = sandbox.simulate_inbound_call(app.url("/ivr"), CUSTOMER, SENDER, digits=[""])

    (menu,) = app.to("/menu")
    assert menu["valid"] and menu["params"]["Digits"] == ""
    assert (result["said"], result["ended"], result["steps"][0]["verbs"]) == (["Hm?"], "end", ["Gather: no input"])


def test_inbound_call_gather_no_input_without_action_on_empty_result_follows_the_redirect(sandbox: TwilioSandbox,
                                                                                          app: FakeApp) -> None:
    app.voice(ivr='<Gather action="/menu"><Say>Press 1</Say></Gather><Redirect>/retry</Redirect>',
              retry="<Say>Try again later</Say>")

    result = sandbox.simulate_inbound_call(app.url("/ivr"), CUSTOMER, SENDER)  # no digits left: no input

    assert [r["path"] for r in app.received] == ["/ivr", "/retry"] and app.to("/menu") == []
    assert "Digits" not in app.to("/retry")[0]["params"]
    assert (result["said"], result["ended"]) == (["Press 1", "Try again later"], "end")


def test_inbound_call_dial_with_action_posts_scripted_status_and_without_action_continues(sandbox: TwilioSandbox,
                                                                                          app: FakeApp) -> None:
    app.voice(dial=IVR["dial"], after='<Dial>+14155550999</Dial><Say>Back from the second dial</Say>')

    result = sandbox.simulate_inbound_call(app.url("/dial"), CUSTOMER, SENDER, dial_outcomes=["no-answer"])

    assert [r["path"] for r in app.received] == ["/dial", "/after"] and all(r["valid"] for r in app.received)
    params = app.to("/after")[0]["params"]
    assert (params["DialCallStatus"], params["DialCallDuration"]) == ("no-answer", "0") and "DialCallSid" not in params
    assert result["dialed"] == [["+14155550123", "client:bob"], ["+14155550999"]]
    assert result["steps"][1]["verbs"] == ["Dial +14155550999: completed", "Say: Back from the second dial"]
    assert (result["said"], result["ended"]) == (["Back from the second dial"], "end")


def test_inbound_call_dial_answered_posts_completed_duration_and_dial_call_sid(sandbox: TwilioSandbox,
                                                                              app: FakeApp) -> None:
    app.voice(dial=IVR["dial"], after="<Hangup/>")

    sandbox.simulate_inbound_call(app.url("/dial"), CUSTOMER, SENDER)

    params = app.to("/after")[0]["params"]
    assert (params["DialCallStatus"], params["DialCallDuration"]) == ("completed", "12")
    assert params["DialCallSid"].startswith("CA") and params["DialCallSid"] != params["CallSid"]


def test_inbound_call_record_posts_status_callback_then_action_and_hangs_up(sandbox: TwilioSandbox,
                                                                           app: FakeApp) -> None:
    app.voice(after=IVR["after"], recorded=IVR["recorded"])

    result = sandbox.simulate_inbound_call(app.url("/after"), CUSTOMER, SENDER)

    assert [r["path"] for r in app.received] == ["/after", "/recording-status", "/recorded"]
    assert all(r["valid"] for r in app.received)
    status, action = app.received[1]["params"], app.received[2]["params"]
    recording = {name: status[name] for name in ("RecordingSid", "RecordingUrl", "RecordingDuration")}
    assert recording["RecordingSid"].startswith("RE") and recording["RecordingDuration"] == "7"
    assert recording["RecordingUrl"] == (f"{sandbox.base_url}/2010-04-01/Accounts/{ACCOUNT_SID}/Recordings/"
                                         f"{recording['RecordingSid']}")
    assert (status["RecordingStatus"], status["CallSid"], status["AccountSid"]) == ("completed", result["sid"],
                                                                                    ACCOUNT_SID)
    assert {name: action[name] for name in recording} == recording and action["Digits"] == "hangup"
    assert action["From"] == CUSTOMER and "From" not in status
    assert [(step["status"], step["twiml"] is None) for step in result["steps"]] == [(200, False), (204, True),
                                                                                     (200, False)]
    assert (result["said"], result["ended"]) == (["Leave a message"], "hangup")  # hung up: "Thanks" is not played


def test_inbound_call_record_without_audio_skips_the_action_and_runs_the_next_verb(sandbox: TwilioSandbox,
                                                                                  app: FakeApp) -> None:
    app.voice(after=IVR["after"], recorded=IVR["recorded"])

    result = sandbox.simulate_inbound_call(app.url("/after"), CUSTOMER, SENDER, record=False)

    assert [r["path"] for r in app.received] == ["/after"]
    assert (result["said"], result["ended"]) == (["Leave a message", "No message recorded"], "end")
    assert result["steps"][0]["verbs"][1] == "Record: no audio"


def test_inbound_call_redirect_loop_stops_at_the_step_limit(sandbox: TwilioSandbox, app: FakeApp) -> None:
    app.voice(loop="<Say>Again</Say><Redirect>/loop</Redirect>")

    result = sandbox.simulate_inbound_call(app.url("/loop"), CUSTOMER, SENDER, max_steps=5)

    assert len(app.to("/loop")) == len(result["steps"]) == 5
    assert (result["ended"], result["said"], result["steps"][-1]["verbs"][-1]) == ("step limit", ["Again"] * 5,
                                                                                   "step limit")


@pytest.mark.parametrize(("path", "code"), [("/error", 11200), ("/broken", 12100), ("/text", 12300)])
def test_inbound_call_bad_answer_at_a_later_step_ends_call_with_twilio_error(sandbox: TwilioSandbox, app: FakeApp,
                                                                             path: str, code: int) -> None:
    app.voice(ivr=f'<Gather action="{path}"/><Say>unreached</Say>')

    result = sandbox.simulate_inbound_call(app.url("/ivr"), CUSTOMER, SENDER, digits=["1"])

    assert (result["status"], result["twilio_error"]["code"], result["ended"]) == (200, code, "error")
    assert [step["twilio_error"] and step["twilio_error"]["code"] for step in result["steps"]] == [None, code]
    assert result["said"] == [] and "<Gather" in result["twiml"]


def test_client_call_sends_client_from_and_caller_with_application_sid(sandbox: TwilioSandbox,
                                                                       app: FakeApp) -> None:
    app.voice(client="<Dial><Client>bob</Client></Dial>")

    result = sandbox.simulate_client_call(app.url("/client"), "alice", "client:bob")

    (received,) = app.received
    params = received["params"]
    assert received["valid"] and (params["From"], params["Caller"], params["To"]) == ("client:alice", "client:alice",
                                                                                       "client:bob")
    assert params["ApplicationSid"].startswith("AP") and len(params["ApplicationSid"]) == 34
    assert (params["Direction"], result["dialed"], result["ended"]) == ("inbound", [["client:bob"]], "end")


def test_inbound_call_activity_log_has_one_step_event_per_request_then_the_call(sandbox: TwilioSandbox,
                                                                                app: FakeApp) -> None:
    app.voice(**IVR)

    result = sandbox.simulate_inbound_call(app.url("/ivr"), CUSTOMER, SENDER, digits=["1"], dial_outcomes=["busy"])

    events = sandbox.activity
    assert [e["type"] for e in events] == ["call.step"] * 5 + ["inbound.call"]
    steps = events[:5]
    assert [(e["step"], e["sid"], urlsplit(e["url"]).path, e["status"]) for e in steps] == [
        (1, result["sid"], "/ivr", 200), (2, result["sid"], "/dial", 200), (3, result["sid"], "/after", 200),
        (4, result["sid"], "/recording-status", 204), (5, result["sid"], "/recorded", 200)]
    assert (steps[1]["params"]["Digits"], steps[2]["params"]["DialCallStatus"]) == ("1", "busy")
    assert steps[3]["params"]["RecordingStatus"] == "completed" and steps[3]["twiml"] is None
    assert all(e["twiml"] == step["twiml"] for e, step in zip(steps, result["steps"], strict=True))
    call = events[5]
    assert (call["sid"], call["ended"], call["steps"], call["twiml"]) == (result["sid"], "hangup", 5, result["twiml"])
    assert result["dialed"] == [["+14155550123", "client:bob"]]


def test_inbound_call_control_endpoint_takes_the_caller_script(sandbox: TwilioSandbox, app: FakeApp) -> None:
    app.voice(**IVR)
    payload = {"url": app.url("/ivr"), "from": CUSTOMER, "to": SENDER}

    call = control(sandbox, "POST", "/inbound/call",
                   {**payload, "digits": ["1"], "dial_outcomes": ["failed"], "record": False})
    refused = [control(sandbox, "POST", "/inbound/call", {**payload, **bad}).status_code for bad in (
        {"digits": "1"}, {"digits": [1]}, {"dial_outcomes": ["maybe"]}, {"record": "no"}, {"max_steps": 0})]

    assert call.status_code == 200
    assert [urlsplit(step["url"]).path for step in call.json()["steps"]] == ["/ivr", "/dial", "/after"]
    assert call.json()["said"] == ["Press 1 for sales", "Leave a message", "No message recorded"]
    assert refused == [400] * 5 and len(app.received) == 3


def test_cli_call_with_digits_dial_outcome_and_no_record_prints_the_steps(sandbox: TwilioSandbox, app: FakeApp,
                                                                          capsys: pytest.CaptureFixture[str]) -> None:
    app.voice(**IVR)

    code = cli_main(["call", "--sandbox", sandbox.base_url, "--url", app.url("/ivr"), "--from", CUSTOMER,
                     "--to", SENDER, "--digits", "1", "--dial-outcome", "busy", "--no-record"])

    out = capsys.readouterr().out
    assert code == 0 and app.to("/after")[0]["params"]["DialCallStatus"] == "busy"
    assert f"[2] POST {app.url('/dial')} Digits=1 -> 200" in out
    assert f"[3] POST {app.url('/after')} DialCallStatus=busy DialCallDuration=0 -> 200" in out
    assert "    Record: no audio\n" in out and out.endswith("call ended: end\n")


def test_inbound_call_bad_dial_outcome_or_step_limit_raises_value_error(sandbox: TwilioSandbox) -> None:
    with pytest.raises(ValueError, match="dial outcomes"):
        sandbox.simulate_inbound_call("http://127.0.0.1:1/voice", CUSTOMER, SENDER, dial_outcomes=["maybe"])
    with pytest.raises(ValueError, match="max_steps"):
        sandbox.simulate_inbound_call("http://127.0.0.1:1/voice", CUSTOMER, SENDER, max_steps=0)


# -- activity log, state, lifecycle --------------------------------------------------------------------------------
def test_activity_log_orders_rest_then_call_flow_events(sandbox: TwilioSandbox, app: FakeApp) -> None:
    create(sandbox, "Calls", call_form(app.url("/voice"), StatusCallback=app.url("/status")))

    assert sandbox.wait_for(lambda: event_types(sandbox).count("status_callback") == 4)
    events = sandbox.activity
    assert [e["type"] for e in events] == ["rest.request", "rest.response", "status_callback", "status_callback",
                                           "status_callback", "call.webhook", "status_callback"]
    assert [e["seq"] for e in events] == sorted(e["seq"] for e in events)
    assert events[0]["form"]["Url"] == [app.url("/voice")] and events[1]["status"] == 201
    webhook = events[5]
    assert (webhook["status"], webhook["twiml"], webhook["twilio_error"]) == (200, VOICE_TWIML, None)
    assert [e["resource_status"] for e in events if e["type"] == "status_callback"] == [
        "initiated", "ringing", "in-progress", "completed"]
    assert json.loads(control(sandbox, "GET", "/activity").text) == sandbox.activity


def test_requests_and_activity_never_hold_credentials(sandbox: TwilioSandbox) -> None:
    create(sandbox, "Messages", SMS)
    create(sandbox, "Messages", SMS, auth=(API_KEY_SID, API_KEY_SECRET))

    assert [r["headers"]["Authorization"] for r in sandbox.requests] == ["<redacted>", "<redacted>"]
    dumped = json.dumps([sandbox.requests, sandbox.activity, sandbox.messages, repr(sandbox)])
    assert AUTH_TOKEN not in dumped and API_KEY_SECRET not in dumped


def test_reset_forgets_state_and_faults_but_keeps_serving(sandbox: TwilioSandbox) -> None:
    create(sandbox, "Messages", SMS)
    sandbox.inject_fault("status", times=None)

    sandbox.reset()

    assert (sandbox.messages, sandbox.requests, sandbox.activity, sandbox.faults) == ([], [], [], [])
    assert create(sandbox, "Messages", SMS).status_code == 201


def test_reset_during_call_flow_ends_the_flow_quietly(caplog: pytest.LogCaptureFixture) -> None:
    with TwilioSandbox(account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN, step_delay=0.05) as sb:
        assert create(sb, "Calls", call_form(f"http://127.0.0.1:{closed_port()}/voice")).status_code == 201
        sb.reset()
        time.sleep(0.3)  # the flow's remaining steps find the call gone

        assert sb.activity == []
    assert not [r for r in caplog.records if r.name == "devtools.sandbox" and r.levelno >= logging.ERROR]


def test_sandbox_context_manager_stops_and_frees_the_port() -> None:
    with TwilioSandbox(account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN) as sb:
        base_url = sb.base_url
        assert requests.get(f"{base_url}/_sandbox/calls", timeout=5).json() == []

    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(f"{base_url}/_sandbox/calls", timeout=1)
    with pytest.raises(RuntimeError, match="cannot be restarted"):
        sb.start()


def test_sandbox_taken_port_raises_os_error(sandbox: TwilioSandbox) -> None:
    port = int(sandbox.base_url.rsplit(":", 1)[1])

    with pytest.raises(OSError):
        TwilioSandbox(port=port).start()


def test_sandbox_bad_account_sid_or_empty_token_is_refused() -> None:
    with pytest.raises(ValueError, match="account_sid"):
        TwilioSandbox(account_sid="AC123")
    with pytest.raises(ValueError, match="auth_token"):
        TwilioSandbox(auth_token="")


# -- command line --------------------------------------------------------------------------------------------------
def test_cli_sms_call_and_listings_print_results(sandbox: TwilioSandbox, app: FakeApp,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    base = ["--sandbox", sandbox.base_url]
    sms = cli_main(["sms", *base, "--url", app.url("/sms"), "--from", CUSTOMER, "--to", SENDER, "--body", "hi cli"])
    sms_out = capsys.readouterr().out
    call = cli_main(["call", *base, "--url", app.url("/text"), "--from", CUSTOMER, "--to", SENDER])
    call_err = capsys.readouterr().err
    listings = {name: (cli_main([name, *base]), json.loads(capsys.readouterr().out))
                for name in ("activity", "messages", "calls")}

    assert (sms, sms_out.strip()) == (0, SMS_TWIML) and app.to("/sms")[0]["params"]["Body"] == "hi cli"
    assert call == 1 and "Twilio error 12300" in call_err
    assert [e["type"] for e in listings["activity"][1]] == ["inbound.sms", "call.step", "inbound.call"]
    assert [m["body"] for m in listings["messages"][1]] == ["Thanks, got it!"] and listings["calls"] == (0, [])


def test_cli_fault_and_clear_faults_drive_the_control_endpoints(sandbox: TwilioSandbox,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    base = ["--sandbox", sandbox.base_url]
    armed = cli_main(["fault", "trickle", *base, "--chunk-bytes", "8", "--interval", "0.01", "--times", "0",
                      "--header", "X-Test:1", "--path-contains", "/Messages"])
    printed = json.loads(capsys.readouterr().out)
    listed = sandbox.faults
    cleared = cli_main(["clear-faults", *base])
    bad = cli_main(["fault", "odd", *base])

    assert (armed, cleared, bad) == (0, 0, 2)
    assert {k: printed[k] for k in ("kind", "chunk_bytes", "interval", "times", "headers", "path_contains")} == {
        "kind": "trickle", "chunk_bytes": 8, "interval": 0.01, "times": None, "headers": {"X-Test": "1"},
        "path_contains": "/Messages"}
    assert [f["id"] for f in listed] == [printed["id"]] and sandbox.faults == []
    assert "preset" in capsys.readouterr().err


def test_cli_unreachable_sandbox_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["activity", "--sandbox", f"http://127.0.0.1:{closed_port()}"]) == 2
    assert "cannot reach the sandbox" in capsys.readouterr().err


@pytest.mark.parametrize("token", [None, AUTH_TOKEN])
def test_cli_serve_prints_url_and_default_credentials_and_stops_on_sigint(token: str | None) -> None:
    port = closed_port()
    command = [sys.executable, "-m", "devtools.sandbox", "serve", "--port", str(port)]
    if token:
        command += ["--account-sid", ACCOUNT_SID, "--auth-token", token]
    env = {name: value for name, value in os.environ.items() if not name.startswith("TWILIO_")}
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None and process.stderr is not None
        assert process.stdout.readline().strip() == f"http://127.0.0.1:{port}"
        account = ACCOUNT_SID if token else DEFAULT_ACCOUNT_SID
        response = requests.get(f"http://127.0.0.1:{port}/2010-04-01/Accounts/{account}/Calls/CA{'0' * 32}.json",
                                auth=(account, token or DEFAULT_AUTH_TOKEN), timeout=5)
        assert response.status_code == 404
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=5) == 0
        banner = process.stderr.read()
        assert account in banner
        assert (DEFAULT_AUTH_TOKEN in banner, AUTH_TOKEN in banner) == (token is None, False)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()
