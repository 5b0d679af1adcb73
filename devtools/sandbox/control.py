"""The /_sandbox/ HTTP control endpoints (no auth; loopback developer tool)."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .core import TwilioSandbox

CONTROL_PREFIX = "/_sandbox"
_FAULT_FIELDS = ("status", "body", "content_type", "headers", "times", "path_contains", "method")


class ControlError(Exception):
    """A bad control request (answered with 400 and {"error": ...})."""


def _json_object(body: bytes) -> dict[str, Any]:
    if not body.strip():
        return {}
    try:
        value = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ControlError(f"invalid JSON body: {exc}") from exc
    if not isinstance(value, dict):
        raise ControlError("JSON body must be an object")
    return value


def _required(data: Mapping[str, Any], *names: str) -> list[str]:
    missing = [name for name in names if not isinstance(data.get(name), str) or not data.get(name)]
    if missing:
        raise ControlError(f"missing string field(s): {', '.join(missing)}")
    return [str(data[name]) for name in names]


def handle_control(sandbox: TwilioSandbox, method: str, path: str, body: bytes) -> tuple[int, Any]:
    """Route one control request; returns (HTTP status, JSON-serialisable payload)."""
    route = path[len(CONTROL_PREFIX) :].rstrip("/") or "/"
    getters: dict[str, Callable[[], Any]] = {
        "/": lambda: {"base_url": sandbox.base_url, "account_sid": sandbox.account_sid},
        "/activity": lambda: sandbox.activity,
        "/messages": lambda: sandbox.messages,
        "/calls": lambda: sandbox.calls,
        "/requests": lambda: sandbox.requests,
        "/faults": lambda: sandbox.faults,
    }
    try:
        if method == "GET" and route in getters:
            return 200, getters[route]()
        if method == "POST" and route == "/faults":
            data = _json_object(body)
            kind = data.get("kind")
            if not isinstance(kind, str):
                raise ControlError("missing string field: kind")
            kwargs = {name: data[name] for name in _FAULT_FIELDS if name in data}
            try:
                return 201, sandbox.inject_fault(kind, **kwargs)
            except (TypeError, ValueError) as exc:
                raise ControlError(str(exc)) from exc
        if method == "DELETE" and route == "/faults":
            sandbox.clear_faults()
            return 200, {"cleared": True}
        if method == "POST" and route == "/hangs/release":
            sandbox.release_hangs()
            return 200, {"released": True}
        if method == "POST" and route == "/reset":
            sandbox.reset()
            return 200, {"reset": True}
        if method == "POST" and route == "/inbound/sms":
            data = _json_object(body)
            url, from_, to = _required(data, "url", "from", "to")
            text = data.get("body", "")
            media = data.get("media_urls") or []
            if not isinstance(text, str) or not isinstance(media, list):
                raise ControlError("body must be a string and media_urls a list")
            return 200, sandbox.simulate_inbound_sms(url, from_, to, text, media_urls=[str(m) for m in media])
        if method == "POST" and route == "/inbound/call":
            data = _json_object(body)
            url, from_, to = _required(data, "url", "from", "to")
            return 200, sandbox.simulate_inbound_call(url, from_, to)
    except ControlError as exc:
        return 400, {"error": str(exc)}
    return 404, {"error": f"no control endpoint {method} {path}"}
