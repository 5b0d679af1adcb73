"""Judging webhook replies as Twilio would (TwiML errors) and reading <Message> verbs."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Any

from .errors import webhook_error
from .webhooks import WebhookResult

TWIML_CONTENT_TYPES = frozenset({"text/xml", "application/xml", "text/html"})


@dataclass
class TwimlOutcome:
    """Result of evaluating a webhook reply: the TwiML text or the Twilio error."""

    twiml: str | None
    twilio_error: dict[str, Any] | None
    root: ET.Element | None = field(default=None, repr=False)


def _media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def is_twiml_content_type(content_type: str | None) -> bool:
    """Whether Twilio would parse a reply with this Content-Type as TwiML."""
    media = _media_type(content_type)
    return media in TWIML_CONTENT_TYPES or media.endswith("+xml")


def parse_twiml(text: str) -> TwimlOutcome:
    """Parse a TwiML document; unparsable or non-<Response> root -> 12100."""
    try:
        root = ET.fromstring(text.strip())
    except ET.ParseError as exc:
        return TwimlOutcome(None, webhook_error(12100, f"XML parse error: {exc}"))
    if root.tag != "Response":
        return TwimlOutcome(None, webhook_error(12100, f"root element is <{root.tag}>, expected <Response>"))
    return TwimlOutcome(text, None, root)


def evaluate_reply(result: WebhookResult, *, allow_empty: bool) -> TwimlOutcome:
    """Apply Twilio's checks: transport/non-2xx -> 11200, bad type -> 12300, bad XML -> 12100.

    allow_empty: an empty 2xx body is fine (messaging webhooks may answer without TwiML).
    """
    if result.status is None:
        return TwimlOutcome(None, webhook_error(11200, result.error or "connection failure"))
    if not 200 <= result.status < 300:
        return TwimlOutcome(None, webhook_error(11200, f"HTTP {result.status} from {result.url}"))
    if allow_empty and not result.body.strip():
        return TwimlOutcome("", None)
    if not is_twiml_content_type(result.content_type):
        detail = f"Content-Type {result.content_type or '(none)'} is not a TwiML type"
        return TwimlOutcome(None, webhook_error(12300, detail))
    return parse_twiml(result.body)


@dataclass
class ReplyMessage:
    """A <Message> verb found in messaging TwiML."""

    body: str
    media_urls: list[str]
    to: str | None
    from_: str | None


def reply_messages(root: ET.Element | None) -> list[ReplyMessage]:
    """Every <Message> under <Response>, in document order."""
    if root is None:
        return []
    found: list[ReplyMessage] = []
    for verb in root.findall("Message"):
        body_el = verb.find("Body")
        if body_el is not None:
            body = (body_el.text or "").strip()
        elif verb.findall("Media"):
            body = (verb.text or "").strip()
        else:
            body = "".join(verb.itertext()).strip()
        media = [(el.text or "").strip() for el in verb.findall("Media") if (el.text or "").strip()]
        found.append(ReplyMessage(body=body, media_urls=media, to=verb.get("to"), from_=verb.get("from")))
    return found
