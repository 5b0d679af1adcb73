"""voice_webhook and sms_webhook: TwiML replies, blocking, opt-out, escaping, signature checks and fail-closed."""

from __future__ import annotations

import json
from hashlib import sha256

import azure.functions as func
import pytest

import sms_webhook
import voice_webhook
from shared.step_mac import signed_url
from tests.support import AUTH_TOKEN, SENDER, body_of, sign, signed_form, signed_get

SMS_URL = "http://localhost:7071/api/sms_webhook"
VOICE_URL = "http://localhost:7071/api/voice_webhook"
CALLER = "+14155550199"


@pytest.fixture
def token(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", AUTH_TOKEN)
    return AUTH_TOKEN


def inbound_sms(body: str, sender: str = CALLER) -> dict[str, str]:
    return {"MessageSid": "SM" + "a" * 32, "AccountSid": "AC" + "b" * 32, "From": sender, "To": SENDER,
            "Body": body, "NumMedia": "0", "ApiVersion": "2010-04-01"}


def assert_twiml(response: func.HttpResponse) -> str:
    assert response.status_code == 200
    assert response.mimetype in ("text/xml", "application/xml")
    text = response.get_body().decode()
    assert text.startswith("<?xml")
    return text


def test_sms_webhook_inbound_message_replies_with_auto_reply(token):
    text = assert_twiml(sms_webhook.main(signed_form(SMS_URL, inbound_sms("hello"))))
    assert text.endswith("<Response><Message>Hey, thanks for the ping! Twilio and Azure rock!</Message></Response>")


def test_sms_webhook_custom_auto_reply_is_escaped(token, monkeypatch):
    monkeypatch.setenv("SMS_AUTO_REPLY", "Tom & Jerry <3 \"you\"")
    text = assert_twiml(sms_webhook.main(signed_form(SMS_URL, inbound_sms("hi"))))
    assert "<Message>Tom &amp; Jerry &lt;3 \"you\"</Message>" in text


@pytest.mark.parametrize("keyword", ["STOP", "stop", " Unsubscribe ", "STOPALL", "CANCEL", "END", "QUIT"])
def test_sms_webhook_opt_out_keyword_returns_empty_response(token, keyword):
    text = assert_twiml(sms_webhook.main(signed_form(SMS_URL, inbound_sms(keyword))))
    assert text.endswith("<Response />")


def test_sms_webhook_stop_inside_a_sentence_still_gets_reply(token):
    assert "<Message>" in assert_twiml(sms_webhook.main(signed_form(SMS_URL, inbound_sms("please stop by"))))


def test_sms_webhook_blocked_sender_returns_empty_response(token, monkeypatch):
    monkeypatch.setenv("BLOCKED_NUMBERS", "+14155550100, +14155550199")
    assert assert_twiml(sms_webhook.main(signed_form(SMS_URL, inbound_sms("hi")))).endswith("<Response />")


def test_sms_webhook_blocked_number_in_national_format_matches_with_default_region(token, monkeypatch):
    monkeypatch.setenv("BLOCKED_NUMBERS", "(415) 555-0199")
    monkeypatch.setenv("DEFAULT_REGION", "US")
    assert assert_twiml(sms_webhook.main(signed_form(SMS_URL, inbound_sms("hi")))).endswith("<Response />")


def test_sms_webhook_get_with_params_in_query_is_served(token):
    url = SMS_URL + "?From=%2B14155550199&Body=hi&To=%2B15005550006"
    assert "<Message>" in assert_twiml(sms_webhook.main(signed_get(url)))


def test_voice_webhook_message_query_parameter_is_said(token):
    url = "http://localhost:7071" + signed_url({"Message": "Hi <Bob> & Alice"}, AUTH_TOKEN)
    params = {"CallSid": "CA" + "c" * 32, "From": SENDER, "To": CALLER, "Direction": "outbound-api"}
    text = assert_twiml(voice_webhook.main(signed_form(url, params)))
    assert text.endswith("<Response><Say>Hi &lt;Bob&gt; &amp; Alice</Say></Response>")


def test_voice_webhook_no_message_says_greeting_with_configured_voice(token, monkeypatch):
    monkeypatch.setenv("VOICE_GREETING", "Welcome to Contoso")
    monkeypatch.setenv("VOICE_NAME", "Polly.Joanna")
    monkeypatch.setenv("VOICE_LANGUAGE", "en-US")
    text = assert_twiml(voice_webhook.main(signed_form(VOICE_URL, {"From": CALLER, "Direction": "inbound"})))
    assert '<Say language="en-US" voice="Polly.Joanna">Welcome to Contoso</Say>' in text


def test_voice_webhook_voice_and_language_from_query_override_settings(token, monkeypatch):
    monkeypatch.setenv("VOICE_NAME", "alice")
    url = "http://localhost:7071" + signed_url({"Message": "Hola", "Voice": "Polly.Lupe", "Language": "es-US"},
                                               AUTH_TOKEN)
    text = assert_twiml(voice_webhook.main(signed_form(url, {"Direction": "outbound-api"})))
    assert '<Say language="es-US" voice="Polly.Lupe">Hola</Say>' in text


def test_voice_webhook_blocked_inbound_caller_gets_reject(token, monkeypatch):
    monkeypatch.setenv("BLOCKED_NUMBERS", CALLER)
    text = assert_twiml(voice_webhook.main(signed_form(VOICE_URL, {"From": CALLER, "Direction": "inbound"})))
    assert text.endswith("<Response><Reject /></Response>")


def test_voice_webhook_anonymous_caller_is_not_blocked_by_number_list(token, monkeypatch):
    monkeypatch.setenv("BLOCKED_NUMBERS", CALLER)
    text = assert_twiml(voice_webhook.main(signed_form(VOICE_URL, {"From": "anonymous", "Direction": "inbound"})))
    assert "<Say>" in text


@pytest.mark.parametrize("main", [sms_webhook.main, voice_webhook.main])
def test_webhook_missing_signature_returns_403(token, main):
    req = func.HttpRequest("POST", SMS_URL, headers={"content-type": "application/x-www-form-urlencoded"},
                           body=b"From=%2B14155550199&Body=hi")
    response = main(req)
    assert response.status_code == 403
    assert body_of(response)["error"]["code"] == "invalid_signature"


@pytest.mark.parametrize("main", [sms_webhook.main, voice_webhook.main])
def test_webhook_signature_with_wrong_token_returns_403(token, main):
    assert main(signed_form(SMS_URL, inbound_sms("hi"), token="not-the-token")).status_code == 403


@pytest.mark.parametrize("main", [sms_webhook.main, voice_webhook.main])
def test_webhook_no_auth_token_configured_fails_closed_with_503(monkeypatch, main):
    response = main(signed_form(SMS_URL, inbound_sms("hi")))
    assert response.status_code == 503
    assert "TWILIO_AUTH_TOKEN" in body_of(response)["error"]["message"]
    assert AUTH_TOKEN not in response.get_body().decode()


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH"])
def test_webhook_other_method_returns_405(token, method):
    req = func.HttpRequest(method, SMS_URL, headers={"x-twilio-signature": sign(SMS_URL, {})}, body=b"")
    response = sms_webhook.main(req)
    assert response.status_code == 405
    assert response.headers["Allow"] == "GET, POST"


def test_webhook_json_body_signed_with_body_sha256_is_accepted(token):
    body = json.dumps({"From": CALLER, "Body": "hi"})
    url = SMS_URL + "?bodySHA256=" + sha256(body.encode()).hexdigest()
    req = func.HttpRequest("POST", url, body=body.encode(),
                           headers={"content-type": "application/json", "x-twilio-signature": sign(url, {})})
    assert assert_twiml(sms_webhook.main(req))


def test_webhook_handler_does_not_run_on_forgery(token, monkeypatch):
    ran = []
    monkeypatch.setattr("shared.twiml.message", lambda text: ran.append(text))
    assert sms_webhook.main(signed_form(SMS_URL, inbound_sms("hi"), token="forged")).status_code == 403
    assert ran == []
