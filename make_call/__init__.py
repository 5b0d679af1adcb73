"""POST /api/make_call: a signed-in mobile app places a call that speaks an optional message, at most once per
Idempotency-Key."""

import azure.functions as func

from shared.api import created, mobile_api, read_payload
from shared.calls import CallRequest, place_call
from shared.channels import CALL
from shared.idempotency import fingerprint, once
from shared.identity import caller_identity
from shared.settings import Settings
from shared.urls import public_origin


@mobile_api
def main(req: func.HttpRequest, settings: Settings) -> func.HttpResponse:
    identity = caller_identity(req, settings)
    call = CallRequest.parse(read_payload(req), settings)
    origin = public_origin(req, settings)
    return once(req, settings, identity, fingerprint(CALL, call),
                lambda: created(place_call(call, settings, origin, identity)))
