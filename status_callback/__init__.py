"""POST /api/status_callback: Twilio reports a message's or call's progress; the send's record moves forward."""

import azure.functions as func

from shared import twiml
from shared.broadcasts import track
from shared.sends import apply_callback
from shared.settings import Settings
from shared.webhook import twilio_webhook


@twilio_webhook(methods=("POST",))  # Twilio posts status callbacks
def main(req: func.HttpRequest, settings: Settings) -> str:
    track(settings, apply_callback(settings, req.form))  # a broadcast's message moves its recipient too
    return twiml.empty()  # a 200 Twilio logs no error for; unknown SIDs too, so Twilio does not retry forever
