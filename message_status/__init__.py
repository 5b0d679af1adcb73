"""GET /api/messages/{sid}: the status of a message the caller sent."""

import azure.functions as func

from shared.api import mobile_api, ok
from shared.identity import caller_identity
from shared.status import lookup
from shared.settings import load_settings


@mobile_api(method="GET")
def main(req: func.HttpRequest) -> func.HttpResponse:
    settings = load_settings()
    identity = caller_identity(req, settings)
    return ok(lookup(settings, "message", req.route_params.get("sid", ""), identity))
