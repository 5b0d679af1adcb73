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

from shared.errors import AppError, json_response
from shared.settings import Settings
from shared.state import state_errors, table

logger = logging.getLogger("shared.idempotency")

TABLE = "TwilioIdempotency"
HEADER = "idempotency-key"
KEY = re.compile(r"[\x20-\x7e]{1,255}")
IN_FLIGHT_GRACE = timedelta(seconds=30)  # beyond the Twilio time budget: the worker that held the key died
# Outcomes of a request that reached Twilio: replayed, because sending again could send twice.
STORED = {(201, None), (422, "twilio_rejected"), (502, "twilio_unavailable"), (502, "twilio_connection_lost"),
          (502, "twilio_bad_response"), (504, "twilio_timeout")}


def fingerprint(kind: str, request: Any) -> str:
    """SHA-256 of the validated, normalised request (a dataclass): key order and number formatting do not count."""
    canonical = json.dumps({"kind": kind, **dataclasses.asdict(request)}, sort_keys=True, ensure_ascii=True)
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
        if (exc.status, exc.code) in STORED:
            record.finish(exc.status, exc.body(), exc.headers)
        else:
            record.release()  # Twilio was never asked: a corrected or later retry may use the key
        raise
    record.finish(response.status_code, json.loads(response.get_body()), {})
    return response


class _Record:
    """One key's row in TwilioIdempotency: in flight from claim() to finish() (or gone after release())."""

    def __init__(self, settings: Settings, partition: str, request_fingerprint: str) -> None:
        self.settings, self.partition, self.fingerprint = settings, partition, request_fingerprint
        self.etag: str | None = None

    def claim(self) -> func.HttpResponse | None:
        """Insert the in-flight record (None: go ahead and send), or the answer to give instead of sending."""
        from azure.core import MatchConditions
        from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
        from azure.data.tables import UpdateMode

        now = datetime.now(timezone.utc)
        entity = {"PartitionKey": self.partition, "RowKey": "", "fingerprint": self.fingerprint, "state": "in_flight",
                  "started_at": now, "expires_at": now + timedelta(hours=self.settings.idempotency_ttl_hours)}
        with state_errors():
            client = table(self.settings, TABLE)
            for _ in range(3):
                try:
                    self.etag = client.create_entity(entity)["etag"]
                    return None
                except ResourceExistsError:
                    pass
                try:
                    existing = client.get_entity(self.partition, "")
                except ResourceNotFoundError:  # released meanwhile: try the insert again
                    continue
                if existing["expires_at"] > now:
                    return self._answer(existing, now)
                try:  # an expired key may be reused: take the row over, unless someone else just did
                    self.etag = client.update_entity(entity, mode=UpdateMode.REPLACE, etag=existing.metadata["etag"],
                                                     match_condition=MatchConditions.IfNotModified)["etag"]
                    return None
                except ResourceModifiedError:
                    continue
        raise AppError(503, "state_unavailable", "The idempotency record is too busy; nothing was sent. Try again.")

    def _answer(self, existing: dict[str, Any], now: datetime) -> func.HttpResponse:
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
        from azure.core import MatchConditions
        from azure.data.tables import UpdateMode

        try:
            with state_errors():
                table(self.settings, TABLE).update_entity(
                    {"PartitionKey": self.partition, "RowKey": "", "state": "done", "status": status,
                     "body": json.dumps(body), "headers": json.dumps(headers)},
                    mode=UpdateMode.MERGE, etag=self.etag, match_condition=MatchConditions.IfNotModified)
        except AppError:
            logger.error("The outcome of an idempotent send (%s) could not be stored; a retry will get 409, then "
                         "outcome_unknown", status)

    def release(self) -> None:
        """Delete the in-flight record (Twilio was never asked)."""
        from azure.core import MatchConditions

        try:
            with state_errors():
                table(self.settings, TABLE).delete_entity(self.partition, "", etag=self.etag,
                                                          match_condition=MatchConditions.IfNotModified)
        except AppError:
            logger.error("An in-flight idempotency record could not be released; the key stays blocked until it "
                         "expires")
