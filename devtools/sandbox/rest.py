"""The emulated Twilio 2010-04-01 REST API: create and fetch Messages and Calls, faults applied, every request and
answer in the activity log."""

from __future__ import annotations

import hmac
import json
import re
from typing import Any

from werkzeug.datastructures import MultiDict
from werkzeug.wrappers import Request, Response

from .errors import CALL_FROM_ERRORS, CALL_TO_ERRORS, MESSAGE_FROM_ERRORS, MESSAGE_TO_ERRORS, error_body
from .faults import SOCKET_KINDS, FaultRegistry
from .flows import Flows
from .state import Kind, Store, call_resource, message_resource, new_sid, public

ROUTE = re.compile(r"^/2010-04-01/Accounts/(?P<account>[^/]+)/(?P<kind>Messages|Calls)(?:/(?P<sid>[^/]+))?\.json$")
MAX_BODY_CHARS = 1600
JSON_TYPE = "application/json; charset=utf-8"
SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie"})
Answer = tuple[int, Any, dict[str, str]]  # status, JSON body, headers


class ConnectionTaken(ConnectionAbortedError):
    """Raised once a fault has answered on the raw socket: werkzeug then writes nothing more."""


def _error(code: int, *, to: str = "", from_: str = "", path: str = "") -> Answer:
    body = error_body(code, to=to, from_=from_, path=path)
    return body["status"], body, {"WWW-Authenticate": 'Basic realm="Twilio API"'} if code == 20003 else {}


def _loggable(body: bytes) -> Any:
    """A response body for the activity log: parsed JSON when it is JSON, else text."""
    try:
        return json.loads(body)
    except ValueError:
        return body.decode("utf-8", "replace")


class RestApi:
    """Logs each request, applies the first matching fault, else authenticates, routes, validates and answers it."""

    def __init__(self, store: Store, faults: FaultRegistry, flows: Flows, *, account_sid: str,
                 credentials: dict[str, str]) -> None:
        self._store = store
        self._faults = faults
        self._flows = flows
        self._account_sid = account_sid
        self._credentials = credentials  # username (account or API key SID) -> password

    def respond(self, request: Request) -> Response:
        """The response to one request (ConnectionTaken once a fault has answered on the socket instead)."""
        request_id, sock = new_sid("RQ"), request.environ["werkzeug.socket"]
        self._store.log("rest.request", request_id=request_id, method=request.method, path=request.path,
                        query=request.args.to_dict(flat=False), form=request.form.to_dict(flat=False),
                        headers={name: "<redacted>" if name.lower() in SECRET_HEADERS else value
                                 for name, value in request.headers.items()})
        fault = self._faults.take(request.method, request.path)
        if fault is not None and fault.kind in SOCKET_KINDS:
            self._store.log("rest.fault", request_id=request_id, kind=fault.kind, fault=fault.describe())
            self._faults.answer_on_socket(fault, sock)
            raise ConnectionTaken(fault.kind)
        created = None
        if fault is not None and fault.kind in ("status", "odd"):
            status, body = fault.status, fault.body_bytes()
            headers = {"Content-Type": fault.content_type, **fault.headers}
        else:  # no fault, or "trickle": the real answer, sent slowly
            status, answer, extra = self._answer(request)
            body, headers = json.dumps(answer).encode(), {"Content-Type": JSON_TYPE, **extra}
            created = answer["sid"] if status == 201 else None
        headers["Twilio-Request-Id"] = request_id
        fault_view = {"fault": fault.describe()} if fault is not None else {}
        self._store.log("rest.response", request_id=request_id, status=status, body=_loggable(body), **fault_view)
        if created:  # a created resource's lifecycle begins once its creation is logged
            self._flows.spawn(created)
        if fault is not None and fault.kind == "trickle":
            self._faults.trickle(fault, sock, status, headers, body)
            raise ConnectionTaken(fault.kind)
        return Response(body, status, headers)

    def _answer(self, request: Request) -> Answer:
        auth = request.authorization
        user, password = (auth.username or "", auth.password or "") if auth and auth.type == "basic" else ("", "")
        expected = self._credentials.get(user)
        if expected is None or not hmac.compare_digest(expected.encode(), password.encode()):
            return _error(20003)
        route = ROUTE.match(request.path)
        if route is None:
            return _error(20404, path=request.path)
        if route["account"] != self._account_sid:
            return _error(20003)
        kind: Kind = "messages" if route["kind"] == "Messages" else "calls"
        if request.method != ("GET" if route["sid"] else "POST"):  # no listing, no update
            return _error(20004)
        if not route["sid"]:
            return self._create_message(request.form) if kind == "messages" else self._create_call(request.form)
        found = self._store.get(kind, route["sid"])
        return (200, public(found), {}) if found else _error(20404, path=request.path)

    def _create_message(self, form: MultiDict[str, str]) -> Answer:
        to, from_, service = form.get("To"), form.get("From"), form.get("MessagingServiceSid")
        body = form.get("Body") or ""
        media = [url for url in form.getlist("MediaUrl") if url]
        if not to:
            return _error(21604)
        if not from_ and not service:
            return _error(21603)
        if not body and not media and not form.get("ContentSid"):
            return _error(21602)
        if len(body) > MAX_BODY_CHARS:
            return _error(21617)
        if from_ in MESSAGE_FROM_ERRORS:
            return _error(MESSAGE_FROM_ERRORS[from_], to=to, from_=from_ or "")
        if to in MESSAGE_TO_ERRORS:
            return _error(MESSAGE_TO_ERRORS[to], to=to, from_=from_ or "")
        message = message_resource(self._account_sid, to=to, from_=from_ or None, body=body,
                                   status="queued" if from_ else "accepted", direction="outbound-api",
                                   num_media=len(media), service=service,
                                   sandbox={"status_callback": form.get("StatusCallback")})
        self._store.add("messages", message)
        return 201, public(message), {}

    def _create_call(self, form: MultiDict[str, str]) -> Answer:
        to, from_, url = form.get("To"), form.get("From"), form.get("Url") or ""
        if not to:
            return _error(21201)
        if not from_:
            return _error(21213)
        if not re.match(r"^https?://[^/\s]+", url):
            return _error(21205)
        if from_ in CALL_FROM_ERRORS:
            return _error(CALL_FROM_ERRORS[from_], to=to, from_=from_)
        if to in CALL_TO_ERRORS:
            return _error(CALL_TO_ERRORS[to], to=to, from_=from_)
        call = call_resource(self._account_sid, to=to, from_=from_, sandbox={
            "url": url, "method": (form.get("Method") or "POST").upper(), "status_callback": form.get("StatusCallback"),
            "twiml": None, "webhook_status": None, "twilio_error": None})
        self._store.add("calls", call)
        return 201, public(call), {}
