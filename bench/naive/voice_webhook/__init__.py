"""Naive voice_webhook, as in the quick-starts: everything imported up front, signature checked, TwiML reply."""

import os

import azure.functions as func
import phonenumbers  # noqa: F401 - tutorial style: every import at the top
from twilio.request_validator import RequestValidator
from twilio.rest import Client  # noqa: F401
from twilio.twiml.messaging_response import MessagingResponse  # noqa: F401
from twilio.twiml.voice_response import VoiceResponse


def main(req: func.HttpRequest) -> func.HttpResponse:
    validator = RequestValidator(os.environ["TWILIO_AUTH_TOKEN"])
    if not validator.validate(req.url, dict(req.form), req.headers.get("X-Twilio-Signature", "")):
        return func.HttpResponse("Forbidden", status_code=403)
    resp = VoiceResponse()
    resp.say(req.params.get("Message") or os.environ.get("VOICE_GREETING", "Hello! Thanks for calling. Goodbye."))
    return func.HttpResponse(str(resp), status_code=200, mimetype="text/xml")
