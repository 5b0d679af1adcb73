"""Request-field validation for the mobile API: every failure is a 400 naming the field."""

from __future__ import annotations

import re
from typing import Any, Iterable, NamedTuple
from urllib.parse import urlsplit

from shared.errors import invalid_field
from shared.phone import require_allowed_destination, to_e164
from shared.twiml import NOT_XML_CHARS


class Parties(NamedTuple):
    """The fields every outbound operation shares, validated."""

    to: str
    from_: str | None
    status_callback: str | None


def parties(payload: dict[str, Any], allowed: Iterable[str], default_region: str | None,
            destination_prefixes: Iterable[str]) -> Parties:
    """Reject unknown fields, then validate `to` (E.164, allowed destination), `from` and `status_callback`."""
    reject_unknown(payload, allowed)
    to = to_e164(text(payload, "to", required=True), "to", default_region)  # type: ignore[arg-type]
    require_allowed_destination(to, destination_prefixes)
    sender = text(payload, "from")
    callback = payload.get("status_callback")
    return Parties(
        to=to,
        from_=to_e164(sender, "from", default_region) if sender else None,
        status_callback=https_url(callback, "status_callback") if callback is not None else None,
    )


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


def https_url(value: Any, name: str) -> str:
    """An absolute https URL with a host, at most 2048 characters."""
    if not isinstance(value, str):
        raise invalid_field(name, f"'{name}' must be an https URL string.", "invalid_url")
    value = value.strip()
    try:
        parts = urlsplit(value)
        ok = parts.scheme == "https" and bool(parts.hostname)
    except ValueError:  # e.g. an invalid port or IPv6 literal
        ok = False
    if not ok or len(value) > 2048 or any(c.isspace() for c in value):
        raise invalid_field(name, f"'{name}' must be an absolute https:// URL.", "invalid_url")
    return value


def https_urls(payload: dict[str, Any], name: str, max_items: int) -> list[str]:
    """A field holding one https URL or a list of them (at most max_items)."""
    value = payload.get(name)
    if value is None:
        return []
    items = value if isinstance(value, list) else [value]
    if len(items) > max_items:
        raise invalid_field(name, f"'{name}' takes at most {max_items} URLs.", "too_many_media")
    return [https_url(item, name) for item in items]
