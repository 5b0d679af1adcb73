"""POST /api/send_sms: a signed-in mobile app sends an SMS/MMS through Twilio, at most once per Idempotency-Key."""

import azure.functions as func

from shared.api import created, mobile_api, read_payload
from shared.channels import SMS
from shared.idempotency import fingerprint, once
from shared.identity import caller_identity
from shared.messaging import SmsRequest, send_sms
from shared.settings import Settings


@mobile_api
def main(req: func.HttpRequest, settings: Settings) -> func.HttpResponse:
    identity = caller_identity(req, settings)
    sms = SmsRequest.parse(read_payload(req), settings)
    return once(req, settings, identity, fingerprint(SMS, sms), lambda: created(send_sms(sms, settings, identity)))
