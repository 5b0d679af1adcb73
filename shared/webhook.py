"""Twilio webhook security in one decorator: method check -> signature over the public URL -> handler -> XML."""

from __future__ import annotations

import hmac
import logging
from dataclasses import dataclass
from typing import Callable
from urllib.parse import parse_qs, parse_qsl

import azure.functions as func
from twilio.request_validator import RequestValidator

from shared.errors import AppError, MAX_BODY_BYTES, answer
from shared.settings import Settings, load_settings
from shared.twiml import xml_response
from shared.urls import public_url

logger = logging.getLogger("shared.webhook")

SIGNATURE_HEADER = "x-twilio-signature"
ALLOWED_METHODS = ("GET", "POST")


class Params(dict):
    """Form parameters with every value of a repeated key, in the shape RequestValidator signs (getall)."""

    def getall(self, name: str) -> list[str]:
        return self[name]


@dataclass(frozen=True)
class Webhook:
    """A verified Twilio webhook request: its parameters (form, then query string) and the app settings."""

    form: Params
    query: dict[str, list[str]]
    settings: Settings

    def param(self, name: str) -> str:
        """The first value of a Twilio parameter from the body, else from the query string; '' when absent."""
        values = self.form.get(name) or self.query.get(name) or [""]
        return values[0]


def twilio_webhook(handler: Callable[[Webhook], str]) -> Callable[[func.HttpRequest], func.HttpResponse]:
    """Serve handler only for requests carrying a valid X-Twilio-Signature; fails closed (403/503) otherwise."""
    name = handler.__module__

    def main(req: func.HttpRequest) -> func.HttpResponse:
        return answer(name, lambda: xml_response(handler(verify(req))))

    main.__doc__ = handler.__doc__
    main.__annotations__ = {"req": func.HttpRequest, "return": func.HttpResponse}  # what the Functions worker checks
    return main


def verify(req: func.HttpRequest) -> Webhook:
    """Check method and signature; return the verified request or raise the AppError to answer."""
    if req.method.upper() not in ALLOWED_METHODS:
        raise AppError(405, "method_not_allowed", "Use GET or POST.", headers={"Allow": "GET, POST"})
    settings = load_settings()
    validator = RequestValidator(settings.webhook_token())
    signature = req.headers.get(SIGNATURE_HEADER)
    if not signature:
        raise _forgery("missing")
    url = public_url(req, settings.public_base_url)
    raw_query = url.partition("?")[2]
    query = parse_qs(raw_query, keep_blank_values=True) if raw_query else {}
    signed = _signed_content(req, query)
    if signed is None or not _signed_by_twilio(validator, url, signed, signature):
        raise _forgery("invalid")
    return Webhook(form=signed if isinstance(signed, Params) else Params(), query=query, settings=settings)


def _signed_content(req: func.HttpRequest, query: dict[str, list[str]]) -> Params | str | None:
    """What Twilio signed besides the URL: the form parameters, or a JSON body (bodySHA256); None if neither."""
    body = req.get_body() or b""
    if len(body) > MAX_BODY_BYTES:
        raise AppError(413, "body_too_large", "The request body is too large for a Twilio webhook.")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return None
    content_type = (req.headers.get("content-type") or "").split(";")[0].strip().lower()
    if content_type == "application/json" and query.get("bodySHA256", [""])[0]:
        return text
    if body and content_type != "application/x-www-form-urlencoded":
        return None
    form = Params()
    for key, value in parse_qsl(text, keep_blank_values=True):
        form.setdefault(key, []).append(value)
    return form


def _forgery(kind: str) -> AppError:
    logger.warning("Rejected a webhook request with a %s signature", kind)
    return AppError(403, "invalid_signature", "Missing or invalid X-Twilio-Signature.")


def _signed_by_twilio(validator: RequestValidator, url: str, signed: Params | str, signature: str) -> bool:
    """One HMAC over the URL as received (the usual case), else the SDK's full check (port variants, bodySHA256)."""
    if isinstance(signed, Params) and hmac.compare_digest(
            validator.compute_signature(url, signed).encode(), signature.encode()):
        return True
    return validator.validate(url, signed, signature)
