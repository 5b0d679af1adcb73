"""App settings: every environment variable the app reads, read and validated in this one place."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Mapping
from urllib.parse import urlsplit

from shared.errors import AppError

DEFAULT_SMS_AUTO_REPLY = "Hey, thanks for the ping! Twilio and Azure rock!"
DEFAULT_VOICE_GREETING = "Hello! Thanks for calling. Goodbye."
DEFAULT_HTTP_TIMEOUT_SECONDS = 10.0


class SettingsError(AppError):
    """A required app setting is missing or invalid (names only, never values)."""

    def __init__(self, missing: tuple[str, ...] = (), invalid: tuple[str, ...] = ()):
        parts = []
        if missing:
            parts.append("missing app setting(s): " + ", ".join(missing))
        if invalid:
            parts.append("invalid app setting(s): " + ", ".join(invalid))
        super().__init__(
            503,
            "not_configured",
            "The service is not configured: " + "; ".join(parts) + ". Set them in the Function App's "
            "application settings (or local.settings.json when running locally).",
        )
        self.missing = missing
        self.invalid = invalid


def _split_list(raw: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in raw.split(",") if item.strip())


def _origin(raw: str) -> str | None:
    """Return raw as 'scheme://host[:port][/path]' without a trailing slash, or None if it is not an http(s) URL."""
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        return None
    return raw.rstrip("/")


@dataclass(frozen=True)
class Settings:
    """A validated snapshot of the app settings."""

    account_sid: str | None
    auth_token: str | None
    api_key_sid: str | None
    api_key_secret: str | None
    phone_number: str | None
    messaging_service_sid: str | None
    api_base_url: str | None
    http_timeout: float
    public_base_url: str | None
    voice_greeting: str
    voice_name: str | None
    voice_language: str | None
    sms_auto_reply: str
    blocked_numbers: tuple[str, ...]
    allowed_destination_prefixes: tuple[str, ...]
    default_region: str | None

    def rest_credentials(self, also_missing: tuple[str, ...] = ()) -> tuple[str, str, str]:
        """(username, password, account_sid) for Twilio REST, or one SettingsError naming every missing key."""
        missing = []
        if not self.account_sid:
            missing.append("TWILIO_ACCOUNT_SID")
        if self.api_key_sid or self.api_key_secret:
            missing += [name for name, value in (("TWILIO_API_KEY_SID", self.api_key_sid),
                                                 ("TWILIO_API_KEY_SECRET", self.api_key_secret)) if not value]
        elif not self.auth_token:
            missing.append("TWILIO_AUTH_TOKEN")
        missing += also_missing
        if missing:
            raise SettingsError(missing=tuple(missing))
        if self.api_key_sid and self.api_key_secret:
            return self.api_key_sid, self.api_key_secret, self.account_sid  # type: ignore[return-value]
        return self.account_sid, self.auth_token, self.account_sid  # type: ignore[return-value]

    def webhook_token(self) -> str:
        """The auth token that validates Twilio's webhook signatures; SettingsError if unset (fail closed)."""
        if not self.auth_token:
            raise SettingsError(missing=("TWILIO_AUTH_TOKEN",))
        return self.auth_token


SETTING_NAMES = (
    "TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "TWILIO_API_KEY_SID", "TWILIO_API_KEY_SECRET", "TWILIO_PHONE_NUMBER",
    "TWILIO_MESSAGING_SERVICE_SID", "TWILIO_API_BASE_URL", "TWILIO_HTTP_TIMEOUT_SECONDS", "PUBLIC_BASE_URL",
    "VOICE_GREETING", "VOICE_NAME", "VOICE_LANGUAGE", "SMS_AUTO_REPLY", "BLOCKED_NUMBERS",
    "ALLOWED_DESTINATION_PREFIXES", "DEFAULT_REGION",
)
_cached: Settings | None = None


def load_settings() -> Settings:
    """The app settings, parsed from the environment once per process.

    Azure restarts the worker process whenever app settings change (and `func start` must be restarted after
    editing local.settings.json), so a process never needs to see a change; code that changes the environment
    of a running process (tests) calls reset_settings().
    """
    global _cached
    settings = _cached
    if settings is None:
        settings = _cached = parse_settings(os.environ)
    return settings


def reset_settings() -> None:
    """Forget the parsed settings: the next load_settings() reads the environment again."""
    global _cached
    _cached = None


def parse_settings(env: Mapping[str, str]) -> Settings:
    """Read every app setting from env; one SettingsError names each invalid one."""

    def get(name: str) -> str | None:
        value = env.get(name, "").strip()
        return value or None

    invalid = []
    timeout = DEFAULT_HTTP_TIMEOUT_SECONDS
    raw_timeout = get("TWILIO_HTTP_TIMEOUT_SECONDS")
    if raw_timeout is not None:
        try:
            timeout = float(raw_timeout)
        except ValueError:
            timeout = -1.0
        if not 0 < timeout <= 300:
            invalid.append("TWILIO_HTTP_TIMEOUT_SECONDS")
    api_base_url = get("TWILIO_API_BASE_URL")
    if api_base_url is not None:
        api_base_url = _origin(api_base_url)
        if api_base_url is None:
            invalid.append("TWILIO_API_BASE_URL")
    public_base_url = get("PUBLIC_BASE_URL")
    if public_base_url is not None:
        public_base_url = _origin(public_base_url)
        if public_base_url is None:
            invalid.append("PUBLIC_BASE_URL")
    region = get("DEFAULT_REGION")
    if region is not None:
        region = region.upper()
        if len(region) != 2 or not region.isalpha():
            invalid.append("DEFAULT_REGION")
    prefixes = _split_list(env.get("ALLOWED_DESTINATION_PREFIXES", ""))
    if any(not (p.startswith("+") and p[1:].isdigit()) for p in prefixes):
        invalid.append("ALLOWED_DESTINATION_PREFIXES")
    if invalid:
        raise SettingsError(invalid=tuple(invalid))
    return Settings(
        account_sid=get("TWILIO_ACCOUNT_SID"),
        auth_token=get("TWILIO_AUTH_TOKEN"),
        api_key_sid=get("TWILIO_API_KEY_SID"),
        api_key_secret=get("TWILIO_API_KEY_SECRET"),
        phone_number=get("TWILIO_PHONE_NUMBER"),
        messaging_service_sid=get("TWILIO_MESSAGING_SERVICE_SID"),
        api_base_url=api_base_url,
        http_timeout=timeout,
        public_base_url=public_base_url,
        voice_greeting=get("VOICE_GREETING") or DEFAULT_VOICE_GREETING,
        voice_name=get("VOICE_NAME"),
        voice_language=get("VOICE_LANGUAGE"),
        sms_auto_reply=get("SMS_AUTO_REPLY") or DEFAULT_SMS_AUTO_REPLY,
        blocked_numbers=_split_list(env.get("BLOCKED_NUMBERS", "")),
        allowed_destination_prefixes=prefixes,
        default_region=region,
    )
