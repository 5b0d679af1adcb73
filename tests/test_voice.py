"""In-app calling and inbound call flows: Voice SDK tokens, client calls and every flow step, through main(req)."""

from __future__ import annotations

import json
import time
import xml.etree.ElementTree as ET

import jwt
import pytest

import make_call
import voice_token
import voice_webhook
from shared.step_mac import signed_url
from tests.support import (ACCOUNT_SID, API_KEY_SECRET, API_KEY_SID, AUTH_TOKEN, SENDER, body_of, creates,
                           json_request, signed_form)

HOOK = "http://localhost:7071/api/voice_webhook"
TOKEN_URL = "http://localhost:7071/api/voice_token"
APP_SID = "AP" + "a1" * 16
PUSH_SID = "CR" + "b2" * 16
CALLER = "+14155550142"
MENU = {"prompt": "Press 1 for hours, 2 for sales, 3 to leave a message.",
        "options": {"1": {"say": "We are open nine to five."}, "2": {"forward": "+14155550177"},
                    "3": {"voicemail": True}}}


@pytest.fixture
def voice(monkeypatch):
    """Webhook signatures, the caller ID, and an API key + TwiML App for tokens; App Service Authentication on."""
    for name, value in {"TWILIO_AUTH_TOKEN": AUTH_TOKEN, "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
                        "TWILIO_PHONE_NUMBER": SENDER, "TWILIO_API_KEY_SID": API_KEY_SID,
                        "TWILIO_API_KEY_SECRET": API_KEY_SECRET, "TWILIO_TWIML_APP_SID": APP_SID,
                        "AUTH_EASY_AUTH": "true", "WEBSITE_AUTH_ENABLED": "True"}.items():
        monkeypatch.setenv(name, value)


def twiml(pairs: dict[str, str], url: str = HOOK) -> ET.Element:
    response = voice_webhook.main(signed_form(url, pairs))
    assert response.status_code == 200, response.get_body()
    return ET.fromstring(response.get_body())


def step(name: str, **query: object) -> str:
    """A step's URL as the app issues it (relative, with its MAC)."""
    return signed_url({"step": name, **query}, AUTH_TOKEN)


def step_hook(name: str, **query: object) -> str:
    """The full URL Twilio requests for that step."""
    return HOOK.removesuffix("/api/voice_webhook") + step(name, **query)


def verbs(document: ET.Element) -> list[str]:
    return [child.tag for child in document]


def inbound(**extra: str) -> dict[str, str]:
    return {"CallSid": "CA" + "c" * 32, "From": CALLER, "To": SENDER, "Direction": "inbound", **extra}


def client_call(to: str, identity: str = "alice") -> dict[str, str]:
    return {"CallSid": "CA" + "d" * 32, "From": f"client:{identity}", "To": to, "Direction": "inbound",
            "ApplicationSid": APP_SID}


# -- tokens ------------------------------------------------------------------------------------------------------
def test_voice_token_carries_the_callers_identity_and_the_voice_grant(voice, monkeypatch):
    monkeypatch.setenv("TWILIO_PUSH_CREDENTIAL_SID", PUSH_SID)
    response = voice_token.main(json_request(TOKEN_URL, {"identity": "mallory"},  # the body is never read
                                             headers={"x-ms-client-principal-id": "auth0|5f3c.x"}))
    assert response.status_code == 200, response.get_body()
    body = body_of(response)
    assert body["identity"] == "auth0_7c5f3c_2ex"
    header = jwt.get_unverified_header(body["token"])
    claims = jwt.decode(body["token"], API_KEY_SECRET, algorithms=["HS256"], options={"verify_aud": False})
    assert header["cty"] == "twilio-fpa;v=1"
    assert (claims["iss"], claims["sub"]) == (API_KEY_SID, ACCOUNT_SID)
    assert "iat" not in claims
    assert abs(claims["exp"] - (time.time() + 3600)) <= 2
    grants = claims["grants"]
    assert grants["identity"] == "auth0_7c5f3c_2ex"
    assert grants["voice"]["outgoing"]["application_sid"] == APP_SID
    assert grants["voice"]["incoming"]["allow"] is True
    assert grants["voice"]["push_credential_sid"] == PUSH_SID
    assert body["expires_at"] == time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(claims["exp"]))


def test_voice_token_ttl_setting_is_used_and_over_a_day_is_invalid(voice, monkeypatch):
    monkeypatch.setenv("VOICE_TOKEN_TTL_SECONDS", "600")
    body = body_of(voice_token.main(json_request(TOKEN_URL, {}, headers={"x-ms-client-principal-id": "alice"})))
    assert abs(jwt.decode(body["token"], options={"verify_signature": False})["exp"] - (time.time() + 600)) <= 2
    monkeypatch.setenv("VOICE_TOKEN_TTL_SECONDS", "86401")
    response = voice_token.main(json_request(TOKEN_URL, {}, headers={"x-ms-client-principal-id": "alice"}))
    assert response.status_code == 503 and "VOICE_TOKEN_TTL_SECONDS" in body_of(response)["error"]["message"]


def test_voice_token_anonymous_mode_returns_503_naming_the_sign_in_settings(voice, monkeypatch):
    monkeypatch.delenv("AUTH_EASY_AUTH")
    response = voice_token.main(json_request(TOKEN_URL, {}))
    error = body_of(response)["error"]
    assert (response.status_code, error["code"]) == (503, "not_configured")
    assert "AUTH_ISSUER" in error["message"] and "AUTH_EASY_AUTH" in error["message"]


@pytest.mark.parametrize("missing", ["TWILIO_API_KEY_SID", "TWILIO_API_KEY_SECRET", "TWILIO_TWIML_APP_SID"])
def test_voice_token_missing_setting_returns_503_naming_it(voice, monkeypatch, missing):
    monkeypatch.delenv(missing)
    response = voice_token.main(json_request(TOKEN_URL, {}, headers={"x-ms-client-principal-id": "alice"}))
    assert response.status_code == 503 and missing in body_of(response)["error"]["message"]


def test_voice_token_unauthenticated_caller_gets_401(voice):
    assert voice_token.main(json_request(TOKEN_URL, {})).status_code == 401


# -- calls from the app (the TwiML App's Voice URL) -------------------------------------------------------------
def test_client_call_to_a_number_dials_it_with_the_app_number_as_caller_id(voice):
    document = twiml(client_call("(415) 555-0123"), HOOK)  # no DEFAULT_REGION: refused, see below
    assert verbs(document) == ["Say", "Hangup"]
    dial = twiml(client_call("+14155550123")).find("Dial")
    assert dial.get("callerId") == SENDER and dial.find("Number").text == "+14155550123"


def test_client_call_to_another_client_dials_the_client(voice):
    dial = twiml(client_call("client:bob")).find("Dial")
    assert dial.find("Client").text == "bob" and dial.find("Number") is None


@pytest.mark.parametrize(("to", "setting"), [("+19005550123", None), ("+449090000000", None),
                                             ("+18765550123", ("ALLOWED_DESTINATION_COUNTRIES", "US")),
                                             ("+14155550123", ("ALLOWED_DESTINATION_PREFIXES", "+44")),
                                             ("+1415abc0123", None), ("client:bob smith", None)])
def test_client_call_refused_says_why_and_hangs_up_never_dials(voice, monkeypatch, to, setting):
    if setting:
        monkeypatch.setenv(*setting)
    document = twiml(client_call(to))
    assert verbs(document) == ["Say", "Hangup"]


def test_client_call_refusal_logs_the_client_escaped_on_one_line(voice, logs):
    assert verbs(twiml(client_call("+19005550123", identity="mallory\nWARNING forged"))) == ["Say", "Hangup"]
    refusals = [text for name, text in logs.records if "refused" in text]
    assert refusals == ["Client call from 'mallory\\nWARNING forged' refused: destination_not_allowed"]


def test_client_call_blocked_client_is_rejected(voice, monkeypatch):
    monkeypatch.setenv("BLOCKED_NUMBERS", "client:alice")
    assert verbs(twiml(client_call("+14155550123"))) == ["Reject"]


@pytest.mark.parametrize(("principal", "client", "other"), [("alice", "alice", "bob"),
                                                           ("bob.smith", "bob_2esmith", "bob__smith")])
def test_client_call_shares_the_per_user_call_quota_with_make_call(stateful, voice, monkeypatch, principal, client,
                                                                   other):
    monkeypatch.setenv("QUOTA_CALLS_PER_USER_PER_DAY", "1")
    response = make_call.main(json_request("http://localhost:7071/api/make_call", {"to": "+14155550123"},
                                           headers={"x-ms-client-principal-id": principal}))
    assert response.status_code == 201
    document = twiml(client_call("+14155550124", identity=client))
    assert verbs(document) == ["Say", "Hangup"] and "limit" in document.find("Say").text
    assert twiml(client_call("+14155550124", identity=other)).find("Dial") is not None


# -- inbound calls ----------------------------------------------------------------------------------------------
def test_inbound_greeting_is_the_default(voice):
    assert verbs(twiml(inbound())) == ["Say"]


def test_inbound_forward_rings_every_target_with_a_fallback_step(voice, monkeypatch):
    monkeypatch.setenv("INBOUND_CALL_FLOW", "forward")
    monkeypatch.setenv("FORWARD_TO", "+14155550177, client:alice")
    monkeypatch.setenv("FORWARD_TIMEOUT_SECONDS", "15")
    dial = twiml(inbound()).find("Dial")
    assert (dial.get("timeout"), dial.get("action")) == ("15", step("forwarded"))
    assert (dial.find("Number").text, dial.find("Client").text) == ("+14155550177", "alice")


@pytest.mark.parametrize(("outcome", "expected"), [("no-answer", "Record"), ("busy", "Record"),
                                                   ("failed", "Record"), ("completed", "Hangup")])
def test_inbound_forward_unanswered_falls_back_to_voicemail(voice, monkeypatch, outcome, expected):
    monkeypatch.setenv("INBOUND_CALL_FLOW", "forward")
    monkeypatch.setenv("FORWARD_TO", "+14155550177")
    document = twiml(inbound(DialCallStatus=outcome), step_hook("forwarded"))
    assert expected in verbs(document)


def test_inbound_menu_gathers_one_digit_and_empty_input_reaches_the_app(voice, monkeypatch):
    monkeypatch.setenv("INBOUND_CALL_FLOW", "menu")
    monkeypatch.setenv("CALL_MENU", json.dumps(MENU))
    gather = twiml(inbound()).find("Gather")
    assert (gather.get("numDigits"), gather.get("actionOnEmptyResult")) == ("1", "true")
    assert gather.get("action") == step("menu", attempt=1)
    assert gather.find("Say").text == MENU["prompt"]


@pytest.mark.parametrize(("digits", "expected"), [("1", ["Say", "Hangup"]), ("2", ["Dial"]), ("3", ["Say", "Record",
                                                                                                  "Say", "Hangup"])])
def test_inbound_menu_choice_does_what_the_option_says(voice, monkeypatch, digits, expected):
    monkeypatch.setenv("INBOUND_CALL_FLOW", "menu")
    monkeypatch.setenv("CALL_MENU", json.dumps(MENU))
    assert verbs(twiml(inbound(Digits=digits), step_hook("menu", attempt=1))) == expected


@pytest.mark.parametrize("digits", ["9", ""])
def test_inbound_menu_invalid_or_no_input_repeats_twice_then_says_goodbye(voice, monkeypatch, digits):
    monkeypatch.setenv("INBOUND_CALL_FLOW", "menu")
    monkeypatch.setenv("CALL_MENU", json.dumps(MENU))
    first = twiml(inbound(Digits=digits), step_hook("menu", attempt=1))
    assert first.find("Gather").get("action") == step("menu", attempt=2)
    second = twiml(inbound(Digits=digits), step_hook("menu", attempt=2))
    assert second.find("Gather").get("action") == step("menu", attempt=3)
    assert verbs(twiml(inbound(Digits=digits), step_hook("menu", attempt=3))) == ["Say", "Hangup"]


@pytest.mark.parametrize(("digits", "said"), [("9", "not an option"), ("", "nothing was pressed")])
def test_inbound_menu_wrong_key_or_no_input_says_which(voice, monkeypatch, digits, said):
    monkeypatch.setenv("INBOUND_CALL_FLOW", "menu")
    monkeypatch.setenv("CALL_MENU", json.dumps(MENU))
    assert said in "".join(twiml(inbound(Digits=digits), step_hook("menu", attempt=1)).itertext())


def test_inbound_voicemail_records_with_both_step_urls(voice, monkeypatch):
    monkeypatch.setenv("INBOUND_CALL_FLOW", "voicemail")
    monkeypatch.setenv("VOICEMAIL_MAX_SECONDS", "60")
    record = twiml(inbound()).find("Record")
    assert (record.get("maxLength"), record.get("playBeep")) == ("60", "true")
    assert record.get("action") == step("recorded")
    assert record.get("recordingStatusCallback") == step("recording", caller=CALLER)


def test_inbound_voicemail_completed_recording_sends_the_sms_notice(app_env, voice, monkeypatch):
    monkeypatch.setenv("VOICEMAIL_NOTIFY_SMS", "+14155550188")
    url = "https://api.twilio.com/2010-04-01/Accounts/AC/Recordings/RE" + "e" * 32
    document = twiml({"CallSid": "CA" + "c" * 32, "RecordingStatus": "completed", "RecordingUrl": url},
                     step_hook("recording", caller=CALLER))
    assert verbs(document) == []
    [message] = app_env.messages
    assert message["to"] == "+14155550188"
    assert message["body"] == f"New voicemail from {CALLER}: {url}"  # the number unmasked in the SMS only


def test_inbound_voicemail_failed_recording_sends_nothing(app_env, voice, monkeypatch):
    monkeypatch.setenv("VOICEMAIL_NOTIFY_SMS", "+14155550188")
    twiml({"RecordingStatus": "failed"}, step_hook("recording", caller=CALLER))
    assert creates(app_env, "Messages") == 0


def test_inbound_blocked_caller_is_rejected_before_any_flow(voice, monkeypatch):
    monkeypatch.setenv("INBOUND_CALL_FLOW", "menu")
    monkeypatch.setenv("CALL_MENU", json.dumps(MENU))
    monkeypatch.setenv("BLOCKED_NUMBERS", CALLER)
    assert verbs(twiml(inbound())) == ["Reject"]


@pytest.mark.parametrize("url", [step_hook("nonsense"), step_hook("menu", attempt=7), step_hook("menu")])
def test_step_the_app_did_not_issue_says_sorry_and_hangs_up(voice, monkeypatch, url):
    monkeypatch.setenv("CALL_MENU", json.dumps(MENU))
    assert verbs(twiml(inbound(Digits="1"), url)) == ["Say", "Hangup"]


def test_step_with_a_forged_signature_is_403(voice):
    request = signed_form(step_hook("menu", attempt=1), inbound(Digits="2"), signed_url=step_hook("menu"))
    assert voice_webhook.main(request).status_code == 403


@pytest.mark.parametrize(("name", "value", "flow"), [
    ("INBOUND_CALL_FLOW", "ivr", "ivr"), ("CALL_MENU", "{not json", "menu"),
    ("CALL_MENU", json.dumps({"prompt": "Hi"}), "menu"),
    ("CALL_MENU", json.dumps({**MENU, "options": {"1": {"forward": "+19005550123"}}}), "menu"),
    ("CALL_MENU", json.dumps({**MENU, "options": {"12": {"say": "two digits"}}}), "menu"),
    ("FORWARD_TO", "+19005550123", "forward"), ("VOICEMAIL_NOTIFY_SMS", "not a number", "voicemail"),
    ("FORWARD_TIMEOUT_SECONDS", "0", "forward"),
])
def test_bad_call_flow_setting_returns_503_naming_it_in_the_flow_using_it(voice, monkeypatch, name, value, flow):
    monkeypatch.setenv("INBOUND_CALL_FLOW", flow)
    monkeypatch.setenv("FORWARD_TO", "+14155550177")
    monkeypatch.setenv(name, value)
    response = voice_webhook.main(signed_form(HOOK, inbound()))
    assert response.status_code == 503 and name in body_of(response)["error"]["message"]
    if flow != "ivr":  # the other flows do not read it
        monkeypatch.setenv("INBOUND_CALL_FLOW", "greeting")
        assert verbs(twiml(inbound())) == ["Say"]


@pytest.mark.parametrize(("flow", "setting"), [("forward", "FORWARD_TO"), ("menu", "CALL_MENU")])
def test_flow_without_its_setting_returns_503_naming_it(voice, monkeypatch, flow, setting):
    monkeypatch.setenv("INBOUND_CALL_FLOW", flow)
    response = voice_webhook.main(signed_form(HOOK, inbound()))
    assert response.status_code == 503 and setting in body_of(response)["error"]["message"]


# -- end to end: the sandbox plays the caller, following every action and <Redirect> as Twilio does -------------
@pytest.fixture
def phone(stateful, voice, monkeypatch):
    """The app served over HTTP by the local host, the sandbox calling its public voice_webhook URL."""
    from devtools.local_host import LocalHost
    from tests.support import ROOT

    with LocalHost(ROOT, host="127.0.0.1", port=0, function_key="").start() as host:
        monkeypatch.setenv("PUBLIC_BASE_URL", host.base_url)
        stateful.hook = host.base_url + "/api/voice_webhook"
        yield stateful


def test_e2e_menu_invalid_twice_then_valid_choice_is_served(phone, monkeypatch):
    monkeypatch.setenv("INBOUND_CALL_FLOW", "menu")
    monkeypatch.setenv("CALL_MENU", json.dumps(MENU))
    call = phone.simulate_inbound_call(phone.hook, CALLER, SENDER, digits=["9", "", "1"])
    assert call["said"].count(MENU["prompt"]) == 3
    assert call["said"][-1] == MENU["options"]["1"]["say"] and call["ended"] == "hangup"


def test_e2e_menu_three_failures_say_goodbye(phone, monkeypatch):
    monkeypatch.setenv("INBOUND_CALL_FLOW", "menu")
    monkeypatch.setenv("CALL_MENU", json.dumps(MENU))
    call = phone.simulate_inbound_call(phone.hook, CALLER, SENDER, digits=["7", "8", "9"])
    assert call["said"].count(MENU["prompt"]) == 3 and call["ended"] == "hangup"
    assert not call["dialed"]


def test_e2e_forward_not_answered_falls_back_to_voicemail_and_the_sms_notice_goes_out(phone, monkeypatch):
    monkeypatch.setenv("INBOUND_CALL_FLOW", "forward")
    monkeypatch.setenv("FORWARD_TO", "+14155550177,client:alice")
    monkeypatch.setenv("VOICEMAIL_NOTIFY_SMS", "+14155550188")
    call = phone.simulate_inbound_call(phone.hook, CALLER, SENDER, dial_outcomes=["no-answer"], record=True)
    assert call["dialed"] == [["+14155550177", "client:alice"]]
    assert "Please leave a message after the beep." in call["said"]
    assert phone.wait_for(lambda: [m for m in phone.messages if m["to"] == "+14155550188"], timeout=5)
    [notice] = [m for m in phone.messages if m["to"] == "+14155550188"]
    assert notice["body"].startswith(f"New voicemail from {CALLER}: http")


def test_e2e_menu_option_forwards_and_the_answered_call_ends(phone, monkeypatch):
    monkeypatch.setenv("INBOUND_CALL_FLOW", "menu")
    monkeypatch.setenv("CALL_MENU", json.dumps(MENU))
    call = phone.simulate_inbound_call(phone.hook, CALLER, SENDER, digits=["2"], dial_outcomes=["completed"])
    assert call["dialed"] == [["+14155550177"]] and call["ended"] == "hangup"


@pytest.mark.parametrize(("to", "dialed"), [("+14155550123", [["+14155550123"]]), ("client:bob", [["client:bob"]])])
def test_e2e_client_calls_a_number_or_another_client(phone, to, dialed):
    call = phone.simulate_client_call(phone.hook, "alice", to)
    assert call["dialed"] == dialed


def test_e2e_client_call_to_a_premium_number_is_refused_with_a_reason(phone):
    call = phone.simulate_client_call(phone.hook, "alice", "+19005550123")
    assert call["dialed"] == [] and call["said"] == ["That number cannot be called from this app."]


def test_e2e_client_call_quota_is_charged_per_identity(phone, monkeypatch):
    monkeypatch.setenv("QUOTA_CALLS_PER_USER_PER_DAY", "1")
    assert phone.simulate_client_call(phone.hook, "alice", "+14155550123")["dialed"]
    assert phone.simulate_client_call(phone.hook, "alice", "+14155550123")["dialed"] == []
    assert phone.simulate_client_call(phone.hook, "bob", "+14155550123")["dialed"]
