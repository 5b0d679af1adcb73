"""The process-wide Twilio REST client: lazy, cached, bounded by a timeout, and its errors mapped to AppError."""

from __future__ import annotations

import logging
import random
import threading
import time
from contextlib import contextmanager
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any, Iterator
from urllib.parse import urlsplit

import requests
from twilio.base.exceptions import TwilioRestException, TwilioServiceException
from twilio.http import HttpClient
from twilio.http.response import Response
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError

from shared.errors import AppError
from shared.settings import Settings

if TYPE_CHECKING:
    from twilio.base.version import Version

logger = logging.getLogger("shared.twilio")

MAX_ATTEMPTS = 3  # 1 try + 2 retries, only where Twilio cannot have acted: HTTP 429 and connect failures
BACKOFF_BASE_SECONDS = 0.2
RATE_LIMIT_DEFAULT_RETRY_AFTER = "1"


class RateLimited(Exception):
    """Twilio answered 429 and no retry fits in the time budget."""

    def __init__(self, retry_after: str):
        super().__init__("Twilio rate limit")
        self.retry_after = retry_after


class Transport(HttpClient):
    """Twilio SDK HTTP client: keep-alive session, total time budget, optional origin rewrite, safe retries."""

    def __init__(self, timeout: float, base_url: str | None):
        # The SDK's own request logging would log phone numbers and bodies; this transport logs none of it.
        super().__init__(logger, is_async=False, timeout=timeout)
        self.base_url = base_url
        self.session = requests.Session()
        self.sleep = time.sleep  # replaced in tests that count backoff

    def _rewrite(self, url: str) -> str:
        if not self.base_url:
            return url
        parts = urlsplit(url)
        return self.base_url + parts.path + (f"?{parts.query}" if parts.query else "")

    def request(self, method, url, params=None, data=None, headers=None, auth=None, timeout=None,
                allow_redirects=False) -> Response:
        budget = timeout or self.timeout
        deadline = time.monotonic() + budget
        prepared = self.session.prepare_request(requests.Request(
            method=method.upper(), url=self._rewrite(url), params=params, data=data, headers=headers, auth=auth))
        for attempt in range(1, MAX_ATTEMPTS + 1):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise requests.exceptions.ReadTimeout("Twilio time budget used up")
            try:
                response = self.session.send(prepared, timeout=remaining, allow_redirects=allow_redirects,
                                             **self._environment(prepared.url))
            except requests.exceptions.ConnectionError as exc:
                if attempt == MAX_ATTEMPTS or not _never_sent(exc) or not self._backoff(attempt, deadline, None):
                    raise
                logger.warning("Twilio connection failed before sending (attempt %d); retrying", attempt)
                continue
            if response.status_code == 429:
                retry_after = response.headers.get("Retry-After")
                if attempt == MAX_ATTEMPTS or not self._backoff(attempt, deadline, retry_after):
                    raise RateLimited(retry_after or RATE_LIMIT_DEFAULT_RETRY_AFTER)
                logger.warning("Twilio rate limit (attempt %d); retrying", attempt)
                continue
            return Response(response.status_code, response.text, response.headers)
        raise AssertionError("unreachable")

    def _environment(self, url: str) -> dict[str, Any]:
        """Proxy and CA-bundle settings from the environment (HTTPS_PROXY, REQUESTS_CA_BUNDLE), as requests does."""
        return self.session.merge_environment_settings(url, {}, None, None, None)

    def _backoff(self, attempt: int, deadline: float, retry_after: str | None) -> bool:
        """Sleep before the next attempt if it and a useful share of the budget fit; False when it does not."""
        delay = BACKOFF_BASE_SECONDS * (2 ** (attempt - 1)) * random.uniform(0.5, 1.0)
        wanted = _seconds(retry_after)
        if wanted is not None:
            delay = max(delay, wanted)
        if time.monotonic() + delay >= deadline - 0.1:
            return False
        self.sleep(delay)
        return True


def _never_sent(exc: requests.exceptions.ConnectionError) -> bool:
    """True when the connection failed before any byte of the request went out (refused, DNS, connect timeout)."""
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return True
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return isinstance(reason, (NewConnectionError, ConnectTimeoutError))


def _seconds(retry_after: str | None) -> float | None:
    if not retry_after:
        return None
    try:
        return max(0.0, float(retry_after))
    except ValueError:
        try:
            return max(0.0, parsedate_to_datetime(retry_after).timestamp() - time.time())
        except (TypeError, ValueError):
            return None


_lock = threading.Lock()
_cached: tuple[tuple[Any, ...], Version] | None = None
API_ORIGIN = "https://api.twilio.com"  # rewritten to TWILIO_API_BASE_URL by the Transport
HEADERS = {"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"}


def api_v2010(settings: Settings) -> Version:
    """The process's one Twilio client (as the SDK's 2010-04-01 API version), created on first use and again
    only when its settings change."""
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


def create(settings: Settings, resource: str, params: dict[str, Any]) -> dict[str, Any]:
    """POST a new 2010-04-01 resource ("Messages", "Calls") with Twilio's parameter names; its JSON.
    Sent once: a 5xx, a timeout or a reset is never retried (the resource may exist already)."""
    version = api_v2010(settings)
    account_sid = version.domain.twilio.account_sid
    data = {name: value for name, value in params.items() if value is not None}
    return version.create("POST", f"/Accounts/{account_sid}/{resource}.json", data=data, headers=dict(HEADERS))


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
    except requests.exceptions.Timeout:
        raise AppError(504, "twilio_timeout", "Twilio did not answer in time. The request may still have "
                       "been carried out: check before retrying.") from None
    except requests.exceptions.RequestException as exc:
        logger.warning("Twilio unreachable: %s", type(exc).__name__)
        raise AppError(502, "twilio_unreachable", "Could not reach Twilio; try again later.") from None


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
    if status == 429 or code == 20429:
        return AppError(429, "rate_limited", "Twilio is rate limiting this account; retry later.",
                        twilio_code=code, more_info=more_info, headers={"Retry-After": RATE_LIMIT_DEFAULT_RETRY_AFTER})
    if status in (401, 403) or code in CREDENTIAL_CODES:
        return AppError(502, "twilio_auth_failed", "Twilio rejected this service's credentials; the operator "
                        "must check TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN or the API key.", twilio_code=code)
    if status >= 500:
        return AppError(502, "twilio_unavailable", "Twilio had an internal error; the request was not retried "
                        "because it may already have been carried out.", twilio_code=code)
    if status == 404:
        return AppError(502, "twilio_error", "Twilio did not find the account or resource; the operator must "
                        "check TWILIO_ACCOUNT_SID and TWILIO_API_BASE_URL.", twilio_code=code)
    return AppError(422, "twilio_rejected", f"Twilio rejected the request: {detail}", twilio_code=code,
                    more_info=more_info)
