"""Builders for Twilio-shaped Message and Call resources and list pages."""

from __future__ import annotations

import math
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any
from urllib.parse import quote

from .errors import API_VERSION

# GSM 03.38 basic character set plus the extension table (escape-coded, 2 septets).
_GSM_BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM_EXTENDED = "^{}\\[~]|€\f"

Resource = dict[str, Any]


def new_sid(prefix: str) -> str:
    """Return a Twilio-style SID: two-letter prefix + 32 lowercase hex digits."""
    return prefix + uuid.uuid4().hex


def utcnow() -> datetime:
    """Current time in UTC (seconds precision, like Twilio)."""
    return datetime.now(UTC).replace(microsecond=0)


def rfc2822(moment: datetime) -> str:
    """Format a datetime as Twilio does: RFC 2822 in GMT."""
    return format_datetime(moment.astimezone(UTC), usegmt=True)


def count_segments(body: str) -> int:
    """Number of SMS segments needed for a body (GSM-7 or UCS-2)."""
    if not body:
        return 1
    if all(ch in _GSM_BASIC or ch in _GSM_EXTENDED for ch in body):
        septets = sum(2 if ch in _GSM_EXTENDED else 1 for ch in body)
        return 1 if septets <= 160 else math.ceil(septets / 153)
    units = len(body.encode("utf-16-le")) // 2
    return 1 if units <= 70 else math.ceil(units / 67)


def _first(form: Mapping[str, Sequence[str]], key: str) -> str | None:
    values = form.get(key)
    return values[0] if values else None


def format_number(number: str | None) -> str | None:
    """Display format Twilio uses for *_formatted fields (NANP numbers only)."""
    if number and number.startswith("+1") and len(number) == 12 and number[1:].isdigit():
        return f"({number[2:5]}) {number[5:8]}-{number[8:]}"
    return number


def account_path(account_sid: str) -> str:
    """Base path of the 2010-04-01 account."""
    return f"/{API_VERSION}/Accounts/{account_sid}"


def build_message(
    account_sid: str,
    *,
    to: str,
    from_: str | None,
    body: str,
    media_urls: Sequence[str] = (),
    messaging_service_sid: str | None = None,
    direction: str = "outbound-api",
    status: str = "queued",
    sandbox: Mapping[str, Any] | None = None,
) -> Resource:
    """Create a Message resource dict shaped like Twilio's JSON."""
    sid = new_sid("SM")
    now = rfc2822(utcnow())
    uri = f"{account_path(account_sid)}/Messages/{sid}"
    return {
        "account_sid": account_sid,
        "api_version": API_VERSION,
        "body": body,
        "date_created": now,
        "date_sent": None,
        "date_updated": now,
        "direction": direction,
        "error_code": None,
        "error_message": None,
        "from": from_,
        "messaging_service_sid": messaging_service_sid,
        "num_media": str(len(media_urls)),
        "num_segments": "0" if from_ is None else str(count_segments(body)),
        "price": None,
        "price_unit": "USD",
        "sid": sid,
        "status": status,
        "subresource_uris": {"media": f"{uri}/Media.json", "feedback": f"{uri}/Feedback.json"},
        "to": to,
        "uri": f"{uri}.json",
        "sandbox": {"media_urls": list(media_urls), **(sandbox or {})},
    }


def build_call(
    account_sid: str,
    *,
    to: str,
    from_: str,
    direction: str = "outbound-api",
    sandbox: Mapping[str, Any] | None = None,
) -> Resource:
    """Create a Call resource dict shaped like Twilio's JSON."""
    sid = new_sid("CA")
    now = rfc2822(utcnow())
    uri = f"{account_path(account_sid)}/Calls/{sid}"
    subresources = {
        name: f"{uri}/{path}.json"
        for name, path in (
            ("feedback", "Feedback"),
            ("user_defined_messages", "UserDefinedMessages"),
            ("notifications", "Notifications"),
            ("recordings", "Recordings"),
            ("streams", "Streams"),
            ("payments", "Payments"),
            ("user_defined_message_subscriptions", "UserDefinedMessageSubscriptions"),
            ("siprec", "Siprec"),
            ("events", "Events"),
            ("feedback_summaries", "FeedbackSummary"),
        )
    }
    return {
        "account_sid": account_sid,
        "annotation": None,
        "answered_by": None,
        "api_version": API_VERSION,
        "caller_name": None,
        "date_created": now,
        "date_updated": now,
        "direction": direction,
        "duration": None,
        "end_time": None,
        "forwarded_from": None,
        "from": from_,
        "from_formatted": format_number(from_),
        "group_sid": None,
        "parent_call_sid": None,
        "phone_number_sid": None,
        "price": None,
        "price_unit": "USD",
        "queue_time": "0",
        "sid": sid,
        "start_time": None,
        "status": "queued",
        "subresource_uris": subresources,
        "to": to,
        "to_formatted": format_number(to),
        "trunk_sid": None,
        "uri": f"{uri}.json",
        "sandbox": dict(sandbox or {}),
    }


def public(resource: Mapping[str, Any]) -> Resource:
    """The resource as the REST API returns it (sandbox bookkeeping removed)."""
    return {key: value for key, value in resource.items() if key != "sandbox"}


def list_page(
    *,
    key: str,
    list_path: str,
    records: Sequence[Mapping[str, Any]],
    query: Mapping[str, Sequence[str]],
) -> Resource:
    """A 2010-04-01 list page (newest first, Page/PageSize pagination)."""
    page_size = _bounded_int(_first(query, "PageSize"), default=50, low=1, high=1000)
    page = _bounded_int(_first(query, "Page"), default=0, low=0, high=10**6)
    ordered = list(reversed(records))
    start = page * page_size
    chunk = ordered[start : start + page_size]
    filters = "".join(
        f"&{name}={quote(value, safe='')}" for name in ("To", "From", "Status") for value in query.get(name, [])[:1]
    )

    def page_uri(number: int) -> str:
        return f"{list_path}?PageSize={page_size}&Page={number}{filters}"

    has_next = start + page_size < len(ordered)
    return {
        key: [public(record) for record in chunk],
        "end": start + max(len(chunk) - 1, 0),
        "first_page_uri": page_uri(0),
        "next_page_uri": (page_uri(page + 1) + f"&PageToken=PA{key}{page + 1}") if has_next else None,
        "page": page,
        "page_size": page_size,
        "previous_page_uri": page_uri(page - 1) if page > 0 else None,
        "start": start,
        "uri": page_uri(page),
    }


def _bounded_int(raw: str | None, *, default: int, low: int, high: int) -> int:
    try:
        value = int(raw) if raw is not None else default
    except ValueError:
        value = default
    return min(max(value, low), high)
