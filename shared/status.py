"""The status lookup: a send's record shown to its owner only, refreshed from Twilio when it has gone quiet."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any, Mapping

from shared import sends, state
from shared.channels import CALL, Channel
from shared.errors import AppError
from shared.settings import Settings

REFRESH_AFTER = timedelta(seconds=60)
REFRESH_EVERY = timedelta(seconds=10)  # one SID is fetched from Twilio at most this often, across lookups and instances
ERROR_MESSAGES = {  # short texts for the Twilio error codes a delivery report most often carries
    30001: "Queue overflow", 30002: "Account suspended", 30003: "Unreachable destination handset",
    30004: "Message blocked", 30005: "Unknown destination handset", 30006: "Landline or unreachable carrier",
    30007: "Message filtered by the carrier", 30008: "Unknown error", 30009: "Missing segment",
    30010: "Message price exceeds max price", 21610: "The recipient replied STOP (unsubscribed)",
    21614: "Not a mobile number", 21211: "Invalid 'To' phone number",
}


def lookup(settings: Settings, channel: Channel, sid: str, identity: str) -> dict[str, Any]:
    """The documented status body of a live send this identity made; 404 not_found otherwise (the same answer for
    another's SID, an unknown and an expired one). A status that is not final and has gone quiet is refreshed."""
    if not channel.sid.fullmatch(sid):
        raise _not_found(channel)
    row = sends.find(settings, channel, sid, identity)
    if row is None:
        raise _not_found(channel)
    if not channel.is_final(row["status"]) and _quiet(row) and _refresh_claimed(settings, row):
        row = _refresh(settings, channel, sid, row)
    return _body(row)


def _quiet(row: Mapping[str, Any]) -> bool:
    """No callback will come (none registered), or none came in the last minute."""
    updated = datetime.fromisoformat(row["date_updated"])  # Python 3.11 reads the "Z"
    return not row.get("callback") or datetime.now(timezone.utc) - updated > REFRESH_AFTER


def _refresh_claimed(settings: Settings, row: state.Row) -> bool:
    """Whether this lookup is the one to refresh: none did in the last REFRESH_EVERY, and its `refreshed_at` went
    onto the record as read (ETag-conditional), so that of concurrent lookups only one asks Twilio."""
    now = datetime.now(timezone.utc)
    if row.get("refreshed_at") is not None and now - row["refreshed_at"] < REFRESH_EVERY:
        return False
    with state.state_errors():
        return state.replace_if_unchanged(settings, state.SENDS, {**row, "refreshed_at": now},
                                          row.metadata["etag"]) is not None


def _refresh(settings: Settings, channel: Channel, sid: str, row: Mapping[str, Any]) -> Mapping[str, Any]:
    """One GET of the resource from Twilio (Twilio errors map as for the sends); stored if it moved forward."""
    from shared.twilio_client import fetch
    from shared.twilio_errors import twilio_errors

    with twilio_errors():
        resource = fetch(settings, channel, sid)
    changes: dict[str, Any] = {"status": resource.get("status") or row["status"]}
    if isinstance(resource.get("error_code"), int):
        changes["error_code"] = resource["error_code"]
    if channel is CALL and str(resource.get("duration") or "").isdigit():
        changes["duration"] = int(resource["duration"])
    with state.state_errors():
        return sends.advance(settings, channel, sid, changes, None) or row


def _body(row: Mapping[str, Any]) -> dict[str, Any]:
    body = {"sid": row["PartitionKey"], "status": row["status"], "to": row["to_number"], "from": row["from_number"],
            "date_created": row["date_created"], "date_updated": row["date_updated"]}
    if row.get("error_code"):
        body["error_code"] = int(row["error_code"])
        if int(row["error_code"]) in ERROR_MESSAGES:
            body["error_message"] = ERROR_MESSAGES[int(row["error_code"])]
    if row.get("duration") is not None:
        body["duration"] = int(row["duration"])
    return body


def _not_found(channel: Channel) -> AppError:
    return AppError(404, "not_found", f"No {channel.noun} with this SID was sent by you.")
