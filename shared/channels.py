"""Send channels (SMS, call): each one's Twilio resource, SID form, status order, quotas, callback events."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal, Mapping

FINAL = 3  # the rank of a status that never changes again


@dataclass(frozen=True)
class Channel:
    """One way of sending, named once: every module that sends, counts or records a send takes one of these."""

    name: Literal["sms", "call"]  # in Idempotency-Key fingerprints
    noun: Literal["message", "call"]  # in messages to the caller, and the `kind` of its TwilioSends records
    label: str  # in log lines
    resource: Literal["Messages", "Calls"]  # Twilio's 2010-04-01 REST resource
    sid_prefixes: tuple[str, ...]  # a SID is one of these and 32 hex digits
    ranks: Mapping[str, int]  # status -> rank; a record only moves to a higher rank (FINAL: never again)
    quotas: tuple[tuple[str, Literal["user", "app", "to"]], ...]  # (setting, whose count)
    status_events: tuple[str, ...] = ()  # StatusCallbackEvent to ask for with the app's own callback

    @property
    def sid(self) -> re.Pattern[str]:
        """A SID of this channel, as Twilio writes them (fullmatch)."""
        return re.compile(f"({'|'.join(self.sid_prefixes)})[0-9a-f]{{32}}")

    def rank(self, status: str) -> int:
        """The status's rank; -1 for a status the app does not know."""
        return self.ranks.get(status, -1)

    def is_final(self, status: str) -> bool:
        return self.rank(status) == FINAL


SMS = Channel(
    name="sms", noun="message", label="SMS", resource="Messages", sid_prefixes=("SM", "MM"),
    ranks={"queued": 0, "accepted": 0, "scheduled": 0, "sending": 1, "sent": 2,
           "delivered": 3, "undelivered": 3, "failed": 3, "read": 3, "canceled": 3},
    quotas=(("QUOTA_SMS_PER_USER_PER_DAY", "user"), ("QUOTA_SMS_PER_DAY", "app"),
            ("QUOTA_PER_DESTINATION_PER_HOUR", "to")),
)
CALL = Channel(
    name="call", noun="call", label="Call", resource="Calls", sid_prefixes=("CA",),
    ranks={"queued": 0, "initiated": 0, "ringing": 1, "in-progress": 2,
           "completed": 3, "busy": 3, "failed": 3, "no-answer": 3, "canceled": 3},
    quotas=(("QUOTA_CALLS_PER_USER_PER_DAY", "user"), ("QUOTA_CALLS_PER_DAY", "app"),
            ("QUOTA_PER_DESTINATION_PER_HOUR", "to")),
    status_events=("initiated", "ringing", "answered", "completed"),
)
CHANNELS = {channel.name: channel for channel in (SMS, CALL)}  # by the name records keep
