"""POST /api/voice_token: a Twilio Voice SDK access token for the signed-in caller (in-app calling)."""

import azure.functions as func

from shared.api import mobile_api, ok
from shared.identity import caller_identity
from shared.settings import Settings
from shared.tokens import voice_token


@mobile_api
def main(req: func.HttpRequest, settings: Settings) -> func.HttpResponse:
    return ok(voice_token(settings, caller_identity(req, settings)))
