"""Every way a Twilio REST call can fail, mapped to the documented AppError."""

from __future__ import annotations

import logging
from contextlib import contextmanager
from typing import Iterator

import requests
from twilio.base.exceptions import TwilioRestException, TwilioServiceException

from shared.errors import AppError
from shared.transport import RATE_LIMIT_DEFAULT_RETRY_AFTER, RateLimited, never_sent

logger = logging.getLogger("shared.twilio")

CHECK_BEFORE_RETRYING = "The message or call may have been created: check before retrying."


class BadResponse(Exception):
    """Twilio answered success with a body that is not the resource (HTML, a list, no SID, cut off)."""


CREDENTIAL_CODES = {20003, 20005, 20006}


@contextmanager
def twilio_errors() -> Iterator[None]:
    """Translate every way a Twilio REST call can fail into the documented AppError."""
    try:
        yield
    except RateLimited as exc:
        raise AppError(429, "rate_limited", "Twilio is rate limiting this account; retry after the given delay.",
                       headers={"Retry-After": exc.retry_after}) from None
    except (TwilioRestException, TwilioServiceException) as exc:
        raise _from_twilio(exc) from None
    except BadResponse as exc:
        logger.warning("Twilio answered success with an unexpected body (%s)", exc)
        raise _bad_response() from None
    except requests.exceptions.ConnectionError as exc:
        logger.warning("Twilio connection failed: %s", type(exc).__name__)
        if never_sent(exc):
            raise AppError(502, "twilio_unreachable", "Could not reach Twilio; try again later.") from None
        raise AppError(502, "twilio_connection_lost", "The connection to Twilio was lost after the request was "
                       "sent. " + CHECK_BEFORE_RETRYING, final=True) from None
    except requests.exceptions.Timeout:
        raise AppError(504, "twilio_timeout", "Twilio did not answer in time. The request may still have "
                       "been carried out: check before retrying.", final=True) from None
    except requests.exceptions.RequestException as exc:  # e.g. a body cut off mid-way (ChunkedEncodingError)
        logger.warning("Twilio answer unreadable: %s", type(exc).__name__)
        raise AppError(502, "twilio_connection_lost", "Twilio's answer was cut off. " + CHECK_BEFORE_RETRYING,
                       final=True) from None


def _bad_response() -> AppError:
    return AppError(502, "twilio_bad_response", "Twilio's answer could not be understood. " + CHECK_BEFORE_RETRYING,
                    final=True)


def _from_twilio(exc: TwilioRestException | TwilioServiceException) -> AppError:
    status = exc.status
    code = exc.code if isinstance(exc.code, int) and exc.code != status else None
    if isinstance(exc, TwilioServiceException):
        detail = exc.detail or exc.title
        more_info = exc.type if str(exc.type).startswith("http") else None
    else:
        detail = str(exc.msg).split(": ", 1)[-1]
        more_info = f"https://www.twilio.com/docs/errors/{code}" if code else None
    logger.warning("Twilio answered %s (code %s)", status, code)
    if status < 400:  # a redirect or other non-error status the API never sends for a create
        return _bad_response()
    if status == 429 or code == 20429:
        return AppError(429, "rate_limited", "Twilio is rate limiting this account; retry later.",
                        twilio_code=code, more_info=more_info, headers={"Retry-After": RATE_LIMIT_DEFAULT_RETRY_AFTER})
    if status in (401, 403) or code in CREDENTIAL_CODES:
        return AppError(502, "twilio_auth_failed", "Twilio rejected this service's credentials; the operator "
                        "must check TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN or the API key.", twilio_code=code)
    if status >= 500:
        return AppError(502, "twilio_unavailable", "Twilio had an internal error; the request was not retried "
                        "because it may already have been carried out.", twilio_code=code, final=True)
    if status == 404:
        return AppError(502, "twilio_error", "Twilio did not find the account or resource; the operator must "
                        "check TWILIO_ACCOUNT_SID and TWILIO_API_BASE_URL.", twilio_code=code)
    return AppError(422, "twilio_rejected", f"Twilio rejected the request: {detail}", twilio_code=code,
                    more_info=more_info, final=True)
