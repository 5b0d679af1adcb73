"""Signed requests to the app, made the way Twilio makes them, and Twilio's judgement of the TwiML answered."""

from __future__ import annotations

import uuid
import xml.etree.ElementTree as ET
from typing import Any
from urllib.parse import urlencode, urlsplit

import requests
from twilio.request_validator import RequestValidator

from .errors import webhook_error

USER_AGENT = "TwilioProxy/1.1"
TWIML_TYPES = frozenset({"text/xml", "application/xml", "text/html"})


def send_signed(auth_token: str, url: str, params: dict[str, str], method: str, timeout: float) -> dict[str, Any]:
    """POST (form) or GET (query) params to url with X-Twilio-Signature; the outcome, never raising."""
    method = "GET" if method.upper() == "GET" else "POST"
    result: dict[str, Any] = {"url": url, "method": method, "params": dict(params), "status": None,
                              "content_type": None, "body": "", "error": None}
    if urlsplit(url).scheme not in ("http", "https"):
        result["error"] = f"unsupported URL {url!r}"
        return result
    validator = RequestValidator(auth_token)
    if method == "GET":
        query = urlencode(params)
        target = f"{url}{'&' if urlsplit(url).query else '?'}{query}" if query else url
        signature, data = validator.compute_signature(target, {}), None
    else:
        target, signature, data = url, validator.compute_signature(url, params), params
    headers = {"X-Twilio-Signature": signature, "I-Twilio-Idempotency-Token": str(uuid.uuid4()),
               "User-Agent": USER_AGENT, "Accept": "*/*"}
    try:
        reply = requests.request(method, target, data=data, headers=headers, timeout=timeout, allow_redirects=False)
    except requests.RequestException as exc:
        result["error"] = f"{type(exc).__name__}: {exc}"
        return result
    body = reply.content.decode("utf-8", "replace")
    result.update(status=reply.status_code, content_type=reply.headers.get("Content-Type"), body=body)
    return result


def judge_twiml(result: dict[str, Any], *, allow_empty: bool) -> tuple[str | None, dict[str, Any] | None]:
    """(TwiML, None) or (None, Twilio error): 11200 no 2xx answer, 12300 not an XML type, 12100 not <Response>."""
    if result["status"] is None:
        return None, webhook_error(11200, result["error"] or "connection failure")
    if not 200 <= result["status"] < 300:
        return None, webhook_error(11200, f"HTTP {result['status']} from {result['url']}")
    body = result["body"]
    if allow_empty and not body.strip():
        return "", None
    media_type = (result["content_type"] or "").split(";", 1)[0].strip().lower()
    if media_type not in TWIML_TYPES and not media_type.endswith("+xml"):
        return None, webhook_error(12300, f"Content-Type {media_type or '(none)'} is not a TwiML type")
    try:
        root = ET.fromstring(body.strip())
    except ET.ParseError as exc:
        return None, webhook_error(12100, f"XML parse error: {exc}")
    if root.tag != "Response":
        return None, webhook_error(12100, f"root element is <{root.tag}>, expected <Response>")
    return body, None


def reply_messages(twiml: str | None) -> list[tuple[str | None, str | None, str]]:
    """(to, from, body) of every <Message> verb in a messaging TwiML document."""
    if not twiml:
        return []
    found = []
    for verb in ET.fromstring(twiml.strip()).findall("Message"):
        body = verb.find("Body")
        text = body.text if body is not None else verb.text
        found.append((verb.get("to"), verb.get("from"), (text or "").strip()))
    return found
