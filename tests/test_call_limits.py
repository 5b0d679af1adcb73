"""Destinations and call length: the non-geographic international ranges, CALL_MAX_MINUTES on every <Dial> and
make_call, and an inbound flow that would forward to the app's own number. Through each main(req)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest

import make_call
import send_sms
import voice_webhook
from shared.step_mac import signed_url
from tests.support import AUTH_TOKEN, SENDER, body_of, creates, json_request, signed_form

HOOK = "http://localhost:7071/api/voice_webhook"
SEND_SMS = "http://localhost:7071/api/send_sms"
MAKE_CALL = "http://localhost:7071/api/make_call"
CALLER = "+14155550142"
SATELLITE = ("+881612345678", "+870301234567", "+8823421234", "+883510012345")  # Iridium, Inmarsat, networks


def answer(form: dict[str, str], url: str = HOOK) -> ET.Element:
    response = voice_webhook.main(signed_form(url, form))
    assert response.status_code == 200, response.get_body()
    return ET.fromstring(response.get_body())


def client_call(to: str) -> dict[str, str]:
    return {"CallSid": "CA" + "d" * 32, "From": "client:alice", "To": to, "Direction": "inbound"}


def inbound(**extra: str) -> dict[str, str]:
    return {"CallSid": "CA" + "c" * 32, "From": CALLER, "To": SENDER, "Direction": "inbound", **extra}


def send(main, number: str):
    endpoint, extra = (SEND_SMS, {"body": "hi"}) if main is send_sms.main else (MAKE_CALL, {})
    return main(json_request(endpoint, {"to": number, **extra}))


# -- the non-geographic international ranges ------------------------------------------------------------------------
@pytest.mark.parametrize("main", [send_sms.main, make_call.main])
@pytest.mark.parametrize("number", SATELLITE)
def test_destination_non_geographic_is_refused_without_any_setting(app_env, main, number):
    response = send(main, number)
    error = body_of(response)["error"]
    assert (response.status_code, error["code"], error["field"]) == (400, "destination_not_allowed", "to")
    assert creates(app_env, "Messages") + creates(app_env, "Calls") == 0


@pytest.mark.parametrize("setting", [("ALLOWED_DESTINATION_PREFIXES", "+1,+881"),
                                     ("ALLOWED_DESTINATION_COUNTRIES", "US,001")])
def test_destination_non_geographic_listed_explicitly_is_sent(app_env, monkeypatch, setting):
    monkeypatch.setenv(*setting)
    assert send(send_sms.main, "+881612345678").status_code == 201


def test_destination_non_geographic_prefix_shorter_than_its_code_is_refused(app_env, monkeypatch):
    monkeypatch.setenv("ALLOWED_DESTINATION_PREFIXES", "+1,+8")  # +8 is not +881 spelled out
    response = send(send_sms.main, "+881612345678")
    assert (response.status_code, body_of(response)["error"]["code"]) == (400, "destination_not_allowed")


def test_client_call_to_a_satellite_number_says_why_and_never_dials(app_env):
    document = answer(client_call("+881612345678"))
    assert [child.tag for child in document] == ["Say", "Hangup"]


def test_forward_to_a_satellite_number_is_an_invalid_setting(app_env, monkeypatch):
    monkeypatch.setenv("INBOUND_CALL_FLOW", "forward")  # an invalid setting answers 503 where it is read
    monkeypatch.setenv("FORWARD_TO", "+881612345678")
    response = voice_webhook.main(signed_form(HOOK, inbound()))
    assert response.status_code == 503 and "FORWARD_TO" in body_of(response)["error"]["message"]


# -- CALL_MAX_MINUTES -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("minutes", "seconds"), [(None, "3600"), ("5", "300"), ("1440", "86400")])
def test_call_max_minutes_limits_every_dial(app_env, monkeypatch, minutes, seconds):
    if minutes:
        monkeypatch.setenv("CALL_MAX_MINUTES", minutes)
    monkeypatch.setenv("INBOUND_CALL_FLOW", "forward")
    monkeypatch.setenv("FORWARD_TO", "+14155550177")
    monkeypatch.setenv("CALL_MENU", json.dumps({"prompt": "Press 2", "options": {"2": {"forward": "+14155550177"}}}))
    dials = [answer(client_call("+14155550123")), answer(client_call("client:bob")), answer(inbound()),
             answer(inbound(Digits="2"), "http://localhost:7071" + signed_url({"step": "menu", "attempt": 1},
                                                                                AUTH_TOKEN))]
    assert [document.find("Dial").get("timeLimit") for document in dials] == [seconds] * 4


@pytest.mark.parametrize(("minutes", "seconds"), [(None, "3600"), ("5", "300")])
def test_call_max_minutes_is_make_calls_time_limit(app_env, monkeypatch, minutes, seconds):
    if minutes:
        monkeypatch.setenv("CALL_MAX_MINUTES", minutes)
    assert send(make_call.main, "+14155550123").status_code == 201
    [create] = [r for r in app_env.requests if r["method"] == "POST" and r["path"].endswith("/Calls.json")]
    assert create["form"]["TimeLimit"] == [seconds]


@pytest.mark.parametrize("value", ["0", "1441", "1.5", "an hour"])
def test_call_max_minutes_invalid_returns_503_naming_it(app_env, monkeypatch, value):
    monkeypatch.setenv("CALL_MAX_MINUTES", value)
    response = send(make_call.main, "+14155550123")
    error = body_of(response)["error"]
    assert (response.status_code, error["code"]) == (503, "not_configured") and "CALL_MAX_MINUTES" in error["message"]


# -- an inbound flow that would dial the app itself ----------------------------------------------------------------
@pytest.mark.parametrize(("flow", "name", "value"), [
    ("forward", "FORWARD_TO", "+14155550177, (500) 555-0006"),
    ("menu", "CALL_MENU", json.dumps({"prompt": "Press 2", "options": {"2": {"forward": "+1 500 555 0006"}}})),
])
def test_forward_to_the_apps_own_number_returns_503_naming_the_setting(app_env, monkeypatch, flow, name, value):
    monkeypatch.setenv("INBOUND_CALL_FLOW", flow)  # an invalid setting answers 503 where it is read
    monkeypatch.setenv("DEFAULT_REGION", "US")
    monkeypatch.setenv(name, value)
    response = voice_webhook.main(signed_form(HOOK, inbound()))
    error = body_of(response)["error"]
    assert (response.status_code, error["code"]) == (503, "not_configured")
    assert name in error["message"] and "TWILIO_PHONE_NUMBER" not in error["message"]
