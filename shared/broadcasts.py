"""Broadcasts: who may send one, admission (stored, then queued in paced chunks), each recipient's state, cancel."""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Mapping

import azure.functions as func

from shared import fields, queues, quota, state
from shared.channels import SMS
from shared.errors import AppError, invalid_field
from shared.identity import caller_identity
from shared.messaging import SmsRequest, content
from shared.segments import segments
from shared.sends import Outgoing
from shared.settings import Settings, SettingsError
from shared.timestamps import iso_z

logger = logging.getLogger("shared.broadcasts")

MAX_RECIPIENTS = 10_000
MAX_BODY_BYTES = 1024 * 1024  # 10,000 numbers do not fit the mobile API's 64 KiB
FIELDS = ("to", "body", "media_url", "from")
CHUNK_RECIPIENTS = 250  # at most, in one queue message: 10,000 recipients are 40 messages
CHUNK_SECONDS = 60  # and at most this much of the sender's throughput, so a chunk ends well within a function run
RETENTION = timedelta(days=30)  # after the estimated end
ADMISSION_GRACE = timedelta(seconds=60)  # an admission still unfinished after this failed: its chunks are dropped
CLAIM_GRACE = timedelta(seconds=10)  # beyond the Twilio time budget: a claim still without an outcome lost its worker
PAGE = 1000
COUNTS = ("pending", "sent", "delivered", "undelivered", "failed", "unknown", "skipped", "rejected", "canceled")
FINAL = frozenset(COUNTS) - {"pending", "sent"}
DELIVERY = {"delivered": "delivered", "read": "delivered", "undelivered": "undelivered", "failed": "failed",
            "canceled": "failed"}  # Twilio's final message statuses; the others leave a recipient `sent`


@dataclass(frozen=True)
class BroadcastRequest:
    """A validated broadcast: its recipients (E.164, each once) and the message they all get."""

    to: tuple[str, ...]
    indexes: tuple[int, ...]  # each recipient's position in the request's `to`
    rejected: tuple[tuple[int, str, str], ...]  # (position, entry as given truncated to 32 characters, 400 code)
    from_: str | None
    body: str | None
    media_urls: tuple[str, ...]

    @classmethod
    def parse(cls, payload: dict[str, Any], settings: Settings) -> BroadcastRequest:
        """Validate payload: each `to` entry as send_sms checks `to` (a refused one is listed, not fatal), the rest
        as send_sms; 400 naming the field when the broadcast as a whole is invalid or no entry is valid."""
        fields.reject_unknown(payload, FIELDS)
        entries = payload.get("to")
        if not isinstance(entries, list) or not 1 <= len(entries) <= MAX_RECIPIENTS:
            raise invalid_field("to", f"'to' must be a list of 1 to {MAX_RECIPIENTS} phone numbers.")
        from_ = fields.sender(payload, settings)
        body, media = content(payload, settings)
        numbers: dict[str, int] = {}
        rejected = []
        for index, entry in enumerate(entries):
            try:
                numbers.setdefault(fields.destination({"to": entry}, settings), index)
            except AppError as exc:
                rejected.append((index, str(entry)[:32], exc.code))
        if not numbers:
            raise invalid_field("to", "No entry of 'to' is a phone number this service may text.")
        return cls(tuple(numbers), tuple(numbers.values()), tuple(rejected), from_, body, media)

    def outgoing(self, settings: Settings, to: str, **tags: str) -> Outgoing:
        """The SMS to one recipient: as send_sms would send it, with the app-wide quota already charged."""
        sms = SmsRequest(to, self.from_, self.body, self.media_urls, None).outgoing(settings)
        return dataclasses.replace(sms, prepaid=True, tags=tags)


def broadcaster(req: func.HttpRequest, settings: Settings) -> str:
    """The caller's identity if BROADCAST_SENDERS lists it; 403 forbidden otherwise, 503 not_configured without
    the setting or without sign-in (a broadcast is never anonymous)."""
    missing = (("BROADCAST_SENDERS",) if not settings.broadcast_senders else ()) + \
        (("AUTH_ISSUER or AUTH_EASY_AUTH",) if not (settings.auth_issuer or settings.auth_easy_auth) else ())
    if missing:
        raise SettingsError(missing=missing)
    identity = caller_identity(req, settings)
    if identity not in settings.broadcast_senders:
        raise AppError(403, "forbidden", "You may not broadcast: BROADCAST_SENDERS does not list you.")
    return identity


def admit(request: BroadcastRequest, settings: Settings, identity: str) -> dict[str, Any]:
    """Charge the app-wide quota for every recipient, store them (pending), queue them in chunks that become
    visible as the sender's throughput allows; the 202 body. Storage failing: 503 state_unavailable, and the
    broadcast never starts (its header stays `admitting`, which workers refuse)."""
    settings.require(*settings.rest_setting_names(), *request.outgoing(settings, request.to[0]).needs)
    if not settings.storage_configured:
        raise SettingsError(missing=(" or ".join(state.STORAGE_SETTINGS),))
    broadcast_id, count = "BR" + uuid.uuid4().hex, len(request.to)
    per_message, rate = segments(request.body), settings.broadcast_segments_per_second
    size = max(1, min(CHUNK_RECIPIENTS, CHUNK_SECONDS * rate // per_message))
    now = datetime.now(timezone.utc)
    done_at = now + timedelta(seconds=count * per_message / rate)
    expires = done_at + RETENTION
    header = {"PartitionKey": broadcast_id, "RowKey": "", "owner": identity, "state": "admitting",
              "recipients": count, "rejected": len(request.rejected), "segments": per_message,
              "message": json.dumps(dataclasses.asdict(request) | {"to": [], "indexes": [], "rejected": []}),
              "created_at": now, "estimated_done_at": done_at, "expires_at": expires}
    rows = [header] + [
        {"PartitionKey": broadcast_id, "RowKey": _row_key(seq), "index": index, "number": number, "state": "pending",
         "expires_at": expires} for seq, (number, index) in enumerate(zip(request.to, request.indexes))] + [
        {"PartitionKey": broadcast_id, "RowKey": f"x{index:05d}", "index": index, "number": given, "state": "rejected",
         "code": code, "expires_at": expires} for index, given, code in request.rejected]
    with quota.charged_many(settings, SMS, count), state.state_errors():
        state.insert_all(settings, state.BROADCASTS, rows)
        for first in range(0, count, size):
            queues.put(settings, queues.BROADCASTS, chunk(broadcast_id, first, min(count, first + size),
                                                          now + timedelta(seconds=first * per_message / rate)),
                       delay_seconds=math.floor(first * per_message / rate))
        state.table(settings, state.BROADCASTS).update_entity({"PartitionKey": broadcast_id, "RowKey": "",
                                                               "state": "scheduled"})  # merge: only the state
    logger.info("Broadcast %s to %d recipients admitted for %s", broadcast_id, count, identity)
    return {"id": broadcast_id, "status": "scheduled", "recipients": count,
            "rejected": [{"index": i, "to": given, "code": code} for i, given, code in request.rejected],
            "estimated_done_at": iso_z(done_at.replace(microsecond=0))}


def replayable(answer: dict[str, Any]) -> dict[str, Any]:
    """The 202 as stored for an Idempotency-Key replay: a `rejected` list too long for a Table property (64 KiB)
    cut to its first entries, with "rejected_truncated": true (GET ?state=rejected lists them all)."""
    size = len(json.dumps({**answer, "rejected": [], "rejected_truncated": True}))
    for kept, entry in enumerate(answer["rejected"]):
        size += len(json.dumps(entry)) + 2  # the entry and its ", "
        if size > MAX_STORED_ANSWER:
            return {**answer, "rejected": answer["rejected"][:kept], "rejected_truncated": True}
    return answer


MAX_STORED_ANSWER = 30_000  # characters of ASCII JSON; a Table string property holds 32,768 UTF-16 ones


def chunk(broadcast_id: str, first: int, last: int, at: datetime) -> dict[str, Any]:
    """A queue message: recipients first..last-1 of the broadcast, to be sent from `at` (epoch seconds) on."""
    return {"broadcast": broadcast_id, "first": first, "last": last, "at": at.timestamp()}


def _row_key(seq: int) -> str:
    return f"r{seq:05d}"  # r + 5 digits: a block of 100 recipients shares the prefix r + 3 digits


def header_of(settings: Settings, broadcast_id: str, identity: str | None = None) -> state.Row:
    """The broadcast's header row (its owner's only, when identity is given); 404 not_found otherwise."""
    row = None
    if broadcast_id.startswith("BR") and len(broadcast_id) == 34 and broadcast_id[2:].isalnum():
        with state.state_errors():
            row = state.get(settings, state.BROADCASTS, broadcast_id)
    if row is None or row["state"] == "admitting" or (identity is not None and row["owner"] != identity):
        raise AppError(404, "not_found", "No broadcast with this id was sent by you.")
    return row


def recipient_state(row: Mapping[str, Any], settings: Settings, now: datetime) -> str:
    """The recipient's count: a claim whose worker has had time to record the outcome but did not is `unknown`."""
    if row["state"] != "claimed":
        return row["state"]
    return "unknown" if now - row["claimed_at"] > stale_after(settings) else "pending"


def stale_after(settings: Settings) -> timedelta:
    """How long a claim may stay without an outcome: the Twilio time budget and then some."""
    return timedelta(seconds=settings.http_timeout) + CLAIM_GRACE


def status(settings: Settings, broadcast_id: str, identity: str, params: Mapping[str, str]) -> dict[str, Any]:
    """The documented status body; with ?state=<count name> also a page of those recipients."""
    header = header_of(settings, broadcast_id, identity)
    listed, after = params.get("state"), params.get("continuation_token") or ""
    if listed is not None and listed not in COUNTS:
        raise invalid_field("state", f"'state' is one of: {', '.join(COUNTS)}.")
    now = datetime.now(timezone.utc)
    counts = dict.fromkeys(COUNTS, 0)
    items: list[dict[str, Any]] = []
    token = None
    finished = header["created_at"]
    with state.state_errors():
        for row in state.table(settings, state.BROADCASTS).query_entities(
                "PartitionKey eq @id and RowKey gt ''", parameters={"id": broadcast_id}):
            count = recipient_state(row, settings, now)
            counts[count] += 1
            finished = max(finished, row.get("updated_at") or finished)
            if count == listed and row["RowKey"] > after:
                if len(items) == PAGE:
                    token = items[-1]["_key"]
                    listed = None  # the page is full
                    continue
                items.append({"_key": row["RowKey"], "index": row["index"], "to": row["number"],
                              **{name: row.get(name) for name in ("sid", "error_code", "code", "reason")}})
    body = _body(header, counts, finished)
    if params.get("state") is not None:
        body["items"] = [{k: v for k, v in item.items() if k != "_key" and v is not None} for item in items]
        if token:
            body["continuation_token"] = token
    return body


def _body(header: Mapping[str, Any], counts: dict[str, int], finished: datetime) -> dict[str, Any]:
    if header["state"] == "canceled":
        overall = "canceled"
    elif counts["pending"] == header["recipients"]:
        overall = "scheduled"
    elif counts["pending"]:
        overall = "sending"
    else:
        overall = "done"
    body = {"id": header["PartitionKey"], "status": overall, "recipients": header["recipients"], "counts": counts,
            "created_at": iso_z(header["created_at"].replace(microsecond=0)),
            "estimated_done_at": iso_z(header["estimated_done_at"].replace(microsecond=0))}
    if overall in ("done", "canceled") and not counts["pending"]:
        body["finished_at"] = iso_z(finished.replace(microsecond=0))
    return body


def cancel(settings: Settings, broadcast_id: str, identity: str) -> dict[str, Any]:
    """Mark the broadcast canceled and every pending recipient `canceled` (ETag-conditional: a recipient a worker
    claimed first is sent, one canceled first never is); the status body."""
    header = header_of(settings, broadcast_id, identity)
    now = datetime.now(timezone.utc)

    def canceled(rows: dict[str, state.Row]) -> list[state.Row]:
        return [{**row, "state": "canceled", "updated_at": now} for row in rows.values() if row["state"] == "pending"]

    with state.state_errors():
        state.table(settings, state.BROADCASTS).update_entity({"PartitionKey": broadcast_id, "RowKey": "",
                                                               "state": "canceled"})
        for block in range(math.ceil(header["recipients"] / 100)):  # a transaction of 100 rows at most
            state.update_all_of(settings, state.BROADCASTS, broadcast_id, f"r{block:03d}", canceled, select=None,
                                tries=MAX_TRIES)
    logger.info("Broadcast %s canceled", broadcast_id)
    return status(settings, broadcast_id, identity, {})


MAX_TRIES = 20  # lost races on a block of recipients: a worker claiming them one by one meanwhile


def track(settings: Settings, record: state.Row | None) -> None:
    """A status callback moved a send's record: move its broadcast recipient too, to a final delivery state
    (bookkeeping: failures are logged)."""
    if record is None or not record.get("broadcast") or record.get("status") not in DELIVERY:
        return
    outcome = DELIVERY[record["status"]]

    def forward(row: state.Row | None) -> state.Row | None:
        if row is None or row["state"] not in ("claimed", "sent", "unknown"):
            return None
        return {**row, "state": outcome, "sid": record["PartitionKey"], "updated_at": datetime.now(timezone.utc),
                **({"error_code": int(record["error_code"])} if record.get("error_code") else {})}

    try:
        with state.state_errors():
            state.update_if_unchanged(settings, state.BROADCASTS, record["broadcast"], record["recipient"], forward,
                                      tries=MAX_TRIES)
    except (AppError, SettingsError) as exc:
        logger.warning("Could not move a broadcast recipient forward: %s", exc.code)
