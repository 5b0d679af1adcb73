"""The public URL of a request as Twilio (or a mobile app) used it, honouring PUBLIC_BASE_URL and proxy headers."""

from __future__ import annotations

from urllib.parse import SplitResult, urlsplit

import azure.functions as func


def public_origin(req: func.HttpRequest, public_base_url: str | None) -> str:
    """PUBLIC_BASE_URL if set, else scheme://host of the request with X-Forwarded-Proto/-Host applied."""
    return _origin(req, urlsplit(req.url), public_base_url)


def public_url(req: func.HttpRequest, public_base_url: str | None) -> str:
    """The full URL Twilio requested: public origin + path + the original (raw, unreordered) query string."""
    parts = urlsplit(req.url)
    query = f"?{parts.query}" if parts.query else ""
    return _origin(req, parts, public_base_url) + parts.path + query


def _origin(req: func.HttpRequest, parts: SplitResult, public_base_url: str | None) -> str:
    if public_base_url:
        return public_base_url
    scheme = _first(req.headers.get("x-forwarded-proto")) or parts.scheme
    host = _first(req.headers.get("x-forwarded-host")) or parts.netloc
    return f"{scheme.lower()}://{host}"


def _first(header: str | None) -> str:
    """First value of a comma-separated proxy header ('https,https' -> 'https')."""
    return (header or "").split(",")[0].strip()
