"""send_sms: validate a mobile app's SMS/MMS request and create the message through Twilio."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from shared import fields, quota, sends
from shared.errors import invalid_field
from shared.phone import mask
from shared.settings import Settings
from shared.twilio_client import create, twilio_errors
from shared.urls import status_callback_url

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
        parties = fields.parties(payload, FIELDS, settings)
        body = fields.text(payload, "body", max_length=MAX_BODY_CHARS)
        media = fields.https_urls(payload, "media_url", MAX_MEDIA)
        if body is None and not media:
            raise invalid_field("body", "'body' is required unless 'media_url' is given.", "missing_field")
        return cls(parties.to, parties.from_, body, tuple(media), parties.status_callback)


def send_sms(sms: SmsRequest, settings: Settings, identity: str) -> dict[str, Any]:
    """Charge the caller's quotas, create the message (one create request, never re-sent) and return the
    documented 201 body."""
    sender = sms.from_ or (None if settings.messaging_service_sid else settings.phone_number)
    service = None if sms.from_ else settings.messaging_service_sid
    settings.require(*settings.rest_setting_names(), *(() if sender or service else ("TWILIO_PHONE_NUMBER",)))
    ours = None if sms.status_callback else status_callback_url(settings)
    with quota.charged(settings, "sms", identity, sms.to), twilio_errors():
        message = create(settings, "Messages", {
            "To": sms.to, "From": sender, "MessagingServiceSid": service, "Body": sms.body,
            "MediaUrl": list(sms.media_urls) or None, "StatusCallback": sms.status_callback or ours,
        })
    logger.info("SMS %s queued to %s for %s", message.get("sid"), mask(sms.to), identity)
    date_created = sends.iso_utc(message.get("date_created"))
    sends.record_send(settings, "message", message, identity, date_created, callback_registered=ours is not None)
    return {
        "sid": message.get("sid"),
        "status": message.get("status"),
        "to": message.get("to"),
        "from": message.get("from"),
        "date_created": date_created,
    }
