"""Thread-safe in-memory state: Message and Call resources and the activity log (REST requests included)."""

from __future__ import annotations

import copy
import itertools
import threading
import uuid
from collections import deque
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any, Literal

from .errors import API_VERSION

Kind = Literal["messages", "calls"]
Resource = dict[str, Any]
MAX_EVENTS = 10_000  # the activity log keeps the latest ones


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
        self._lock = threading.Lock()
        self._resources: dict[Kind, dict[str, Resource]] = {"messages": {}, "calls": {}}
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
            found = self._resources[kind].get(sid)
            if found is None:
                return None
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

    def activity(self) -> list[dict[str, Any]]:
        """Every activity event, in order."""
        with self._lock:
            return copy.deepcopy(list(self._activity))

    def reset(self) -> None:
        """Forget all resources, requests and events."""
        with self._lock:
            for table in self._resources.values():
                table.clear()
            self._activity.clear()
