"""The one send path: a send from the credentials check to its TwilioSends record, which callbacks move forward."""

from __future__ import annotations

import logging
from contextlib import nullcontext
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Mapping

from shared import quota, state
from shared.channels import CALL, SMS, Channel
from shared.errors import AppError
from shared.logtext import shown
from shared.phone import mask
from shared.settings import Settings, SettingsError
from shared.timestamps import from_rfc2822, now_z
from shared.urls import status_callback_url

logger = logging.getLogger("shared.sends")

RETENTION = timedelta(days=30)
MAX_TRIES = 20  # lost races on one record: status callbacks of one send arriving together
# Called with the channel and Twilio's parameters just before a create goes out, in the request that set it:
# idempotency.once notes there that Twilio may act from now on (or raises, and nothing is sent).
before_create: ContextVar[Callable[[Channel, dict[str, Any]], None] | None] = ContextVar("before_create", default=None)


@dataclass(frozen=True)
class Outgoing:
    """One send as Twilio will be asked for it, built by the request that wants it (messaging, calls)."""

    channel: Channel
    to: str
    params: dict[str, Any]  # Twilio's parameter names; None values are left out
    needs: tuple[str, ...] = ()  # settings this send needs beyond Twilio's credentials, e.g. TWILIO_PHONE_NUMBER
    status_callback: str | None = None  # the caller's own: then the app registers none
    prepaid: bool = False  # the quotas were charged already (a broadcast's, at admission)
    tags: Mapping[str, str] = field(default_factory=dict)  # kept on the TwilioSends record (a broadcast's recipient)


@dataclass(frozen=True)
class Sent:
    """What Twilio created."""

    channel: Channel
    sid: str
    status: str | None
    to: str | None
    from_: str | None
    date_created: str | None  # ISO 8601 UTC

    @classmethod
    def of(cls, channel: Channel, resource: Mapping[str, Any]) -> Sent:
        """From Twilio's JSON of the resource."""
        return cls(channel, resource["sid"], resource.get("status"), resource.get("to"), resource.get("from"),
                   from_rfc2822(resource.get("date_created")))

    def answer(self) -> dict[str, Any]:
        """The documented 201 body: sid, status, to, from, and a message's date_created."""
        body = {"sid": self.sid, "status": self.status, "to": self.to, "from": self.from_}
        return {**body, "date_created": self.date_created} if self.channel is SMS else body


def send(settings: Settings, outgoing: Outgoing, identity: str) -> Sent:
    """Send once: check the settings, charge the quotas, create the resource (one request, never re-sent), log it
    and record it for the status lookup."""
    from shared.twilio_client import create  # the REST client: only sends load it
    from shared.twilio_errors import twilio_errors

    channel = outgoing.channel
    settings.require(*settings.rest_setting_names(), *outgoing.needs)
    ours = None if outgoing.status_callback else status_callback_url(settings)
    params = {**outgoing.params, "StatusCallback": outgoing.status_callback or ours,
              "StatusCallbackEvent": list(channel.status_events) if ours and channel.status_events else None}
    charged = nullcontext() if outgoing.prepaid else quota.charged(settings, channel, identity, outgoing.to)
    with charged:
        if (hook := before_create.get()) is not None:
            hook(channel, params)
        with twilio_errors():
            resource = create(settings, channel, params)
    sent = Sent.of(channel, resource)
    logger.info("%s %s queued to %s for %s", channel.label, sent.sid, mask(outgoing.to), shown(identity))
    record(settings, sent, identity, callback_registered=ours is not None, tags=outgoing.tags)
    return sent


def record(settings: Settings, sent: Sent, owner: str, callback_registered: bool,
           tags: Mapping[str, str] | None = None) -> None:
    """Write the record of a send Twilio made (bookkeeping: a storage failure is logged, the send stands). Without
    a storage account (never so in Azure, where AzureWebJobsStorage is always set) there is nothing to record."""
    channel = sent.channel
    if not settings.storage_configured:
        return
    row = {"PartitionKey": sent.sid, "RowKey": "", "kind": channel.noun, "owner": owner,
           "to_number": sent.to or "", "from_number": sent.from_ or "", "status": sent.status or "",
           "date_created": sent.date_created or now_z(), "date_updated": now_z(), "sequence": -1,
           "callback": callback_registered, "expires_at": datetime.now(timezone.utc) + RETENTION, **(tags or {})}
    try:
        with state.state_errors():  # a send found by a reconciliation may have been recorded by its own worker
            state.insert_or_get(settings, state.SENDS, row, tries=MAX_TRIES)
    except (AppError, SettingsError) as exc:
        logger.warning("Could not record %s %s: %s", channel.noun, sent.sid, exc.code)


def find(settings: Settings, channel: Channel, sid: str, owner: str) -> state.Row | None:
    """The live record of a send of this channel that owner made; None for anyone else's, an unknown or an expired
    one alike. 503 state_unavailable if storage fails."""
    with state.state_errors():
        row = state.get(settings, state.SENDS, sid)
    if row is None or state.expired(row, datetime.now(timezone.utc)):
        return None
    return row if row.get("owner") == owner and row.get("kind") == channel.noun else None


def apply_callback(settings: Settings, form: Mapping[str, str]) -> state.Row | None:
    """Move a send's record forward with one of Twilio's status callbacks: messages by status rank, calls by
    SequenceNumber, a final status never back to a non-final one; older, repeated or unknown callbacks change nothing
    (bookkeeping: failures are logged). The record as it then stands; None for an unknown SID or when storage
    failed."""
    channel = CALL if form.get("CallSid") else SMS
    sid = form.get("CallSid") or form.get("MessageSid") or ""
    status = form.get("CallStatus") if channel is CALL else form.get("MessageStatus")
    changes: dict[str, Any] = {"status": status or ""}
    if (form.get("ErrorCode") or "").isdigit():
        changes["error_code"] = int(form["ErrorCode"])
    if channel is CALL and (form.get("CallDuration") or "").isdigit():
        changes["duration"] = int(form["CallDuration"])
    sequence = int(form["SequenceNumber"]) if (form.get("SequenceNumber") or "").isdigit() else None
    try:
        with state.state_errors():
            moved = advance(settings, channel, sid, changes, sequence) if sid else None
    except (AppError, SettingsError) as exc:
        logger.warning("Could not record a status callback: %s", exc.code)
        return None
    if moved is None:
        logger.info("Status callback for an unknown %s ignored", channel.noun)
    return moved


def advance(settings: Settings, channel: Channel, sid: str, changes: dict[str, Any],
            sequence: int | None) -> state.Row | None:
    """Apply changes to the live record if they move it forward (ETag-conditional, retried on a lost race); the
    record as it then stands, or None when the SID has no live record."""
    now = datetime.now(timezone.utc)

    def forward(row: state.Row | None) -> state.Row | None:
        if row is None or state.expired(row, now) or not _is_forward(channel, row, changes["status"], sequence):
            return None
        return {**row, **changes, "date_updated": now_z(), **({"sequence": sequence} if sequence is not None else {})}

    stored = state.update_if_unchanged(settings, state.SENDS, sid, "", forward, tries=MAX_TRIES)
    return None if stored.row is None or state.expired(stored.row, now) else stored.row


def _is_forward(channel: Channel, row: Mapping[str, Any], status: str, sequence: int | None) -> bool:
    current = row.get("status", "")
    if channel.rank(status) < 0 or (channel.is_final(current) and not channel.is_final(status)):
        return False  # a final status stands, whatever the SequenceNumber: a refresh from Twilio records none
    if channel is CALL and sequence is not None:
        return sequence > row.get("sequence", -1)
    if channel.rank(status) != channel.rank(current):
        return channel.rank(status) > channel.rank(current)
    return current == "delivered" and status == "read"  # of one rank the first stays, but read may follow delivered
