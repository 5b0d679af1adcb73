"""The emulated Twilio 2010-04-01 REST API: Basic auth, Messages and Calls created, fetched and listed, the routing
resources (numbers.py), faults applied."""

from __future__ import annotations

import hmac
import json
import re
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

from twilio.base.deserialize import rfc2822_datetime

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
# The date each list filters on: Messages by DateSent, Calls by StartTime (and EndTime), as Twilio documents them.
LIST_DATES = {"messages": {"DateSent": "date_sent"}, "calls": {"StartTime": "start_time", "EndTime": "end_time"}}
DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE = 50, 1000


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
        if route["sid"] and request.method != "GET" or request.method not in ("GET", "POST"):  # no update, no delete
            return _error(20004)
        if not route["sid"] and request.method == "GET":
            return self._list(kind, request)
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

    def _list(self, kind: Kind, request: Request) -> tuple[int, Any]:
        """A page of the list, newest first, as Twilio's API documents its filters: To and From match exactly;
        DateSent (messages), StartTime and EndTime (calls) match that day, with '<' on or before and '>' on or after
        it (the URL reads DateSent>=2026-12-05); a date and time compares to the second; a resource without the date
        never matches. PageSize (default 50, at most 1000) sizes a page; the next one starts after its PageToken
        (next_page_uri has it), and Page is only echoed, as Twilio does."""
        args = request.args
        try:
            dates = [(field, op, _date(args[name + op])) for name, field in LIST_DATES[kind].items()
                     for op in ("", "<", ">") if args.get(name + op)]
            size, number = int(args.get("PageSize", DEFAULT_PAGE_SIZE)), int(args.get("Page", 0))
        except ValueError:
            return _error(20001)
        if not 1 <= size <= MAX_PAGE_SIZE or number < 0:
            return _error(20001)

        def matches(resource: dict[str, Any]) -> bool:
            exact = (("To", "to"), ("From", "from"))
            if any(args.get(name) and resource[field] != args[name] for name, field in exact):
                return False
            return all(_compare(resource[field], op, value) for field, op, value in dates)

        found = [public(resource) for resource in reversed(self._store.all(kind)) if matches(resource)]
        after = args.get("PageToken", "").removeprefix("PA")  # the SID the previous page ended with
        start = next((n + 1 for n, resource in enumerate(found) if resource["sid"] == after), 0) if after else 0
        page = found[start:start + size]
        uri = f"/2010-04-01/Accounts/{self.account_sid}/{kind.capitalize()}.json?PageSize={size}"
        more = start + size < len(found)
        return 200, {kind: page, "page": number, "page_size": size, "start": start,
                     "end": start + max(len(page) - 1, 0), "uri": f"{uri}&Page={number}",
                     "first_page_uri": f"{uri}&Page=0", "previous_page_uri": None,
                     "next_page_uri": f"{uri}&Page={number + 1}&PageToken=PA{page[-1]['sid']}" if more else None}


def _date(value: str) -> date | datetime:
    """A filter's value: a day (YYYY-MM-DD) or a moment (ISO 8601 with a time zone, as twilio-python sends one)."""
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        return date.fromisoformat(value)
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        raise ValueError("a date and time needs its time zone")
    return moment


def _compare(rfc2822: str | None, op: str, value: date | datetime) -> bool:
    """Whether a resource's date (Twilio's RFC 2822 text, or None) is on (''), on or before ('<') or on or after
    ('>') the filter's day, or moment."""
    moment = rfc2822_datetime(rfc2822) if rfc2822 else None
    if not isinstance(moment, datetime):
        return False
    mine: date | datetime = moment if isinstance(value, datetime) else moment.date()
    return {"": mine == value, "<": mine <= value, ">": mine >= value}[op]
