"""Who is calling the mobile API: a validated bearer JWT's `sub`, the Easy Auth principal, or `anonymous`."""

from __future__ import annotations

import logging
import re
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
JWKS_TIMEOUT_SECONDS = 5.0
ASYMMETRIC_KEY_TYPES = ("RSA", "EC", "OKP")


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
    """The caller's identity as Twilio Voice SDK client and per-user quota subject: letters, digits and '_' are kept,
    every other character becomes '_' ('auth0|5f3c' -> 'auth0_5f3c')."""
    return re.sub(r"[^A-Za-z0-9_]", "_", identity)


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
    """The issuer's signing keys, fetched once per process; an unknown `kid` refetches at most once a minute."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._source: tuple[str | None, str | None] | None = None
        self._keys: dict[str | None, Any] = {}
        self._last_refetch = float("-inf")

    def key(self, settings: Settings, kid: str | None) -> Any:
        """The PyJWK for kid (a lone key also serves a token without kid), or None."""
        with self._lock:
            source = (settings.auth_issuer, settings.auth_jwks_url)
            if self._source != source:
                self._keys, self._source, self._last_refetch = _fetch_keys(settings), source, float("-inf")
            elif kid not in self._keys and time.monotonic() - self._last_refetch >= REFETCH_INTERVAL_SECONDS:
                self._last_refetch = time.monotonic()
                self._keys = _fetch_keys(settings)
            if kid is None and len(self._keys) == 1:
                return next(iter(self._keys.values()))
            return self._keys.get(kid)


def _fetch_keys(settings: Settings) -> dict[str | None, Any]:
    """{kid: PyJWK} of the JWKS's asymmetric signing keys; 503 auth_unavailable if it cannot be had."""
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
        raise AppError(503, "auth_unavailable", "Sign-in cannot be checked right now (the identity provider's "
                       "keys could not be fetched); try again later.") from None


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
