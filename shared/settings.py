"""App settings: every environment variable the app reads, declared once as a field of Settings."""

from __future__ import annotations

import math
import os
import re
from dataclasses import Field, dataclass, field, fields
from typing import Any, Callable, Mapping
from urllib.parse import urlsplit

from shared.call_menu import Menu, parse_menu
from shared.errors import AppError
from shared.phone import NON_GEOGRAPHIC

HOST_AND_PORT = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?(?::[0-9]{1,5})?")
LOCAL_HOSTNAMES = ("localhost", "127.0.0.1", "0.0.0.0")  # WEBSITE_HOSTNAME under `func start`: not public
# The destination guard: the parsers of the settings that hold numbers to dial get these three, already parsed.
GUARD = ("default_region", "allowed_destination_prefixes", "allowed_destination_countries")
FORWARDS = ("phone_number", *GUARD)  # and a number the inbound flows forward to must not be the app's own


class SettingsError(AppError):
    """A required app setting is missing or invalid (names only, never values; an invalid one with what it allows)."""

    def __init__(self, missing: tuple[str, ...] = (), invalid: tuple[str, ...] = ()):
        parts = []
        if missing:
            parts.append("missing app setting(s): " + ", ".join(missing))
        if invalid:
            parts.append("invalid app setting(s): " + ", ".join(map(invalid_setting, invalid)))
        super().__init__(
            503,
            "not_configured",
            "The service is not configured: " + "; ".join(parts) + ". Set them in the Function App's "
            "application settings (or local.settings.json when running locally).",
        )
        self.missing = missing
        self.invalid = invalid


@dataclass(frozen=True)
class Invalid:
    """What a setting that does not parse holds: reading it raises SettingsError naming it (with the invalid
    settings its parser uses), so one bad setting breaks only the functions that read it."""

    names: tuple[str, ...]


def setting(env: str, concern: str, parse: Callable[..., Any] = str, *, default: Any = None,
            uses: tuple[str, ...] = ()) -> Any:
    """A Settings field read from the environment variable `env`: its value stripped, then `default` if that is
    empty, else parse(value, *the already parsed settings named in uses), which raises ValueError if it is invalid
    (str: the text as it is). `concern` is the part of the app it configures."""
    return field(default=default, metadata={"env": env, "concern": concern, "parse": parse, "uses": uses})


def _whole(low: int, high: float = math.inf) -> Callable[[str], int]:
    """A parser of a whole number from low to high."""

    def parse(raw: str) -> int:
        if not raw.isdigit() or not low <= int(raw) <= high:
            raise ValueError(raw)
        return int(raw)

    parse.allowed = f"a whole number from {low}" + (  # type: ignore[attr-defined]
        f" to {high}" if high < math.inf else "")
    return parse


def _one_of(*choices: str) -> Callable[[str], str]:
    """A parser of one of choices, in any case."""

    def parse(raw: str) -> str:
        if raw.lower() not in choices:
            raise ValueError(raw)
        return raw.lower()

    parse.allowed = "one of: " + ", ".join(choices)  # type: ignore[attr-defined]
    return parse


def _timeout(raw: str) -> float:
    """Seconds above 0, at most 300."""
    timeout = float(raw)
    if not 0 < timeout <= 300:
        raise ValueError(raw)
    return timeout


def _origin(raw: str) -> str:
    """raw as 'scheme://host[:port][/path]' without a trailing slash; ValueError unless a plain http(s) URL."""
    parts = urlsplit(raw)
    parts.port  # noqa: B018 - raises ValueError for a port that is not a number in 0-65535
    if parts.scheme not in ("http", "https") or not parts.hostname or "?" in raw or "#" in raw or "@" in raw:
        raise ValueError(raw)
    return raw.rstrip("/")


def _url(raw: str) -> str:
    """An http(s) URL kept exactly as written (an OIDC issuer must equal the token's `iss`)."""
    _origin(raw)
    return raw


def _public_hostname(raw: str) -> str | None:
    """WEBSITE_HOSTNAME ('app.azurewebsites.net'), or None when local; ValueError if not a host[:port]."""
    if not HOST_AND_PORT.fullmatch(raw):
        raise ValueError(raw)
    parts = urlsplit("//" + raw)
    parts.port  # noqa: B018 - raises ValueError for a port over 65535
    return None if parts.hostname in LOCAL_HOSTNAMES else raw.lower()


def _flag(raw: str) -> bool:
    if raw.lower() not in ("true", "false", "1", "0"):
        raise ValueError(raw)
    return raw.lower() in ("true", "1")


_flag.allowed = "true or false"  # type: ignore[attr-defined]


def _azure_flag(raw: str) -> bool:
    """A flag the platform sets: only its own "True" turns it on, and nothing else is an error."""
    return raw.lower() == "true"


def _split_list(raw: str) -> list[str]:
    return [item.strip() for item in raw.split(",") if item.strip()]


def _names(raw: str) -> frozenset[str]:
    return frozenset(_split_list(raw))


def _region(raw: str) -> str:
    import phonenumbers  # imported on use: only settings that name regions need it

    if raw.upper() not in phonenumbers.SUPPORTED_REGIONS:
        raise ValueError(raw)
    return raw.upper()


def _regions(raw: str) -> frozenset[str]:
    """ISO regions, and NON_GEOGRAPHIC for the international networks and satellites (+870, +881, +882, +883…)."""
    return frozenset(item if item == NON_GEOGRAPHIC else _region(item) for item in _split_list(raw))


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


def _dialable(raw: str, region: str | None, prefixes: tuple[str, ...], countries: frozenset[str]) -> str:
    """raw in E.164 if the destination guard lets the app dial it (never premium); ValueError otherwise."""
    from shared.phone import require_allowed_destination, to_e164

    try:
        number = to_e164(raw.strip(), "number", region)
        require_allowed_destination(number, prefixes, countries)
    except AppError:
        raise ValueError(raw) from None
    return number


def _forward(raw: str, own: str | None, *guard: Any) -> str:
    """A dialable number that is not TWILIO_PHONE_NUMBER (own), which would ring this app again: a billed loop."""
    from shared.phone import canonical_caller

    number = _dialable(raw, *guard)
    if own and number == canonical_caller(own, guard[0]):
        raise ValueError(raw)
    return number


def _forward_targets(raw: str, own: str | None, *guard: Any) -> tuple[str, ...]:
    """FORWARD_TO: dialable numbers other than the app's own, and client:<identity>."""
    return tuple(item if _is_client(item) else _forward(item, own, *guard) for item in _split_list(raw))


def _is_client(raw: str) -> bool:
    return raw.startswith("client:") and re.fullmatch(r"[A-Za-z0-9_]{1,121}", raw[len("client:"):]) is not None


def _menu(raw: str, own: str | None, *guard: Any) -> Menu:
    return parse_menu(raw, lambda number: _forward(number, own, *guard))


@dataclass(frozen=True)
class Settings:
    """A validated snapshot of the app settings. Each field declares its setting: env name, concern, parser,
    default. Parsed in this order, so a parser `uses` only settings declared above it."""

    account_sid: str | None = setting("TWILIO_ACCOUNT_SID", "twilio")
    auth_token: str | None = setting("TWILIO_AUTH_TOKEN", "twilio")
    api_key_sid: str | None = setting("TWILIO_API_KEY_SID", "twilio")
    api_key_secret: str | None = setting("TWILIO_API_KEY_SECRET", "twilio")
    phone_number: str | None = setting("TWILIO_PHONE_NUMBER", "twilio")
    messaging_service_sid: str | None = setting("TWILIO_MESSAGING_SERVICE_SID", "twilio")
    api_base_url: str | None = setting("TWILIO_API_BASE_URL", "twilio", _origin)
    http_timeout: float = setting("TWILIO_HTTP_TIMEOUT_SECONDS", "twilio", _timeout, default=10.0)

    public_base_url: str | None = setting("PUBLIC_BASE_URL", "public origin", _origin)
    website_hostname: str | None = setting("WEBSITE_HOSTNAME", "public origin", _public_hostname)  # None when local

    voice_greeting: str = setting("VOICE_GREETING", "voice", default="Hello! Thanks for calling. Goodbye.")
    voice_name: str | None = setting("VOICE_NAME", "voice")
    voice_language: str | None = setting("VOICE_LANGUAGE", "voice")
    # in seconds: every <Dial>'s timeLimit and every make_call's TimeLimit
    call_time_limit: int = setting("CALL_MAX_MINUTES", "voice", lambda raw: _whole(1, 1440)(raw) * 60, default=3600)

    sms_auto_reply: str = setting("SMS_AUTO_REPLY", "sms", default="Hey, thanks for the ping! Twilio and Azure rock!")

    default_region: str | None = setting("DEFAULT_REGION", "destinations", _region)
    allowed_destination_prefixes: tuple[str, ...] = setting("ALLOWED_DESTINATION_PREFIXES", "destinations", _prefixes,
                                                            default=())
    allowed_destination_countries: frozenset[str] = setting("ALLOWED_DESTINATION_COUNTRIES", "destinations", _regions,
                                                            default=frozenset())

    # E.164 numbers and Twilio's caller words, as compared with From
    blocked_numbers: frozenset[str] = setting("BLOCKED_NUMBERS", "blocked callers", _blocked, default=frozenset(),
                                              uses=("default_region",))

    auth_issuer: str | None = setting("AUTH_ISSUER", "sign-in", _url)
    auth_audience: str | None = setting("AUTH_AUDIENCE", "sign-in")
    auth_jwks_url: str | None = setting("AUTH_JWKS_URL", "sign-in", _url)
    auth_easy_auth: bool = setting("AUTH_EASY_AUTH", "sign-in", _flag, default=False)
    # App Service Authentication is on: only then is X-MS-CLIENT-PRINCIPAL-ID trusted
    website_auth_enabled: bool = setting("WEBSITE_AUTH_ENABLED", "sign-in", _azure_flag, default=False)

    # 0 or unset: unlimited; `quotas` holds those set
    quota_sms_per_user_per_day: int = setting("QUOTA_SMS_PER_USER_PER_DAY", "quotas", _whole(0), default=0)
    quota_calls_per_user_per_day: int = setting("QUOTA_CALLS_PER_USER_PER_DAY", "quotas", _whole(0), default=0)
    quota_sms_per_day: int = setting("QUOTA_SMS_PER_DAY", "quotas", _whole(0), default=0)
    quota_calls_per_day: int = setting("QUOTA_CALLS_PER_DAY", "quotas", _whole(0), default=0)
    quota_per_destination_per_hour: int = setting("QUOTA_PER_DESTINATION_PER_HOUR", "quotas", _whole(0), default=0)

    # identities (as the sign-in gives them) allowed to broadcast; segments a second the sender may send
    broadcast_senders: frozenset[str] = setting("BROADCAST_SENDERS", "broadcasts", _names, default=frozenset())
    broadcast_segments_per_second: int = setting("BROADCAST_SEGMENTS_PER_SECOND", "broadcasts", _whole(1, 1000),
                                                 default=1)

    idempotency_ttl_hours: int = setting("IDEMPOTENCY_TTL_HOURS", "idempotency", _whole(1, 720), default=24)

    # the level of the Azure SDK's HTTP logging (a multi-line dump of every Table Storage request at INFO)
    azure_sdk_log_level: str = setting("AZURE_SDK_LOG_LEVEL", "logs", _one_of("debug", "info", "warning", "error"),
                                       default="warning")

    twiml_app_sid: str | None = setting("TWILIO_TWIML_APP_SID", "in-app calling")
    push_credential_sid: str | None = setting("TWILIO_PUSH_CREDENTIAL_SID", "in-app calling")
    voice_token_ttl: int = setting("VOICE_TOKEN_TTL_SECONDS", "in-app calling", _whole(60, 86400), default=3600)

    inbound_call_flow: str = setting("INBOUND_CALL_FLOW", "inbound calls",
                                     _one_of("greeting", "forward", "menu", "voicemail"), default="greeting")
    # E.164 numbers and client:<identity>
    forward_to: tuple[str, ...] = setting("FORWARD_TO", "inbound calls", _forward_targets, default=(), uses=FORWARDS)
    forward_timeout: int = setting("FORWARD_TIMEOUT_SECONDS", "inbound calls", _whole(5, 600), default=20)
    call_menu: Menu | None = setting("CALL_MENU", "inbound calls", _menu, uses=FORWARDS)
    voicemail_greeting: str = setting("VOICEMAIL_GREETING", "inbound calls",
                                      default="Please leave a message after the beep.")
    voicemail_max_seconds: int = setting("VOICEMAIL_MAX_SECONDS", "inbound calls", _whole(1, 14400), default=120)
    voicemail_notify_sms: str | None = setting("VOICEMAIL_NOTIFY_SMS", "inbound calls", _dialable, uses=GUARD)

    storage_connection_string: str | None = setting("AzureWebJobsStorage", "storage")
    storage_account_name: str | None = setting("AzureWebJobsStorage__accountName", "storage")
    storage_table_uri: str | None = setting("AzureWebJobsStorage__tableServiceUri", "storage", _url)
    # As the Functions host reads them: "managedidentity" selects a managed identity, __clientId a user-assigned one
    storage_credential: str | None = setting("AzureWebJobsStorage__credential", "storage", _one_of("managedidentity"))
    storage_client_id: str | None = setting("AzureWebJobsStorage__clientId", "storage")

    present: frozenset[str] = field(default=frozenset(), repr=False)  # the names of the settings that are set
    invalid: tuple[str, ...] = field(default=(), repr=False)  # the names of those that are set but invalid

    def __getattribute__(self, name: str) -> Any:
        """A field's value; SettingsError if the setting is invalid: only what reads it fails."""
        value = object.__getattribute__(self, name)
        if type(value) is Invalid:
            raise SettingsError(invalid=value.names)
        return value

    @property
    def quotas(self) -> Mapping[str, int]:
        """QUOTA_* setting -> limit, only those set above 0."""
        return {name: limit for name in QUOTA_SETTINGS if (limit := self.quota(name))}

    def quota(self, name: str) -> int:
        """The limit of the QUOTA_* setting name (0: unlimited); reads that setting only."""
        return getattr(self, FIELD_NAMES[name])

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


DECLARED: tuple[Field[Any], ...] = tuple(f for f in fields(Settings) if "env" in f.metadata)  # in declaration order
SETTING_NAMES = tuple(f.metadata["env"] for f in DECLARED)
QUOTA_SETTINGS = tuple(f.metadata["env"] for f in DECLARED if f.metadata["concern"] == "quotas")
FIELD_NAMES = {f.metadata["env"]: f.name for f in DECLARED}  # setting -> Settings field
# setting -> what its parser accepts, for those whose parser says ("one of: greeting, forward, menu, voicemail")
ALLOWED = {f.metadata["env"]: f.metadata["parse"].allowed for f in DECLARED if hasattr(f.metadata["parse"], "allowed")}


def invalid_setting(name: str) -> str:
    """An invalid setting's name, with the values it allows where they are few: 'INBOUND_CALL_FLOW (one of: ...)'."""
    return f"{name} ({ALLOWED[name]})" if name in ALLOWED else name


def load_settings() -> Settings:
    """The app settings, read from the environment (app settings in Azure, local.settings.json locally)."""
    return parse_settings(os.environ)


def parse_settings(env: Mapping[str, str]) -> Settings:
    """Read every declared setting from env, in declaration order. An invalid one, or one whose parser uses an
    invalid one, holds an Invalid marker: only reading it raises SettingsError."""
    values: dict[str, Any] = {}
    present, invalid = [], []
    for f in DECLARED:
        name, parse, uses = f.metadata["env"], f.metadata["parse"], f.metadata["uses"]
        raw = env.get(name, "").strip()
        values[f.name] = f.default
        if not raw:
            continue
        present.append(name)
        used = [values[other] for other in uses]
        # parsed with an invalid setting (a FORWARD_TO number with an invalid DEFAULT_REGION): invalid too
        broken = tuple(dict.fromkeys(n for value in used if type(value) is Invalid for n in value.names))
        try:
            values[f.name] = Invalid((name, *broken)) if broken else parse(raw, *used)
        except ValueError:
            values[f.name] = Invalid((name,))
        if type(values[f.name]) is Invalid:
            invalid.append(name)
    return Settings(**values, present=frozenset(present), invalid=tuple(invalid))
