"""Phone numbers: parse and normalise to E.164 with phonenumbers, destination guard, masking for logs."""

from __future__ import annotations

import functools
import re
from typing import Iterable

from shared.errors import AppError, invalid_field

_DIGITS = re.compile(r"\d")


def to_e164(raw: str, field: str, default_region: str | None) -> str:
    """Parse raw (E.164, or national format when default_region is set) into E.164; 400 if it is not a valid number."""
    import phonenumbers  # imported on use: webhooks without a block list never need it

    if len(raw) > 64:
        raise invalid_field(field, f"'{field}' is too long to be a phone number.", "invalid_phone_number")
    try:
        number = phonenumbers.parse(raw, default_region)
    except phonenumbers.NumberParseException:
        hint = "" if default_region else " (use E.164, e.g. +14155550123)"
        raise invalid_field(field, f"'{field}' is not a phone number{hint}.", "invalid_phone_number") from None
    if not phonenumbers.is_valid_number(number):
        raise invalid_field(field, f"'{field}' is not a valid phone number.", "invalid_phone_number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def require_allowed_destination(e164: str, prefixes: Iterable[str], field: str = "to") -> None:
    """400 unless e164 starts with one of prefixes (no prefixes configured = every destination allowed)."""
    prefixes = tuple(prefixes)
    if prefixes and not e164.startswith(prefixes):
        raise AppError(
            400,
            "destination_not_allowed",
            f"Destination not allowed: this service only reaches numbers starting with {', '.join(prefixes)}.",
            field=field,
        )


def is_blocked(caller: str, blocked: Iterable[str], default_region: str | None) -> bool:
    """True when caller (as Twilio sent it) is one of the blocked numbers, compared in E.164."""
    blocked = tuple(blocked)
    if not blocked or not caller:
        return False
    return _canonical(caller, default_region) in _canonical_set(blocked, default_region)


@functools.lru_cache(maxsize=8)
def _canonical_set(numbers: tuple[str, ...], default_region: str | None) -> frozenset[str]:
    return frozenset(_canonical(number, default_region) for number in numbers)


def _canonical(raw: str, default_region: str | None) -> str:
    try:
        return to_e164(raw, "number", default_region)
    except AppError:
        return raw.strip()  # 'anonymous', 'client:alice', short codes: compared as written


def mask(number: str | None) -> str:
    """Mask a phone number for logs: keep the '+', the first two and the last two digits."""
    if not number:
        return "-"
    digits = _DIGITS.findall(number)
    if len(digits) < 6:
        return "***"
    return ("+" if number.startswith("+") else "") + "".join(digits[:2]) + "*" * (len(digits) - 4) + "".join(digits[-2:])
