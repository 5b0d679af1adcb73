"""make_call: validate a mobile app's call request and create the call, whose TwiML comes from voice_webhook."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from shared import fields, quota, sends
from shared.errors import invalid_field
from shared.fields import LANGUAGE_PATTERN, VOICE_PATTERN
from shared.phone import mask
from shared.settings import Settings
from shared.twilio_client import create, twilio_errors
from shared.urls import VOICE_WEBHOOK_PATH, status_callback_url

logger = logging.getLogger("shared.voice")

MAX_MESSAGE_CHARS = 1000
FIELDS = ("to", "from", "message", "voice", "language", "status_callback")
MAX_TWILIO_URL_CHARS = 4000  # Twilio refuses longer URL parameters
CALL_EVENTS = ["initiated", "ringing", "answered", "completed"]  # StatusCallbackEvent, sent as a repeated parameter


@dataclass(frozen=True)
class CallRequest:
    """A validated make_call request."""

    to: str
    from_: str | None
    message: str | None
    voice: str | None
    language: str | None
    status_callback: str | None

    @classmethod
    def parse(cls, payload: dict[str, Any], settings: Settings) -> CallRequest:
        """Validate payload (400 naming the field on any problem); no Twilio request is made on failure."""
        parties = fields.parties(payload, FIELDS, settings)
        return cls(
            to=parties.to,
            from_=parties.from_,
            message=fields.text(payload, "message", max_length=MAX_MESSAGE_CHARS),
            voice=fields.text(payload, "voice", max_length=64, pattern=VOICE_PATTERN),
            language=fields.text(payload, "language", max_length=35, pattern=LANGUAGE_PATTERN),
            status_callback=parties.status_callback,
        )

    def webhook_url(self, origin: str) -> str:
        """voice_webhook's URL with the message (twimlets-style `Message`), Voice and Language in the query."""
        query = {name: value for name, value in
                 (("Message", self.message), ("Voice", self.voice), ("Language", self.language)) if value}
        return origin + VOICE_WEBHOOK_PATH + (f"?{urlencode(query)}" if query else "")


def place_call(call: CallRequest, settings: Settings, origin: str, identity: str) -> dict[str, Any]:
    """Charge the caller's quotas, create the call (one create request, never re-sent) and return the
    documented 201 body."""
    sender = call.from_ or settings.phone_number
    settings.require(*settings.rest_setting_names(), *(() if sender else ("TWILIO_PHONE_NUMBER",)))
    url = call.webhook_url(origin)
    if len(url) > MAX_TWILIO_URL_CHARS:  # e.g. 1000 emoji: 12 URL-encoded characters each
        raise invalid_field("message", f"'message' is too long once URL-encoded: the call's webhook URL would be "
                            f"{len(url)} characters, Twilio accepts {MAX_TWILIO_URL_CHARS}.", "too_long")
    ours = None if call.status_callback else status_callback_url(settings)
    with quota.charged(settings, "call", identity, call.to), twilio_errors():
        call_resource = create(settings, "Calls", {
            "To": call.to, "From": sender, "Url": url, "Method": "POST",
            "StatusCallback": call.status_callback or ours, "StatusCallbackEvent": CALL_EVENTS if ours else None,
        })
    logger.info("Call %s queued to %s for %s", call_resource.get("sid"), mask(call.to), identity)
    sends.record_send(settings, "call", call_resource, identity, sends.iso_utc(call_resource.get("date_created")),
                      callback_registered=ours is not None)
    return {
        "sid": call_resource.get("sid"),
        "status": call_resource.get("status"),
        "to": call_resource.get("to"),
        "from": call_resource.get("from"),
    }
