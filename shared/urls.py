"""The app's public origin, never a request header: the base of every URL Twilio is given or signs."""

from __future__ import annotations

from urllib.parse import urlsplit

import azure.functions as func

from shared.settings import Settings, SettingsError


def public_origin(req: func.HttpRequest, settings: Settings) -> str:
    """PUBLIC_BASE_URL, else https://WEBSITE_HOSTNAME (Azure sets it), else, for local development, the scheme and
    host of the request URL. Never a request header: whoever holds the mobile function key would choose the server
    Twilio asks for the call's TwiML."""
    if settings.public_base_url:
        return settings.public_base_url
    if settings.website_hostname:
        return "https://" + settings.website_hostname
    parts = urlsplit(req.url)
    try:
        parts.port  # noqa: B018 - raises ValueError for a Host header with a bad port
    except ValueError:
        raise SettingsError(missing=("PUBLIC_BASE_URL",)) from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SettingsError(missing=("PUBLIC_BASE_URL",))
    return f"{parts.scheme}://{parts.netloc}"


def public_hostnames(settings: Settings) -> frozenset[str]:
    """The host names the settings give the app's public origin (PUBLIC_BASE_URL's and WEBSITE_HOSTNAME's, both
    reach it), lower case; none when neither is set."""
    origins = (settings.public_base_url, settings.website_hostname and "//" + settings.website_hostname)
    return frozenset(urlsplit(origin).hostname.rstrip(".") for origin in origins if origin)  # type: ignore[union-attr]


def signed_url_candidates(req: func.HttpRequest, settings: Settings) -> list[str]:
    """The URL Twilio requested: public origin + path + the raw query; plus, when X-Forwarded-Proto names the
    other scheme, the same URL with that scheme (a wrong guess only ever fails validation)."""
    parts = urlsplit(req.url)
    url = public_origin(req, settings) + parts.path + (f"?{parts.query}" if parts.query else "")
    proto = (req.headers.get("x-forwarded-proto") or "").split(",")[0].strip().lower()
    scheme = url.split(":", 1)[0]
    if proto in ("http", "https") and proto != scheme:
        return [url, proto + url[len(scheme):]]
    return [url]


STATUS_CALLBACK_PATH = "/api/status_callback"
VOICE_WEBHOOK_PATH = "/api/voice_webhook"


def status_callback_url(settings: Settings) -> str | None:
    """Where Twilio posts a send's status callbacks: only a public origin the settings name, never the request's
    (with neither PUBLIC_BASE_URL nor WEBSITE_HOSTNAME, Twilio could not reach it anyway)."""
    if settings.public_base_url:
        return settings.public_base_url + STATUS_CALLBACK_PATH
    if settings.website_hostname:
        return f"https://{settings.website_hostname}{STATUS_CALLBACK_PATH}"
    return None
