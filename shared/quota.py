"""Quotas (per caller, app-wide, per destination) counted exactly in Table Storage with ETag-conditional updates."""

from __future__ import annotations

import hashlib
import logging
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Iterator

from shared import state
from shared.channels import Channel
from shared.errors import AppError
from shared.identity import voice_identity
from shared.phone import mask
from shared.settings import Settings
from shared.timestamps import iso_z

logger = logging.getLogger("shared.quota")

MAX_TRIES = 100  # ETag races on one counter; each lost race means another request took a slot meanwhile


@dataclass(frozen=True)
class Slot:
    """One unit of one quota's counter: PartitionKey = the setting, RowKey = window and hashed subject."""

    quota: str
    limit: int
    row: str
    window_end: datetime


@contextmanager
def charged(settings: Settings, channel: Channel, identity: str, to: str) -> Iterator[None]:
    """Take a slot of every configured quota for one send (429 quota_exceeded when one is used up); give them
    back if Twilio refused the content (422), keep them otherwise: the SMS or call may exist."""
    slots = _slots(settings, channel, identity, to, datetime.now(timezone.utc))
    if not slots:  # no quota configured: no storage, not even its imports
        yield
        return
    taken: list[Slot] = []
    with state.state_errors():
        for slot in slots:
            if not _take(settings, slot):
                _give_back(settings, taken)
                logger.warning("Quota %s used up (to %s)", slot.quota, mask(to))
                raise _exceeded(slot)
            taken.append(slot)
    try:
        yield
    except AppError as exc:
        if exc.status == 422:
            with state.state_errors():
                _give_back(settings, taken)
        raise


def _slots(settings: Settings, channel: Channel, identity: str, to: str, now: datetime) -> list[Slot]:
    slots = []
    for quota, subject in channel.quotas:
        limit = settings.quotas.get(quota)
        if not limit:
            continue
        if quota.endswith("_PER_HOUR"):
            start = now.replace(minute=0, second=0, microsecond=0)
            window, end = start.strftime("%Y-%m-%dT%H"), start + timedelta(hours=1)
        else:
            start = now.replace(hour=0, minute=0, second=0, microsecond=0)
            window, end = start.strftime("%Y-%m-%d"), start + timedelta(days=1)
        who = {"user": voice_identity(identity), "app": "app", "to": to}[subject]  # make_call = in-app calls
        slots.append(Slot(quota, limit, f"{window}-{hashlib.sha256(who.encode()).hexdigest()}", end))
    return slots


def _take(settings: Settings, slot: Slot) -> bool:
    """Add one to the slot's counter unless it is at the limit (False); exact under any concurrency."""

    def add_one(row: state.Row | None) -> state.Row | None:
        if row is None:
            return {"PartitionKey": slot.quota, "RowKey": slot.row, "count": 1, "expires_at": slot.window_end}
        return {**row, "count": row["count"] + 1} if row["count"] < slot.limit else None

    return state.update_if_unchanged(settings, state.QUOTAS, slot.quota, slot.row, add_one, tries=MAX_TRIES).written


def _give_back(settings: Settings, slots: list[Slot]) -> None:
    def take_one(row: state.Row | None) -> state.Row | None:
        return {**row, "count": max(0, row["count"] - 1)} if row is not None else None

    for slot in slots:
        state.update_if_unchanged(settings, state.QUOTAS, slot.quota, slot.row, take_one, tries=MAX_TRIES)


def _exceeded(slot: Slot) -> AppError:
    retry_after = max(1, int((slot.window_end - datetime.now(timezone.utc)).total_seconds()) + 1)
    return AppError(429, "quota_exceeded", f"Quota {slot.quota} is used up ({slot.limit}); it resets at "
                    f"{iso_z(slot.window_end)}.", quota=slot.quota, headers={"Retry-After": str(retry_after)})
