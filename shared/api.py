"""Mobile API requests: the method check, settings loaded once, the JSON or form body, the 200/201 answers."""

from __future__ import annotations

import json
from typing import Any, Callable
from urllib.parse import parse_qsl

import azure.functions as func

from shared.body import FORM, JSON, MAX_BODY_BYTES, request_body
from shared.entry import Main, entry_point
from shared.errors import AppError, json_response
from shared.settings import Settings, load_settings

Handler = Callable[[func.HttpRequest, Settings], func.HttpResponse]


def mobile_api(handler: Handler | None = None, *, method: str = "POST") -> Any:
    """Wrap a mobile API handler(req, settings) as main(req): only `method` (POST unless given; "GET, DELETE" for
    several), then the settings, loaded once, inside the one error boundary (AppError -> JSON error body). Use as
    @mobile_api or @mobile_api(method="GET")."""

    def wrap(handler: Handler) -> Main:
        def run(req: func.HttpRequest) -> func.HttpResponse:
            if req.method.upper() not in method.split(", "):  # function.json lists no methods: this is the only check
                raise AppError(405, "method_not_allowed", f"Use {method}.", headers={"Allow": method})
            return handler(req, load_settings())

        return entry_point(handler, run)

    return wrap(handler) if handler is not None else wrap


def read_payload(req: func.HttpRequest, max_bytes: int = MAX_BODY_BYTES) -> dict[str, Any]:
    """The request body as a dict: a JSON object or a form (repeated form keys become lists); 400/413/415 otherwise."""
    media_type, body = request_body(req, max_bytes)
    if not body.strip():
        return {}
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise AppError(400, "invalid_body", "The request body is not UTF-8.") from None
    if media_type == JSON or media_type.endswith("+json"):
        return _json_object(text)
    if media_type in (FORM, "") and text.lstrip().startswith(("{", "[")):  # curl -d sends JSON as a form
        raise AppError(415, "unsupported_media_type", "The body looks like JSON but was not sent as JSON: add the "
                       "header 'Content-Type: application/json'.")
    if media_type == FORM:
        form: dict[str, Any] = {}
        for key, value in parse_qsl(text, keep_blank_values=True):
            if key in form:
                form[key] = (form[key] if isinstance(form[key], list) else [form[key]]) + [value]
            else:
                form[key] = value
        return form
    raise AppError(415, "unsupported_media_type",
                   "Send the body as application/json (or application/x-www-form-urlencoded).")


def _json_object(text: str) -> dict[str, Any]:
    try:
        payload = json.loads(text)
    except json.JSONDecodeError as exc:
        raise AppError(400, "invalid_json", f"The body is not valid JSON ({exc.msg}, at character {exc.pos}).") from None
    except (ValueError, RecursionError):  # e.g. a 5000-digit number, or nesting deeper than the parser allows
        raise AppError(400, "invalid_json", "The JSON body is too deeply nested or holds an oversized number.") from None
    if not isinstance(payload, dict):
        raise AppError(400, "invalid_json", "The JSON body must be an object, e.g. {\"to\": \"+14155550123\"}.")
    return payload


def created(payload: dict[str, Any]) -> func.HttpResponse:
    """201 with a JSON body."""
    return json_response(payload, 201)


def accepted(payload: dict[str, Any], location: str) -> func.HttpResponse:
    """202 with a JSON body and the Location to follow it at."""
    return json_response(payload, 202, {"Location": location})


def ok(payload: dict[str, Any]) -> func.HttpResponse:
    """200 with a JSON body."""
    return json_response(payload, 200)
