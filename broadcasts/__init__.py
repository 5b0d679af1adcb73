"""POST /api/broadcasts: one SMS to many, paced; GET/DELETE /api/broadcasts/{id}: its status, cancel it."""

import azure.functions as func

from shared.api import accepted, mobile_api, ok, read_payload
from shared.broadcasts import MAX_BODY_BYTES, BroadcastRequest, admit, broadcaster, cancel, replayable, status
from shared.channels import SMS
from shared.errors import AppError
from shared.idempotency import fingerprint, once
from shared.settings import Settings


@mobile_api(method="POST, GET, DELETE")
def main(req: func.HttpRequest, settings: Settings) -> func.HttpResponse:
    identity = broadcaster(req, settings)
    broadcast_id = req.route_params.get("id")
    if (req.method.upper() == "POST") == bool(broadcast_id):
        raise AppError(404, "not_found", "POST /api/broadcasts admits one; GET or DELETE /api/broadcasts/{id}.")
    if req.method.upper() == "GET":
        return ok(status(settings, broadcast_id, identity, req.params))
    if req.method.upper() == "DELETE":
        return ok(cancel(settings, broadcast_id, identity))
    request = BroadcastRequest.parse(read_payload(req, MAX_BODY_BYTES), settings)
    return once(req, settings, identity, fingerprint(SMS, request),
                lambda: _accepted(admit(request, settings, identity)), stored=replayable)


def _accepted(body: dict) -> func.HttpResponse:
    return accepted(body, f"/api/broadcasts/{body['id']}")
