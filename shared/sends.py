"""What became of each send: one TwilioSends record per SID, moved forward by status callbacks, read by its owner."""

from __future__ import annotations

import logging
import random
import re
import time
from datetime import datetime, timedelta, timezone
from typing import Any, Literal, Mapping

from shared.errors import AppError
from shared.settings import Settings, SettingsError
from shared.state import state_errors, table

logger = logging.getLogger("shared.sends")

TABLE = "TwilioSends"
RETENTION = timedelta(days=30)
MAX_TRIES = 20
REFRESH_AFTER = timedelta(seconds=60)
Kind = Literal["message", "call"]
SID = {"message": re.compile(r"(SM|MM)[0-9a-f]{32}"), "call": re.compile(r"CA[0-9a-f]{32}")}
# Messages move forward through these ranks; a terminal status is never overwritten by an earlier one.
MESSAGE_RANK = {"queued": 0, "accepted": 0, "scheduled": 0, "sending": 1, "sent": 2,
                "delivered": 3, "undelivered": 3, "failed": 3, "read": 3, "canceled": 3}
CALL_RANK = {"queued": 0, "initiated": 0, "ringing": 1, "in-progress": 2,
             "completed": 3, "busy": 3, "failed": 3, "no-answer": 3, "canceled": 3}
ERROR_MESSAGES = {  # short texts for the Twilio error codes a delivery report most often carries
    30001: "Queue overflow", 30002: "Account suspended", 30003: "Unreachable destination handset",
    30004: "Message blocked", 30005: "Unknown destination handset", 30006: "Landline or unreachable carrier",
    30007: "Message filtered by the carrier", 30008: "Unknown error", 30009: "Missing segment",
    30010: "Message price exceeds max price", 21610: "The recipient replied STOP (unsubscribed)",
    21614: "Not a mobile number", 21211: "Invalid 'To' phone number",
}


def rank(kind: Kind, status: str) -> int:
    return (MESSAGE_RANK if kind == "message" else CALL_RANK).get(status, -1)


def is_final(kind: Kind, status: str) -> bool:
    return rank(kind, status) == 3


def iso_utc(rfc2822: str | None) -> str | None:
    """Twilio's RFC 2822 date as ISO 8601 in UTC with a 'Z' suffix (None, or unparsable, stays None)."""
    from twilio.base.deserialize import rfc2822_datetime

    value = rfc2822_datetime(rfc2822) if rfc2822 else None
    if not isinstance(value, datetime):
        return None
    return value.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def now_iso() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def record_send(settings: Settings, kind: Kind, created: Mapping[str, Any], owner: str, date_created: str | None,
                callback_registered: bool) -> None:
    """Write the record of a send just made (bookkeeping: a storage failure is logged, the send stands)."""
    entity = {"PartitionKey": created["sid"], "RowKey": "", "kind": kind, "owner": owner,
              "to_number": created.get("to") or "", "from_number": created.get("from") or "",
              "status": created.get("status") or "",
              "date_created": date_created or now_iso(), "date_updated": now_iso(), "sequence": -1,
              "callback": callback_registered, "expires_at": datetime.now(timezone.utc) + RETENTION}
    try:
        with state_errors():
            table(settings, TABLE).create_entity(entity)
    except (AppError, SettingsError) as exc:
        logger.warning("Could not record %s %s: %s", kind, created["sid"], exc.code)


def apply_callback(settings: Settings, form: Mapping[str, str]) -> None:
    """Move a send's record forward with one of Twilio's status callbacks: messages by status rank, calls by
    SequenceNumber; older, repeated or unknown callbacks change nothing (bookkeeping: failures are logged)."""
    kind: Kind = "call" if form.get("CallSid") else "message"
    sid = form.get("CallSid") or form.get("MessageSid") or ""
    status = (form.get("CallStatus") if kind == "call" else form.get("MessageStatus")) or ""
    changes: dict[str, Any] = {"status": status}
    if (form.get("ErrorCode") or "").isdigit():
        changes["error_code"] = int(form["ErrorCode"])
    if kind == "call" and (form.get("CallDuration") or "").isdigit():
        changes["duration"] = int(form["CallDuration"])
    sequence = int(form["SequenceNumber"]) if (form.get("SequenceNumber") or "").isdigit() else None
    try:
        with state_errors():
            if not _move_forward(settings, kind, sid, changes, sequence):
                logger.info("Status callback for an unknown %s ignored", kind)
    except (AppError, SettingsError) as exc:
        logger.warning("Could not record a status callback: %s", exc.code)


def _move_forward(settings: Settings, kind: Kind, sid: str, changes: dict[str, Any], sequence: int | None) -> bool:
    """Apply changes if they move the record forward (ETag-conditional, retried on a lost race); False if the
    SID has no record."""
    from azure.core import MatchConditions
    from azure.core.exceptions import ResourceModifiedError, ResourceNotFoundError
    from azure.data.tables import UpdateMode

    if not sid:
        return False
    client = table(settings, TABLE)
    for _ in range(MAX_TRIES):
        try:
            entity = client.get_entity(sid, "")
        except ResourceNotFoundError:
            return False
        if not _is_forward(kind, entity, changes["status"], sequence):
            return True
        entity.update(changes, date_updated=now_iso())
        if sequence is not None:
            entity["sequence"] = sequence
        try:
            client.update_entity(entity, mode=UpdateMode.REPLACE, etag=entity.metadata["etag"],
                                 match_condition=MatchConditions.IfNotModified)
            return True
        except ResourceModifiedError:
            time.sleep(random.uniform(0, 0.01))
    raise AppError(503, "state_unavailable", "The send record is too busy.")


def _is_forward(kind: Kind, entity: Mapping[str, Any], status: str, sequence: int | None) -> bool:
    if rank(kind, status) < 0:
        return False
    if kind == "call" and sequence is not None:
        return sequence > entity.get("sequence", -1)
    current = entity.get("status", "")
    if rank(kind, status) != rank(kind, current):
        return rank(kind, status) > rank(kind, current)
    return current == "delivered" and status == "read"  # of one rank the first stays, but read may follow delivered


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
    if _is_forward(kind, entity, changes["status"], None):
        with state_errors():
            _move_forward(settings, kind, sid, changes, None)
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
