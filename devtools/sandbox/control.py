"""The /_sandbox/ control endpoints (JSON, no auth: a loopback developer tool)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from typing import Any

from .faults import Fault, FaultRegistry
from .flows import Flows
from .state import Store

PREFIX = "/_sandbox"
FAULT_FIELDS = {field.name for field in dataclasses.fields(Fault)} - {"id"}  # kind, status, body, ...


def _object(body: bytes) -> dict[str, Any]:
    value = json.loads(body or b"{}")  # invalid JSON raises a ValueError: answered 400
    if not isinstance(value, dict):
        raise ValueError("the JSON body must be an object")
    return value


def _strings(data: dict[str, Any], *names: str) -> list[str]:
    if not all(isinstance(data.get(name), str) and data[name] for name in names):
        raise ValueError(f"expected string fields: {', '.join(names)}")
    return [data[name] for name in names]


def _call_options(data: dict[str, Any]) -> dict[str, Any]:
    """The caller's script of an inbound call: digits, dial_outcomes (lists of strings), record, max_steps."""
    options = {"digits": data.get("digits", []), "dial_outcomes": data.get("dial_outcomes", []),
               "record": data.get("record", True), "max_steps": data.get("max_steps", 20)}
    lists = all(isinstance(options[name], list) and all(isinstance(item, str) for item in options[name])
                for name in ("digits", "dial_outcomes"))
    if not lists or not isinstance(options["record"], bool) or type(options["max_steps"]) is not int:
        raise ValueError("digits and dial_outcomes must be lists of strings, record a boolean, max_steps an integer")
    return options


def handle_control(store: Store, faults: FaultRegistry, flows: Flows, method: str, route: str,
                   body: bytes) -> tuple[int, Any]:
    """Answer one control request (route is the path after /_sandbox): (HTTP status, JSON payload)."""
    listings: dict[str, Callable[[], Any]] = {
        "/activity": store.activity, "/requests": store.requests, "/faults": faults.active,
        "/messages": lambda: store.all("messages"), "/calls": lambda: store.all("calls")}
    try:
        if method == "GET" and route in listings:
            return 200, listings[route]()
        if method == "POST" and route == "/faults":
            data = _object(body)
            _strings(data, "kind")
            if unknown := set(data) - FAULT_FIELDS:
                raise ValueError(f"unknown fault fields: {', '.join(sorted(unknown))}")
            try:
                return 201, faults.add(**data).describe()
            except TypeError as exc:  # e.g. a number given as a string
                raise ValueError(str(exc)) from exc
        if method == "POST" and route == "/callbacks":  # {"shuffled": true}: the callbacks fault mode
            flows.shuffle_callbacks = bool(_object(body).get("shuffled"))
            return 200, {"shuffled": flows.shuffle_callbacks}
        if method == "DELETE" and route == "/faults":
            faults.clear()
            return 200, {"cleared": True}
        if method == "POST" and route == "/inbound/sms":
            data = _object(body)
            url, from_, to = _strings(data, "url", "from", "to")
            media = data.get("media_urls") or []
            if not isinstance(data.get("body", ""), str) or not isinstance(media, list):
                raise ValueError("body must be a string and media_urls a list")
            return 200, flows.inbound_sms(url, from_, to, data.get("body", ""), media_urls=[str(m) for m in media])
        if method == "POST" and route == "/inbound/call":
            data = _object(body)
            url, from_, to = _strings(data, "url", "from", "to")
            return 200, flows.inbound_call(url, from_, to, **_call_options(data))
    except ValueError as exc:  # a bad request, or a fault the registry refused
        return 400, {"error": str(exc)}
    return 404, {"error": f"no control endpoint {method} {PREFIX}{route}"}
