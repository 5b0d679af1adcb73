"""Request-field validation for the mobile API: every failure is a 400 naming the field."""

from __future__ import annotations

import re
from typing import Any, Iterable, NamedTuple
from urllib.parse import urlsplit

from shared.errors import invalid_field
from shared.phone import require_allowed_destination, to_e164
from shared.settings import Settings
from shared.twiml import NOT_XML_CHARS
from shared.urls import public_hostnames

VOICE_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
LANGUAGE_PATTERN = re.compile(r"[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8}){0,2}")
MAX_URL_CHARS = 2048
# In a URL: controls (C0, DEL, C1), whitespace and lone surrogates.
NOT_URL_CHARS = re.compile("[\x00-\x20\x7f-\x9f\ud800-\udfff]|\\s")


class Parties(NamedTuple):
    """The fields every outbound operation shares, validated."""

    to: str
    from_: str | None
    status_callback: str | None


def parties(payload: dict[str, Any], allowed: Iterable[str], settings: Settings) -> Parties:
    """Reject unknown fields, then validate `to` (E.164, allowed destination), `from` and `status_callback`."""
    reject_unknown(payload, allowed)
    callback = payload.get("status_callback")
    return Parties(
        to=destination(payload, settings),
        from_=sender(payload, settings),
        status_callback=https_url(callback, "status_callback", settings) if callback is not None else None,
    )


def destination(payload: dict[str, Any], settings: Settings) -> str:
    """`to` in E.164, if the destination guard allows it (never premium-rate); 400 naming `to` otherwise."""
    to = to_e164(text(payload, "to", required=True), "to", settings.default_region)  # type: ignore[arg-type]
    require_allowed_destination(to, settings.allowed_destination_prefixes, settings.allowed_destination_countries)
    return to


def sender(payload: dict[str, Any], settings: Settings) -> str | None:
    """`from` in E.164, or None when absent; 400 naming `from` if it is not a phone number."""
    value = text(payload, "from")
    return to_e164(value, "from", settings.default_region) if value else None


def reject_unknown(payload: dict[str, Any], allowed: Iterable[str]) -> None:
    """400 for the first field the operation does not know (catches typos such as 'To' for 'to')."""
    allowed = tuple(allowed)
    for name in payload:
        if name not in allowed:
            raise invalid_field(name, f"Unknown field '{name}'; this operation takes: {', '.join(allowed)}.",
                                "unknown_field")


def text(payload: dict[str, Any], name: str, *, required: bool = False, max_length: int = 256,
         pattern: re.Pattern[str] | None = None) -> str | None:
    """A string field: trimmed, non-empty when present, at most max_length characters, matching pattern."""
    value = payload.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise invalid_field(name, f"'{name}' is required.", "missing_field")
        return None
    if not isinstance(value, str):
        raise invalid_field(name, f"'{name}' must be a string.")
    value = value.strip()
    if NOT_XML_CHARS.search(value):
        raise invalid_field(name, f"'{name}' must not contain control characters.")
    if len(value) > max_length:
        raise invalid_field(name, f"'{name}' is longer than {max_length} characters.", "too_long")
    if pattern is not None and not pattern.fullmatch(value):
        raise invalid_field(name, f"'{name}' has an invalid format.")
    return value


def https_url(value: Any, name: str, settings: Settings) -> str:
    """An absolute https URL with a host and no user:password, a valid port, no control characters or
    whitespace, at most MAX_URL_CHARS characters, not on the app's own public origin (Twilio would sign what it
    sends there, as if to the app's own webhooks); 400 invalid_url naming the field otherwise."""
    if not isinstance(value, str):
        raise invalid_field(name, f"'{name}' must be an https URL string.", "invalid_url")
    value = value.strip()
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number in 0-65535
        ok = parts.scheme == "https" and bool(parts.hostname) and "@" not in parts.netloc
    except ValueError:  # an invalid port or IPv6 literal
        ok = False
    if not ok or len(value) > MAX_URL_CHARS or NOT_URL_CHARS.search(value):
        raise invalid_field(name, f"'{name}' must be an absolute https:// URL without credentials, spaces or "
                            "control characters.", "invalid_url")
    if parts.hostname.rstrip(".") in public_hostnames(settings):  # type: ignore[union-attr]
        raise invalid_field(name, f"'{name}' must not point at this service itself.", "invalid_url")
    return value


def https_urls(payload: dict[str, Any], name: str, max_items: int, settings: Settings) -> list[str]:
    """A field holding one https URL or a list of them (at most max_items)."""
    value = payload.get(name)
    if value is None:
        return []
    items = value if isinstance(value, list) else [value]
    if len(items) > max_items:
        raise invalid_field(name, f"'{name}' takes at most {max_items} URLs.", "too_many_media")
    return [https_url(item, name, settings) for item in items]
