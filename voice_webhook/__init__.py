"""GET/POST /api/voice_webhook: Twilio fetches the TwiML of a call (outbound-connected or inbound)."""

import azure.functions as func

from shared import twiml
from shared.fields import LANGUAGE_PATTERN, VOICE_PATTERN
from shared.phone import is_blocked
from shared.settings import load_settings
from shared.webhook import param, twilio_webhook


@twilio_webhook
def main(req: func.HttpRequest) -> str:
    settings = load_settings()
    caller = "" if param(req, "Direction").startswith("outbound") else param(req, "From")
    if is_blocked(caller, settings.blocked_numbers, settings.default_region):
        return twiml.reject()
    voice = param(req, "Voice")
    language = param(req, "Language")
    return twiml.say(
        param(req, "Message") or settings.voice_greeting,
        voice=voice if VOICE_PATTERN.fullmatch(voice) else settings.voice_name,
        language=language if LANGUAGE_PATTERN.fullmatch(language) else settings.voice_language,
    )
