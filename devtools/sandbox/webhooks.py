"""Outbound signed HTTP requests to the app, made the way Twilio makes them."""

from __future__ import annotations

import contextlib
import http.client
import socket
import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

from twilio.request_validator import RequestValidator  # type: ignore[import-untyped]

USER_AGENT = "TwilioProxy/1.1"
MAX_BODY_BYTES = 256 * 1024  # read at most this much of a reply


@dataclass
class WebhookResult:
    """What came back from one outbound request (status None = transport failure)."""

    url: str
    method: str
    params: dict[str, str]
    status: int | None = None
    content_type: str | None = None
    body: str = ""
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-serialisable view for the activity log."""
        return {
            "url": self.url,
            "method": self.method,
            "params": dict(self.params),
            "status": self.status,
            "content_type": self.content_type,
            "body": self.body,
            "error": self.error,
        }


def signed_request_parts(auth_token: str, url: str, params: Mapping[str, str], method: str) -> tuple[str, bytes, str]:
    """Return (request URL, body, X-Twilio-Signature) for a Twilio webhook request."""
    if method.upper() == "GET":
        query = urlencode(list(params.items()))
        full = url if not query else f"{url}{'&' if urlsplit(url).query else '?'}{query}"
        return full, b"", RequestValidator(auth_token).compute_signature(full, {})
    body = urlencode(list(params.items())).encode("utf-8")
    return url, body, RequestValidator(auth_token).compute_signature(url, dict(params))


class WebhookSender:
    """Sends signed form requests; in-flight requests can be aborted on shutdown."""

    def __init__(self, auth_token: str, *, timeout: float = 5.0) -> None:
        self._auth_token = auth_token
        self._timeout = timeout
        self._lock = threading.Lock()
        self._open: set[http.client.HTTPConnection] = set()
        self._closed = False

    def send(self, url: str, params: Mapping[str, str], method: str = "POST") -> WebhookResult:
        """Make one request and return its outcome (never raises for network errors)."""
        method = (method or "POST").upper()
        if method not in ("GET", "POST"):
            method = "POST"
        clean = {str(k): str(v) for k, v in params.items()}
        result = WebhookResult(url=url, method=method, params=clean)
        try:
            target, body, signature = signed_request_parts(self._auth_token, url, clean, method)
        except Exception as exc:  # e.g. a non-str URL
            result.error = f"cannot sign request: {exc}"
            return result
        parts = urlsplit(target)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            result.error = f"unsupported URL {url!r}"
            return result
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": signature,
            "I-Twilio-Idempotency-Token": str(uuid.uuid4()),
            "User-Agent": USER_AGENT,
            "Accept": "*/*",
            "Cache-Control": "max-age=259200",
        }
        conn_type = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        conn = conn_type(parts.hostname, parts.port, timeout=self._timeout)
        if not self._register(conn):
            result.error = "sandbox stopped"
            return result
        path = parts.path or "/"
        if parts.query:
            path = f"{path}?{parts.query}"
        try:
            conn.request(method, path, body=body if method == "POST" else None, headers=headers)
            response = conn.getresponse()
            raw = response.read(MAX_BODY_BYTES)
            result.status = response.status
            result.content_type = response.getheader("Content-Type")
            result.body = raw.decode(_charset(result.content_type), "replace")
        except (OSError, http.client.HTTPException) as exc:
            result.error = "aborted: sandbox stopped" if self._closed else f"{type(exc).__name__}: {exc}"
        finally:
            self._unregister(conn)
            conn.close()
        return result

    def abort_all(self) -> None:
        """Refuse new requests and break every in-flight one."""
        with self._lock:
            self._closed = True
            pending = list(self._open)
        for conn in pending:
            sock = conn.sock
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def _register(self, conn: http.client.HTTPConnection) -> bool:
        with self._lock:
            if self._closed:
                return False
            self._open.add(conn)
            return True

    def _unregister(self, conn: http.client.HTTPConnection) -> None:
        with self._lock:
            self._open.discard(conn)


def _charset(content_type: str | None) -> str:
    for part in (content_type or "").split(";")[1:]:
        name, _, value = part.strip().partition("=")
        if name.lower() == "charset" and value:
            candidate = value.strip('"')
            try:
                "".encode(candidate)
                return candidate
            except LookupError:
                break
    return "utf-8"
