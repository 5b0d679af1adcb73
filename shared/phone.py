"""Phone numbers through phonenumbers: E.164 parsing, destination guard, block list, masking for logs."""

from __future__ import annotations

import re
from typing import Iterable

from shared.errors import AppError, invalid_field

_DIGITS = re.compile(r"\d")
_LETTERS = re.compile(r"[^\W\d_]")
MAX_PHONE_CHARS = 64
NON_GEOGRAPHIC = "001"  # phonenumbers' region of the international networks and satellites
CALLER_WORDS = frozenset({"anonymous", "restricted", "unavailable"})  # Twilio's From for a hidden caller ID


def to_e164(raw: str, field: str, default_region: str | None) -> str:
    """Parse raw (E.164, or national format when default_region is set) into E.164; 400 if it is not a valid number.
    Letters are refused: phonenumbers would read '+1415abc0123' as a vanity number and dial another line."""
    import phonenumbers  # imported on use: webhooks without a block list never need it

    if len(raw) > MAX_PHONE_CHARS:
        raise invalid_field(field, f"'{field}' is too long to be a phone number.", "invalid_phone_number")
    if _LETTERS.search(raw):
        raise invalid_field(field, f"'{field}' must be digits only (letters are not read as a vanity number).",
                            "invalid_phone_number")
    try:
        number = phonenumbers.parse(raw, default_region)
    except phonenumbers.NumberParseException:
        hint = "" if default_region else " (use E.164, e.g. +14155550123)"
        raise invalid_field(field, f"'{field}' is not a phone number{hint}.", "invalid_phone_number") from None
    if not phonenumbers.is_valid_number(number):
        raise invalid_field(field, f"'{field}' is not a valid phone number.", "invalid_phone_number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def require_allowed_destination(e164: str, prefixes: Iterable[str], countries: Iterable[str],
                                field: str = "to") -> None:
    """400 destination_not_allowed for premium-rate and shared-cost numbers (always), for the international
    networks and satellites (+870, +881, +882, +883…, region NON_GEOGRAPHIC) unless listed, for a number outside
    countries (ISO regions, when set) and for one that starts with none of prefixes (when set)."""
    import phonenumbers
    from phonenumbers import PhoneNumberType

    number = phonenumbers.parse(e164)
    if phonenumbers.number_type(number) in (PhoneNumberType.PREMIUM_RATE, PhoneNumberType.SHARED_COST):
        raise _not_allowed(field, "premium-rate and shared-cost numbers are never called or texted.")
    countries, prefixes = frozenset(countries), tuple(prefixes)
    region = phonenumbers.region_code_for_number(number)
    if region == NON_GEOGRAPHIC and not _listed(e164, number.country_code, prefixes, countries):
        raise _not_allowed(field, "international network and satellite numbers (+870, +881, +882, +883…) are "
                           "called or texted only when the allowed destinations list them.")
    if countries and region not in countries:
        raise _not_allowed(field, f"this service only reaches numbers in {', '.join(sorted(countries))}.")
    if prefixes and not e164.startswith(prefixes):
        raise _not_allowed(field, f"this service only reaches numbers starting with {', '.join(prefixes)}.")


def _listed(e164: str, country_code: int, prefixes: tuple[str, ...], countries: frozenset[str]) -> bool:
    """Whether the allowed destinations name this non-geographic number: NON_GEOGRAPHIC among the countries, or a
    prefix of it that spells out its whole country code (+881 or +8816 do, +8 does not)."""
    code = f"+{country_code}"
    return NON_GEOGRAPHIC in countries or any(e164.startswith(p) and p.startswith(code) for p in prefixes)


def _not_allowed(field: str, why: str) -> AppError:
    return AppError(400, "destination_not_allowed", f"Destination not allowed: {why}", field=field)


def canonical_caller(raw: str, default_region: str | None) -> str | None:
    """A caller as Twilio's From may carry it: E.164, a caller word ('anonymous', ...) or 'client:<identity>';
    None when raw is none of these."""
    value = raw.strip()
    if value.lower() in CALLER_WORDS:
        return value.lower()
    if value.startswith("client:") and len(value) > len("client:"):
        return value
    try:
        return to_e164(value, "number", default_region)
    except AppError:
        return None


def is_blocked(caller: str, blocked: frozenset[str], default_region: str | None) -> bool:
    """True when caller (Twilio's From) is one of the blocked entries (see canonical_caller)."""
    if not blocked or not caller:
        return False
    return canonical_caller(caller, default_region) in blocked


def mask(number: str | None) -> str:
    """Mask a phone number for logs: keep the '+', the first two and the last two digits."""
    if not number:
        return "-"
    digits = _DIGITS.findall(number)
    if len(digits) < 6:
        return "***"
    return ("+" if number.startswith("+") else "") + "".join(digits[:2]) + "*" * (len(digits) - 4) + "".join(digits[-2:])
