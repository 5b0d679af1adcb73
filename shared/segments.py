"""SMS segments as Twilio counts them: GSM-7 160 characters alone, 153 a part; otherwise UCS-2 70, 67 a part."""

from __future__ import annotations

# The GSM 03.38 default alphabet; the extension table's characters take two septets (an escape and the character).
GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà")
GSM7_EXTENDED = frozenset("^{}\\[~]|€\f")


def segments(body: str | None) -> int:
    """How many segments Twilio bills and paces `body` as (an empty body, as for MMS media alone, is 1)."""
    text = body or ""
    if all(ch in GSM7_BASIC or ch in GSM7_EXTENDED for ch in text):
        units, single, part = sum(2 if ch in GSM7_EXTENDED else 1 for ch in text), 160, 153
    else:
        units, single, part = sum(2 if ord(ch) > 0xFFFF else 1 for ch in text), 70, 67  # UTF-16 code units
    return 1 if units <= single else -(-units // part)
