"""The record of each send: one TwilioSends row per SID, written at send time, moved forward by status callbacks."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone
from typing import Any, Literal, Mapping

from shared.errors import AppError
from shared.settings import Settings, SettingsError
from shared.state import replace_if_unchanged, state_errors, table

logger = logging.getLogger("shared.sends")

TABLE = "TwilioSends"
RETENTION = timedelta(days=30)
MAX_TRIES = 20
Kind = Literal["message", "call"]
# Messages move forward through these ranks; a terminal status is never overwritten by an earlier one.
MESSAGE_RANK = {"queued": 0, "accepted": 0, "scheduled": 0, "sending": 1, "sent": 2,
                "delivered": 3, "undelivered": 3, "failed": 3, "read": 3, "canceled": 3}
CALL_RANK = {"queued": 0, "initiated": 0, "ringing": 1, "in-progress": 2,
             "completed": 3, "busy": 3, "failed": 3, "no-answer": 3, "canceled": 3}


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
    """Write the record of a send just made (bookkeeping: a storage failure is logged, the send stands). Without
    a storage account (never so in Azure, where AzureWebJobsStorage is always set) there is nothing to record."""
    if not settings.storage_configured:
        logger.debug("No state storage: %s %s is not recorded", kind, created["sid"])
        return
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
            if not move_forward(settings, kind, sid, changes, sequence):
                logger.info("Status callback for an unknown %s ignored", kind)
    except (AppError, SettingsError) as exc:
        logger.warning("Could not record a status callback: %s", exc.code)


def move_forward(settings: Settings, kind: Kind, sid: str, changes: dict[str, Any], sequence: int | None) -> bool:
    """Apply changes if they move the record forward (ETag-conditional, retried on a lost race); False if the
    SID has no record."""
    from azure.core.exceptions import ResourceNotFoundError

    if not sid:
        return False
    client = table(settings, TABLE)
    for _ in range(MAX_TRIES):
        try:
            entity = client.get_entity(sid, "")
        except ResourceNotFoundError:
            return False
        if not is_forward(kind, entity, changes["status"], sequence):
            return True
        entity.update(changes, date_updated=now_iso())
        if sequence is not None:
            entity["sequence"] = sequence
        if replace_if_unchanged(client, entity):
            return True
    raise AppError(503, "state_unavailable", "The send record is too busy.")


def is_forward(kind: Kind, entity: Mapping[str, Any], status: str, sequence: int | None) -> bool:
    if rank(kind, status) < 0:
        return False
    if kind == "call" and sequence is not None:
        return sequence > entity.get("sequence", -1)
    current = entity.get("status", "")
    if rank(kind, status) != rank(kind, current):
        return rank(kind, status) > rank(kind, current)
    return current == "delivered" and status == "read"  # of one rank the first stays, but read may follow delivered
