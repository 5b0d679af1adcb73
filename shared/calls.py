"""make_call's request: its fields validated, then the call it asks Twilio for, whose TwiML comes from voice_webhook."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shared import fields
from shared.channels import CALL
from shared.errors import invalid_field
from shared.fields import LANGUAGE_PATTERN, VOICE_PATTERN
from shared.sends import Outgoing, send
from shared.settings import Settings
from shared.step_mac import signed_url
from shared.urls import VOICE_WEBHOOK_PATH

MAX_MESSAGE_CHARS = 1000
FIELDS = ("to", "from", "message", "voice", "language", "status_callback")
MAX_TWILIO_URL_CHARS = 4000  # Twilio refuses longer URL parameters


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

    def webhook_url(self, settings: Settings, origin: str) -> str:
        """voice_webhook's URL with the message (twimlets-style `Message`), Voice and Language in the query, under
        the app's MAC: voice_webhook says only what the app put there."""
        query = {name: value for name, value in
                 (("Message", self.message), ("Voice", self.voice), ("Language", self.language)) if value}
        return signed_url(query, settings.webhook_token(), origin) if query else origin + VOICE_WEBHOOK_PATH

    def outgoing(self, settings: Settings, origin: str) -> Outgoing:
        """The call from the request's `from`, else TWILIO_PHONE_NUMBER; Twilio fetches its TwiML from the app and
        ends the call after CALL_MAX_MINUTES."""
        url = self.webhook_url(settings, origin)
        if len(url) > MAX_TWILIO_URL_CHARS:  # e.g. 1000 emoji: 12 URL-encoded characters each
            raise invalid_field("message", f"'message' is too long once URL-encoded: the call's webhook URL would "
                                f"be {len(url)} characters, Twilio accepts {MAX_TWILIO_URL_CHARS}.", "too_long")
        sender = self.from_ or settings.phone_number
        return Outgoing(CALL, self.to, {"To": self.to, "From": sender, "Url": url, "Method": "POST",
                                        "TimeLimit": settings.call_time_limit},
                        needs=() if sender else ("TWILIO_PHONE_NUMBER",), status_callback=self.status_callback)


def place_call(call: CallRequest, settings: Settings, origin: str, identity: str) -> dict[str, Any]:
    """Place the call through the one send path; the documented 201 body."""
    return send(settings, call.outgoing(settings, origin), identity).answer()
