"""GET/POST /api/voice_webhook: Twilio fetches the TwiML of a call: an outbound call's message, a call from the
app (Voice SDK), an inbound call's flow (greeting, forward, menu, voicemail) and each of its steps."""

from urllib.parse import urlsplit

import azure.functions as func

from shared.call_flows import answer
from shared.settings import Settings
from shared.webhook import param, twilio_webhook


@twilio_webhook
def main(req: func.HttpRequest, settings: Settings) -> str:
    return answer(lambda name: param(req, name), urlsplit(req.url).query, settings)
