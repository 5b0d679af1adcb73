"""Timestamps as the API shows them: ISO 8601 in UTC with a 'Z' suffix."""

from __future__ import annotations

from datetime import datetime, timezone


def iso_z(moment: datetime) -> str:
    """moment (timezone-aware) as ISO 8601 in UTC with a 'Z' suffix, e.g. 2026-12-04T17:38:49Z."""
    return moment.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def now_z() -> str:
    """The current time, to the second, as iso_z gives it."""
    return iso_z(datetime.now(timezone.utc).replace(microsecond=0))


def from_rfc2822(value: str | None) -> str | None:
    """Twilio's RFC 2822 date ('Fri, 04 Dec 2026 17:38:49 +0000') as iso_z gives it; None, or unparsable, stays None."""
    from twilio.base.deserialize import rfc2822_datetime

    parsed = rfc2822_datetime(value) if value else None
    return iso_z(parsed) if isinstance(parsed, datetime) else None
