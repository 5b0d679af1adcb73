"""Naive make_call, as in the quick-starts: everything imported up front, a new Client per request, no timeout."""

import json
import os
from urllib.parse import urlencode, urlsplit

import azure.functions as func
import phonenumbers
from twilio.base.exceptions import TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.request_validator import RequestValidator  # noqa: F401 - tutorial style: every import at the top
from twilio.rest import Client
from twilio.twiml.messaging_response import MessagingResponse  # noqa: F401
from twilio.twiml.voice_response import VoiceResponse  # noqa: F401


class SandboxHttpClient(TwilioHttpClient):
    """Benchmark-only deviation: send the request to TWILIO_API_BASE_URL instead of api.twilio.com."""

    def request(self, method, url, *args, **kwargs):
        base = os.environ.get("TWILIO_API_BASE_URL")
        if base:
            parts = urlsplit(url)
            url = base.rstrip("/") + parts.path + (f"?{parts.query}" if parts.query else "")
        return super().request(method, url, *args, **kwargs)


def main(req: func.HttpRequest) -> func.HttpResponse:
    try:
        data = req.get_json()
    except ValueError:
        return func.HttpResponse("Invalid JSON", status_code=400)
    to = data.get("to")
    if not to:
        return func.HttpResponse("'to' is required", status_code=400)
    try:
        number = phonenumbers.parse(to, None)
    except phonenumbers.NumberParseException:
        return func.HttpResponse("Invalid phone number", status_code=400)
    if not phonenumbers.is_valid_number(number):
        return func.HttpResponse("Invalid phone number", status_code=400)
    parts = urlsplit(req.url)
    twiml_url = f"{parts.scheme}://{parts.netloc}/api/voice_webhook?" + urlencode(
        {"Message": data.get("message") or "Hello! Thanks for calling. Goodbye."})
    client = Client(os.environ["TWILIO_ACCOUNT_SID"], os.environ["TWILIO_AUTH_TOKEN"],
                    http_client=SandboxHttpClient())
    try:
        call = client.calls.create(to=phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164),
                                   from_=os.environ["TWILIO_PHONE_NUMBER"], url=twiml_url)
    except TwilioRestException as exc:
        return func.HttpResponse(json.dumps({"error": exc.msg}), status_code=400, mimetype="application/json")
    return func.HttpResponse(json.dumps({"sid": call.sid, "status": call.status, "to": call.to,
                                         "from": call._from}), status_code=201, mimetype="application/json")
