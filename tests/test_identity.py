"""Who is calling: bearer JWTs validated against the sandbox's OpenID provider (also while it is down), Easy Auth,
anonymous mode; the identity as log lines and the Voice SDK show it."""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
import re
import subprocess
import sys
import textwrap
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import given
from hypothesis import strategies as st

import make_call
import send_sms
from shared.identity import VOICE_IDENTITY_MAX, voice_identity
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


@pytest.fixture
def failing_jwks(app_env, monkeypatch):
    """AUTH_JWKS_URL pointing at a server that counts its requests and, per `mode`, holds each past the app's
    0.5 s fetch timeout ("hang") or answers 500 after 0.2 s ("error"); JWKS_TIMEOUT_SECONDS is 0.5."""
    from werkzeug.serving import make_server
    from werkzeug.wrappers import Response

    from devtools.sandbox.core import QuietHandler
    from shared import identity

    released, server = threading.Event(), None
    jwks = {"fetches": 0, "mode": "hang"}

    def app(environ, start_response):
        jwks["fetches"] += 1
        released.wait(3 if jwks["mode"] == "hang" else 0.2)
        return Response("boom", 500)(environ, start_response)

    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=QuietHandler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True).start()
    monkeypatch.setattr(identity, "JWKS_TIMEOUT_SECONDS", 0.5)
    monkeypatch.setenv("AUTH_ISSUER", app_env.idp.issuer)
    monkeypatch.setenv("AUTH_AUDIENCE", app_env.idp.audience)
    monkeypatch.setenv("AUTH_JWKS_URL", f"http://127.0.0.1:{server.port}/jwks.json")
    yield jwks
    released.set()
    server.shutdown()


def timed_burst(token: str, requests: int = 8) -> list[tuple[int, float]]:
    """(status, seconds) of `requests` send_sms made at once with token."""
    start = threading.Barrier(requests)

    def one(_):
        start.wait()
        began = time.monotonic()
        response = sms("Bearer " + token)
        return response.status_code, time.monotonic() - began

    with ThreadPoolExecutor(requests) as pool:
        return list(pool.map(one, range(requests)))


@pytest.mark.parametrize("mode", ["hang", "error"])
def test_identity_jwks_outage_concurrent_requests_share_one_fetch_and_remember_its_failure(failing_jwks, app_env,
                                                                                           mode):
    failing_jwks["mode"] = mode
    token = app_env.idp.token()
    first = timed_burst(token)
    assert [status for status, _ in first] == [503] * 8
    assert max(seconds for _, seconds in first) < 0.5 + 0.7  # no request waits longer than one fetch timeout
    assert failing_jwks["fetches"] == 1
    second = timed_burst(token)  # within FAILED_FETCH_SECONDS: the failure is remembered
    assert [status for status, _ in second] == [503] * 8
    assert max(seconds for _, seconds in second) < 0.3
    assert failing_jwks["fetches"] == 1
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
    assert any("for '0a1b-principal'" in text for _, text in logs.records)


def test_identity_sub_with_a_newline_is_logged_escaped_on_one_line(idp, logs):
    assert sms("Bearer " + idp.token("alice\nINFO shared.sends SMS queued for admin")).status_code == 201
    app_lines = [text for name, text in logs.records if name.startswith("shared")]
    assert not any("\n" in text for text in app_lines)
    assert any("for 'alice\\nINFO shared.sends SMS queued for admin'" in text for text in app_lines)


def test_identity_long_sub_is_logged_cut_short(idp, logs):
    assert sms("Bearer " + idp.token("a" * 5000)).status_code == 201
    queued = [text for name, text in logs.records if name == "shared.sends"]
    assert queued and all(len(text) < 200 and "'" + "a" * 64 + "'..." in text for text in queued)


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


# -- the Voice SDK identity (also the per-user quota subject) ---------------------------------------------------
SDK_ALPHABET = re.compile(r"[A-Za-z0-9_]+")


@pytest.mark.parametrize("identity", ["alice", "Bob42", "0a1b2c", "A" * VOICE_IDENTITY_MAX])
def test_voice_identity_plain_letters_and_digits_are_unchanged(identity):
    assert voice_identity(identity) == identity


def test_voice_identity_lookalike_identities_stay_distinct():
    lookalikes = ["bob.smith", "bob-smith", "bob_smith", "bob smith", "bobsmith", "bob__smith", "bob_2esmith",
                  "josé", "josè", "jos_", "jose", "jos\u0065\u0301", "auth0|5f3c", "auth0_5f3c", "_z", "z"]
    mapped = [voice_identity(identity) for identity in lookalikes]
    assert len(set(mapped)) == len(lookalikes)
    assert voice_identity("bob.smith") == "bob_2esmith" and voice_identity("josé") == "jos_e9"


ESCAPED = re.compile(r"([A-Za-z0-9])|(__)|_([0-9a-f]{2})|_u([0-9a-f]{4})|_U([0-9a-f]{8})")


def unescaped(mapped: str) -> str:
    """The identity an escaped Voice SDK identity came from, read token by token (AssertionError if none)."""
    identity, position = [], 0
    while position < len(mapped):
        token = ESCAPED.match(mapped, position)
        assert token is not None, mapped
        plain, underscore, *codes = token.groups()
        identity.append(plain or (underscore and "_") or chr(int(next(code for code in codes if code), 16)))
        position = token.end()
    return "".join(identity)


@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=150))
def test_voice_identity_every_identity_is_read_back_or_hashed_apart(identity):
    mapped = voice_identity(identity)
    assert SDK_ALPHABET.fullmatch(mapped) and len(mapped) <= VOICE_IDENTITY_MAX
    if mapped.startswith("_z"):  # no escaped form starts so: '_' is followed by '_', a hex digit, 'u' or 'U'
        assert len(mapped) == 66
    else:
        assert unescaped(mapped) == identity


@given(st.text(), st.text())
def test_voice_identity_any_two_identities_map_apart_into_the_sdk_alphabet(first, second):
    for identity in (first, second):
        mapped = voice_identity(identity)
        assert SDK_ALPHABET.fullmatch(mapped) and len(mapped) <= VOICE_IDENTITY_MAX
    assert (voice_identity(first) == voice_identity(second)) == (first == second)


@given(st.text(min_size=1, max_size=3).map(lambda text: text * 200), st.text(max_size=130))
def test_voice_identity_long_identities_are_hashed_apart_from_every_other_form(long, other):
    mapped = voice_identity(long)
    assert mapped.startswith("_z") and len(mapped) == 66 and SDK_ALPHABET.fullmatch(mapped)
    assert voice_identity(long + "x") != mapped
    if other != long:
        assert voice_identity(other) != mapped
