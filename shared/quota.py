"""Quotas per caller, per app and per destination, counted exactly in Table Storage with ETag-conditional updates."""

from __future__ import annotations

import hashlib
import logging
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Iterator, Literal

from shared.errors import AppError
from shared.identity import voice_identity
from shared.phone import mask
from shared.settings import Settings
from shared.state import replace_if_unchanged, state_errors, table

logger = logging.getLogger("shared.quota")

TABLE = "TwilioQuotas"
MAX_TRIES = 100  # ETag races on one counter; each lost race means another request took a slot meanwhile
Kind = Literal["sms", "call"]
QUOTAS: dict[Kind, tuple[tuple[str, str], ...]] = {  # (setting, whose count): 'user', 'app' or 'to'
    "sms": (("QUOTA_SMS_PER_USER_PER_DAY", "user"), ("QUOTA_SMS_PER_DAY", "app"),
            ("QUOTA_PER_DESTINATION_PER_HOUR", "to")),
    "call": (("QUOTA_CALLS_PER_USER_PER_DAY", "user"), ("QUOTA_CALLS_PER_DAY", "app"),
             ("QUOTA_PER_DESTINATION_PER_HOUR", "to")),
}


@dataclass(frozen=True)
class Slot:
    """One unit of one quota's counter: PartitionKey = the setting, RowKey = window and hashed subject."""

    quota: str
    limit: int
    row: str
    window_end: datetime


@contextmanager
def charged(settings: Settings, kind: Kind, identity: str, to: str) -> Iterator[None]:
    """Take a slot of every configured quota for one send (429 quota_exceeded when one is used up); give them
    back if Twilio refused the content (422), keep them otherwise: the SMS or call may exist."""
    slots = _slots(settings, kind, identity, to, datetime.now(timezone.utc))
    if not slots:  # no quota configured: no storage, not even its imports
        yield
        return
    taken: list[Slot] = []
    with state_errors():
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
            with state_errors():
                _give_back(settings, taken)
        raise


def _slots(settings: Settings, kind: Kind, identity: str, to: str, now: datetime) -> list[Slot]:
    slots = []
    for quota, subject in QUOTAS[kind]:
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
    from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError

    client = table(settings, TABLE)
    for _ in range(MAX_TRIES):
        try:
            entity = client.get_entity(slot.quota, slot.row)
        except ResourceNotFoundError:
            try:
                client.create_entity({"PartitionKey": slot.quota, "RowKey": slot.row, "count": 1,
                                      "expires_at": slot.window_end})
                return True
            except ResourceExistsError:  # another request created it first: count on it
                continue
        if entity["count"] >= slot.limit:
            return False
        entity["count"] += 1
        if replace_if_unchanged(client, entity):
            return True
    raise AppError(503, "state_unavailable", "The quota counter is too busy; nothing was sent. Try again.")


def _give_back(settings: Settings, slots: list[Slot]) -> None:
    for slot in slots:
        client = table(settings, TABLE)
        for _ in range(MAX_TRIES):
            entity = client.get_entity(slot.quota, slot.row)
            entity["count"] = max(0, entity["count"] - 1)
            if replace_if_unchanged(client, entity):
                break


def _exceeded(slot: Slot) -> AppError:
    retry_after = max(1, int((slot.window_end - datetime.now(timezone.utc)).total_seconds()) + 1)
    return AppError(429, "quota_exceeded", f"Quota {slot.quota} is used up ({slot.limit}); it resets at "
                    f"{slot.window_end.isoformat().replace('+00:00', 'Z')}.", quota=slot.quota,
                    headers={"Retry-After": str(retry_after)})
