"""Twilio error codes, error bodies and test-credential magic numbers (data only)."""

from __future__ import annotations

from typing import Any, Final

API_VERSION: Final = "2010-04-01"
MORE_INFO_BASE: Final = "https://www.twilio.com/docs/errors/"

# Sender that always succeeds with Twilio test credentials.
ALWAYS_VALID_FROM: Final = "+15005550006"

# code -> (HTTP status, message template); templates may use {to}, {from_}, {path}.
ERRORS: Final[dict[int, tuple[int, str]]] = {
    20001: (400, "Invalid request"),
    20003: (401, "Authenticate"),
    20004: (405, "Method not allowed"),
    20005: (403, "Account not active"),
    20404: (404, "The requested resource {path} was not found"),
    20429: (429, "Too Many Requests"),
    20500: (500, "An internal server error has occurred"),
    20503: (503, "Service unavailable"),
    21201: (400, "No 'To' number is specified"),
    21205: (400, "Url is not a valid URL"),
    21210: (400, "The source phone number provided, {from_}, is not yet verified for your account."),
    21212: (400, "The 'From' number {from_} is not a valid phone number, shortcode, or alphanumeric sender ID."),
    21213: (400, "No 'From' number is specified"),
    21214: (400, "'To' phone number cannot be reached"),
    21215: (400, "Account not authorized to call {to}. Perhaps you need to enable some international permissions."),
    21216: (400, "Account not allowed to call {to}"),
    21217: (400, "Phone number does not appear to be valid"),
    21211: (400, "The 'To' number {to} is not a valid phone number."),
    21408: (400, "Permission to send an SMS has not been enabled for the region indicated by the 'To' number: {to}."),
    21602: (400, "Message body is required."),
    21603: (400, "A 'From' phone number is required."),
    21604: (400, "A 'To' phone number is required."),
    21606: (
        400,
        "The 'From' phone number provided ({from_}) is not a valid message-capable "
        "Twilio phone number for this destination/account.",
    ),
    21610: (400, "Attempt to send to unsubscribed recipient"),
    21611: (400, "This 'From' number has exceeded the maximum number of queued messages"),
    21612: (
        400,
        "The 'To' phone number: {to}, is not currently reachable using the 'From' phone number: {from_} via SMS.",
    ),
    21617: (400, "The concatenated message body exceeds the 1600 character limit."),
    21614: (400, "'To' number is not a valid mobile number"),
    # Webhook (TwiML fetch) errors; the HTTP status here is unused.
    11200: (502, "HTTP retrieval failure"),
    12100: (502, "Document parse failure"),
    12300: (502, "Invalid Content-Type"),
}

# Test-credential magic numbers (https://www.twilio.com/docs/iam/test-credentials).
MESSAGE_TO_ERRORS: Final[dict[str, int]] = {
    "+15005550001": 21211,
    "+15005550002": 21612,
    "+15005550003": 21408,
    "+15005550004": 21610,
    "+15005550009": 21614,
}
MESSAGE_FROM_ERRORS: Final[dict[str, int]] = {
    "+15005550001": 21212,
    "+15005550007": 21606,
    "+15005550008": 21611,
}
CALL_TO_ERRORS: Final[dict[str, int]] = {
    "+15005550001": 21217,
    "+15005550002": 21214,
    "+15005550003": 21215,
    "+15005550004": 21216,
}
CALL_FROM_ERRORS: Final[dict[str, int]] = {
    "+15005550001": 21212,
    "+15005550007": 21210,
}

# Default Twilio error code used when a "status" fault has no explicit body.
STATUS_DEFAULT_CODES: Final[dict[int, int]] = {
    400: 20001,
    401: 20003,
    403: 20005,
    404: 20404,
    405: 20004,
    429: 20429,
    500: 20500,
    503: 20503,
}


def more_info(code: int) -> str:
    """Return Twilio's documentation URL for an error code."""
    return f"{MORE_INFO_BASE}{code}"


def error_body(
    code: int,
    *,
    status: int | None = None,
    message: str | None = None,
    to: str = "",
    from_: str = "",
    path: str = "",
) -> dict[str, Any]:
    """Build a Twilio REST error payload: code, message, more_info, status."""
    default_status, template = ERRORS.get(code, (status or 400, "Error"))
    text = message if message is not None else template.format(to=to, from_=from_, path=path)
    return {
        "code": code,
        "message": text,
        "more_info": more_info(code),
        "status": status if status is not None else default_status,
    }


def webhook_error(code: int, detail: str = "") -> dict[str, Any]:
    """Build the record of a Twilio debugger error raised by a webhook fetch."""
    _, message = ERRORS[code]
    return {"code": code, "message": message, "more_info": more_info(code), "detail": detail}


def status_fault_body(status: int) -> dict[str, Any]:
    """Default Twilio-shaped error body for an injected HTTP status."""
    fallback = 20500 if status >= 500 else 20001
    code = STATUS_DEFAULT_CODES.get(status, fallback)
    body = error_body(code, status=status, path="")
    if code == 20404:
        body["message"] = "The requested resource was not found"
    return body
