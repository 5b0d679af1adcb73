"""Twilio error codes, error bodies and the test-credential magic numbers (data only)."""

from __future__ import annotations

from typing import Any, Final

API_VERSION: Final = "2010-04-01"
ALWAYS_VALID_FROM: Final = "+15005550006"  # the magic sender that always succeeds
DOCS: Final = "https://www.twilio.com/docs/errors"  # an error's documentation: DOCS/code

# code -> (HTTP status, message template); templates may use {to}, {from_} and {path}.
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
    21211: (400, "The 'To' number {to} is not a valid phone number."),
    21212: (400, "The 'From' number {from_} is not a valid phone number, shortcode, or alphanumeric sender ID."),
    21213: (400, "No 'From' number is specified"),
    21214: (400, "'To' phone number cannot be reached"),
    21215: (400, "Account not authorized to call {to}. Perhaps you need to enable some international permissions."),
    21216: (400, "Account not allowed to call {to}"),
    21217: (400, "Phone number does not appear to be valid"),
    21408: (400, "Permission to send an SMS has not been enabled for the region indicated by the 'To' number: {to}."),
    21602: (400, "Message body is required."),
    21603: (400, "A 'From' phone number is required."),
    21604: (400, "A 'To' phone number is required."),
    21606: (400, "The 'From' phone number provided ({from_}) is not a valid message-capable Twilio phone number "
                 "for this destination/account."),
    21610: (400, "Attempt to send to unsubscribed recipient"),
    21611: (400, "This 'From' number has exceeded the maximum number of queued messages"),
    21612: (400, "The 'To' phone number: {to}, is not currently reachable using the 'From' phone number: {from_} "
                 "via SMS."),
    21614: (400, "'To' number is not a valid mobile number"),
    21617: (400, "The concatenated message body exceeds the 1600 character limit."),
    # Webhook (TwiML fetch) failures, reported in the activity log, never as REST answers.
    11200: (502, "HTTP retrieval failure"),
    12100: (502, "Document parse failure"),
    12300: (502, "Invalid Content-Type"),
}

# https://www.twilio.com/docs/iam/test-credentials: number -> error code.
MESSAGE_TO_ERRORS: Final = {"+15005550001": 21211, "+15005550002": 21612, "+15005550003": 21408,
                            "+15005550004": 21610, "+15005550009": 21614}
MESSAGE_FROM_ERRORS: Final = {"+15005550001": 21212, "+15005550007": 21606, "+15005550008": 21611}
CALL_TO_ERRORS: Final = {"+15005550001": 21217, "+15005550002": 21214, "+15005550003": 21215, "+15005550004": 21216}
CALL_FROM_ERRORS: Final = {"+15005550001": 21212, "+15005550007": 21210}

# The Twilio code a "status" fault without a body reports for its HTTP status.
STATUS_CODES: Final = {400: 20001, 401: 20003, 403: 20005, 404: 20404, 405: 20004, 429: 20429, 500: 20500, 503: 20503}


def error_body(code: int, *, status: int | None = None, to: str = "", from_: str = "",
               path: str = "") -> dict[str, Any]:
    """A Twilio REST error payload: code, message, more_info, status."""
    default_status, template = ERRORS.get(code, (400, "Error"))
    message = template.format(to=to, from_=from_, path=path).replace("resource  was", "resource was")
    return {"code": code, "message": message, "more_info": f"{DOCS}/{code}", "status": status or default_status}


def status_body(status: int) -> dict[str, Any]:
    """The Twilio-shaped error body for an injected HTTP status."""
    return error_body(STATUS_CODES.get(status, 20500 if status >= 500 else 20001), status=status)


def webhook_error(code: int, detail: str) -> dict[str, Any]:
    """The record of a Twilio debugger error raised by a webhook request."""
    return {"code": code, "message": ERRORS[code][1], "more_info": f"{DOCS}/{code}", "detail": detail}
