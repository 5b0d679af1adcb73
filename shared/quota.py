"""Quotas (per caller, app-wide, per destination) counted exactly in Table Storage with ETag-conditional updates."""

from __future__ import annotations

import functools
import hashlib
import logging
import random
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Iterator

from shared import state
from shared.channels import Channel
from shared.errors import AppError
from shared.identity import ANONYMOUS, voice_identity
from shared.phone import mask
from shared.settings import Settings
from shared.timestamps import iso_z

logger = logging.getLogger("shared.quota")

MAX_TRIES = 100  # ETag races on one counter; each lost race means another request took a slot meanwhile
# A counter that every send shares (app-wide, and every caller's while sign-in is off: all are `anonymous`) is split
# into SHARDS rows of one partition, each capped at its share of the limit, so that concurrent sends spread over the
# rows instead of queueing on one row's ETag. 48 sends at once, app-wide quota, against Azurite: with 16 rows each
# send lost about 1.8 writes to races, with 32 rows 0.3, in 10-25% less time; 64 rows (0.1) were no faster, and
# every charge reads all the rows.
SHARDS = 32


@dataclass(frozen=True)
class Slot:
    """One unit of one quota's counter: PartitionKey = the setting, RowKey = window and hashed subject (a sharded
    counter's rows add '-00' to '-31')."""

    quota: str
    limit: int
    row: str
    window_end: datetime
    sharded: bool = False


@contextmanager
def charged(settings: Settings, channel: Channel, identity: str, to: str) -> Iterator[None]:
    """Take a slot of every configured quota for one send (429 quota_exceeded when one is used up). Give every slot
    taken back when the send fails before Twilio was asked (a storage error on a later quota, say) or Twilio refused
    the content (422); keep them otherwise: the SMS or call may exist."""
    slots = _slots(settings, channel, identity, to, datetime.now(timezone.utc))
    if not slots:  # no quota configured: no storage, not even its imports
        yield
        return
    taken: list[tuple[Slot, str]] = []
    try:
        with state.state_errors():
            for slot in slots:
                row = _take(settings, slot)
                if row is None:
                    logger.warning("Quota %s used up (to %s)", slot.quota, mask(to))
                    raise _exceeded(slot)
                taken.append((slot, row))
        yield
    except AppError as exc:
        if not exc.final or exc.status == 422:  # nothing was sent
            _give_back(settings, taken)
        raise


@contextmanager
def charged_many(settings: Settings, channel: Channel, count: int) -> Iterator[None]:
    """Take `count` slots of the channel's app-wide quota at once (a broadcast's recipients at admission), all or
    nothing: 429 quota_exceeded, and nothing taken, when they do not all fit. The per-user and per-destination quotas
    do not apply. One read and one transaction of the counter's rows, whatever the count. Give them all back when
    what follows fails before anything could be sent (storage failing while the broadcast is written or queued)."""
    taken: list[Slot] = []
    try:
        for slot in _slots(settings, channel, ANONYMOUS, "", datetime.now(timezone.utc), subjects=("app",)):
            with state.state_errors():
                state.update_all_of(settings, state.QUOTAS, slot.quota, slot.row, functools.partial(_add, slot, count),
                                    select=["count"], tries=MAX_TRIES)
            taken.append(slot)
        yield
    except AppError as exc:
        if not exc.final:  # nothing was sent
            for slot in taken:
                _give_back_many(settings, slot, count)
        raise


def _add(slot: Slot, count: int, rows: dict[str, state.Row]) -> list[state.Row]:
    """The sharded counter's rows that take `count` more, filling them in order up to their shares (429 when the
    shares have no room for all of them)."""
    before = rows.get(slot.row)  # the counter as one row, written before it was sharded
    left, changed = count, []
    for key, share in _shares(slot.limit - (before["count"] if before is not None else 0), slot.row).items():
        have = rows[key]["count"] if key in rows else 0
        if left and have < share:
            took = min(left, share - have)
            changed.append({"PartitionKey": slot.quota, "RowKey": key, "count": have + took,
                            "expires_at": slot.window_end})
            left -= took
    if left:
        logger.warning("Quota %s has no room for %d more", slot.quota, count)
        raise _exceeded(slot)
    return changed


def _give_back_many(settings: Settings, slot: Slot, count: int) -> None:
    """`count` off the sharded counter, from whichever of its rows count sends (no row goes below 0 or over its
    share). A storage failure here is logged, as in _give_back."""

    def take_all(rows: dict[str, state.Row]) -> list[state.Row]:
        left, changed = count, []
        for key, row in sorted(rows.items()):
            if key != slot.row and left and row["count"]:
                took = min(left, row["count"])
                changed.append({"PartitionKey": slot.quota, "RowKey": key, "count": row["count"] - took,
                                "expires_at": slot.window_end})
                left -= took
        return changed

    try:
        with state.state_errors():
            state.update_all_of(settings, state.QUOTAS, slot.quota, slot.row, take_all, select=["count"],
                                tries=MAX_TRIES)
    except AppError:
        logger.error("%d slots of quota %s could not be given back; they stay counted until %s", count, slot.quota,
                     iso_z(slot.window_end))


def _slots(settings: Settings, channel: Channel, identity: str, to: str, now: datetime,
           subjects: tuple[str, ...] = ("user", "app", "to")) -> list[Slot]:
    slots = []
    for quota, subject in channel.quotas:
        limit = settings.quota(quota)  # only this channel's: an invalid one breaks no other channel
        if not limit or subject not in subjects:
            continue
        if quota.endswith("_PER_HOUR"):
            start = now.replace(minute=0, second=0, microsecond=0)
            window, end = start.strftime("%Y-%m-%dT%H"), start + timedelta(hours=1)
        else:
            start = now.replace(hour=0, minute=0, second=0, microsecond=0)
            window, end = start.strftime("%Y-%m-%d"), start + timedelta(days=1)
        who = {"user": voice_identity(identity), "app": "app", "to": to}[subject]  # make_call = in-app calls
        hot = subject == "app" or (subject == "user" and identity == ANONYMOUS)  # every send counts here
        slots.append(Slot(quota, limit, f"{window}-{hashlib.sha256(who.encode()).hexdigest()}", end, hot))
    return slots


def _take(settings: Settings, slot: Slot) -> str | None:
    """Add one to the slot's counter unless it is at the limit (None); exact under any concurrency. Returns the
    RowKey of the row that counted it."""
    if slot.sharded:
        return _take_shard(settings, slot)

    def add_one(row: state.Row | None) -> state.Row | None:
        if row is None:
            return {"PartitionKey": slot.quota, "RowKey": slot.row, "count": 1, "expires_at": slot.window_end}
        return {**row, "count": row["count"] + 1} if row["count"] < slot.limit else None

    written = state.update_if_unchanged(settings, state.QUOTAS, slot.quota, slot.row, add_one, tries=MAX_TRIES,
                                        remember=True)
    return slot.row if written.written else None


def _take_shard(settings: Settings, slot: Slot) -> str | None:
    """Add one to a random row of the sharded counter that is under its share; None only when every row is full."""

    def add_one_somewhere(rows: dict[str, state.Row]) -> list[state.Row]:
        before = rows.get(slot.row)  # the counter as one row, written before it was sharded: those sends count
        shares = _shares(slot.limit - (before["count"] if before is not None else 0), slot.row)
        room = [key for key, share in shares.items() if key not in rows or rows[key]["count"] < share]
        random.shuffle(room)  # concurrent senders of other instances spread out (state._pick says which row first)
        return [{"PartitionKey": slot.quota, "RowKey": key, "count": rows[key]["count"] + 1 if key in rows else 1,
                 "expires_at": slot.window_end} for key in room]

    written = state.update_one_of(settings, state.QUOTAS, slot.quota, slot.row, add_one_somewhere, select=["count"],
                                  tries=MAX_TRIES)
    return written.row["RowKey"] if written.written else None


def _shares(limit: int, row: str) -> dict[str, int]:
    """RowKey -> cap of each shard row: the limit split into SHARDS shares that differ by at most 1 and sum to it
    (37 = 5 x 2 + 27 x 1); a row whose share is 0 never exists."""
    base, extra = divmod(max(0, limit), SHARDS)
    return {f"{row}-{n:02d}": base + (n < extra) for n in range(SHARDS) if base + (n < extra)}


def _give_back(settings: Settings, taken: list[tuple[Slot, str]]) -> None:
    """One off each counter, from the row that counted the send (so no row goes over its share). A storage failure
    here is logged: the request's own answer stands, and the slot stays counted until its window ends."""

    def take_one(row: state.Row | None) -> state.Row | None:
        return {**row, "count": max(0, row["count"] - 1)} if row is not None else None

    for slot, key in taken:
        try:
            with state.state_errors():
                state.update_if_unchanged(settings, state.QUOTAS, slot.quota, key, take_one, tries=MAX_TRIES)
        except AppError:
            logger.error("A slot of quota %s could not be given back; it stays counted until %s", slot.quota,
                         iso_z(slot.window_end))


def _exceeded(slot: Slot) -> AppError:
    retry_after = max(1, int((slot.window_end - datetime.now(timezone.utc)).total_seconds()) + 1)
    return AppError(429, "quota_exceeded", f"Quota {slot.quota} is used up ({slot.limit}); it resets at "
                    f"{iso_z(slot.window_end)}.", quota=slot.quota, headers={"Retry-After": str(retry_after)})
