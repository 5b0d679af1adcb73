"""The webhook-signature matrix: genuine Twilio request variants and forgeries, usable in-process and over HTTP.

Each case builds, for the origin the app sees (e.g. http://127.0.0.1:7071) and a webhook path, the raw request
(method, URL, headers, body) plus the app settings it needs. Signatures use Twilio's own algorithm.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from hashlib import sha256
from typing import Callable
from urllib.parse import quote, urlencode, urlsplit

from werkzeug.datastructures import MultiDict

from tests.support import AUTH_TOKEN, sign

PUBLIC = "https://voice.example.com"


@dataclass
class Raw:
    """A request as it arrives at the app."""

    method: str
    url: str
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    env: dict[str, str] = field(default_factory=dict)


Builder = Callable[[str, str], Raw]

SMS = [("MessageSid", "SM" + "a" * 32), ("AccountSid", "AC" + "b" * 32), ("From", "+14155550199"),
       ("To", "+15005550006"), ("Body", "Hello there"), ("NumMedia", "0"), ("ApiVersion", "2010-04-01")]


def form(url: str, pairs: list[tuple[str, str]], *, signed_url: str | None = None, env: dict[str, str] | None = None,
         headers: dict[str, str] | None = None, signed_pairs: list[tuple[str, str]] | None = None,
         token: str = AUTH_TOKEN) -> Raw:
    signature = sign(signed_url or url, MultiDict(signed_pairs if signed_pairs is not None else pairs), token)
    return Raw("POST", url, {"content-type": "application/x-www-form-urlencoded", "x-twilio-signature": signature,
                             **(headers or {})}, urlencode(pairs).encode(), env or {})


def with_port(origin: str) -> str:
    parts = urlsplit(origin)
    return origin if parts.port else f"{origin}:{443 if parts.scheme == 'https' else 80}"


def public_env() -> dict[str, str]:
    return {"PUBLIC_BASE_URL": PUBLIC}


def json_body(seen: str, path: str, payload: dict, tamper: bool = False) -> Raw:
    body = json.dumps(payload)
    url = f"{seen}{path}?bodySHA256={sha256(body.encode()).hexdigest()}"
    sent = json.dumps({**payload, "Body": "tampered"}) if tamper else body
    return Raw("POST", url, {"content-type": "application/json", "x-twilio-signature": sign(url, {})}, sent.encode())


GENUINE: dict[str, Builder] = {
    "plain_post": lambda seen, path: form(seen + path, SMS),
    "signed_with_default_port_443": lambda seen, path: form(
        seen + path, SMS, signed_url=with_port(PUBLIC) + path, env=public_env()),
    "signed_without_port_app_sees_port": lambda seen, path: form(
        seen + path, SMS, signed_url=PUBLIC + path, env={"PUBLIC_BASE_URL": PUBLIC + ":443"}),
    "http_signed_with_port_80": lambda seen, path: form(
        seen + path, SMS, signed_url="http://voice.example.com:80" + path, env={"PUBLIC_BASE_URL": "http://voice.example.com"}),
    "behind_proxy_public_base_url_set": lambda seen, path: form(
        seen + path, SMS, signed_url=PUBLIC + path, env=public_env(),
        headers={"x-forwarded-proto": "https", "x-forwarded-host": "voice.example.com"}),
    "azure_website_hostname": lambda seen, path: form(
        seen + path, SMS, signed_url="https://app.azurewebsites.net" + path,
        env={"WEBSITE_HOSTNAME": "app.azurewebsites.net"}),
    "behind_proxy_comma_separated_proto": lambda seen, path: form(
        seen + path, SMS, signed_url="https://" + urlsplit(seen).netloc + path,
        headers={"x-forwarded-proto": "https,https"}),
    "public_base_url_set": lambda seen, path: form(seen + path, SMS, signed_url=PUBLIC + path, env=public_env()),
    "public_base_url_trailing_slash": lambda seen, path: form(
        seen + path, SMS, signed_url=PUBLIC + path, env={"PUBLIC_BASE_URL": PUBLIC + "/"}),
    "function_key_code_in_query": lambda seen, path: form(seen + path + "?code=k3y%2Fabc==", SMS),
    "query_in_twilio_order": lambda seen, path: form(seen + path + "?zeta=1&alpha=2&Message=Hi%20there", SMS),
    "unknown_new_twilio_parameters": lambda seen, path: form(
        seen + path, SMS + [("AddOns", '{"status":"successful"}'), ("TrustScore", "97"), ("X_New_Param", "")]),
    "repeated_keys": lambda seen, path: form(
        seen + path, SMS + [("MediaUrl", "https://m.example.com/2"), ("MediaUrl", "https://m.example.com/1")]),
    "body_with_plus_and_encoded_plus": lambda seen, path: form(
        seen + path, [(k, "1+1 = 2 %2B a+b" if k == "Body" else v) for k, v in SMS]),
    "body_with_spaces_emoji_whitespace": lambda seen, path: form(
        seen + path, [(k, "  hi 😀 \t\n ünïcödé  " if k == "Body" else v) for k, v in SMS]),
    "empty_values": lambda seen, path: form(seen + path, SMS + [("FromCity", ""), ("FromZip", "")]),
    "get_params_only_in_url": lambda seen, path: Raw(
        "GET", u := seen + path + "?" + urlencode(SMS), {"x-twilio-signature": sign(u, {})}),
    "json_body_signed_with_body_sha256": lambda seen, path: json_body(seen, path, dict(SMS)),
}


def _sign_other_url(seen: str, path: str) -> Raw:
    raw = form(seen + path, SMS)
    raw.headers["x-twilio-signature"] = sign(seen + "/api/some_other_function", MultiDict(SMS))
    return raw


def _header(name: str, value: str | None) -> Builder:
    def build(seen: str, path: str) -> Raw:
        raw = form(seen + path, SMS)
        if value is None:
            del raw.headers[name]
        else:
            raw.headers[name] = value
        return raw
    return build


def _changed(pairs: list[tuple[str, str]]) -> Builder:
    """Body sent with pairs, signature computed over the genuine SMS parameters."""
    return lambda seen, path: form(seen + path, pairs, signed_pairs=SMS)


def _mangle_signature(fn: Callable[[str], str]) -> Builder:
    def build(seen: str, path: str) -> Raw:
        raw = form(seen + path, SMS)
        raw.headers["x-twilio-signature"] = fn(raw.headers["x-twilio-signature"])
        return raw
    return build


FORGERIES: dict[str, Builder] = {
    "missing_header": _header("x-twilio-signature", None),
    "empty_header": _header("x-twilio-signature", ""),
    "garbage_header": _header("x-twilio-signature", "not-a-signature"),
    "wrong_token": lambda seen, path: form(seen + path, SMS, token="wrong-auth-token"),
    "token_prefix_only": lambda seen, path: form(seen + path, SMS, token=AUTH_TOKEN[:-1]),
    "one_changed_parameter": _changed([(k, "Hello therf" if k == "Body" else v) for k, v in SMS]),
    "changed_sender": _changed([(k, "+14155550100" if k == "From" else v) for k, v in SMS]),
    "one_added_parameter": _changed(SMS + [("Extra", "1")]),
    "one_removed_parameter": _changed([p for p in SMS if p[0] != "NumMedia"]),
    "repeated_key_extra_value": _changed(SMS + [("Body", "second body")]),
    "parameter_name_case_changed": _changed([("from" if k == "From" else k, v) for k, v in SMS]),
    "changed_path": lambda seen, path: form(seen + path, SMS, signed_url=seen + path + "_old"),
    "changed_host": lambda seen, path: form(seen + path, SMS, signed_url="http://attacker.example.com" + path),
    "reordered_query_string": lambda seen, path: form(
        seen + path + "?a=1&b=2", SMS, signed_url=seen + path + "?b=2&a=1"),
    "query_parameter_added_after_signing": lambda seen, path: form(
        seen + path + "?Message=evil", SMS, signed_url=seen + path),
    "query_parameter_removed_after_signing": lambda seen, path: form(
        seen + path, SMS, signed_url=seen + path + "?Message=hi"),
    "code_key_changed": lambda seen, path: form(seen + path + "?code=other", SMS, signed_url=seen + path + "?code=k"),
    "https_signed_app_sees_http_without_proxy_header": lambda seen, path: form(
        seen + path, SMS, signed_url="https://" + urlsplit(seen).netloc + path),
    "forwarded_host_without_public_base_url": lambda seen, path: form(
        seen + path, SMS, signed_url="https://attacker.example.com" + path,
        headers={"x-forwarded-host": "attacker.example.com", "x-forwarded-proto": "https"}),
    "local_website_hostname_is_not_the_public_origin": lambda seen, path: form(
        seen + path, SMS, signed_url="https://localhost:7071" + path, env={"WEBSITE_HOSTNAME": "localhost:7071"}),
    "forwarded_host_spoof_with_public_base_url": lambda seen, path: form(
        seen + path, SMS, signed_url="https://attacker.example.com" + path, env=public_env(),
        headers={"x-forwarded-host": "attacker.example.com", "x-forwarded-proto": "https"}),
    "signature_for_a_different_url": _sign_other_url,
    "replayed_from_voice_webhook": lambda seen, path: form(
        seen + path, SMS, signed_url=seen + ("/api/voice_webhook" if "sms" in path else "/api/sms_webhook")),
    "signature_with_trailing_character": _mangle_signature(lambda s: s + "A"),
    "signature_truncated": _mangle_signature(lambda s: s[:-2]),
    "signature_lowercased": _mangle_signature(lambda s: s.lower() if s.lower() != s else s.upper()),
    "get_query_tampered": lambda seen, path: Raw(
        "GET", seen + path + "?" + urlencode([(k, "evil" if k == "Body" else v) for k, v in SMS]),
        {"x-twilio-signature": sign(seen + path + "?" + urlencode(SMS), {})}),
    "tampered_json_body_with_valid_url_signature": lambda seen, path: json_body(seen, path, dict(SMS), tamper=True),
    "json_body_without_body_sha256": lambda seen, path: Raw(
        "POST", seen + path, {"content-type": "application/json", "x-twilio-signature": sign(seen + path, {})},
        json.dumps(dict(SMS)).encode()),
    "form_body_declared_as_text": lambda seen, path: Raw(
        "POST", seen + path, {"content-type": "text/plain", "x-twilio-signature": sign(seen + path, MultiDict(SMS))},
        urlencode(SMS).encode()),
}

assert len(FORGERIES) >= 20
_ = quote  # re-exported for tests building URLs by hand
