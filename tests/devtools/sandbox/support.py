"""Helpers of the sandbox's tests: a fake function app on loopback, REST requests, raw sockets, the control API."""

from __future__ import annotations

import base64
import socket
import threading
import time
from typing import Any
from urllib.parse import urlencode, urlsplit

import requests
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response as TwilioResponse
from twilio.request_validator import RequestValidator
from werkzeug.datastructures import MultiDict
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from devtools.sandbox import TwilioSandbox
from devtools.sandbox.core import QuietHandler
from tests.support import ACCOUNT_SID, AUTH_TOKEN, SENDER

CUSTOMER = "+15551234567"
SMS = MultiDict({"To": CUSTOMER, "From": SENDER, "Body": "Hello there"})
VOICE_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response><Say>Hello from the app</Say></Response>'
SMS_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response><Message>Thanks, got it!</Message></Response>'
# The multi-step inbound calls' app: FakeApp.voice(**IVR) answers /ivr, /dial, /after and /recorded.
IVR = {"ivr": '<Gather action="/dial" numDigits="1"><Say>Press 1 for sales</Say></Gather><Say>Goodbye</Say>',
       "dial": '<Dial action="/after" timeout="20"><Number>+14155550123</Number><Client>bob</Client></Dial>',
       "after": '<Say>Leave a message</Say><Record action="/recorded" maxLength="30" playBeep="true" '
                'recordingStatusCallback="/recording-status"/><Say>No message recorded</Say>',
       "recorded": "<Say>Thanks for your message</Say>"}


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


def control(sandbox: TwilioSandbox, method: str, route: str, payload: Any = None) -> requests.Response:
    return requests.request(method, f"{sandbox.base_url}/_sandbox{route}", json=payload, timeout=5)


def event_types(sandbox: TwilioSandbox) -> list[str]:
    return [event["type"] for event in sandbox.activity]

