"""make_call: validation, the voice_webhook URL given to Twilio, the 201 shape, settings and Twilio errors."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest

import make_call
from shared.step_mac import app_params
from tests.support import AUTH_TOKEN, RECIPIENT, SENDER, body_of, form_request, json_request

URL = "http://localhost:7071/api/make_call"


def call_creates(sandbox) -> list[dict]:
    return [r for r in sandbox.requests if r["method"] == "POST" and r["path"].endswith("/Calls.json")]


def test_make_call_with_message_returns_201_and_points_twilio_at_voice_webhook(app_env):
    response = make_call.main(json_request(URL, {"to": RECIPIENT, "message": "Your code is 1 2 3 & more"}))
    assert response.status_code == 201, response.get_body()
    body = body_of(response)
    assert set(body) == {"sid", "status", "to", "from"}
    assert re.fullmatch(r"CA[0-9a-f]{32}", body["sid"])
    assert (body["to"], body["from"]) == (RECIPIENT, SENDER)
    form = call_creates(app_env)[0]["form"]
    url = urlsplit(form["Url"][0])
    assert f"{url.scheme}://{url.netloc}{url.path}" == "http://localhost:7071/api/voice_webhook"
    assert app_params(url.query, AUTH_TOKEN) == {"Message": "Your code is 1 2 3 & more"}
    assert form["To"] == [RECIPIENT] and form["From"] == [SENDER]


def test_make_call_public_base_url_set_builds_webhook_url_on_it(app_env, monkeypatch):
    monkeypatch.setenv("PUBLIC_BASE_URL", "https://myapp.azurewebsites.net/")
    make_call.main(json_request(URL, {"to": RECIPIENT, "message": "hi", "voice": "Polly.Joanna",
                                      "language": "en-US"}))
    url = call_creates(app_env)[0]["form"]["Url"][0]
    assert url.startswith("https://myapp.azurewebsites.net/api/voice_webhook?")
    assert app_params(urlsplit(url).query, AUTH_TOKEN) == {"Message": "hi", "Voice": "Polly.Joanna",
                                                            "Language": "en-US"}


def test_make_call_behind_proxy_with_public_base_url_uses_it(app_env, monkeypatch):
    monkeypatch.setenv("PUBLIC_BASE_URL", "https://calls.example.com")
    make_call.main(json_request("http://10.0.0.4:80/api/make_call", {"to": RECIPIENT},
                                headers={"x-forwarded-proto": "http", "x-forwarded-host": "attacker.example"}))
    assert call_creates(app_env)[0]["form"]["Url"] == ["https://calls.example.com/api/voice_webhook"]


def test_make_call_form_body_is_accepted(app_env):
    response = make_call.main(form_request(URL, {"to": RECIPIENT, "message": "hello"}))
    assert response.status_code == 201


def test_make_call_status_callback_is_passed_to_twilio(app_env):
    make_call.main(json_request(URL, {"to": RECIPIENT, "status_callback": "https://example.com/cb"}))
    assert call_creates(app_env)[0]["form"]["StatusCallback"] == ["https://example.com/cb"]


@pytest.mark.parametrize(
    ("payload", "field", "code"),
    [
        ({}, "to", "missing_field"),
        ({"to": "abc"}, "to", "invalid_phone_number"),
        ({"to": RECIPIENT, "message": "m" * 1001}, "message", "too_long"),
        ({"to": RECIPIENT, "message": 5}, "message", "invalid_field"),
        ({"to": RECIPIENT, "voice": "Polly Joanna<"}, "voice", "invalid_field"),
        ({"to": RECIPIENT, "language": "english please"}, "language", "invalid_field"),
        ({"to": RECIPIENT, "from": "+1"}, "from", "invalid_phone_number"),
        ({"to": RECIPIENT, "url": "https://evil.example.com/twiml"}, "url", "unknown_field"),
    ],
)
def test_make_call_invalid_field_returns_400_and_calls_nobody(app_env, payload, field, code):
    response = make_call.main(json_request(URL, payload))
    assert response.status_code == 400
    error = body_of(response)["error"]
    assert (error["code"], error["field"]) == (code, field)
    assert app_env.requests == []


def test_make_call_message_of_exactly_1000_chars_is_accepted(app_env):
    assert make_call.main(json_request(URL, {"to": RECIPIENT, "message": "m" * 1000})).status_code == 201


def test_make_call_message_too_long_once_url_encoded_returns_400_and_calls_nobody(app_env):
    response = make_call.main(json_request(URL, {"to": RECIPIENT, "message": "😀" * 400}))
    assert response.status_code == 400
    error = body_of(response)["error"]
    assert (error["code"], error["field"]) == ("too_long", "message")
    assert "4000" in error["message"]
    assert app_env.requests == []


def test_make_call_get_returns_405(app_env):
    response = make_call.main(json_request(URL, {"to": RECIPIENT}, method="GET"))
    assert response.status_code == 405
    assert app_env.requests == []


def test_make_call_destination_not_allowed_returns_400(app_env, monkeypatch):
    monkeypatch.setenv("ALLOWED_DESTINATION_PREFIXES", "+44")
    response = make_call.main(json_request(URL, {"to": RECIPIENT}))
    assert response.status_code == 400
    assert body_of(response)["error"] == {"code": "destination_not_allowed", "field": "to",
                                          "message": body_of(response)["error"]["message"]}
    assert app_env.requests == []


def test_make_call_missing_caller_id_returns_503_naming_it(app_env, monkeypatch):
    monkeypatch.delenv("TWILIO_PHONE_NUMBER")
    response = make_call.main(json_request(URL, {"to": RECIPIENT}))
    assert response.status_code == 503
    assert "TWILIO_PHONE_NUMBER" in body_of(response)["error"]["message"]
    assert app_env.requests == []


@pytest.mark.parametrize(("to", "sender", "twilio_code"),
                         [("+15005550001", SENDER, 21217), ("+15005550002", SENDER, 21214),
                          ("+15005550003", SENDER, 21215), ("+15005550004", SENDER, 21216),
                          (RECIPIENT, "+15005550001", 21212), (RECIPIENT, "+15005550007", 21210)])
def test_make_call_twilio_content_error_returns_422_with_twilio_code(app_env, to, sender, twilio_code):
    response = make_call.main(json_request(URL, {"to": to, "from": sender}))
    assert response.status_code == 422
    assert body_of(response)["error"]["twilio_code"] == twilio_code
    assert len(call_creates(app_env)) == 1
