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

from shared import state
from shared.channels import Channel
from shared.errors import AppError, json_response
from shared.settings import Settings

logger = logging.getLogger("shared.idempotency")

HEADER = "idempotency-key"
KEY = re.compile(r"[\x20-\x7e]{1,255}")
IN_FLIGHT_GRACE = timedelta(seconds=30)  # beyond the Twilio time budget: the worker that held the key died
MAX_TRIES = 3  # a key is one caller's: its record rarely races


def fingerprint(channel: Channel, request: Any) -> str:
    """SHA-256 of the validated, normalised request (a dataclass): key order and number formatting do not count."""
    canonical = json.dumps({"kind": channel.name, **dataclasses.asdict(request)}, sort_keys=True, ensure_ascii=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


def once(req: func.HttpRequest, settings: Settings, identity: str, request_fingerprint: str,
         send: Callable[[], func.HttpResponse]) -> func.HttpResponse:
    """send() unless the caller's Idempotency-Key was used before: then the stored outcome (replayed), 409 while
    the first is in flight, 422 for another request under the same key, 502 if its worker died mid-request."""
    key = req.headers.get(HEADER)
    if key is None:
        return send()
    if not KEY.fullmatch(key):
        raise AppError(400, "invalid_idempotency_key", "Idempotency-Key must be 1 to 255 printable ASCII characters.")
    record = _Record(settings, hashlib.sha256(f"{identity}\0{key}".encode()).hexdigest(), request_fingerprint)
    replay = record.claim()
    if replay is not None:
        return replay
    try:
        response = send()
    except AppError as exc:
        if exc.final:  # Twilio decided it: a retry gets this answer, never a second send
            record.finish(exc.status, exc.body(), exc.headers)
        else:
            record.release()  # Twilio was never asked: a corrected or later retry may use the key
        raise
    record.finish(response.status_code, json.loads(response.get_body()),
                  {name: value for name, value in response.headers.items() if name.lower() == "location"})
    return response


class _Record:
    """One key's row in TwilioIdempotency: in flight from claim() to finish() (or gone after release())."""

    def __init__(self, settings: Settings, partition: str, request_fingerprint: str) -> None:
        self.settings, self.partition, self.fingerprint = settings, partition, request_fingerprint
        self.row: state.Row = {}
        self.etag = ""

    def claim(self) -> func.HttpResponse | None:
        """Insert the in-flight record (None: go ahead and send), or the answer to give instead of sending."""
        now = datetime.now(timezone.utc)
        self.row = {"PartitionKey": self.partition, "RowKey": "", "fingerprint": self.fingerprint,
                    "state": "in_flight", "started_at": now,
                    "expires_at": now + timedelta(hours=self.settings.idempotency_ttl_hours)}
        with state.state_errors():
            stored = state.insert_or_get(self.settings, state.IDEMPOTENCY, self.row, tries=MAX_TRIES)
            if not stored.written and state.expired(stored.row, now):  # an expired key may be reused: take it over
                stored = state.update_if_unchanged(
                    self.settings, state.IDEMPOTENCY, self.partition, "",
                    lambda row: self.row if row is None or state.expired(row, now) else None, tries=MAX_TRIES)
        if not stored.written:
            return self._answer(stored.row, now)
        self.etag = stored.etag
        return None

    def _answer(self, existing: state.Row, now: datetime) -> func.HttpResponse:
        if existing["fingerprint"] != self.fingerprint:
            raise AppError(422, "idempotency_key_reused", "This Idempotency-Key was used for a different request; "
                           "use a new key for a new request.")
        if existing["state"] == "done":
            headers = {**json.loads(existing["headers"]), "Idempotent-Replayed": "true"}
            return json_response(json.loads(existing["body"]), existing["status"], headers)
        budget = timedelta(seconds=self.settings.http_timeout) + IN_FLIGHT_GRACE
        if now - existing["started_at"] > budget:
            raise AppError(502, "outcome_unknown", "The first request with this Idempotency-Key never finished; the "
                           "message or call may have been created. Check the status lookup before sending again.")
        raise AppError(409, "idempotency_in_progress", "A request with this Idempotency-Key is still in progress; "
                       "retry shortly.", headers={"Retry-After": "1"})

    def finish(self, status: int, body: dict[str, Any], headers: dict[str, str]) -> None:
        """Store the outcome for replay. The send has happened: a storage failure here is logged, not raised."""
        done = {**self.row, "state": "done", "status": status, "body": json.dumps(body), "headers": json.dumps(headers)}
        try:
            with state.state_errors():
                stored = state.replace_if_unchanged(self.settings, state.IDEMPOTENCY, done, self.etag)
        except AppError:
            stored = False
        if not stored:
            logger.error("The outcome of an idempotent send (%s) could not be stored; a retry will get 409, "
                         "then outcome_unknown", status)

    def release(self) -> None:
        """Delete the in-flight record (Twilio was never asked)."""
        try:
            with state.state_errors():
                released = state.delete_if_unchanged(self.settings, state.IDEMPOTENCY, self.partition, "", self.etag)
        except AppError:
            released = False
        if not released:
            logger.error("An in-flight idempotency record could not be released; the key stays blocked until it "
                         "expires")
