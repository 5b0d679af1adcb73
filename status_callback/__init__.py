"""POST /api/status_callback: Twilio reports a message's or call's progress; the send's record moves forward."""

import azure.functions as func

from shared import twiml
from shared.sends import apply_callback
from shared.settings import load_settings
from shared.webhook import twilio_webhook


@twilio_webhook
def main(req: func.HttpRequest) -> str:
    apply_callback(load_settings(), req.form)
    return twiml.empty()  # a 200 Twilio logs no error for; unknown SIDs too, so Twilio does not retry forever
