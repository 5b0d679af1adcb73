"""The emulated Twilio 2010-04-01 REST API: Basic auth, Messages and Calls created and fetched, the routing
resources (numbers.py), faults applied."""

from __future__ import annotations

import hmac
import json
import re
from collections.abc import Mapping
from typing import Any

from werkzeug.datastructures import MultiDict
from werkzeug.wrappers import Request, Response

from .faults import SOCKET_KINDS, FaultRegistry
from .flows import Flows
from .numbers import COLLECTIONS, Routing
from .state import (CALL_FROM_ERRORS, CALL_TO_ERRORS, MESSAGE_FROM_ERRORS, MESSAGE_TO_ERRORS, Kind, Store,
                    call_resource, error_body, message_resource, new_sid, public)

JSON_TYPE = "application/json; charset=utf-8"
SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie"})
REST_ROUTE = re.compile(r"^/2010-04-01/Accounts/(?P<account>[^/]+)/(?P<kind>Messages|Calls|IncomingPhoneNumbers|"
                        r"Applications)(?:/(?P<sid>[^/]+))?\.json$")
MAX_BODY_CHARS = 1600


def _error(code: int, **fields: str) -> tuple[int, Any]:
    """A Twilio error answer, (status, JSON body); fields fill its message (to, from_, path)."""
    body = error_body(code, **fields)
    return body["status"], body


def _loggable(body: bytes) -> Any:
    """A response body for the activity log: parsed JSON when it is JSON, else text."""
    try:
        return json.loads(body)
    except ValueError:
        return body.decode("utf-8", "replace")


class RestApi:
    """api.twilio.com for one account: answers a request as Twilio would, unless an armed fault answers instead."""

    def __init__(self, store: Store, faults: FaultRegistry, flows: Flows, account_sid: str,
                 credentials: Mapping[str, str]) -> None:
        self.account_sid = account_sid
        self._store, self._faults, self._flows = store, faults, flows
        self._credentials = credentials  # REST username -> password
        self._routing = Routing(store, account_sid)

    def __call__(self, request: Request) -> Response:
        """The REST API's response to one request, or ConnectionTaken once a fault has answered on the socket."""
        request_id, sock = new_sid("RQ"), request.environ["werkzeug.socket"]
        self._store.log("rest.request", request_id=request_id, method=request.method, path=request.path,
                        query=request.args.to_dict(flat=False), form=request.form.to_dict(flat=False),
                        headers={name: "<redacted>" if name.lower() in SECRET_HEADERS else value
                                 for name, value in request.headers.items()})
        fault = self._faults.take(request.method, request.path)
        if fault is not None and fault.kind in SOCKET_KINDS:
            self._store.log("rest.fault", request_id=request_id, kind=fault.kind, fault=fault.describe())
            self._faults.answer_on_socket(fault, sock)
        created = None
        if fault is not None and fault.kind in ("status", "odd"):
            status, body = fault.status, fault.body_bytes()
            headers = {"Content-Type": fault.content_type, **fault.headers}
        else:  # no fault, or "trickle": the real answer, sent slowly
            status, answer = self._answer(request)
            body, headers = json.dumps(answer).encode(), {"Content-Type": JSON_TYPE}
            if status == 401:
                headers["WWW-Authenticate"] = 'Basic realm="Twilio API"'
            created = answer["sid"] if status == 201 and answer["sid"].startswith(("SM", "CA")) else None
        headers["Twilio-Request-Id"] = request_id
        fault_view = {"fault": fault.describe()} if fault is not None else {}
        self._store.log("rest.response", request_id=request_id, status=status, body=_loggable(body), **fault_view)
        if created:  # a created resource's lifecycle begins once its creation is logged
            self._flows.spawn(created)
        if fault is not None and fault.kind == "trickle":
            self._faults.trickle(fault, sock, status, headers, body)
        return Response(body, status, headers)

    def _answer(self, request: Request) -> tuple[int, Any]:
        auth = request.authorization
        user, password = (auth.username or "", auth.password or "") if auth and auth.type == "basic" else ("", "")
        expected = self._credentials.get(user)
        if expected is None or not hmac.compare_digest(expected.encode(), password.encode()):
            return _error(20003)
        route = REST_ROUTE.match(request.path)
        if route is None:
            return _error(20404, path=request.path)
        if route["account"] != self.account_sid:
            return _error(20003)
        if route["kind"] in COLLECTIONS:
            answer = self._routing.answer(request.method, route["kind"], route["sid"], request)
            if answer is None:
                return _error(20004)
            return answer if answer[1] is not None else _error(20404, path=request.path)
        kind: Kind = "messages" if route["kind"] == "Messages" else "calls"
        if request.method != ("GET" if route["sid"] else "POST"):  # no listing, no update
            return _error(20004)
        if not route["sid"]:
            return self._create_message(request.form) if kind == "messages" else self._create_call(request.form)
        found = self._store.get(kind, route["sid"])
        return (200, public(found)) if found else _error(20404, path=request.path)

    def _create_message(self, form: MultiDict[str, str]) -> tuple[int, Any]:
        to, from_, service = form.get("To"), form.get("From"), form.get("MessagingServiceSid")
        body, media = form.get("Body") or "", [url for url in form.getlist("MediaUrl") if url]
        if not to:
            return _error(21604)
        if not from_ and not service:
            return _error(21603)
        if not body and not media and not form.get("ContentSid"):
            return _error(21602)
        if len(body) > MAX_BODY_CHARS:
            return _error(21617)
        if code := MESSAGE_FROM_ERRORS.get(from_ or "") or MESSAGE_TO_ERRORS.get(to):  # the magic numbers
            return _error(code, to=to, from_=from_ or "")
        message = message_resource(self.account_sid, to=to, from_=from_ or None, body=body, num_media=len(media),
                                   status="queued" if from_ else "accepted", direction="outbound-api", service=service,
                                   sandbox={"status_callback": form.get("StatusCallback")})
        self._store.add("messages", message)
        return 201, public(message)

    def _create_call(self, form: MultiDict[str, str]) -> tuple[int, Any]:
        to, from_, url = form.get("To"), form.get("From"), form.get("Url") or ""
        if not to:
            return _error(21201)
        if not from_:
            return _error(21213)
        if not re.match(r"^https?://[^/\s]+", url):
            return _error(21205)
        if code := CALL_FROM_ERRORS.get(from_) or CALL_TO_ERRORS.get(to):  # the magic numbers
            return _error(code, to=to, from_=from_)
        call = call_resource(self.account_sid, to=to, from_=from_, sandbox={
            "url": url, "method": (form.get("Method") or "POST").upper(), "status_callback": form.get("StatusCallback"),
            "twiml": None, "webhook_status": None, "twilio_error": None})
        self._store.add("calls", call)
        return 201, public(call)
