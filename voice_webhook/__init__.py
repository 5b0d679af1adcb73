"""GET/POST /api/voice_webhook: Twilio fetches the TwiML of a call (outbound-connected or inbound)."""

from shared import twiml
from shared.phone import is_blocked
from shared.webhook import Webhook, twilio_webhook


@twilio_webhook
def main(hook: Webhook) -> str:
    settings = hook.settings
    caller = "" if hook.param("Direction").startswith("outbound") else hook.param("From")
    if is_blocked(caller, settings.blocked_numbers, settings.default_region):
        return twiml.reject()
    voice = hook.param("Voice")
    language = hook.param("Language")
    return twiml.say(
        hook.param("Message") or settings.voice_greeting,
        voice=voice if twiml.VOICE_PATTERN.fullmatch(voice) else settings.voice_name,
        language=language if twiml.LANGUAGE_PATTERN.fullmatch(language) else settings.voice_language,
    )
