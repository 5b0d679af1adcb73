"""Idempotency-Key on the sends: a retried request is answered from the first one's stored outcome, never re-sent."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import re
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

import azure.functions as func

from shared import sends, state
from shared.channels import CHANNELS, Channel
from shared.errors import AppError, json_response
from shared.settings import Settings

logger = logging.getLogger("shared.idempotency")

HEADER = "idempotency-key"
KEY = re.compile(r"[\x20-\x7e]{1,255}")
IN_FLIGHT_GRACE = timedelta(seconds=30)  # beyond the Twilio time budget: the worker that held the key died
MAX_TRIES = 3  # a key is one caller's: its record rarely races
# An in-flight record's phase: NOT_SENT from the claim, CREATE_ATTEMPTED from just before Twilio is asked (a record
# without a phase, written before phases were recorded, counts as that too).
NOT_SENT, CREATE_ATTEMPTED = "not_sent", "create_attempted"


def fingerprint(channel: Channel, request: Any) -> str:
    """SHA-256 of the validated, normalised request (a dataclass): key order and number formatting do not count."""
    canonical = json.dumps({"kind": channel.name, **dataclasses.asdict(request)}, sort_keys=True, ensure_ascii=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


def once(req: func.HttpRequest, settings: Settings, identity: str, request_fingerprint: str,
         send: Callable[[], func.HttpResponse],
         stored: Callable[[dict[str, Any]], dict[str, Any]] = lambda body: body) -> func.HttpResponse:
    """send() unless the caller's Idempotency-Key was used before: then the stored outcome (replayed; stored(body)
    of a success, which must fit a Table property), 409 while the first is in flight, 422 for another request under
    the same key. If the first one's worker died after asking Twilio: what Twilio created, found in its list
    (replayed, "reconciled": true), else 502 outcome_unknown."""
    key = req.headers.get(HEADER)
    if key is None:
        return send()
    if not KEY.fullmatch(key):
        raise AppError(400, "invalid_idempotency_key", "Idempotency-Key must be 1 to 255 printable ASCII characters.")
    record = _Record(settings, hashlib.sha256(f"{identity}\0{key}".encode()).hexdigest(), request_fingerprint, identity)
    replay = record.claim()
    if replay is not None:
        return replay
    attempting = sends.before_create.set(record.create_attempted)
    try:
        response = send()
    except AppError as exc:
        if exc.final:  # Twilio decided it: a retry gets this answer, never a second send
            record.finish(exc.status, exc.body(), exc.headers)
        else:
            record.release()  # Twilio was never asked: a corrected or later retry may use the key
        raise
    finally:
        sends.before_create.reset(attempting)
    record.finish(response.status_code, stored(json.loads(response.get_body())),
                  {name: value for name, value in response.headers.items() if name.lower() == "location"})
    return response


class _Record:
    """One key's row in TwilioIdempotency: in flight from claim() to finish() (or gone after release())."""

    def __init__(self, settings: Settings, partition: str, request_fingerprint: str, identity: str) -> None:
        self.settings, self.partition, self.fingerprint = settings, partition, request_fingerprint
        self.identity = identity  # the owner of what a reconciliation finds
        self.row: state.Row = {}
        self.etag = ""

    def claim(self) -> func.HttpResponse | None:
        """Insert the in-flight record (None: go ahead and send), or the answer to give instead of sending."""
        now = datetime.now(timezone.utc)
        self.row = {"PartitionKey": self.partition, "RowKey": "", "fingerprint": self.fingerprint,
                    "state": "in_flight", "phase": NOT_SENT, "started_at": now,
                    "expires_at": now + timedelta(hours=self.settings.idempotency_ttl_hours)}
        with state.state_errors():
            stored = state.insert_or_get(self.settings, state.IDEMPOTENCY, self.row, tries=MAX_TRIES)
            if not stored.written and self._may_take_over(stored.row, now):
                stored = state.update_if_unchanged(
                    self.settings, state.IDEMPOTENCY, self.partition, "",
                    lambda row: self.row if row is None or self._may_take_over(row, now) else None, tries=MAX_TRIES)
        if not stored.written:
            return self._answer(stored.row, now)
        self.etag = stored.etag
        return None

    def _may_take_over(self, row: state.Row, now: datetime) -> bool:
        """An expired key may be reused; a record of this request that never reached Twilio (its worker could not
        release it) may be resumed: if that worker is still at work, it then finds the key taken and sends nothing."""
        never_sent = row["state"] == "in_flight" and row.get("phase") == NOT_SENT
        return state.expired(row, now) or (never_sent and row["fingerprint"] == self.fingerprint)

    def _answer(self, existing: state.Row, now: datetime) -> func.HttpResponse:
        if existing["fingerprint"] != self.fingerprint:
            raise AppError(422, "idempotency_key_reused", "This Idempotency-Key was used for a different request; "
                           "use a new key for a new request.")
        if existing["state"] == "done":
            headers = {**json.loads(existing["headers"]), "Idempotent-Replayed": "true"}
            return json_response(json.loads(existing["body"]), existing["status"], headers)
        budget = timedelta(seconds=self.settings.http_timeout) + IN_FLIGHT_GRACE
        if now - existing["started_at"] > budget:
            return self._reconciled(existing)
        raise _in_progress()

    def _reconciled(self, existing: state.Row) -> func.HttpResponse:
        """The first request's worker died after asking Twilio: what Twilio created, stored and replayed; 502
        outcome_unknown when Twilio's list shows no one match (never a second send)."""
        from shared.reconcile import created_by

        sent = None
        if existing.get("kind") in CHANNELS:  # a record written before attempts were described has nothing to match
            try:
                sent = created_by(self.settings, CHANNELS[existing["kind"]], existing, self.identity)
            except AppError as exc:
                logger.warning("An unfinished idempotent send could not be reconciled: %s", exc.code)
        if sent is None:
            raise AppError(502, "outcome_unknown", "The first request with this Idempotency-Key never finished, and "
                           "Twilio lists no one message or call that it made: it may still exist. Check before "
                           "sending again.")
        body = {**sent.answer(), "reconciled": True}
        self.row, self.etag = dict(existing), existing.metadata["etag"]
        self.finish(201, body, {})
        return json_response(body, 201, {"Idempotent-Replayed": "true"})

    def create_attempted(self, channel: Channel, params: dict[str, Any]) -> None:
        """Note, just before Twilio is asked, that it may act from now on, with what reconciling looks for (to,
        from, the body's SHA-256). 409 idempotency_in_progress, and nothing is sent, if a retry resumed the key."""
        from shared.reconcile import digest

        attempted = {**self.row, "phase": CREATE_ATTEMPTED, "kind": channel.name, "to_number": params["To"],
                     "from_number": params.get("From") or "", "body_sha256": digest(params.get("Body"))}
        with state.state_errors():
            etag = state.replace_if_unchanged(self.settings, state.IDEMPOTENCY, attempted, self.etag)
        if etag is None:
            self.etag = ""  # the key is the retry's now: nothing to finish or release
            raise _in_progress()
        self.row, self.etag = attempted, etag

    def finish(self, status: int, body: dict[str, Any], headers: dict[str, str]) -> None:
        """Store the outcome for replay. The send has happened: a storage failure here is logged, not raised."""
        if not self.etag:
            return
        done = {**self.row, "state": "done", "status": status, "body": json.dumps(body), "headers": json.dumps(headers)}
        try:
            with state.state_errors():
                stored = state.replace_if_unchanged(self.settings, state.IDEMPOTENCY, done, self.etag)
        except AppError:
            stored = None
        if not stored:
            logger.error("The outcome of an idempotent send (%s) could not be stored; a retry gets 409 until the "
                         "time budget has passed, then what Twilio's list shows", status)

    def release(self) -> None:
        """Delete the in-flight record (Twilio was never asked). If that fails, the record still says not_sent, and
        a retry of the same request resumes it."""
        if not self.etag:
            return
        try:
            with state.state_errors():
                released = state.delete_if_unchanged(self.settings, state.IDEMPOTENCY, self.partition, "", self.etag)
        except AppError:
            released = False
        if not released:
            logger.error("An in-flight idempotency record could not be released; a retry of the same request "
                         "may resume it")


def _in_progress() -> AppError:
    return AppError(409, "idempotency_in_progress", "A request with this Idempotency-Key is still in progress; "
                    "retry shortly.", headers={"Retry-After": "1"})
