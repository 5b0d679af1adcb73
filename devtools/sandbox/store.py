"""Thread-safe in-memory store of resources, received requests and the activity log."""

from __future__ import annotations

import copy
import itertools
import threading
from collections import deque
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Literal

from .resources import Resource, rfc2822, utcnow

Kind = Literal["messages", "calls"]


class SandboxStore:
    """Holds sandbox state; every public method is safe to call from any thread."""

    def __init__(self, *, max_log: int = 10_000) -> None:
        self._lock = threading.RLock()
        self._resources: dict[Kind, dict[str, Resource]] = {"messages": {}, "calls": {}}
        self._requests: deque[dict[str, Any]] = deque(maxlen=max_log)
        self._activity: deque[dict[str, Any]] = deque(maxlen=max_log)
        self._seq = itertools.count(1)

    # -- resources -------------------------------------------------------
    def add(self, kind: Kind, resource: Resource) -> Resource:
        """Store a new resource (dicts keep insertion = creation order)."""
        with self._lock:
            self._resources[kind][resource["sid"]] = copy.deepcopy(resource)
            return copy.deepcopy(resource)

    def get(self, kind: Kind, sid: str) -> Resource | None:
        """A copy of one resource, or None."""
        with self._lock:
            found = self._resources[kind].get(sid)
            return copy.deepcopy(found) if found is not None else None

    def update(
        self,
        kind: Kind,
        sid: str,
        changes: Mapping[str, Any],
        *,
        sandbox: Mapping[str, Any] | None = None,
    ) -> Resource | None:
        """Apply field changes (and sandbox bookkeeping), bump date_updated, return a copy."""
        with self._lock:
            found = self._resources[kind].get(sid)
            if found is None:
                return None
            found.update(changes)
            found["date_updated"] = rfc2822(utcnow())
            if sandbox:
                found.setdefault("sandbox", {}).update(copy.deepcopy(dict(sandbox)))
            return copy.deepcopy(found)

    def select(self, kind: Kind, predicate: Callable[[Resource], bool]) -> list[Resource]:
        """Copies of the resources matching predicate, in creation order."""
        with self._lock:
            return [copy.deepcopy(r) for r in self._resources[kind].values() if predicate(r)]

    def all(self, kind: Kind) -> list[Resource]:
        """Copies of all resources of a kind, in creation order."""
        return self.select(kind, lambda _resource: True)

    # -- requests and activity -------------------------------------------
    def record_request(self, entry: Mapping[str, Any]) -> None:
        """Remember one REST request (already redacted by the caller)."""
        with self._lock:
            self._requests.append(copy.deepcopy(dict(entry)))

    def requests(self) -> list[dict[str, Any]]:
        """Copies of all recorded REST requests, oldest first."""
        with self._lock:
            return copy.deepcopy(list(self._requests))

    def log(self, event_type: str, **fields: Any) -> dict[str, Any]:
        """Append an event to the activity log; returns a copy of it."""
        with self._lock:
            event: dict[str, Any] = {
                "seq": next(self._seq),
                "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
                "type": event_type,
            }
            event.update(copy.deepcopy(fields))
            self._activity.append(event)
            return copy.deepcopy(event)

    def activity(self) -> list[dict[str, Any]]:
        """Copies of all activity events, in order."""
        with self._lock:
            return copy.deepcopy(list(self._activity))

    def reset(self) -> None:
        """Forget all resources, requests and activity."""
        with self._lock:
            for table in self._resources.values():
                table.clear()
            self._requests.clear()
            self._activity.clear()
