"""The status lookup: a send's record shown to its owner only, refreshed from Twilio when it has gone quiet."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from typing import Any, Mapping

from shared.errors import AppError
from shared.sends import TABLE, Kind, is_final, is_forward, move_forward, now_iso
from shared.settings import Settings
from shared.state import state_errors, table

SID = {"message": re.compile(r"(SM|MM)[0-9a-f]{32}"), "call": re.compile(r"CA[0-9a-f]{32}")}
REFRESH_AFTER = timedelta(seconds=60)
ERROR_MESSAGES = {  # short texts for the Twilio error codes a delivery report most often carries
    30001: "Queue overflow", 30002: "Account suspended", 30003: "Unreachable destination handset",
    30004: "Message blocked", 30005: "Unknown destination handset", 30006: "Landline or unreachable carrier",
    30007: "Message filtered by the carrier", 30008: "Unknown error", 30009: "Missing segment",
    30010: "Message price exceeds max price", 21610: "The recipient replied STOP (unsubscribed)",
    21614: "Not a mobile number", 21211: "Invalid 'To' phone number",
}


def lookup(settings: Settings, kind: Kind, sid: str, identity: str) -> dict[str, Any]:
    """The documented status body of a send this identity made; 404 not_found otherwise (the same answer for
    another's SID and an unknown one). A status that is not final and has gone quiet is refreshed from Twilio."""
    from azure.core.exceptions import ResourceNotFoundError

    if not SID[kind].fullmatch(sid):
        raise _not_found(kind)
    with state_errors():
        try:
            entity = table(settings, TABLE).get_entity(sid, "")
        except ResourceNotFoundError:
            raise _not_found(kind) from None
    if entity.get("owner") != identity or entity.get("kind") != kind:
        raise _not_found(kind)
    if not is_final(kind, entity["status"]) and _quiet(entity):
        entity = _refresh(settings, kind, sid, entity)
    return _body(entity)


def _quiet(entity: Mapping[str, Any]) -> bool:
    """No callback will come (none registered), or none came in the last minute."""
    updated = datetime.fromisoformat(entity["date_updated"].replace("Z", "+00:00"))
    return not entity.get("callback") or datetime.now(timezone.utc) - updated > REFRESH_AFTER


def _refresh(settings: Settings, kind: Kind, sid: str, entity: dict[str, Any]) -> dict[str, Any]:
    """One GET of the resource from Twilio (Twilio errors map as for the sends); stored if it moved forward."""
    from shared.twilio_client import fetch, twilio_errors

    with twilio_errors():
        resource = fetch(settings, "Calls" if kind == "call" else "Messages", sid)
    changes: dict[str, Any] = {"status": resource.get("status") or entity["status"]}
    if isinstance(resource.get("error_code"), int):
        changes["error_code"] = resource["error_code"]
    if kind == "call" and str(resource.get("duration") or "").isdigit():
        changes["duration"] = int(resource["duration"])
    if is_forward(kind, entity, changes["status"], None):
        with state_errors():
            move_forward(settings, kind, sid, changes, None)
        entity = {**entity, **changes, "date_updated": now_iso()}
    return entity


def _body(entity: Mapping[str, Any]) -> dict[str, Any]:
    body = {"sid": entity["PartitionKey"], "status": entity["status"], "to": entity["to_number"],
            "from": entity["from_number"],
            "date_created": entity["date_created"], "date_updated": entity["date_updated"]}
    if entity.get("error_code"):
        body["error_code"] = int(entity["error_code"])
        if int(entity["error_code"]) in ERROR_MESSAGES:
            body["error_message"] = ERROR_MESSAGES[int(entity["error_code"])]
    if entity.get("duration") is not None:
        body["duration"] = int(entity["duration"])
    return body


def _not_found(kind: Kind) -> AppError:
    return AppError(404, "not_found", f"No {kind} with this SID was sent by you.")
