"""HTTP transport for the Twilio SDK: one keep-alive session, a total time budget, retries only where safe."""

from __future__ import annotations

import logging
import random
import time
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from twilio.http import HttpClient
from twilio.http.response import Response
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError

from shared.watchdog import Deadline, WatchedHTTPPool, WatchedHTTPSPool

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
        adapter = HTTPAdapter()
        adapter.poolmanager.pool_classes_by_scheme = {"http": WatchedHTTPPool, "https": WatchedHTTPSPool}
        for prefix in ("http://", "https://"):
            self.session.mount(prefix, adapter)

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
                with Deadline(remaining) as watchdog:
                    response = self._send(prepared, remaining, allow_redirects, watchdog)
            except requests.exceptions.ConnectionError as exc:
                if attempt == MAX_ATTEMPTS or not never_sent(exc) or not self._backoff(attempt, deadline, None):
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

    def _send(self, prepared: requests.PreparedRequest, remaining: float, allow_redirects: bool,
              watchdog: Deadline) -> requests.Response:
        """One exchange, body included; an answer the watchdog cut short (an error, or a truncated response the
        HTTP stack did not notice) is a ReadTimeout."""
        try:
            response = self.session.send(prepared, timeout=remaining, allow_redirects=allow_redirects,
                                         **self._environment(prepared.url))
        except (requests.exceptions.RequestException, OSError):
            if watchdog.expired:
                raise requests.exceptions.ReadTimeout("Twilio time budget used up mid-answer") from None
            raise
        if watchdog.expired:
            raise requests.exceptions.ReadTimeout("Twilio time budget used up mid-answer")
        return response

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
        time.sleep(delay)
        return True


def never_sent(exc: requests.exceptions.ConnectionError) -> bool:
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
