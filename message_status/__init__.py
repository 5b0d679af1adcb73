"""GET /api/messages/{sid}: the status of a message the caller sent."""

import azure.functions as func

from shared.api import mobile_api, ok
from shared.channels import SMS
from shared.identity import caller_identity
from shared.settings import Settings
from shared.status import lookup


@mobile_api(method="GET")
def main(req: func.HttpRequest, settings: Settings) -> func.HttpResponse:
    identity = caller_identity(req, settings)
    return ok(lookup(settings, SMS, req.route_params.get("sid", ""), identity))
