"""Unknown outcomes made known: the Message or Call an unfinished create made, found in Twilio's list of them."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from typing import Any, Mapping

from shared import sends
from shared.channels import SMS, Channel
from shared.settings import Settings

CLOCK_SLACK = timedelta(seconds=5)  # Twilio's clock against this app's: a create a little "before" the attempt counts
PAGE_SIZE = 100  # newest first: more than 100 sends to one number since the attempt began is beyond reconciling


def digest(body: str | None) -> str:
    """SHA-256 of a message body: what a record keeps to match it by (no message text at rest)."""
    return hashlib.sha256((body or "").encode()).hexdigest()


def created_by(settings: Settings, channel: Channel, attempt: Mapping[str, Any], owner: str) -> sends.Sent | None:
    """What Twilio created for an attempt (its to_number, from_number, started_at and a message's body_sha256):
    the one resource with that To and From created since the attempt began, for a message also with that body,
    then recorded for the status lookup. None when Twilio lists none, or several: then the outcome stays unknown.
    It never sends. Twilio's errors raise as for the sends."""
    from twilio.base.deserialize import rfc2822_datetime

    from shared.twilio_client import find
    from shared.twilio_errors import twilio_errors

    since = attempt["started_at"] - CLOCK_SLACK
    # Twilio documents these filters as dates ("DateSent>=YYYY-MM-DD": on or after); the time is checked below.
    after = "DateSent>" if channel is SMS else "StartTime>"
    filters = {"To": attempt["to_number"], "From": attempt["from_number"] or None,
               after: since.strftime("%Y-%m-%d"), "PageSize": str(PAGE_SIZE)}
    with twilio_errors():
        listed = find(settings, channel, filters)

    def made(resource: dict[str, Any]) -> bool:
        created = rfc2822_datetime(resource.get("date_created") or "")
        if not isinstance(created, datetime) or created < since:
            return False
        return channel is not SMS or digest(resource.get("body")) == attempt["body_sha256"]

    matches = [resource for resource in listed if made(resource)]
    if len(matches) != 1:
        return None
    sent = sends.Sent.of(channel, matches[0])
    sends.record(settings, sent, owner, callback_registered=False)
    return sent
