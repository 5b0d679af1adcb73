"""Twilio-shaped data (error codes and bodies, magic numbers, resources) and the thread-safe store and activity log."""

from __future__ import annotations

import copy
import itertools
import threading
import uuid
from collections import deque
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any, Final, Literal

API_VERSION: Final = "2010-04-01"
ALWAYS_VALID_FROM: Final = "+15005550006"  # the magic sender that always succeeds
DOCS: Final = "https://www.twilio.com/docs/errors"  # an error's documentation: DOCS/code
MAX_EVENTS: Final = 10_000  # the activity log keeps the latest ones
Kind = Literal["messages", "calls", "numbers", "applications"]
Resource = dict[str, Any]

# code -> (HTTP status, message template); templates may use {to}, {from_} and {path}.
ERRORS: Final[dict[int, tuple[int, str]]] = {
    20001: (400, "Invalid request"),
    20003: (401, "Authenticate"),
    20004: (405, "Method not allowed"),
    20005: (403, "Account not active"),
    20404: (404, "The requested resource {path} was not found"),
    20429: (429, "Too Many Requests"),
    20500: (500, "An internal server error has occurred"),
    20503: (503, "Service unavailable"),
    21201: (400, "No 'To' number is specified"),
    21205: (400, "Url is not a valid URL"),
    21210: (400, "The source phone number provided, {from_}, is not yet verified for your account."),
    21211: (400, "The 'To' number {to} is not a valid phone number."),
    21212: (400, "The 'From' number {from_} is not a valid phone number, shortcode, or alphanumeric sender ID."),
    21213: (400, "No 'From' number is specified"),
    21214: (400, "'To' phone number cannot be reached"),
    21215: (400, "Account not authorized to call {to}. Perhaps you need to enable some international permissions."),
    21216: (400, "Account not allowed to call {to}"),
    21217: (400, "Phone number does not appear to be valid"),
    21408: (400, "Permission to send an SMS has not been enabled for the region indicated by the 'To' number: {to}."),
    21602: (400, "Message body is required."),
    21603: (400, "A 'From' phone number is required."),
    21604: (400, "A 'To' phone number is required."),
    21606: (400, "The 'From' phone number provided ({from_}) is not a valid message-capable Twilio phone number "
                 "for this destination/account."),
    21610: (400, "Attempt to send to unsubscribed recipient"),
    21611: (400, "This 'From' number has exceeded the maximum number of queued messages"),
    21612: (400, "The 'To' phone number: {to}, is not currently reachable using the 'From' phone number: {from_} "
                 "via SMS."),
    21614: (400, "'To' number is not a valid mobile number"),
    21617: (400, "The concatenated message body exceeds the 1600 character limit."),
    # Webhook (TwiML fetch) failures, reported in the activity log, never as REST answers.
    11200: (502, "HTTP retrieval failure"),
    12100: (502, "Document parse failure"),
    12300: (502, "Invalid Content-Type"),
}

# https://www.twilio.com/docs/iam/test-credentials: number -> error code.
MESSAGE_TO_ERRORS: Final = {"+15005550001": 21211, "+15005550002": 21612, "+15005550003": 21408,
                            "+15005550004": 21610, "+15005550009": 21614}
MESSAGE_FROM_ERRORS: Final = {"+15005550001": 21212, "+15005550007": 21606, "+15005550008": 21611}
CALL_TO_ERRORS: Final = {"+15005550001": 21217, "+15005550002": 21214, "+15005550003": 21215, "+15005550004": 21216}
CALL_FROM_ERRORS: Final = {"+15005550001": 21212, "+15005550007": 21210}

# The Twilio code a "status" fault without a body reports for its HTTP status.
STATUS_CODES: Final = {400: 20001, 401: 20003, 403: 20005, 404: 20404, 405: 20004, 429: 20429, 500: 20500, 503: 20503}


def error_body(code: int, *, status: int = 0, to: str = "", from_: str = "", path: str = "") -> dict[str, Any]:
    """A Twilio REST error payload: code, message, more_info, status (the code's own unless given)."""
    default_status, template = ERRORS.get(code, (400, "Error"))
    message = template.format(to=to, from_=from_, path=path).replace("resource  was", "resource was")
    return {"code": code, "message": message, "more_info": f"{DOCS}/{code}", "status": status or default_status}


def status_body(status: int) -> dict[str, Any]:
    """The Twilio-shaped error body for an injected HTTP status."""
    return error_body(STATUS_CODES.get(status, 20500 if status >= 500 else 20001), status=status)


def webhook_error(code: int, detail: str) -> dict[str, Any]:
    """The record of a Twilio debugger error raised by a webhook request."""
    return {"code": code, "message": ERRORS[code][1], "more_info": f"{DOCS}/{code}", "detail": detail}


def new_sid(prefix: str) -> str:
    """A Twilio-style SID: two-letter prefix and 32 lowercase hex digits."""
    return prefix + uuid.uuid4().hex


def now_rfc2822() -> str:
    """The current time as Twilio formats dates (RFC 2822, GMT)."""
    return format_datetime(datetime.now(UTC).replace(microsecond=0), usegmt=True)


def public(resource: Resource) -> Resource:
    """A resource as the REST API returns it (the sandbox's own bookkeeping removed)."""
    return {key: value for key, value in resource.items() if key != "sandbox"}


def message_resource(account_sid: str, *, to: str, from_: str | None, body: str, status: str, direction: str,
                     num_media: int = 0, service: str | None = None, sandbox: dict[str, Any] | None = None) -> Resource:
    """A Message resource shaped like Twilio's JSON (plus the sandbox's bookkeeping)."""
    sid, now = new_sid("SM"), now_rfc2822()
    return {"account_sid": account_sid, "api_version": API_VERSION, "body": body, "date_created": now,
            "date_sent": None, "date_updated": now, "direction": direction, "error_code": None, "error_message": None,
            "from": from_, "messaging_service_sid": service, "num_media": str(num_media), "num_segments": "1",
            "price": None, "price_unit": "USD", "sid": sid, "status": status, "to": to,
            "uri": f"/{API_VERSION}/Accounts/{account_sid}/Messages/{sid}.json", "sandbox": sandbox or {}}


def call_resource(account_sid: str, *, to: str, from_: str, sandbox: dict[str, Any]) -> Resource:
    """A queued outbound Call resource shaped like Twilio's JSON (plus the sandbox's bookkeeping)."""
    sid, now = new_sid("CA"), now_rfc2822()
    return {"account_sid": account_sid, "api_version": API_VERSION, "date_created": now, "date_updated": now,
            "direction": "outbound-api", "duration": None, "end_time": None, "from": from_, "price": None,
            "price_unit": "USD", "sid": sid, "start_time": None, "status": "queued", "to": to,
            "uri": f"/{API_VERSION}/Accounts/{account_sid}/Calls/{sid}.json", "sandbox": sandbox}


class Store:
    """Sandbox state; every method is safe to call from any thread and returns copies."""

    def __init__(self) -> None:
        self._lock = threading.Condition()  # notified on each new event, for the live feed
        self._resources: dict[Kind, dict[str, Resource]] = {"messages": {}, "calls": {}, "numbers": {}, "applications": {}}
        self._activity: deque[dict[str, Any]] = deque(maxlen=MAX_EVENTS)
        self._seq = itertools.count(1)

    def add(self, kind: Kind, resource: Resource) -> None:
        """Store a new resource (creation order is kept)."""
        with self._lock:
            self._resources[kind][resource["sid"]] = copy.deepcopy(resource)

    def get(self, kind: Kind, sid: str) -> Resource | None:
        """One resource, or None."""
        with self._lock:
            return copy.deepcopy(self._resources[kind].get(sid))

    def update(self, kind: Kind, sid: str, changes: dict[str, Any]) -> Resource | None:
        """Apply field changes; the updated resource, or None if it is gone."""
        with self._lock:
            if (found := self._resources[kind].get(sid)) is not None:
                found.update(copy.deepcopy(changes), date_updated=now_rfc2822())
            return copy.deepcopy(found)

    def all(self, kind: Kind) -> list[Resource]:
        """Every resource of a kind, in creation order."""
        with self._lock:
            return copy.deepcopy(list(self._resources[kind].values()))

    def log(self, event_type: str, **fields: Any) -> None:
        """Append an event (seq, time, type, fields) to the activity log."""
        with self._lock:
            event = {"seq": next(self._seq), "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
                     "type": event_type, **copy.deepcopy(fields)}
            self._activity.append(event)
            self._lock.notify_all()

    def activity(self) -> list[dict[str, Any]]:
        """Every activity event, in order."""
        with self._lock:
            return copy.deepcopy(list(self._activity))

    def events_after(self, seq: int, timeout: float) -> list[dict[str, Any]]:
        """The events after number seq, waiting up to timeout seconds for one when there are none yet."""
        with self._lock:
            self._lock.wait_for(lambda: self._activity and self._activity[-1]["seq"] > seq, timeout)
            return copy.deepcopy([event for event in self._activity if event["seq"] > seq])

    def reset(self) -> None:
        """Forget all resources, requests and events."""
        with self._lock:
            self._resources = {"messages": {}, "calls": {}, "numbers": {}, "applications": {}}
            self._activity.clear()
