"""The development OpenID provider: its discovery document and JWKS, and RS256 access tokens it signs."""

from __future__ import annotations

import functools
import threading
import time
import uuid
from typing import Any


def new_rsa_key() -> Any:
    from cryptography.hazmat.primitives.asymmetric import rsa  # only for the tests and runs that sign in

    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@functools.lru_cache(maxsize=1)
def process_rsa_key() -> Any:
    """Every provider's first signing key in this process: making one takes about 0.1 s of CPU, and a test run
    starts hundreds of sandboxes. Their kids and issuers still differ, so one's tokens never pass for another's."""
    return new_rsa_key()


class IdentityProvider:
    """Serves `{issuer}/.well-known/openid-configuration` and its JWKS; signs tokens with the current key."""

    def __init__(self) -> None:
        self.audience = "twilio-functions-dev"  # AUTH_AUDIENCE for an app signing in against it
        self.issuer = ""  # the sandbox's base URL, once it listens
        self.jwks_fetches = 0
        self._lock = threading.Lock()
        self._current: tuple[str, Any] | None = None  # (kid, key)
        self._rotated = False

    @property
    def private_key(self) -> Any:
        """The current signing key (tests forge tokens with it)."""
        return self._signing()[1]

    @property
    def kid(self) -> str:
        return self._signing()[0]

    def _signing(self) -> tuple[str, Any]:
        with self._lock:
            if self._current is None:  # made on first use; each provider's kid is its own
                self._current = uuid.uuid4().hex[:16], new_rsa_key() if self._rotated else process_rsa_key()
            return self._current

    def rotate(self) -> None:
        """Publish a new signing key in place of the old one (tokens signed with the old one stop validating)."""
        with self._lock:
            self._current, self._rotated = None, True  # the next use makes the new one

    def discovery(self) -> dict[str, Any]:
        return {"issuer": self.issuer, "jwks_uri": f"{self.issuer}/.well-known/jwks.json",
                "id_token_signing_alg_values_supported": ["RS256"], "token_endpoint": f"{self.issuer}/_sandbox/token"}

    def jwks(self) -> dict[str, Any]:
        from jwt.algorithms import RSAAlgorithm

        kid, key = self._signing()
        with self._lock:
            self.jwks_fetches += 1
        jwk = RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
        return {"keys": [{**jwk, "kid": kid, "use": "sig", "alg": "RS256"}]}

    def token(self, sub: str = "alice", ttl: int = 3600) -> str:
        """A signed access token for sub, valid for ttl seconds."""
        import jwt

        now = int(time.time())
        payload = {"iss": self.issuer, "aud": self.audience, "sub": sub, "iat": now, "nbf": now, "exp": now + ttl}
        kid, key = self._signing()
        return jwt.encode(payload, key, algorithm="RS256", headers={"kid": kid})
