"""make_call and send_sms against Prism serving Twilio's official OpenAPI spec: every option, zero validation errors."""

from __future__ import annotations

import pytest

import make_call
import send_sms
from tests.conftest import ACCOUNT_SID, AUTH_TOKEN, RECIPIENT, SENDER, body_of, form_request, json_request

from .prism import prism_twilio  # noqa: F401  (session fixture)

SMS_URL = "https://myapp.example.com/api/send_sms"
CALL_URL = "https://myapp.example.com/api/make_call"
MESSAGING_SERVICE_SID = "MG" + "0123456789abcdef" * 2


@pytest.fixture
def prism(prism_twilio, monkeypatch):  # noqa: F811
    monkeypatch.setenv("TWILIO_ACCOUNT_SID", ACCOUNT_SID)
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", AUTH_TOKEN)
    monkeypatch.setenv("TWILIO_PHONE_NUMBER", SENDER)
    monkeypatch.setenv("TWILIO_API_BASE_URL", prism_twilio.base_url)
    prism_twilio.mark()
    return prism_twilio


def assert_valid_for_twilio(prism, response, resource: str) -> None:
    assert response.status_code == 201, response.get_body()
    [request] = prism.requests()
    assert request.method == "POST" and request.path == f"/2010-04-01/Accounts/{ACCOUNT_SID}/{resource}"
    assert prism.validation_errors() == []


SMS_CASES = {
    "body_only": {"to": RECIPIENT, "body": "Hello"},
    "explicit_from": {"to": RECIPIENT, "body": "Hello", "from": SENDER},
    "one_media_url": {"to": RECIPIENT, "media_url": "https://example.com/cat.jpg"},
    "media_and_body": {"to": RECIPIENT, "body": "Look", "media_url": [f"https://example.com/{i}.jpg" for i in range(10)]},
    "status_callback": {"to": RECIPIENT, "body": "Hello", "status_callback": "https://example.com/status"},
    "unicode_1600": {"to": RECIPIENT, "body": "😀" * 1600},
}


@pytest.mark.parametrize("case", sorted(SMS_CASES))
def test_send_sms_option_set_passes_twilio_spec_validation(prism, case):
    assert_valid_for_twilio(prism, send_sms.main(json_request(SMS_URL, SMS_CASES[case])), "Messages.json")


def test_send_sms_messaging_service_passes_twilio_spec_validation(prism, monkeypatch):
    monkeypatch.setenv("TWILIO_MESSAGING_SERVICE_SID", MESSAGING_SERVICE_SID)
    response = send_sms.main(json_request(SMS_URL, {"to": RECIPIENT, "body": "via service",
                                                    "status_callback": "https://example.com/s"}))
    assert_valid_for_twilio(prism, response, "Messages.json")


def test_send_sms_api_key_auth_passes_twilio_spec_validation(prism, monkeypatch):
    monkeypatch.setenv("TWILIO_API_KEY_SID", "SK" + "0123456789abcdef" * 2)
    monkeypatch.setenv("TWILIO_API_KEY_SECRET", "key-secret")
    assert_valid_for_twilio(prism, send_sms.main(form_request(SMS_URL, {"to": RECIPIENT, "body": "k"})),
                            "Messages.json")


CALL_CASES = {
    "no_message": {"to": RECIPIENT},
    "message": {"to": RECIPIENT, "message": "Your code is 1 2 3 4"},
    "voice_language": {"to": RECIPIENT, "message": "Hola", "voice": "Polly.Lupe", "language": "es-US"},
    "from_and_callback": {"to": RECIPIENT, "from": SENDER, "message": "x" * 1000,
                          "status_callback": "https://example.com/call-status"},
}


@pytest.mark.parametrize("case", sorted(CALL_CASES))
def test_make_call_option_set_passes_twilio_spec_validation(prism, case):
    assert_valid_for_twilio(prism, make_call.main(json_request(CALL_URL, CALL_CASES[case])), "Calls.json")


def test_make_call_response_fields_come_from_twilio(prism):
    body = body_of(make_call.main(json_request(CALL_URL, {"to": RECIPIENT})))
    assert body["sid"].startswith("CA") and set(body) == {"sid", "status", "to", "from"}
