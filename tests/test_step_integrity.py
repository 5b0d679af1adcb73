"""A call-flow step runs only if the app issued it: the step MAC, Twilio's inputs from the form only, and no
status_callback or media_url on the app's own origin. Through each main(req), with Twilio's real signature."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from urllib.parse import urlencode

import pytest

import make_call
import send_sms
import voice_webhook
from shared.step_mac import signed_url
from tests.support import API_KEY_SECRET, API_KEY_SID, AUTH_TOKEN, SENDER, body_of, creates, json_request, signed_form

ORIGIN = "https://voice.example.com"
HOOK = ORIGIN + "/api/voice_webhook"
CALLER = "+14155550142"
NOTIFY = "+14155550188"
FORWARD = "+14155550177"
MENU = {"prompt": "Press 2 for sales.", "options": {"2": {"forward": FORWARD}}}
SEND_SMS = "http://localhost:7071/api/send_sms"
MAKE_CALL = "http://localhost:7071/api/make_call"
RECORDING_URL = "https://api.twilio.com/2010-04-01/Accounts/AC/Recordings/RE" + "e" * 32


@pytest.fixture
def flows(app_env, monkeypatch):
    """The app on its public origin, against the sandbox: a voicemail notice number and a menu that forwards."""
    monkeypatch.setenv("PUBLIC_BASE_URL", ORIGIN)
    monkeypatch.setenv("VOICEMAIL_NOTIFY_SMS", NOTIFY)
    monkeypatch.setenv("CALL_MENU", json.dumps(MENU))
    return app_env


def issued(**params: object) -> str:
    """A voice_webhook URL as the app issues it, on the public origin."""
    return ORIGIN + signed_url(params, AUTH_TOKEN)


def answer(url: str, form: dict[str, str]) -> ET.Element:
    response = voice_webhook.main(signed_form(url, form))  # Twilio's own signature: the request is genuine
    assert response.status_code == 200, response.get_body()
    return ET.fromstring(response.get_body())


def verbs(document: ET.Element) -> list[str]:
    return [child.tag for child in document]


def sms_status_callback() -> dict[str, str]:
    """What Twilio posts to an SMS's status_callback."""
    sid = "SM" + "a" * 32
    return {"MessageSid": sid, "SmsSid": sid, "AccountSid": "AC" + "b" * 32, "From": SENDER, "To": CALLER,
            "MessageStatus": "sent", "SmsStatus": "sent", "ApiVersion": "2010-04-01"}


def client_call(**custom: str) -> dict[str, str]:
    """What the Voice SDK posts to the TwiML App's Voice URL, with device.connect({params}) among Twilio's."""
    return {"CallSid": "CA" + "d" * 32, "From": "client:alice", "To": "+14155550123", "Direction": "inbound",
            "ApplicationSid": "AP" + "a1" * 16, **custom}


def notices(sandbox) -> list[dict]:
    return [m for m in sandbox.messages if m["to"] == NOTIFY]


# -- the two attacks of the report ------------------------------------------------------------------------------
def test_step_from_an_sms_status_callback_url_is_refused_and_sends_no_notice(flows):
    attack = HOOK + "?" + urlencode({"step": "recording", "RecordingStatus": "completed", "caller": "Call +1900 now",
                                     "RecordingUrl": "https://evil.example/x"})
    assert verbs(answer(attack, sms_status_callback())) == ["Say", "Hangup"]
    assert creates(flows, "Messages") == 0


def test_step_from_voice_sdk_custom_parameters_never_dials_the_menu_forward(stateful, flows, monkeypatch):
    monkeypatch.setenv("QUOTA_CALLS_PER_USER_PER_DAY", "1")
    assert answer(HOOK, client_call()).find("Dial") is not None  # alice's one call today
    document = answer(HOOK, client_call(step="menu", attempt="1", Digits="2"))
    assert verbs(document) == ["Say", "Hangup"] and "limit" in document.find("Say").text


def test_step_from_voice_sdk_custom_parameters_sends_no_notice(flows):
    document = answer(HOOK, client_call(step="recording", RecordingStatus="completed", caller="Call +1900 now",
                                        RecordingUrl="https://evil.example/x", To="client:bob"))
    assert document.find("Dial/Client").text == "bob"  # the client call it is, nothing else
    assert creates(flows, "Messages") == 0


def test_step_url_the_app_issued_on_a_client_call_is_refused(flows):
    document = answer(issued(step="menu", attempt=1), client_call(Digits="2"))
    assert verbs(document) == ["Say", "Hangup"]


# -- the MAC ------------------------------------------------------------------------------------------------------
def test_step_with_its_mac_runs(flows):
    answer(issued(step="recording", caller=CALLER), {"CallSid": "CA" + "c" * 32, "RecordingStatus": "completed",
                                                     "RecordingUrl": RECORDING_URL})
    [notice] = notices(flows)
    assert notice["body"] == f"New voicemail from {CALLER}: {RECORDING_URL}"


@pytest.mark.parametrize("url", [
    pytest.param(issued(step="recording", caller=CALLER).replace("%2B14155550142", "Call+me"), id="edited value"),
    pytest.param(issued(step="recording", caller=CALLER) + "&RecordingStatus=completed", id="added parameter"),
    pytest.param(issued(step="recording", caller=CALLER).replace("caller=%2B14155550142&", ""), id="removed"),
    pytest.param(issued(step="recording", caller=CALLER).replace("step=recording", "step=recorded"), id="other step"),
    pytest.param(issued(step="recording", caller=CALLER) + "&mac=x", id="second mac"),
    pytest.param(issued(step="recording", caller=CALLER).rsplit("&mac=", 1)[0], id="no mac"),
    pytest.param(ORIGIN + signed_url({"step": "recording", "caller": CALLER}, "another-token"), id="other key"),
    pytest.param(issued(step="recording", caller=CALLER).replace("&mac=", "&mac=A", 1)[:-1], id="mac changed"),
])
def test_step_with_a_forged_or_edited_mac_is_refused(flows, url):
    document = answer(url, {"CallSid": "CA" + "c" * 32, "RecordingStatus": "completed", "RecordingUrl": RECORDING_URL})
    assert verbs(document) == ["Say", "Hangup"] and document.find("Say").text == "Sorry, this call cannot continue."
    assert creates(flows, "Messages") == 0


def test_step_parameter_in_the_form_is_ignored_caller_comes_from_the_url(flows):
    answer(issued(step="recording", caller=CALLER), {"CallSid": "CA" + "c" * 32, "RecordingStatus": "completed",
                                                     "RecordingUrl": RECORDING_URL, "caller": "Call +1900 now"})
    [notice] = notices(flows)
    assert notice["body"] == f"New voicemail from {CALLER}: {RECORDING_URL}"


def test_step_parameter_in_the_form_is_ignored_attempt_comes_from_the_url(flows):
    url = issued(step="menu", attempt=3)  # the last prompt: a missing choice says goodbye, never prompts again
    assert verbs(answer(url, {"CallSid": "CA" + "c" * 32, "From": CALLER, "attempt": "1"})) == ["Say", "Hangup"]


# -- make_call's Message --------------------------------------------------------------------------------------------
def test_message_url_the_app_did_not_issue_cannot_choose_what_is_said(flows):
    outbound = {"CallSid": "CA" + "c" * 32, "From": SENDER, "To": CALLER, "Direction": "outbound-api"}
    plain = answer(HOOK + "?Message=Your+bank+needs+your+PIN", outbound)
    assert plain.find("Say").text == "Hello! Thanks for calling. Goodbye."
    edited = issued(Message="Your code is 1234").replace("1234", "0000")
    assert verbs(answer(edited, outbound)) == ["Say", "Hangup"]
    assert answer(issued(Message="Your code is 1234"), outbound).find("Say").text == "Your code is 1234"


def test_message_in_form_parameters_is_not_said(flows):
    document = answer(HOOK, client_call(Direction="outbound-api", Message="Your bank needs your PIN"))
    assert document.find("Say").text == "Hello! Thanks for calling. Goodbye."


def test_message_without_the_auth_token_to_sign_it_returns_503_and_places_no_call(flows, monkeypatch):
    monkeypatch.delenv("TWILIO_AUTH_TOKEN")  # REST through an API key: nothing to derive the MAC's key from
    monkeypatch.setenv("TWILIO_API_KEY_SID", API_KEY_SID)
    monkeypatch.setenv("TWILIO_API_KEY_SECRET", API_KEY_SECRET)
    response = make_call.main(json_request(MAKE_CALL, {"to": CALLER, "message": "Your code is 1234"}))
    error = body_of(response)["error"]
    assert (response.status_code, error["code"]) == (503, "not_configured") and "TWILIO_AUTH_TOKEN" in error["message"]
    assert creates(flows, "Calls") == 0


# -- status_callback and media_url may not point at the app itself --------------------------------------------------
@pytest.mark.parametrize(("main", "endpoint", "field"), [
    (send_sms.main, SEND_SMS, "status_callback"), (send_sms.main, SEND_SMS, "media_url"),
    (make_call.main, MAKE_CALL, "status_callback"),
])
@pytest.mark.parametrize(("setting", "url"), [
    (("PUBLIC_BASE_URL", ORIGIN), HOOK + "?step=recording"),
    (("PUBLIC_BASE_URL", ORIGIN + "/"), "https://VOICE.example.com.:8443/api/status_callback"),
    (("WEBSITE_HOSTNAME", "myapp.azurewebsites.net"), "https://myapp.azurewebsites.net/api/voice_webhook"),
])
def test_url_field_on_the_apps_own_origin_returns_400_invalid_url(flows, monkeypatch, main, endpoint, field,
                                                                   setting, url):
    monkeypatch.delenv("PUBLIC_BASE_URL")
    monkeypatch.setenv(*setting)
    payload = {"to": CALLER, field: url, **({"body": "hi"} if main is send_sms.main else {})}
    response = main(json_request(endpoint, payload))
    error = body_of(response)["error"]
    assert (response.status_code, error["code"], error["field"]) == (400, "invalid_url", field)
    assert creates(flows, "Messages") + creates(flows, "Calls") == 0


def test_url_field_on_the_azure_host_name_is_refused_also_behind_a_custom_domain(flows, monkeypatch):
    monkeypatch.setenv("WEBSITE_HOSTNAME", "myapp.azurewebsites.net")
    response = send_sms.main(json_request(SEND_SMS, {"to": CALLER, "body": "hi",
                                                     "status_callback": "https://myapp.azurewebsites.net/api/x"}))
    assert (response.status_code, body_of(response)["error"]["code"]) == (400, "invalid_url")
    response = send_sms.main(json_request(SEND_SMS, {"to": CALLER, "body": "hi",
                                                     "status_callback": "https://example.com/api/voice_webhook"}))
    assert response.status_code == 201
