"""A broadcast chunk sent: each recipient claimed before its create, paced to the sender, its outcome recorded."""

from __future__ import annotations

import json
import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime, timezone
from typing import Any

from shared import optouts, queues, state
from shared.broadcasts import ADMISSION_GRACE, BroadcastRequest, chunk, recipient_state
from shared.errors import AppError
from shared.phone import mask
from shared.sends import send
from shared.settings import Settings

logger = logging.getLogger("shared.fanout")

MAX_DEQUEUE_COUNT = 5  # host.json extensions.queues.maxDequeueCount: the host's last try moves it to -poison
RATE_LIMIT_PAUSE_SECONDS = 5  # Twilio's 429 outlasted the transport's retries: the rest waits this long
MAX_TRIES = 20
# Sends started on the pace but not yet answered: each takes a Twilio request and about five Table operations
# (~0.2 s against Azurite on a busy 2-core machine), so 20 segments a second need about 4 at a time. More at once
# only queued on that machine's Azurite (storage timeouts at 32).
IN_FLIGHT = 8


def deliver(settings: Settings, message: dict[str, Any], dequeue_count: int) -> None:
    """Send one chunk. Recipients already claimed are skipped (a redelivery), stale claims end `unknown`; an error
    before Twilio was asked raises so that the host retries the chunk, and on its last try the chunk's unsent
    recipients end `failed`/`poisoned` first."""
    try:
        _deliver(settings, message)
    except Exception:
        if dequeue_count >= MAX_DEQUEUE_COUNT:
            _poison(settings, message)
        raise


def _deliver(settings: Settings, message: dict[str, Any]) -> None:
    broadcast_id = message["broadcast"]
    with state.state_errors():
        header = state.get(settings, state.BROADCASTS, broadcast_id)
    if header is None or header["state"] == "canceled":
        return
    now = datetime.now(timezone.utc)
    if header["state"] == "admitting":  # admission unfinished: wait for it, or drop the chunk of a failed one
        if now - header["created_at"] < ADMISSION_GRACE:
            queues.put(settings, queues.BROADCASTS, message, delay_seconds=1)
        else:
            logger.warning("Dropped a chunk of broadcast %s, whose admission failed", broadcast_id)
        return
    request = BroadcastRequest(**json.loads(header["message"]))
    interval = header["segments"] / settings.broadcast_segments_per_second
    slot = message["at"]
    pace = _Pace.of(broadcast_id, slot, interval)
    limited: list[int] = []  # the recipients Twilio rate limited (their claims given back)
    with ThreadPoolExecutor(max_workers=IN_FLIGHT, thread_name_prefix="broadcast") as pool:
        sending: list[Future[None]] = []
        for seq, row in _rows(settings, broadcast_id, message["first"], message["last"]):
            if limited or any(f.done() and f.exception() for f in sending):
                break  # the rest waits: for the requeued message, or the host's retry
            if row["state"] != "pending":
                if row["state"] == "claimed" and recipient_state(row, settings, now) == "unknown":
                    _finish(settings, row, "unknown", reason="outcome_unknown")
                continue
            slot = max(slot, time.time())  # late (a retry, a busy host): from now on, never faster than the pace
            time.sleep(max(0.0, slot - time.time()))
            sending.append(pool.submit(_send_one, settings, request, header, row, seq, limited, pace))
            slot += interval
    for future in sending:
        future.result()  # an error before Twilio was asked: the host retries the chunk
    if limited:
        queues.put(settings, queues.BROADCASTS,
                   chunk(broadcast_id, min(limited), message["last"],
                         datetime.fromtimestamp(time.time() + RATE_LIMIT_PAUSE_SECONDS, timezone.utc)),
                   delay_seconds=RATE_LIMIT_PAUSE_SECONDS)


def _rows(settings: Settings, broadcast_id: str, first: int, last: int) -> list[tuple[int, state.Row]]:
    with state.state_errors():
        rows = state.table(settings, state.BROADCASTS).query_entities(
            "PartitionKey eq @id and RowKey ge @first and RowKey lt @last",
            parameters={"id": broadcast_id, "first": f"r{first:05d}", "last": f"r{last:05d}"})
        return sorted((int(row["RowKey"][1:]), row) for row in rows)


class _Pace:
    """The creates of a broadcast in this process, `interval` seconds apart from `start` on, whichever thread and
    chunk makes them: the sends start on the pace, but their claims take varying time, and Twilio counts the creates.
    A chunk that runs late shares it with the next one, which would otherwise send beside it at twice the rate."""

    _of: dict[str, _Pace] = {}  # broadcast id -> its pace (the newest broadcasts only)
    _lock = threading.Lock()

    def __init__(self, start: float, interval: float) -> None:
        self.next, self.interval, self.lock = start, interval, threading.Lock()

    @classmethod
    def of(cls, broadcast_id: str, start: float, interval: float) -> _Pace:
        with cls._lock:
            pace = cls._of.get(broadcast_id)
            if pace is None or pace.interval != interval:
                if len(cls._of) >= 64:
                    cls._of.pop(next(iter(cls._of)))
                pace = cls._of[broadcast_id] = cls(start, interval)
            return pace

    def wait(self) -> None:
        with self.lock:
            at = max(self.next, time.time())
            self.next = at + self.interval
        time.sleep(max(0.0, at - time.time()))


def _send_one(settings: Settings, request: BroadcastRequest, header: state.Row, row: state.Row, seq: int,
              limited: list[int], pace: _Pace) -> None:
    """Claim the recipient, then send to it on the pace and record the outcome. When Twilio rate limited the
    account the claim is given back (Twilio created nothing) and seq is added to limited."""
    now = datetime.now(timezone.utc)
    with state.state_errors():
        if not state.replace_if_unchanged(settings, state.BROADCASTS, {**row, "state": "claimed", "claimed_at": now},
                                          row.metadata["etag"]):
            return  # another worker (a redelivery of this chunk) or a cancel was first
        if optouts.opted_out(settings, row["number"]):
            _finish(settings, row, "skipped", reason="opted_out")
            return
    outgoing = request.outgoing(settings, row["number"], broadcast=row["PartitionKey"], recipient=row["RowKey"])
    pace.wait()
    try:
        sent = send(settings, outgoing, header["owner"])
    except AppError as exc:
        if exc.code == "rate_limited":
            _finish(settings, row, "pending")
            limited.append(seq)
            return
        if exc.status == 422 and exc.twilio_code == 21610:  # the recipient had texted STOP to this sender
            with state.state_errors():
                optouts.record(settings, row["number"])
            _finish(settings, row, "skipped", reason="opted_out")
        elif exc.status == 422:
            _finish(settings, row, "failed", reason=exc.code, error_code=exc.twilio_code)
        elif exc.final:  # Twilio may have sent it: never again
            _finish(settings, row, "unknown", reason=exc.code)
        else:  # Twilio was never asked: the recipient waits for the chunk's retry
            _finish(settings, row, "pending")
            raise
        logger.info("Broadcast %s: %s not sent (%s)", row["PartitionKey"], mask(row["number"]), exc.code)
        return
    _finish(settings, row, "sent", sid=sent.sid)


def _finish(settings: Settings, row: state.Row, outcome: str, was: str = "claimed", **details: Any) -> None:
    """Record the outcome of a recipient still in state `was`: not if a status callback moved it on first."""
    now = datetime.now(timezone.utc)

    def record(current: state.Row | None) -> state.Row | None:
        if current is None or current["state"] != was:
            return None
        return {**current, "state": outcome, "updated_at": now,
                **{name: value for name, value in details.items() if value is not None}}

    with state.state_errors():
        state.update_if_unchanged(settings, state.BROADCASTS, row["PartitionKey"], row["RowKey"], record,
                                  tries=MAX_TRIES)


def _poison(settings: Settings, message: dict[str, Any]) -> None:
    """The chunk's last try failed: its recipients not yet sent end `failed`/`poisoned`, never silently pending."""
    for _, row in _rows(settings, message["broadcast"], message["first"], message["last"]):
        if row["state"] == "pending":
            _finish(settings, row, "failed", was="pending", reason="poisoned")
    logger.warning("Broadcast %s: a chunk failed %d times and was poisoned", message["broadcast"], MAX_DEQUEUE_COUNT)
