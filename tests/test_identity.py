"""Who is calling: bearer JWTs validated against the sandbox's OpenID provider, Easy Auth, and anonymous mode."""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
import subprocess
import sys
import textwrap
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

import make_call
import send_sms
from tests.support import RECIPIENT, ROOT, body_of, json_request

SMS_URL = "http://localhost:7071/api/send_sms"


@pytest.fixture
def idp(app_env, monkeypatch):
    """AUTH_ISSUER/AUTH_AUDIENCE pointing at the sandbox's development OpenID provider."""
    monkeypatch.setenv("AUTH_ISSUER", app_env.idp.issuer)
    monkeypatch.setenv("AUTH_AUDIENCE", app_env.idp.audience)
    return app_env.idp


def sms(authorization: str | None, main=send_sms.main, url: str = SMS_URL):
    headers = {"authorization": authorization} if authorization is not None else {}
    return main(json_request(url, {"to": RECIPIENT, "body": "hi"}, headers=headers))


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def claims(idp, **overrides) -> dict:
    now = int(time.time())
    return {"iss": idp.issuer, "aud": idp.audience, "sub": "alice", "iat": now, "exp": now + 600, **overrides}


def signed(idp, **overrides) -> str:
    return jwt.encode(claims(idp, **overrides), idp.private_key, algorithm="RS256", headers={"kid": idp.kid})


def hs256_with_public_key(idp) -> str:
    """The classic confusion attack: HMAC over the token with the RSA public key (PEM) as the secret."""
    pem = idp.private_key.public_key().public_bytes(serialization.Encoding.PEM,
                                                   serialization.PublicFormat.SubjectPublicKeyInfo)
    head = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": idp.kid}).encode())
    body = b64(json.dumps(claims(idp)).encode())
    return f"{head}.{body}.{b64(hmac.new(pem, f'{head}.{body}'.encode(), hashlib.sha256).digest())}"


def tampered(idp) -> str:
    head, _, signature = signed(idp).split(".")
    return f"{head}.{b64(json.dumps(claims(idp, sub='mallory')).encode())}.{signature}"


@functools.lru_cache(maxsize=1)
def unpublished_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def unknown_kid(_idp) -> str:
    return jwt.encode(claims(_idp), unpublished_key(), algorithm="RS256", headers={"kid": "not-published"})


BAD_TOKENS = {
    "expired": lambda idp: "Bearer " + signed(idp, exp=int(time.time()) - 120),
    "nbf_in_the_future": lambda idp: "Bearer " + signed(idp, nbf=int(time.time()) + 120),
    "wrong_aud": lambda idp: "Bearer " + signed(idp, aud="someone-else"),
    "wrong_iss": lambda idp: "Bearer " + signed(idp, iss="https://evil.example"),
    "alg_none": lambda idp: "Bearer " + jwt.encode(claims(idp), None, algorithm="none", headers={"kid": idp.kid}),
    "hs256_with_public_key": lambda idp: "Bearer " + hs256_with_public_key(idp),
    "unknown_kid": lambda idp: "Bearer " + unknown_kid(idp),
    "tampered_payload": lambda idp: "Bearer " + tampered(idp),
    "missing_sub": lambda idp: "Bearer " + jwt.encode({k: v for k, v in claims(idp).items() if k != "sub"},
                                                      idp.private_key, algorithm="RS256", headers={"kid": idp.kid}),
    "missing_exp": lambda idp: "Bearer " + jwt.encode({k: v for k, v in claims(idp).items() if k != "exp"},
                                                      idp.private_key, algorithm="RS256", headers={"kid": idp.kid}),
    "bearer_without_token": lambda idp: "Bearer",
    "not_a_jwt": lambda idp: "Bearer not.a.jwt",
}


def test_identity_valid_token_is_accepted(idp):
    response = sms("Bearer " + idp.token("alice"))
    assert response.status_code == 201, response.get_body()


def test_identity_token_within_leeway_is_accepted(idp):
    assert sms("Bearer " + signed(idp, exp=int(time.time()) - 30, nbf=int(time.time()) + 30)).status_code == 201


@pytest.mark.parametrize("case", sorted(BAD_TOKENS))
@pytest.mark.parametrize("main", [send_sms.main, make_call.main], ids=["send_sms", "make_call"])
def test_identity_bad_token_returns_401_invalid_token_and_sends_nothing(idp, app_env, case, main):
    response = sms(BAD_TOKENS[case](idp), main=main)
    assert (response.status_code, body_of(response)["error"]["code"]) == (401, "unauthenticated")
    assert response.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'
    assert app_env.requests == []


def test_identity_missing_token_returns_401_bearer_challenge_without_error(idp, app_env):
    response = sms(None)
    assert (response.status_code, body_of(response)["error"]["code"]) == (401, "unauthenticated")
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert app_env.requests == []


@pytest.mark.parametrize("header", ["Basic YWxpY2U6cGFzc3dvcmQ=", "Token abc", "eyJhbGciOi.not-a-scheme"])
def test_identity_authorization_not_bearer_returns_401_saying_so_not_invalid_or_expired(idp, app_env, header):
    response = sms(header)
    error = body_of(response)["error"]
    assert (response.status_code, error["code"]) == (401, "unauthenticated")
    assert "not a bearer token" in error["message"] and "expired" not in error["message"]
    assert response.headers["WWW-Authenticate"] == "Bearer"  # RFC 6750: no error code without a bearer attempt
    assert app_env.requests == []


def test_identity_key_rotation_new_key_validates_after_one_refetch(idp):
    assert sms("Bearer " + idp.token()).status_code == 201
    fetches = idp.jwks_fetches
    idp.rotate()
    assert sms("Bearer " + idp.token()).status_code == 201  # unknown kid: the JWKS is fetched again at once
    assert idp.jwks_fetches == fetches + 1


def test_identity_unknown_kids_refetch_at_most_once_a_minute(idp):
    assert sms("Bearer " + idp.token()).status_code == 201
    fetches = idp.jwks_fetches
    for _ in range(5):
        assert sms("Bearer " + unknown_kid(idp)).status_code == 401
    assert idp.jwks_fetches == fetches + 1


def test_identity_jwks_unreachable_returns_503_auth_unavailable(app_env, monkeypatch, refused_port):
    monkeypatch.setenv("AUTH_ISSUER", f"http://127.0.0.1:{refused_port}")  # nothing listens
    monkeypatch.setenv("AUTH_AUDIENCE", "api")
    response = sms("Bearer " + app_env.idp.token())
    assert (response.status_code, body_of(response)["error"]["code"]) == (503, "auth_unavailable")
    assert app_env.requests == []


def test_identity_explicit_jwks_url_skips_discovery(idp, monkeypatch):
    monkeypatch.setenv("AUTH_JWKS_URL", idp.discovery()["jwks_uri"])
    monkeypatch.setenv("AUTH_ISSUER", idp.issuer)
    assert sms("Bearer " + idp.token()).status_code == 201


def test_identity_issuer_without_audience_returns_503_naming_it(app_env, monkeypatch):
    monkeypatch.setenv("AUTH_ISSUER", app_env.idp.issuer)
    response = sms("Bearer " + app_env.idp.token())
    assert response.status_code == 503
    assert "AUTH_AUDIENCE" in body_of(response)["error"]["message"]


def test_identity_both_ways_configured_returns_503_naming_both(idp, monkeypatch):
    monkeypatch.setenv("AUTH_EASY_AUTH", "true")
    monkeypatch.setenv("WEBSITE_AUTH_ENABLED", "True")
    message = body_of(sms("Bearer " + idp.token()))["error"]["message"]
    assert "AUTH_ISSUER" in message and "AUTH_EASY_AUTH" in message


def test_identity_easy_auth_spoofed_principal_while_platform_auth_off_is_not_trusted(app_env, monkeypatch):
    monkeypatch.setenv("AUTH_EASY_AUTH", "true")  # WEBSITE_AUTH_ENABLED unset: anyone could send the header
    response = send_sms.main(json_request(SMS_URL, {"to": RECIPIENT, "body": "hi"},
                                          headers={"x-ms-client-principal-id": "admin"}))
    error = body_of(response)["error"]
    assert (response.status_code, error["code"]) == (503, "not_configured")
    assert "AUTH_EASY_AUTH" in error["message"]
    assert app_env.requests == []


def test_identity_easy_auth_without_principal_returns_401(app_env, monkeypatch):
    monkeypatch.setenv("AUTH_EASY_AUTH", "true")
    monkeypatch.setenv("WEBSITE_AUTH_ENABLED", "True")
    response = sms(None)
    assert (response.status_code, body_of(response)["error"]["code"]) == (401, "unauthenticated")
    assert app_env.requests == []


def test_identity_easy_auth_principal_is_the_identity(app_env, monkeypatch, logs):
    monkeypatch.setenv("AUTH_EASY_AUTH", "true")
    monkeypatch.setenv("WEBSITE_AUTH_ENABLED", "True")
    response = send_sms.main(json_request(SMS_URL, {"to": RECIPIENT, "body": "hi"},
                                          headers={"x-ms-client-principal-id": "0a1b-principal"}))
    assert response.status_code == 201
    assert any("for 0a1b-principal" in text for _, text in logs.records)


def test_identity_forged_identity_in_body_is_refused_as_unknown_field(idp, app_env):
    response = send_sms.main(json_request(SMS_URL, {"to": RECIPIENT, "body": "hi", "identity": "bob"},
                                          headers={"authorization": "Bearer " + idp.token("alice")}))
    assert (response.status_code, body_of(response)["error"]["code"]) == (400, "unknown_field")


ANONYMOUS_TWICE = textwrap.dedent("""
    import logging
    import azure.functions as func
    from shared.identity import caller_identity
    from shared.settings import load_settings

    logging.basicConfig(level=logging.WARNING, format="%(name)s %(message)s")
    request = func.HttpRequest("POST", "http://localhost/api/send_sms", body=b"")
    print(caller_identity(request, load_settings()), caller_identity(request, load_settings()))
""")


def test_identity_neither_configured_is_anonymous_with_one_warning_per_process():
    done = subprocess.run([sys.executable, "-c", ANONYMOUS_TWICE], cwd=ROOT, capture_output=True, text=True,
                          timeout=60, env={"PATH": "/usr/bin:/bin"})
    assert done.stdout.split() == ["anonymous", "anonymous"]
    assert done.stderr.count("No sign-in configured") == 1
