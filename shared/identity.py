"""Who is calling the mobile API: a validated bearer JWT's `sub`, the Easy Auth principal, or `anonymous`."""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from typing import Any

import azure.functions as func

from shared.errors import AppError
from shared.settings import Settings, SettingsError

logger = logging.getLogger("shared.identity")

ANONYMOUS = "anonymous"
LEEWAY_SECONDS = 60
REFETCH_INTERVAL_SECONDS = 60  # an unknown `kid` refetches the JWKS at most this often
JWKS_TIMEOUT_SECONDS = 5.0  # each request to the issuer, and the most a request waits for the keys
FAILED_FETCH_SECONDS = 10  # a failed JWKS fetch is not tried again for this long: 503 at once meanwhile
ASYMMETRIC_KEY_TYPES = ("RSA", "EC", "OKP")
VOICE_IDENTITY_MAX = 121  # the longest client identity the Voice SDKs accept


def caller_identity(req: func.HttpRequest, settings: Settings) -> str:
    """The caller's identity; 401 unauthenticated, 503 not_configured or auth_unavailable otherwise."""
    if settings.auth_issuer and settings.auth_easy_auth:
        raise SettingsError(invalid=("AUTH_ISSUER", "AUTH_EASY_AUTH"))  # one way of signing in, not two
    if settings.auth_issuer:
        settings.require("AUTH_AUDIENCE")
        return _token_subject(req, settings)
    if settings.auth_easy_auth:
        if not settings.website_auth_enabled:  # without the platform's sign-in, anyone can send the header
            raise SettingsError(invalid=("AUTH_EASY_AUTH",))
        principal = (req.headers.get("x-ms-client-principal-id") or "").strip()
        if not principal:
            raise _unauthenticated("Sign in first: App Service Authentication sent no principal.", None)
        return principal
    _warn_anonymous()
    return ANONYMOUS


def voice_identity(identity: str) -> str:
    """The caller's identity as Twilio Voice SDK client name and per-user quota subject, one to one: letters and
    digits only stay as they are; otherwise '_' becomes '__' and every other character '_xx', '_uxxxx' or
    '_Uxxxxxxxx' (its code point in lower-case hex): 'bob.smith' -> 'bob_2esmith', 'bob_smith' -> 'bob__smith'.
    Longer than the SDK's VOICE_IDENTITY_MAX characters: '_z' + the SHA-256 of the whole identity, which no
    escaped form starts with. Never mapped twice: a VoiceIdentity is returned as it is."""
    if isinstance(identity, VoiceIdentity):
        return identity
    if identity.isascii() and identity.isalnum() and len(identity) <= VOICE_IDENTITY_MAX:
        return VoiceIdentity(identity)
    escaped = "".join(char if char.isascii() and char.isalnum() else _escape(char) for char in identity)
    if 0 < len(escaped) <= VOICE_IDENTITY_MAX:
        return VoiceIdentity(escaped)
    return VoiceIdentity("_z" + hashlib.sha256(identity.encode("utf-8", "surrogatepass")).hexdigest())


class VoiceIdentity(str):
    """A name already in the Voice SDK's form: voice_identity's result, or a client as Twilio names it in From."""


def _escape(char: str) -> str:
    code = ord(char)
    if char == "_":
        return "__"
    return f"_{code:02x}" if code < 0x100 else f"_u{code:04x}" if code < 0x10000 else f"_U{code:08x}"


def _token_subject(req: func.HttpRequest, settings: Settings) -> str:
    import jwt  # imported on use: only the mobile API with AUTH_ISSUER needs it

    header = (req.headers.get("authorization") or "").strip()
    if not header:
        raise _unauthenticated("Send 'Authorization: Bearer <token>'.", None)
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer":  # another scheme (Basic, a bare token): not a token that expired, none at all
        raise _unauthenticated("The Authorization header is not a bearer token: send 'Authorization: Bearer "
                               "<token>'.", None)
    try:
        if not token.strip():
            raise jwt.InvalidTokenError("no token after Bearer")
        key = _JWKS.key(settings, jwt.get_unverified_header(token.strip()).get("kid"))
        if key is None:
            raise jwt.InvalidTokenError("unknown signing key")
        claims = jwt.decode(token.strip(), key.key, algorithms=[key.algorithm_name], audience=settings.auth_audience,
                            issuer=settings.auth_issuer, leeway=LEEWAY_SECONDS,
                            options={"require": ["exp", "sub"]})
    except jwt.PyJWTError as exc:
        logger.info("Refused a bearer token: %s", type(exc).__name__)
        raise _unauthenticated("The bearer token is invalid or expired.", "invalid_token") from None
    subject = claims["sub"]
    if not isinstance(subject, str) or not subject:
        raise _unauthenticated("The bearer token has no subject.", "invalid_token")
    return subject


def _unauthenticated(message: str, error: str | None) -> AppError:
    challenge = f'Bearer error="{error}"' if error else "Bearer"  # RFC 6750 section 3
    return AppError(401, "unauthenticated", message, headers={"WWW-Authenticate": challenge})


class _KeySet:
    """The issuer's signing keys, fetched once per process; an unknown `kid` refetches at most once a minute. One
    fetch at a time runs, in a thread of its own, and every request that needs it waits for that one, at most
    JWKS_TIMEOUT_SECONDS; a failed fetch is remembered for FAILED_FETCH_SECONDS, answering 503 without fetching."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._source: tuple[str | None, str | None] | None = None
        self._keys: dict[str | None, Any] | None = None  # None: never fetched
        self._last_refetch = float("-inf")
        self._failed_until = float("-inf")
        self._fetched: threading.Event | None = None  # the last fetch started: set once it has ended

    def key(self, settings: Settings, kid: str | None) -> Any:
        """The PyJWK for kid (a lone key also serves a token without kid), or None."""
        source = (settings.auth_issuer, settings.auth_jwks_url)
        with self._lock:
            if self._source != source:
                self._source, self._keys, self._fetched = source, None, None
                self._last_refetch = self._failed_until = float("-inf")
            fetch = self._joined_fetch(settings, source, kid)
        if fetch is not None and not fetch.wait(JWKS_TIMEOUT_SECONDS):
            raise _auth_unavailable()
        with self._lock:
            if fetch is not None and time.monotonic() < self._failed_until:  # the fetch waited for failed
                raise _auth_unavailable()
            keys = self._keys or {}
            if kid is None and len(keys) == 1:
                return next(iter(keys.values()))
            return keys.get(kid)

    def _joined_fetch(self, settings: Settings, source: tuple[str | None, str | None],
                      kid: str | None) -> threading.Event | None:
        """The fetch this request waits for (under the lock): the one in flight, a new one, or None when the keys
        at hand answer; 503 while a failed fetch is remembered."""
        if self._keys is not None and kid in self._keys:
            return None
        if self._fetched is not None and not self._fetched.is_set():
            return self._fetched  # one fetch in flight serves every request that needs it
        now = time.monotonic()
        if self._keys is not None and now - self._last_refetch < REFETCH_INTERVAL_SECONDS:
            return None
        if now < self._failed_until:
            raise _auth_unavailable()
        if self._keys is not None:
            self._last_refetch = now
        self._fetched = threading.Event()
        threading.Thread(target=self._fetch, args=(settings, source, self._fetched), name="jwks-fetch",
                         daemon=True).start()
        return self._fetched

    def _fetch(self, settings: Settings, source: tuple[str | None, str | None], fetched: threading.Event) -> None:
        """Fetch the keys and keep them, or remember that the fetch failed; then set fetched."""
        keys = None
        try:
            keys = _fetch_keys(settings)
        finally:  # a bug too must end the fetch, or every request would wait for it
            with self._lock:
                if self._source == source and keys is not None:
                    self._keys = keys
                elif self._source == source:
                    self._failed_until = time.monotonic() + FAILED_FETCH_SECONDS
            fetched.set()


def _fetch_keys(settings: Settings) -> dict[str | None, Any] | None:
    """{kid: PyJWK} of the JWKS's asymmetric signing keys; None (logged) if it cannot be had."""
    import requests
    from jwt import PyJWK
    from jwt.exceptions import PyJWKError

    try:
        url = settings.auth_jwks_url or _get_json(
            settings.auth_issuer.rstrip("/") + "/.well-known/openid-configuration")["jwks_uri"]  # type: ignore[union-attr]
        keys = {}
        for data in _get_json(url)["keys"]:
            if data.get("kty") not in ASYMMETRIC_KEY_TYPES or data.get("use", "sig") != "sig":
                continue
            try:
                key = PyJWK(data)
            except PyJWKError:
                continue
            if not key.algorithm_name.startswith(("HS", "none")):
                keys[data.get("kid")] = key
        return keys
    except (requests.RequestException, ValueError, KeyError, TypeError) as exc:
        logger.warning("Could not fetch the identity provider's keys: %s", type(exc).__name__)
        return None


def _auth_unavailable() -> AppError:
    return AppError(503, "auth_unavailable", "Sign-in cannot be checked right now (the identity provider's keys "
                    "could not be fetched); try again later.")


def _get_json(url: str) -> Any:
    import requests

    response = requests.get(url, timeout=JWKS_TIMEOUT_SECONDS, allow_redirects=False)
    response.raise_for_status()
    return response.json()


_JWKS = _KeySet()
_warned = threading.Event()


def _warn_anonymous() -> None:
    if not _warned.is_set():
        _warned.set()
        logger.warning("No sign-in configured (AUTH_ISSUER or AUTH_EASY_AUTH): every caller is 'anonymous' and "
                       "anyone holding the function key can send at the account's expense.")
