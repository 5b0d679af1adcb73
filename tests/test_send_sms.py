"""send_sms: validation (400/415/405, nothing sent), success (201 shape), settings (503) and Twilio mapping."""

from __future__ import annotations

import re

import pytest

import send_sms
from tests.support import (ACCOUNT_SID, API_KEY_SECRET, API_KEY_SID, RECIPIENT, SENDER, body_of, form_request,
                           json_request)

URL = "http://localhost:7071/api/send_sms"


def creates(sandbox) -> list[dict]:
    return [r for r in sandbox.requests if r["method"] == "POST" and r["path"].endswith("/Messages.json")]


def test_send_sms_valid_json_returns_201_with_documented_fields(app_env):
    response = send_sms.main(json_request(URL, {"to": RECIPIENT, "body": "Hello from the app"}))
    assert response.status_code == 201
    assert response.mimetype == "application/json"
    body = body_of(response)
    assert set(body) == {"sid", "status", "to", "from", "date_created"}
    assert re.fullmatch(r"SM[0-9a-f]{32}", body["sid"])
    assert body["to"] == RECIPIENT and body["from"] == SENDER and body["status"] == "queued"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", body["date_created"])
    [message] = app_env.messages
    assert (message["to"], message["from"], message["body"]) == (RECIPIENT, SENDER, "Hello from the app")
    assert message["sid"] == body["sid"]


def test_send_sms_form_body_with_repeated_media_url_sends_every_url(app_env):
    pairs = [("to", RECIPIENT), ("media_url", "https://example.com/a.png"), ("media_url", "https://example.com/b.png")]
    response = send_sms.main(form_request(URL, pairs))
    assert response.status_code == 201, response.get_body()
    [create] = creates(app_env)
    assert create["form"]["MediaUrl"] == ["https://example.com/a.png", "https://example.com/b.png"]
    assert "Body" not in create["form"]


def test_send_sms_explicit_from_overrides_default_sender(app_env):
    response = send_sms.main(json_request(URL, {"to": RECIPIENT, "body": "x", "from": "+15005550006"}))
    assert response.status_code == 201
    assert creates(app_env)[0]["form"]["From"] == ["+15005550006"]


def test_send_sms_messaging_service_configured_sends_through_it(app_env, monkeypatch):
    monkeypatch.setenv("TWILIO_MESSAGING_SERVICE_SID", "MG" + "1" * 32)
    response = send_sms.main(json_request(URL, {"to": RECIPIENT, "body": "x"}))
    assert response.status_code == 201, response.get_body()
    form = creates(app_env)[0]["form"]
    assert form["MessagingServiceSid"] == ["MG" + "1" * 32]
    assert "From" not in form


def test_send_sms_status_callback_is_passed_to_twilio(app_env):
    response = send_sms.main(json_request(URL, {"to": RECIPIENT, "body": "x",
                                                "status_callback": "https://example.com/status"}))
    assert response.status_code == 201
    assert creates(app_env)[0]["form"]["StatusCallback"] == ["https://example.com/status"]


def test_send_sms_api_key_credentials_authenticate_with_the_key(app_env, monkeypatch):
    monkeypatch.setenv("TWILIO_API_KEY_SID", API_KEY_SID)
    monkeypatch.setenv("TWILIO_API_KEY_SECRET", API_KEY_SECRET)
    monkeypatch.delenv("TWILIO_AUTH_TOKEN")  # the key is now the only credential the sandbox could accept
    response = send_sms.main(json_request(URL, {"to": RECIPIENT, "body": "x"}))
    assert response.status_code == 201, response.get_body()
    assert f"/Accounts/{ACCOUNT_SID}/" in creates(app_env)[0]["path"]


def test_send_sms_wrong_api_key_secret_returns_502(app_env, monkeypatch):
    monkeypatch.setenv("TWILIO_API_KEY_SID", API_KEY_SID)
    monkeypatch.setenv("TWILIO_API_KEY_SECRET", "not-the-secret")
    response = send_sms.main(json_request(URL, {"to": RECIPIENT, "body": "x"}))
    assert (response.status_code, body_of(response)["error"]["code"]) == (502, "twilio_auth_failed")


def test_send_sms_half_configured_api_key_returns_503_naming_the_other_half(app_env, monkeypatch):
    monkeypatch.setenv("TWILIO_API_KEY_SID", API_KEY_SID)
    response = send_sms.main(json_request(URL, {"to": RECIPIENT, "body": "x"}))
    assert response.status_code == 503
    assert "TWILIO_API_KEY_SECRET" in body_of(response)["error"]["message"]


def test_send_sms_national_number_with_default_region_is_normalised(app_env, monkeypatch):
    monkeypatch.setenv("DEFAULT_REGION", "US")
    response = send_sms.main(json_request(URL, {"to": "(415) 555-0123", "body": "x"}))
    assert response.status_code == 201, response.get_body()
    assert app_env.messages[0]["to"] == "+14155550123"


@pytest.mark.parametrize(
    ("payload", "field", "code"),
    [
        ({"body": "x"}, "to", "missing_field"),
        ({"to": "", "body": "x"}, "to", "missing_field"),
        ({"to": RECIPIENT}, "body", "missing_field"),
        ({"to": "not a number", "body": "x"}, "to", "invalid_phone_number"),
        ({"to": "+1555", "body": "x"}, "to", "invalid_phone_number"),
        ({"to": "4155550123", "body": "x"}, "to", "invalid_phone_number"),
        ({"to": 14155550123, "body": "x"}, "to", "invalid_field"),
        ({"to": RECIPIENT, "body": "x" * 1601}, "body", "too_long"),
        ({"to": RECIPIENT, "body": ["x"]}, "body", "invalid_field"),
        ({"to": RECIPIENT, "body": "x", "from": "someone"}, "from", "invalid_phone_number"),
        ({"to": RECIPIENT, "media_url": "http://example.com/a.png"}, "media_url", "invalid_url"),
        ({"to": RECIPIENT, "media_url": "not a url"}, "media_url", "invalid_url"),
        ({"to": RECIPIENT, "media_url": [f"https://example.com/{i}.png" for i in range(11)]}, "media_url",
         "too_many_media"),
        ({"to": RECIPIENT, "media_url": [1]}, "media_url", "invalid_url"),
        ({"to": RECIPIENT, "body": "x", "status_callback": "ftp://x"}, "status_callback", "invalid_url"),
        ({"To": RECIPIENT, "body": "x"}, "To", "unknown_field"),
    ],
)
def test_send_sms_invalid_field_returns_400_and_sends_nothing(app_env, payload, field, code):
    response = send_sms.main(json_request(URL, payload))
    assert response.status_code == 400
    error = body_of(response)["error"]
    assert (error["code"], error["field"]) == (code, field)
    assert error["message"]
    assert app_env.requests == []


def test_send_sms_body_of_exactly_1600_chars_is_accepted(app_env):
    assert send_sms.main(json_request(URL, {"to": RECIPIENT, "body": "é" * 1600})).status_code == 201


@pytest.mark.parametrize("raw", [b"{not json", b"[1, 2]", b'"text"', b"\xff\xfe"])
def test_send_sms_malformed_json_returns_400_and_sends_nothing(app_env, raw):
    response = send_sms.main(json_request(URL, raw))
    assert response.status_code == 400
    assert body_of(response)["error"]["code"] in {"invalid_json", "invalid_body"}
    assert app_env.requests == []


def test_send_sms_other_content_type_returns_415(app_env):
    import azure.functions as func
    req = func.HttpRequest("POST", URL, headers={"content-type": "text/plain"}, body=b"to=+14155550123")
    response = send_sms.main(req)
    assert response.status_code == 415
    assert body_of(response)["error"]["code"] == "unsupported_media_type"
    assert app_env.requests == []


@pytest.mark.parametrize("content_type", ["application/x-www-form-urlencoded", None], ids=["form", "none"])
@pytest.mark.parametrize("raw", [b'{"to": "+14155550123", "body": "hi"}', b'  [{"to": "+14155550123"}]'])
def test_send_sms_json_without_json_content_type_returns_415_naming_the_header(app_env, content_type, raw):
    import azure.functions as func
    headers = {"content-type": content_type} if content_type else {}
    response = send_sms.main(func.HttpRequest("POST", URL, headers=headers, body=raw))
    error = body_of(response)["error"]
    assert (response.status_code, error["code"]) == (415, "unsupported_media_type")
    assert "Content-Type: application/json" in error["message"] and "Unknown field" not in error["message"]
    assert app_env.requests == []


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH"])
def test_send_sms_non_post_method_returns_405(app_env, method):
    response = send_sms.main(json_request(URL, {"to": RECIPIENT, "body": "x"}, method=method))
    assert response.status_code == 405
    assert response.headers["Allow"] == "POST"
    assert app_env.requests == []


def test_send_sms_destination_outside_allowed_prefixes_returns_400(app_env, monkeypatch):
    monkeypatch.setenv("ALLOWED_DESTINATION_PREFIXES", "+1, +44")
    response = send_sms.main(json_request(URL, {"to": "+33612345678", "body": "x"}))
    assert response.status_code == 400
    assert body_of(response)["error"]["code"] == "destination_not_allowed"
    assert app_env.requests == []
    assert send_sms.main(json_request(URL, {"to": "+447911123456", "body": "x"})).status_code == 201


def test_send_sms_no_settings_returns_503_naming_every_missing_setting(sandbox):
    response = send_sms.main(json_request(URL, {"to": RECIPIENT, "body": "x"}))
    assert response.status_code == 503
    error = body_of(response)["error"]
    assert error["code"] == "not_configured"
    for name in ("TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "TWILIO_PHONE_NUMBER"):
        assert name in error["message"]


def test_send_sms_invalid_timeout_setting_returns_503_naming_it(app_env, monkeypatch):
    monkeypatch.setenv("TWILIO_HTTP_TIMEOUT_SECONDS", "soon")
    response = send_sms.main(json_request(URL, {"to": RECIPIENT, "body": "x"}))
    assert response.status_code == 503
    assert "TWILIO_HTTP_TIMEOUT_SECONDS" in body_of(response)["error"]["message"]
    assert app_env.requests == []


@pytest.mark.parametrize(
    ("to", "sender", "twilio_code"),
    [("+15005550001", SENDER, 21211), ("+15005550002", SENDER, 21612), ("+15005550003", SENDER, 21408),
     ("+15005550004", SENDER, 21610), ("+15005550009", SENDER, 21614), (RECIPIENT, "+15005550001", 21212),
     (RECIPIENT, "+15005550007", 21606)],
)
def test_send_sms_twilio_content_error_returns_422_with_twilio_code(app_env, to, sender, twilio_code):
    response = send_sms.main(json_request(URL, {"to": to, "body": "x", "from": sender}))
    assert response.status_code == 422
    error = body_of(response)["error"]
    assert error["code"] == "twilio_rejected"
    assert error["twilio_code"] == twilio_code
    assert error["more_info"].endswith(str(twilio_code))
    assert len(creates(app_env)) == 1
