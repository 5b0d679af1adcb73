"""Twilio webhook security in one decorator: method check -> signature over the public URL -> handler -> XML."""

from __future__ import annotations

import logging
from typing import Any, Callable
from urllib.parse import parse_qs, urlsplit

import azure.functions as func
from twilio.request_validator import RequestValidator

from shared.body import FORM, JSON, request_body
from shared.entry import Main, entry_point
from shared.errors import AppError
from shared.settings import Settings, SettingsError, load_settings
from shared.twiml import xml_response
from shared.urls import signed_url_candidates

logger = logging.getLogger("shared.webhook")

SIGNATURE_HEADER = "x-twilio-signature"
ALLOWED_METHODS = ("GET", "POST")
MAX_PARAMS = 500  # Twilio sends a few dozen; more is refused before any HMAC is computed


def twilio_webhook(handler: Callable[[func.HttpRequest, Settings], str] | None = None, *,
                   methods: tuple[str, ...] = ALLOWED_METHODS) -> Any:
    """Serve handler(req, settings)'s TwiML as main(req), only for requests carrying a valid X-Twilio-Signature; fails
    closed (403/503). 405 unless one of `methods` (GET or POST unless given), before the settings are loaded (once).
    Use as @twilio_webhook or @twilio_webhook(methods=("POST",))."""

    def wrap(handler: Callable[[func.HttpRequest, Settings], str]) -> Main:
        def run(req: func.HttpRequest) -> func.HttpResponse:
            if req.method.upper() not in methods:  # function.json lists no methods: this is the only check
                raise AppError(405, "method_not_allowed", f"Use {' or '.join(methods)}.",
                               headers={"Allow": ", ".join(methods)})
            settings = load_settings()
            verify(req, settings)
            return xml_response(handler(req, settings))

        return entry_point(handler, run)

    return wrap(handler) if handler is not None else wrap


def verify(req: func.HttpRequest, settings: Settings) -> None:
    """503 without TWILIO_AUTH_TOKEN; 413 for an oversized body; 403 unless Twilio signed the request."""
    validator = RequestValidator(settings.webhook_token())
    signature = req.headers.get(SIGNATURE_HEADER)
    if not signature:
        raise _forgery("a missing signature")
    media_type, body = request_body(req)
    if body.count(b"&") >= MAX_PARAMS:
        raise _forgery(f"more than {MAX_PARAMS} parameters")
    settings.public_base_url, settings.website_hostname  # noqa: B018 - an invalid one is 503 not_configured, not 403
    try:
        urls = signed_url_candidates(req, settings)
        query = parse_qs(urlsplit(urls[0]).query)
    except (ValueError, SettingsError):  # a Host or URL that does not parse cannot be what Twilio signed
        raise _forgery("an unparsable URL") from None
    if query.get("bodySHA256", [""])[0]:  # a JSON body, signed through its SHA-256 in the query
        if media_type != JSON:
            raise _forgery("a bodySHA256 without a JSON body")
        signed: object = body.decode("utf-8", "replace")
    elif body and media_type != FORM:
        raise _forgery("a body that is neither a form nor signed JSON")
    else:
        signed = req.form
    if not any(_valid(validator, url, signed, signature) for url in urls):
        raise _forgery("an invalid signature")


def param(req: func.HttpRequest, name: str) -> str:
    """One of Twilio's inputs: from the form of a POST, from the query of a GET (where Twilio puts them); '' when
    absent. Never a POST's query: that is the URL, which whoever gave Twilio the URL chose."""
    source = req.params if req.method.upper() == "GET" else req.form
    return source.get(name) or ""


def _valid(validator: RequestValidator, url: str, signed: object, signature: str) -> bool:
    try:
        return validator.validate(url, signed, signature)
    except ValueError:  # e.g. a port RequestValidator cannot parse while trying the port variants
        return False


def _forgery(why: str) -> AppError:
    logger.warning("Rejected a webhook request with %s", why)
    return AppError(403, "invalid_signature", "Missing or invalid X-Twilio-Signature.")
