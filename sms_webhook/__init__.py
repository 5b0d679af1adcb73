"""GET/POST /api/sms_webhook: Twilio posts each inbound SMS; the reply is TwiML."""

import azure.functions as func

from shared import twiml
from shared.optouts import apply_keyword
from shared.phone import is_blocked
from shared.settings import Settings
from shared.webhook import param, twilio_webhook

# Twilio answers these itself (opt-out, opt-in, help) when they are the whole message: a reply would be a second one.
TWILIO_KEYWORDS = frozenset({
    "STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT",
    "START", "YES", "UNSTOP",
    "HELP", "INFO",
})


@twilio_webhook
def main(req: func.HttpRequest, settings: Settings) -> str:
    if param(req, "Body").strip().upper() in TWILIO_KEYWORDS:
        apply_keyword(settings, param(req, "From"), param(req, "Body"))  # broadcasts skip who opted out
        return twiml.empty()
    if is_blocked(param(req, "From"), settings.blocked_numbers, settings.default_region):
        return twiml.empty()
    return twiml.message(settings.sms_auto_reply)
