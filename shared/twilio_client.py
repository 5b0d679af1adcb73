"""The process-wide Twilio REST client (lazy, cached, fork-safe) and the mapping of every Twilio failure to AppError."""

from __future__ import annotations

import logging
import os
import threading
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Iterator

import requests
from twilio.base.exceptions import TwilioRestException, TwilioServiceException

from shared.channels import Channel
from shared.errors import AppError
from shared.settings import Settings
from shared.transport import RATE_LIMIT_DEFAULT_RETRY_AFTER, RateLimited, Transport, never_sent

if TYPE_CHECKING:
    from twilio.base.version import Version

logger = logging.getLogger("shared.twilio")

_lock = threading.Lock()
_cached: tuple[tuple[Any, ...], Version] | None = None
API_ORIGIN = "https://api.twilio.com"  # rewritten to TWILIO_API_BASE_URL by the Transport
HEADERS = {"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"}
CHECK_BEFORE_RETRYING = "The message or call may have been created: check before retrying."


def rest_api(settings: Settings) -> Version:
    """The process's one Twilio REST API client (the SDK's 2010-04-01 Version object), created on first use and
    again only when its settings change."""
    global _cached
    username, password, account_sid = settings.rest_credentials()
    key = (username, password, account_sid, settings.api_base_url, settings.http_timeout)
    with _lock:
        if _cached is None or _cached[0] != key:
            # The SDK's Client (auth, user agent) and Version (URLs, error parsing); going through client.messages
            # would also import every other 2010 resource module, a quarter of the cold start.
            from twilio.base.domain import Domain
            from twilio.base.version import Version
            from twilio.rest import Client

            client = Client(username, password, account_sid,
                            http_client=Transport(settings.http_timeout, settings.api_base_url))
            _cached = (key, Version(Domain(client, API_ORIGIN), "2010-04-01"))
        return _cached[1]


def _forget_client_in_child() -> None:
    """A forked child must not share the parent's keep-alive socket: each side could read the other's answer."""
    global _cached, _lock
    _cached = None
    _lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_client_in_child)


class BadResponse(Exception):
    """Twilio answered success with a body that is not the resource (HTML, a list, no SID, cut off)."""


def create(settings: Settings, channel: Channel, params: dict[str, Any]) -> dict[str, Any]:
    """POST a new 2010-04-01 resource of the channel with Twilio's parameter names; its JSON.
    Sent once: a 5xx, a timeout or a reset is never retried (the resource may exist already)."""
    version = rest_api(settings)
    account_sid = version.domain.twilio.account_sid
    data = {name: value for name, value in params.items() if value is not None}
    try:
        created = version.create("POST", f"/Accounts/{account_sid}/{channel.resource}.json", data=data,
                                 headers=dict(HEADERS))
    except ValueError:  # the SDK's json.loads of a 2xx body
        raise BadResponse("not JSON") from None
    sid = created.get("sid") if isinstance(created, dict) else None
    if not (isinstance(sid, str) and sid.startswith(channel.sid_prefixes)):
        raise BadResponse("no SID")
    return created


def fetch(settings: Settings, channel: Channel, sid: str) -> dict[str, Any]:
    """GET one 2010-04-01 resource of the channel by SID; its JSON."""
    version = rest_api(settings)
    account_sid = version.domain.twilio.account_sid
    try:
        found = version.fetch("GET", f"/Accounts/{account_sid}/{channel.resource}/{sid}.json", headers=dict(HEADERS))
    except ValueError:
        raise BadResponse("not JSON") from None
    if not isinstance(found, dict) or found.get("sid") != sid:
        raise BadResponse("not the resource")
    return found


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
