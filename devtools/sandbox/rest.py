"""The emulated Twilio 2010-04-01 REST API (Messages and Calls), independent of HTTP."""

from __future__ import annotations

import base64
import binascii
import hmac
import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from .errors import (
    CALL_FROM_ERRORS,
    CALL_TO_ERRORS,
    MESSAGE_FROM_ERRORS,
    MESSAGE_TO_ERRORS,
    error_body,
)
from .flows import CALL_EVENTS, FlowContext, run_call_flow, run_message_lifecycle
from .resources import Resource, account_path, build_call, build_message, list_page, public
from .store import Kind

Form = Mapping[str, Sequence[str]]

_LIST_RE = re.compile(r"^/2010-04-01/Accounts/(?P<account>[^/]+)/(?P<collection>Messages|Calls)\.json$")
_ITEM_RE = re.compile(r"^/2010-04-01/Accounts/(?P<account>[^/]+)/(?P<collection>Messages|Calls)/(?P<sid>[^/]+)\.json$")
_ACCOUNT_RE = re.compile(r"^/2010-04-01/Accounts/(?P<account>[^/.]+)(?:[/.]|$)")
_COLLECTIONS: dict[str, Kind] = {"Messages": "messages", "Calls": "calls"}
MAX_BODY_CHARS = 1600
JSON_TYPE = "application/json; charset=utf-8"


@dataclass
class RestResponse:
    """An API answer; `after` runs once the response has been written."""

    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)
    after: Callable[[], object] | None = None


def _first(form: Form, key: str) -> str | None:
    values = form.get(key)
    return values[0] if values else None


def _error(code: int, **kwargs: Any) -> RestResponse:
    body = error_body(code, **kwargs)
    headers = {"WWW-Authenticate": 'Basic realm="Twilio API"'} if code == 20003 else {}
    return RestResponse(body["status"], body, headers)


def parse_basic_auth(header: str | None) -> tuple[str, str] | None:
    """Decode an HTTP Basic Authorization header."""
    if not header or header[:6].lower() != "basic ":
        return None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    username, sep, password = decoded.partition(":")
    return (username, password) if sep else None


class RestApi:
    """Routes, authenticates, validates and answers REST requests."""

    def __init__(
        self,
        *,
        account_sid: str,
        auth_token: str,
        api_keys: Mapping[str, str],
        flows: FlowContext,
    ) -> None:
        self._account_sid = account_sid
        self._credentials = {account_sid: auth_token, **dict(api_keys)}
        self._flows = flows
        self._store = flows.store

    def authenticate(self, authorization: str | None) -> str | None:
        """Return the authenticated username (account or API key SID), else None."""
        pair = parse_basic_auth(authorization)
        if pair is None:
            return None
        username, password = pair
        expected = self._credentials.get(username)
        if expected is None or not hmac.compare_digest(expected.encode(), password.encode()):
            return None
        return username

    def handle(self, method: str, path: str, query: Form, form: Form, authorization: str | None) -> RestResponse:
        """Answer one REST request."""
        response = self._dispatch(method.upper(), path, query, form, authorization)
        response.headers.setdefault("Content-Type", JSON_TYPE)
        response.headers.setdefault("Twilio-Request-Id", "RQ" + uuid.uuid4().hex)
        return response

    def _dispatch(self, method: str, path: str, query: Form, form: Form, authorization: str | None) -> RestResponse:
        if self.authenticate(authorization) is None:
            return _error(20003)
        account = _ACCOUNT_RE.match(path)
        if account and account.group("account") != self._account_sid:
            return _error(20003)
        listing = _LIST_RE.match(path)
        if listing:
            kind = _COLLECTIONS[listing.group("collection")]
            if method == "GET":
                return self._list(kind, path, query)
            if method == "POST":
                return self._create_message(form) if kind == "messages" else self._create_call(form)
            return _error(20004)
        item = _ITEM_RE.match(path)
        if item:
            kind = _COLLECTIONS[item.group("collection")]
            sid = item.group("sid")
            if self._store.get(kind, sid) is None:
                return _error(20404, path=path)
            if method == "GET":
                return RestResponse(200, public(self._store.get(kind, sid) or {}))
            if method == "POST":
                return self._update(kind, sid, form)
            return _error(20004)
        return _error(20404, path=path)

    # -- list -------------------------------------------------------------
    def _list(self, kind: Kind, path: str, query: Form) -> RestResponse:
        wanted = {name.lower(): _first(query, name) for name in ("To", "From", "Status")}

        def keep(record: Resource) -> bool:
            return all(value is None or record.get(name) == value for name, value in wanted.items())

        page = list_page(key=kind, list_path=path, records=self._store.select(kind, keep), query=query)
        return RestResponse(200, page)

    # -- messages ---------------------------------------------------------
    def _create_message(self, form: Form) -> RestResponse:
        to = _first(form, "To")
        from_ = _first(form, "From")
        service = _first(form, "MessagingServiceSid")
        body = _first(form, "Body") or ""
        media = [url for url in form.get("MediaUrl", []) if url]
        if not to:
            return _error(21604)
        if not from_ and not service:
            return _error(21603)
        if not body and not media and not _first(form, "ContentSid"):
            return _error(21602)
        if len(body) > MAX_BODY_CHARS:
            return _error(21617)
        if from_ in MESSAGE_FROM_ERRORS:
            return _error(MESSAGE_FROM_ERRORS[from_], to=to, from_=from_)
        if to in MESSAGE_TO_ERRORS:
            return _error(MESSAGE_TO_ERRORS[to], to=to, from_=from_ or "")
        message = build_message(
            self._account_sid,
            to=to,
            from_=from_ or None,
            body=body,
            media_urls=media,
            messaging_service_sid=service,
            status="queued" if from_ else "accepted",
            sandbox={"source": "api", "status_callback": _first(form, "StatusCallback")},
        )
        self._store.add("messages", message)
        lifecycle = partial(run_message_lifecycle, self._flows, message["sid"])
        start = partial(self._flows.runner.spawn, f"msg-{message['sid']}", lifecycle)
        return RestResponse(201, public(message), after=start)

    # -- calls ------------------------------------------------------------
    def _create_call(self, form: Form) -> RestResponse:
        to = _first(form, "To")
        from_ = _first(form, "From")
        url = _first(form, "Url")
        twiml = _first(form, "Twiml")
        if not to:
            return _error(21201)
        if not from_:
            return _error(21213)
        if not url and not twiml and not _first(form, "ApplicationSid"):
            return _error(21205, message="A 'Url', 'Twiml' or 'ApplicationSid' parameter is required.")
        if url and not re.match(r"^https?://[^/\s]+", url):
            return _error(21205)
        if from_ in CALL_FROM_ERRORS:
            return _error(CALL_FROM_ERRORS[from_], to=to, from_=from_)
        if to in CALL_TO_ERRORS:
            return _error(CALL_TO_ERRORS[to], to=to, from_=from_)
        events = [e for raw in form.get("StatusCallbackEvent", []) for e in raw.split()]
        call = build_call(
            self._account_sid,
            to=to,
            from_=from_,
            sandbox={
                "url": url,
                "method": (_first(form, "Method") or "POST").upper(),
                "inline_twiml": twiml,
                "fallback_url": _first(form, "FallbackUrl"),
                "fallback_method": (_first(form, "FallbackMethod") or "POST").upper(),
                "status_callback": _first(form, "StatusCallback"),
                "status_callback_method": (_first(form, "StatusCallbackMethod") or "POST").upper(),
                "status_callback_events": [e for e in events if e in CALL_EVENTS] or list(CALL_EVENTS),
                "twiml": None,
                "webhook_status": None,
                "twilio_error": None,
            },
        )
        self._store.add("calls", call)
        flow = partial(run_call_flow, self._flows, call["sid"])
        start = partial(self._flows.runner.spawn, f"call-{call['sid']}", flow)
        return RestResponse(201, public(call), after=start)

    # -- updates ----------------------------------------------------------
    def _update(self, kind: Kind, sid: str, form: Form) -> RestResponse:
        changes: dict[str, Any] = {}
        status = _first(form, "Status")
        if kind == "messages":
            if _first(form, "Body") is not None:
                changes["body"] = _first(form, "Body")
            if status == "canceled":
                changes["status"] = "canceled"
        elif status in ("completed", "canceled"):
            changes["status"] = status
        updated = self._store.update(kind, sid, changes)
        return RestResponse(200, public(updated or {}))

    @property
    def account_path(self) -> str:
        """Path prefix of the sandbox account."""
        return account_path(self._account_sid)
