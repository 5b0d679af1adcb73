"""GET/POST /api/sms_webhook: Twilio posts each inbound SMS; the reply is TwiML."""

from shared import twiml
from shared.phone import is_blocked
from shared.webhook import Webhook, twilio_webhook

OPT_OUT_KEYWORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"})


@twilio_webhook
def main(hook: Webhook) -> str:
    settings = hook.settings
    if hook.param("Body").strip().upper() in OPT_OUT_KEYWORDS:
        return twiml.empty()  # Twilio handles opt-out itself; a reply would not be delivered anyway
    if is_blocked(hook.param("From"), settings.blocked_numbers, settings.default_region):
        return twiml.empty()
    return twiml.message(settings.sms_auto_reply)
