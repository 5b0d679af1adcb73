"""App settings: every environment variable the app reads, read and validated in this one place."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any, Mapping
from urllib.parse import urlsplit

from shared.call_menu import Menu, parse_menu
from shared.errors import AppError

DEFAULT_SMS_AUTO_REPLY = "Hey, thanks for the ping! Twilio and Azure rock!"
DEFAULT_VOICE_GREETING = "Hello! Thanks for calling. Goodbye."
DEFAULT_HTTP_TIMEOUT_SECONDS = 10.0
DEFAULT_IDEMPOTENCY_TTL_HOURS = 24
DEFAULT_VOICEMAIL_GREETING = "Please leave a message after the beep."
CALL_FLOWS = ("greeting", "forward", "menu", "voicemail")
HOST_AND_PORT = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?(?::[0-9]{1,5})?")
LOCAL_HOSTNAMES = ("localhost", "127.0.0.1", "0.0.0.0")  # WEBSITE_HOSTNAME under `func start`: not public

SETTING_NAMES = (
    "TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "TWILIO_API_KEY_SID", "TWILIO_API_KEY_SECRET", "TWILIO_PHONE_NUMBER",
    "TWILIO_MESSAGING_SERVICE_SID", "TWILIO_API_BASE_URL", "TWILIO_HTTP_TIMEOUT_SECONDS", "PUBLIC_BASE_URL",
    "WEBSITE_HOSTNAME", "VOICE_GREETING", "VOICE_NAME", "VOICE_LANGUAGE", "SMS_AUTO_REPLY", "BLOCKED_NUMBERS",
    "ALLOWED_DESTINATION_PREFIXES", "ALLOWED_DESTINATION_COUNTRIES", "DEFAULT_REGION",
    "AUTH_ISSUER", "AUTH_AUDIENCE", "AUTH_JWKS_URL", "AUTH_EASY_AUTH", "WEBSITE_AUTH_ENABLED",
    "QUOTA_SMS_PER_USER_PER_DAY", "QUOTA_CALLS_PER_USER_PER_DAY", "QUOTA_SMS_PER_DAY", "QUOTA_CALLS_PER_DAY",
    "QUOTA_PER_DESTINATION_PER_HOUR", "IDEMPOTENCY_TTL_HOURS",
    "TWILIO_TWIML_APP_SID", "TWILIO_PUSH_CREDENTIAL_SID", "VOICE_TOKEN_TTL_SECONDS", "INBOUND_CALL_FLOW", "FORWARD_TO",
    "FORWARD_TIMEOUT_SECONDS", "CALL_MENU", "VOICEMAIL_GREETING", "VOICEMAIL_MAX_SECONDS", "VOICEMAIL_NOTIFY_SMS",
    "AzureWebJobsStorage", "AzureWebJobsStorage__accountName", "AzureWebJobsStorage__tableServiceUri",
)
QUOTA_SETTINGS = tuple(name for name in SETTING_NAMES if name.startswith("QUOTA_"))


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
    website_hostname: str | None  # None when unset or local (func start)
    voice_greeting: str
    voice_name: str | None
    voice_language: str | None
    sms_auto_reply: str
    blocked_numbers: frozenset[str]  # E.164 numbers and Twilio's caller words, as compared with From
    allowed_destination_prefixes: tuple[str, ...]
    allowed_destination_countries: frozenset[str]
    default_region: str | None
    auth_issuer: str | None
    auth_audience: str | None
    auth_jwks_url: str | None
    auth_easy_auth: bool
    website_auth_enabled: bool  # App Service Authentication is on: only then is X-MS-CLIENT-PRINCIPAL-ID trusted
    quotas: Mapping[str, int]  # QUOTA_* setting -> limit, only those set above 0
    idempotency_ttl_hours: int
    twiml_app_sid: str | None
    push_credential_sid: str | None
    voice_token_ttl: int
    inbound_call_flow: str
    forward_to: tuple[str, ...]  # E.164 numbers and client:<identity>
    forward_timeout: int
    call_menu: Menu | None
    voicemail_greeting: str
    voicemail_max_seconds: int
    voicemail_notify_sms: str | None
    storage_connection_string: str | None
    storage_account_name: str | None
    storage_table_uri: str | None
    present: frozenset[str] = field(default=frozenset(), repr=False)  # the names of the settings that are set

    @property
    def storage_configured(self) -> bool:
        """Whether the app has a storage account for its state (AzureWebJobsStorage or its identity-based form)."""
        return bool(self.storage_connection_string or self.storage_account_name or self.storage_table_uri)

    def require(self, *names: str) -> None:
        """One SettingsError naming every setting in names that is not set."""
        missing = tuple(name for name in names if name not in self.present)
        if missing:
            raise SettingsError(missing=missing)

    def rest_setting_names(self) -> tuple[str, ...]:
        """The settings Twilio REST needs: the account SID and an API key pair, or the auth token."""
        if self.api_key_sid or self.api_key_secret:
            return "TWILIO_ACCOUNT_SID", "TWILIO_API_KEY_SID", "TWILIO_API_KEY_SECRET"
        return "TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN"

    def rest_credentials(self) -> tuple[str, str, str]:
        """(username, password, account_sid) for Twilio REST; SettingsError naming what is missing."""
        self.require(*self.rest_setting_names())
        if self.api_key_sid:
            return self.api_key_sid, self.api_key_secret, self.account_sid  # type: ignore[return-value]
        return self.account_sid, self.auth_token, self.account_sid  # type: ignore[return-value]

    def webhook_token(self) -> str:
        """The auth token that validates Twilio's webhook signatures; SettingsError if unset (fail closed)."""
        self.require("TWILIO_AUTH_TOKEN")
        return self.auth_token  # type: ignore[return-value]


def load_settings() -> Settings:
    """The app settings, read from the environment (app settings in Azure, local.settings.json locally)."""
    return parse_settings(os.environ)


def parse_settings(env: Mapping[str, str]) -> Settings:
    """Read every app setting from env; one SettingsError names each invalid one."""
    values = {name: env.get(name, "").strip() for name in SETTING_NAMES}
    invalid: list[str] = []

    def checked(name: str, parse):  # parse(raw) -> value, or raise ValueError
        raw = values[name]
        try:
            return parse(raw)
        except ValueError:
            invalid.append(name)
            return None

    region = checked("DEFAULT_REGION", _region) if values["DEFAULT_REGION"] else None
    prefixes = checked("ALLOWED_DESTINATION_PREFIXES", _prefixes) or ()
    countries = checked("ALLOWED_DESTINATION_COUNTRIES", _regions) or frozenset()

    def callable_number(raw: str) -> str:  # a number the app may dial: valid, premium-free, allowed
        return _callable(raw, region, prefixes, countries)

    settings = Settings(
        account_sid=values["TWILIO_ACCOUNT_SID"] or None,
        auth_token=values["TWILIO_AUTH_TOKEN"] or None,
        api_key_sid=values["TWILIO_API_KEY_SID"] or None,
        api_key_secret=values["TWILIO_API_KEY_SECRET"] or None,
        phone_number=values["TWILIO_PHONE_NUMBER"] or None,
        messaging_service_sid=values["TWILIO_MESSAGING_SERVICE_SID"] or None,
        api_base_url=checked("TWILIO_API_BASE_URL", _origin),
        http_timeout=checked("TWILIO_HTTP_TIMEOUT_SECONDS", _timeout) or DEFAULT_HTTP_TIMEOUT_SECONDS,
        public_base_url=checked("PUBLIC_BASE_URL", _origin),
        website_hostname=checked("WEBSITE_HOSTNAME", _public_hostname),
        voice_greeting=values["VOICE_GREETING"] or DEFAULT_VOICE_GREETING,
        voice_name=values["VOICE_NAME"] or None,
        voice_language=values["VOICE_LANGUAGE"] or None,
        sms_auto_reply=values["SMS_AUTO_REPLY"] or DEFAULT_SMS_AUTO_REPLY,
        blocked_numbers=checked("BLOCKED_NUMBERS", lambda raw: _blocked(raw, region)) or frozenset(),
        allowed_destination_prefixes=prefixes,
        allowed_destination_countries=countries,
        default_region=region,
        auth_issuer=checked("AUTH_ISSUER", _url),
        auth_audience=values["AUTH_AUDIENCE"] or None,
        auth_jwks_url=checked("AUTH_JWKS_URL", _url),
        auth_easy_auth=bool(checked("AUTH_EASY_AUTH", _flag)),
        website_auth_enabled=values["WEBSITE_AUTH_ENABLED"].lower() == "true",
        quotas={name: limit for name in QUOTA_SETTINGS if (limit := checked(name, _count))},
        idempotency_ttl_hours=checked("IDEMPOTENCY_TTL_HOURS", _hours) or DEFAULT_IDEMPOTENCY_TTL_HOURS,
        twiml_app_sid=values["TWILIO_TWIML_APP_SID"] or None,
        push_credential_sid=values["TWILIO_PUSH_CREDENTIAL_SID"] or None,
        voice_token_ttl=checked("VOICE_TOKEN_TTL_SECONDS", lambda raw: _whole(raw, 60, 86400)) or 3600,
        inbound_call_flow=checked("INBOUND_CALL_FLOW", _flow) or "greeting",
        forward_to=checked("FORWARD_TO", lambda raw: tuple(
            item if _is_client(item) else callable_number(item) for item in _split_list(raw))) or (),
        forward_timeout=checked("FORWARD_TIMEOUT_SECONDS", lambda raw: _whole(raw, 5, 600)) or 20,
        call_menu=checked("CALL_MENU", lambda raw: parse_menu(raw, callable_number) if raw else None),
        voicemail_greeting=values["VOICEMAIL_GREETING"] or DEFAULT_VOICEMAIL_GREETING,
        voicemail_max_seconds=checked("VOICEMAIL_MAX_SECONDS", lambda raw: _whole(raw, 1, 14400)) or 120,
        voicemail_notify_sms=checked("VOICEMAIL_NOTIFY_SMS", lambda raw: callable_number(raw) if raw else None),
        storage_connection_string=values["AzureWebJobsStorage"] or None,
        storage_account_name=values["AzureWebJobsStorage__accountName"] or None,
        storage_table_uri=checked("AzureWebJobsStorage__tableServiceUri", _url),
        present=frozenset(name for name, value in values.items() if value),
    )
    if invalid:
        raise SettingsError(invalid=tuple(invalid))
    return settings


def _split_list(raw: str) -> list[str]:
    return [item.strip() for item in raw.split(",") if item.strip()]


def _origin(raw: str) -> str | None:
    """raw as 'scheme://host[:port][/path]' without a trailing slash; ValueError unless a plain http(s) URL."""
    if not raw:
        return None
    parts = urlsplit(raw)
    parts.port  # noqa: B018 - raises ValueError for a port that is not a number in 0-65535
    if parts.scheme not in ("http", "https") or not parts.hostname or "?" in raw or "#" in raw or "@" in raw:
        raise ValueError(raw)
    return raw.rstrip("/")


def _public_hostname(raw: str) -> str | None:
    """WEBSITE_HOSTNAME ('app.azurewebsites.net'), or None when unset or local; ValueError if not a host[:port]."""
    if not raw:
        return None
    if not HOST_AND_PORT.fullmatch(raw):
        raise ValueError(raw)
    parts = urlsplit("//" + raw)
    parts.port  # noqa: B018 - raises ValueError for a port over 65535
    return None if parts.hostname in LOCAL_HOSTNAMES else raw.lower()


def _url(raw: str) -> str | None:
    """An http(s) URL kept exactly as written (an OIDC issuer must equal the token's `iss`)."""
    if raw:
        _origin(raw)
    return raw or None


def _flag(raw: str) -> bool:
    if raw.lower() not in ("", "true", "false", "1", "0"):
        raise ValueError(raw)
    return raw.lower() in ("true", "1")


def _count(raw: str) -> int:
    """A quota: a whole number >= 0 (0 or unset: unlimited)."""
    if not raw:
        return 0
    if not raw.isdigit():
        raise ValueError(raw)
    return int(raw)


def _hours(raw: str) -> int | None:
    """Idempotency-Key retention: 1 hour to 30 days."""
    if not raw:
        return None
    if not raw.isdigit() or not 1 <= int(raw) <= 720:
        raise ValueError(raw)
    return int(raw)


def _whole(raw: str, low: int, high: int) -> int | None:
    if not raw:
        return None
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise ValueError(raw)
    return int(raw)


def _flow(raw: str) -> str | None:
    if raw and raw.lower() not in CALL_FLOWS:
        raise ValueError(raw)
    return raw.lower() or None


def _is_client(raw: str) -> bool:
    return raw.startswith("client:") and re.fullmatch(r"[A-Za-z0-9_]{1,121}", raw[len("client:"):]) is not None


def _callable(raw: str, region: str | None, prefixes: tuple[str, ...], countries: frozenset[str]) -> str:
    """raw in E.164 if the destination guard lets the app dial it (never premium); ValueError otherwise."""
    from shared.phone import require_allowed_destination, to_e164

    try:
        number = to_e164(raw.strip(), "number", region)
        require_allowed_destination(number, prefixes, countries)
    except AppError:
        raise ValueError(raw) from None
    return number


def _timeout(raw: str) -> float | None:
    if not raw:
        return None
    timeout = float(raw)
    if not 0 < timeout <= 300:
        raise ValueError(raw)
    return timeout


def _supported_regions() -> frozenset[str]:
    import phonenumbers  # imported on use: only settings that name regions need it

    return frozenset(phonenumbers.SUPPORTED_REGIONS)


def _region(raw: str) -> str:
    if raw.upper() not in _supported_regions():
        raise ValueError(raw)
    return raw.upper()


def _regions(raw: str) -> frozenset[str]:
    return frozenset(_region(item) for item in _split_list(raw))


def _prefixes(raw: str) -> tuple[str, ...]:
    prefixes = tuple(_split_list(raw))
    if any(not (p.startswith("+") and p[1:].isdigit()) for p in prefixes):
        raise ValueError(raw)
    return prefixes


def _blocked(raw: str, region: str | None) -> frozenset[str]:
    """Each entry as From will be compared: E.164, a caller word or client:<identity>; ValueError otherwise."""
    from shared.phone import canonical_caller  # phonenumbers is loaded only when a block list is set

    entries = set()
    for item in _split_list(raw):
        entry = canonical_caller(item, region)
        if entry is None:
            raise ValueError(item)
        entries.add(entry)
    return frozenset(entries)
