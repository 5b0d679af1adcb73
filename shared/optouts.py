"""Opt-outs: numbers that texted one of Twilio's opt-out keywords, kept in TwilioOptOuts until they opt back in."""

from __future__ import annotations

import hashlib
import logging
from datetime import datetime, timezone

from shared import state
from shared.errors import AppError
from shared.phone import mask
from shared.settings import Settings, SettingsError

logger = logging.getLogger("shared.optouts")

OPT_OUT = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"})
OPT_IN = frozenset({"START", "YES", "UNSTOP"})
KEPT_UNTIL = datetime(9999, 12, 31, tzinfo=timezone.utc)  # until the number opts back in


def _key(number: str) -> str:
    return hashlib.sha256(number.encode()).hexdigest()


def record(settings: Settings, number: str) -> None:
    """Remember that number opted out (storage errors raise: the caller decides whether it is bookkeeping)."""
    state.table(settings, state.OPT_OUTS).upsert_entity({"PartitionKey": _key(number), "RowKey": "",
                                                          "expires_at": KEPT_UNTIL})


def opted_out(settings: Settings, number: str) -> bool:
    """Whether number opted out and has not opted back in."""
    return state.get(settings, state.OPT_OUTS, _key(number)) is not None


def apply_keyword(settings: Settings, number: str, body: str) -> None:
    """An inbound SMS that is an opt-out keyword records the sender, an opt-in keyword forgets it (bookkeeping:
    a storage failure is logged and the webhook answers as it would anyway)."""
    keyword = body.strip().upper()
    if not number or keyword not in OPT_OUT | OPT_IN:
        return
    try:
        with state.state_errors():
            if keyword in OPT_OUT:
                record(settings, number)
            else:  # a number that never opted out: the service answers the delete with success all the same
                state.table(settings, state.OPT_OUTS).delete_entity(_key(number), "")
        logger.info("%s %s", "Opt-out of" if keyword in OPT_OUT else "Opt-in of", mask(number))
    except (AppError, SettingsError) as exc:
        logger.warning("Could not record an opt-out keyword of %s: %s", mask(number), exc.code)
