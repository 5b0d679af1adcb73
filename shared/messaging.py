"""send_sms: validate a mobile app's SMS/MMS request and create the message through Twilio."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from shared import fields
from shared.errors import invalid_field
from shared.phone import mask
from shared.settings import Settings
from shared.twilio_client import get_client, twilio_errors

logger = logging.getLogger("shared.messaging")

MAX_BODY_CHARS = 1600
MAX_MEDIA = 10
FIELDS = ("to", "from", "body", "media_url", "status_callback")


@dataclass(frozen=True)
class SmsRequest:
    """A validated send_sms request."""

    to: str
    from_: str | None
    body: str | None
    media_urls: tuple[str, ...]
    status_callback: str | None

    @classmethod
    def parse(cls, payload: dict[str, Any], settings: Settings) -> SmsRequest:
        """Validate payload (400 naming the field on any problem); no Twilio request is made on failure."""
        parties = fields.parties(payload, FIELDS, settings.default_region, settings.allowed_destination_prefixes)
        body = fields.text(payload, "body", max_length=MAX_BODY_CHARS)
        media = fields.https_urls(payload, "media_url", MAX_MEDIA)
        if body is None and not media:
            raise invalid_field("body", "'body' is required unless 'media_url' is given.", "missing_field")
        return cls(parties.to, parties.from_, body, tuple(media), parties.status_callback)


def send_sms(sms: SmsRequest, settings: Settings) -> dict[str, Any]:
    """Create the message (one create request, never re-sent) and return the documented 201 body."""
    sender: dict[str, str] = {}
    if sms.from_:
        sender["from_"] = sms.from_
    elif settings.messaging_service_sid:
        sender["messaging_service_sid"] = settings.messaging_service_sid
    elif settings.phone_number:
        sender["from_"] = settings.phone_number
    settings.rest_credentials(also_missing=() if sender else ("TWILIO_PHONE_NUMBER",))
    options: dict[str, Any] = {}
    if sms.body is not None:
        options["body"] = sms.body
    if sms.media_urls:
        options["media_url"] = list(sms.media_urls)
    if sms.status_callback:
        options["status_callback"] = sms.status_callback
    with twilio_errors():
        message = get_client(settings).messages.create(to=sms.to, **sender, **options)
    logger.info("SMS %s queued to %s", message.sid, mask(sms.to))
    return {
        "sid": message.sid,
        "status": message.status,
        "to": message.to,
        "from": message.from_,
        "date_created": iso_utc(message.date_created),
    }


def iso_utc(value: datetime | None) -> str | None:
    """ISO 8601 in UTC with a 'Z' suffix (None stays None)."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")
