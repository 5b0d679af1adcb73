"""send_sms's request: its fields validated, then the SMS/MMS it asks Twilio for."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shared import fields
from shared.channels import SMS
from shared.errors import invalid_field
from shared.sends import Outgoing, send
from shared.settings import Settings

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
        return cls(parties.to, parties.from_, *content(payload, settings), parties.status_callback)

    def outgoing(self, settings: Settings) -> Outgoing:
        """The message: from the request's `from`, else the Messaging Service, else TWILIO_PHONE_NUMBER."""
        sender = self.from_ or (None if settings.messaging_service_sid else settings.phone_number)
        service = None if self.from_ else settings.messaging_service_sid
        return Outgoing(SMS, self.to, {"To": self.to, "From": sender, "MessagingServiceSid": service,
                                       "Body": self.body, "MediaUrl": list(self.media_urls) or None},
                        needs=() if sender or service else ("TWILIO_PHONE_NUMBER",),
                        status_callback=self.status_callback)


def content(payload: dict[str, Any], settings: Settings) -> tuple[str | None, tuple[str, ...]]:
    """The message's `body` and `media_url` (one of them at least), validated; 400 naming the field otherwise."""
    body = fields.text(payload, "body", max_length=MAX_BODY_CHARS)
    media = fields.https_urls(payload, "media_url", MAX_MEDIA, settings)
    if body is None and not media:
        raise invalid_field("body", "'body' is required unless 'media_url' is given.", "missing_field")
    return body, tuple(media)


def send_sms(sms: SmsRequest, settings: Settings, identity: str) -> dict[str, Any]:
    """Send the SMS through the one send path; the documented 201 body."""
    return send(settings, sms.outgoing(settings), identity).answer()
