"""The emulated Twilio 2010-04-01 REST API: create and fetch Messages and Calls, independent of HTTP."""

from __future__ import annotations

import hmac
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from werkzeug.datastructures import MultiDict

from .errors import CALL_FROM_ERRORS, CALL_TO_ERRORS, MESSAGE_FROM_ERRORS, MESSAGE_TO_ERRORS, error_body
from .flows import Flows
from .state import Kind, Store, call_resource, message_resource, public

ROUTE = re.compile(r"^/2010-04-01/Accounts/(?P<account>[^/]+)/(?P<kind>Messages|Calls)(?:/(?P<sid>[^/]+))?\.json$")
MAX_BODY_CHARS = 1600


@dataclass
class Answer:
    """A REST answer; `then` starts the resource's lifecycle once the answer is logged."""

    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)
    then: Callable[[], None] | None = None


def _error(code: int, *, to: str = "", from_: str = "", path: str = "") -> Answer:
    body = error_body(code, to=to, from_=from_, path=path)
    headers = {"WWW-Authenticate": 'Basic realm="Twilio API"'} if code == 20003 else {}
    return Answer(body["status"], body, headers)


class RestApi:
    """Authenticates, routes, validates and answers REST requests."""

    def __init__(self, store: Store, flows: Flows, *, account_sid: str, credentials: dict[str, str]) -> None:
        self._store = store
        self._flows = flows
        self._account_sid = account_sid
        self._credentials = credentials  # username (account or API key SID) -> password

    def handle(self, method: str, path: str, form: MultiDict[str, str], auth: tuple[str, str] | None) -> Answer:
        """Answer one request (auth is the HTTP Basic username and password, if any)."""
        expected = self._credentials.get(auth[0]) if auth else None
        if auth is None or expected is None or not hmac.compare_digest(expected.encode(), auth[1].encode()):
            return _error(20003)
        route = ROUTE.match(path)
        if route is None:
            return _error(20404, path=path)
        if route["account"] != self._account_sid:
            return _error(20003)
        kind: Kind = "messages" if route["kind"] == "Messages" else "calls"
        if route["sid"]:
            if method != "GET":
                return _error(20004)
            found = self._store.get(kind, route["sid"])
            return Answer(200, public(found)) if found else _error(20404, path=path)
        if method != "POST":
            return _error(20004)
        return self._create_message(form) if kind == "messages" else self._create_call(form)

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
        start = partial(self._flows.spawn, self._flows.message_lifecycle, message["sid"])
        return Answer(201, public(message), then=start)

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
        return Answer(201, public(call), then=partial(self._flows.spawn, self._flows.call_flow, call["sid"]))
