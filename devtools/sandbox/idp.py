"""A development OpenID provider: discovery, a JWKS, and RS256 tokens for any subject (local runs and tests)."""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

DEFAULT_AUDIENCE = "twilio-functions-dev"


class IdentityProvider:
    """Serves `{issuer}/.well-known/openid-configuration` and its JWKS; signs tokens with the current key."""

    def __init__(self, audience: str = DEFAULT_AUDIENCE) -> None:
        self.audience = audience
        self.issuer = ""  # the sandbox's base URL, once it listens
        self.jwks_fetches = 0
        self._lock = threading.Lock()
        self._current: tuple[str, Any] | None = None  # (kid, key), made on first use: RSA key generation is slow

    @property
    def private_key(self) -> Any:
        """The current signing key (tests forge tokens with it)."""
        return self._signing()[1]

    @property
    def kid(self) -> str:
        return self._signing()[0]

    def _signing(self) -> tuple[str, Any]:
        with self._lock:
            if self._current is None:
                self._current = _new_key()
            return self._current

    def rotate(self) -> None:
        """Publish a new signing key in place of the old one (tokens signed with the old one stop validating)."""
        with self._lock:
            self._current = _new_key()

    def discovery(self) -> dict[str, Any]:
        return {"issuer": self.issuer, "jwks_uri": f"{self.issuer}/.well-known/jwks.json",
                "id_token_signing_alg_values_supported": ["RS256"], "token_endpoint": f"{self.issuer}/_sandbox/token"}

    def jwks(self) -> dict[str, Any]:
        kid, key = self._signing()
        with self._lock:
            self.jwks_fetches += 1
        jwk = RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
        return {"keys": [{**jwk, "kid": kid, "use": "sig", "alg": "RS256"}]}

    def token(self, sub: str = "alice", ttl: int = 3600) -> str:
        """A signed access token for sub, valid for ttl seconds."""
        now = int(time.time())
        payload = {"iss": self.issuer, "aud": self.audience, "sub": sub, "iat": now, "nbf": now, "exp": now + ttl}
        kid, key = self._signing()
        return jwt.encode(payload, key, algorithm="RS256", headers={"kid": kid})


def _new_key() -> tuple[str, Any]:
    return uuid.uuid4().hex[:16], rsa.generate_private_key(public_exponent=65537, key_size=2048)
