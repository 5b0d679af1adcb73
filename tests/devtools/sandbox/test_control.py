"""The sandbox's control surface: its /_sandbox/ endpoints, activity log, reset, start and stop."""

from __future__ import annotations

import json
import logging
import time
from urllib.parse import urlsplit

import pytest
import requests

from devtools.sandbox import TwilioSandbox
from tests.devtools.sandbox.support import (CUSTOMER, IVR, SMS, SMS_TWIML, VOICE_TWIML, FakeApp, call_form,
                                            control, create, event_types)
from tests.support import ACCOUNT_SID, API_KEY_SECRET, API_KEY_SID, AUTH_TOKEN, SENDER


# -- control endpoints -------------------------------------------------------------------------------------------------
def test_fault_control_endpoints_arm_and_clear(sandbox: TwilioSandbox) -> None:
    armed = control(sandbox, "POST", "/faults", {"kind": "odd", "preset": "list", "times": None})
    refused = [control(sandbox, "POST", "/faults", payload).status_code
               for payload in ({"kind": "bogus"}, {"kind": "status", "colour": "red"}, [1])]
    faulted = create(sandbox, "Messages", SMS)
    listed = control(sandbox, "GET", "/faults").json()
    cleared = control(sandbox, "DELETE", "/faults")

    assert armed.status_code == 201 and armed.json()["status"] == 201 and armed.json()["times"] is None
    assert refused == [400, 400, 400]
    assert faulted.json() == [] and [f["preset"] for f in listed] == ["list"]
    assert cleared.status_code == 200 and create(sandbox, "Messages", SMS).status_code == 201


def test_inbound_control_endpoints_return_the_simulation_result(sandbox: TwilioSandbox, app: FakeApp) -> None:
    payload = {"url": app.url("/sms"), "from": CUSTOMER, "to": SENDER, "body": "x"}
    sms = control(sandbox, "POST", "/inbound/sms", payload)
    call = control(sandbox, "POST", "/inbound/call", {"url": app.url("/broken"), "from": CUSTOMER, "to": SENDER})
    incomplete = control(sandbox, "POST", "/inbound/sms", {"url": app.url("/sms")})
    unknown = control(sandbox, "GET", "/nothing")

    assert (sms.status_code, sms.json()["twiml"]) == (200, SMS_TWIML)
    assert (call.status_code, call.json()["twilio_error"]["code"]) == (200, 12100)
    assert (incomplete.status_code, unknown.status_code) == (400, 404)
    assert [m["body"] for m in control(sandbox, "GET", "/messages").json()] == ["Thanks, got it!"]
    assert [e["type"] for e in control(sandbox, "GET", "/activity").json()] == ["inbound.sms", "call.step",
                                                                                 "inbound.call"]


def test_inbound_call_control_endpoint_takes_the_caller_script(sandbox: TwilioSandbox, app: FakeApp) -> None:
    app.voice(**IVR)
    payload = {"url": app.url("/ivr"), "from": CUSTOMER, "to": SENDER}

    call = control(sandbox, "POST", "/inbound/call",
                   {**payload, "digits": ["1"], "dial_outcomes": ["failed"], "record": False})
    refused = [control(sandbox, "POST", "/inbound/call", {**payload, **bad}).status_code for bad in (
        {"digits": "1"}, {"digits": [1]}, {"dial_outcomes": ["maybe"]}, {"record": "no"}, {"max_steps": 0})]

    assert call.status_code == 200
    assert [urlsplit(step["url"]).path for step in call.json()["steps"]] == ["/ivr", "/dial", "/after"]
    assert call.json()["said"] == ["Press 1 for sales", "Leave a message", "No message recorded"]
    assert refused == [400] * 5 and len(app.received) == 3


# -- activity log, state, lifecycle --------------------------------------------------------------------------------
def test_activity_log_orders_rest_then_call_flow_events(sandbox: TwilioSandbox, app: FakeApp) -> None:
    create(sandbox, "Calls", call_form(app.url("/voice"), StatusCallback=app.url("/status")))

    assert sandbox.wait_for(lambda: event_types(sandbox).count("status_callback") == 4)
    events = sandbox.activity
    assert [e["type"] for e in events] == ["rest.request", "rest.response", "status_callback", "status_callback",
                                           "status_callback", "call.webhook", "status_callback"]
    assert [e["seq"] for e in events] == sorted(e["seq"] for e in events)
    assert events[0]["form"]["Url"] == [app.url("/voice")] and events[1]["status"] == 201
    webhook = events[5]
    assert (webhook["status"], webhook["twiml"], webhook["twilio_error"]) == (200, VOICE_TWIML, None)
    assert [e["resource_status"] for e in events if e["type"] == "status_callback"] == [
        "initiated", "ringing", "in-progress", "completed"]
    assert json.loads(control(sandbox, "GET", "/activity").text) == sandbox.activity


def test_requests_and_activity_never_hold_credentials(sandbox: TwilioSandbox) -> None:
    create(sandbox, "Messages", SMS)
    create(sandbox, "Messages", SMS, auth=(API_KEY_SID, API_KEY_SECRET))

    assert [r["headers"]["Authorization"] for r in sandbox.requests] == ["<redacted>", "<redacted>"]
    dumped = json.dumps([sandbox.requests, sandbox.activity, sandbox.messages, repr(sandbox)])
    assert AUTH_TOKEN not in dumped and API_KEY_SECRET not in dumped


def test_reset_forgets_state_and_faults_but_keeps_serving(sandbox: TwilioSandbox) -> None:
    create(sandbox, "Messages", SMS)
    sandbox.inject_fault("status", times=None)

    sandbox.reset()

    assert (sandbox.messages, sandbox.requests, sandbox.activity, sandbox.faults) == ([], [], [], [])
    assert create(sandbox, "Messages", SMS).status_code == 201


def test_reset_during_call_flow_ends_the_flow_quietly(caplog: pytest.LogCaptureFixture, refused_port: int) -> None:
    with TwilioSandbox(account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN, step_delay=0.05) as sb:
        assert create(sb, "Calls", call_form(f"http://127.0.0.1:{refused_port}/voice")).status_code == 201
        sb.reset()
        time.sleep(0.3)  # the flow's remaining steps find the call gone

        assert sb.activity == []
    assert not [r for r in caplog.records if r.name == "devtools.sandbox" and r.levelno >= logging.ERROR]


def test_sandbox_context_manager_stops_and_frees_the_port() -> None:
    with TwilioSandbox(account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN) as sb:
        base_url = sb.base_url
        assert requests.get(f"{base_url}/_sandbox/calls", timeout=5).json() == []

    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(f"{base_url}/_sandbox/calls", timeout=1)
    with pytest.raises(RuntimeError, match="cannot be restarted"):
        sb.start()


def test_sandbox_taken_port_raises_os_error(sandbox: TwilioSandbox) -> None:
    port = int(sandbox.base_url.rsplit(":", 1)[1])

    with pytest.raises(OSError):
        TwilioSandbox(port=port).start()


def test_sandbox_bad_account_sid_or_empty_token_is_refused() -> None:
    with pytest.raises(ValueError, match="account_sid"):
        TwilioSandbox(account_sid="AC123")
    with pytest.raises(ValueError, match="auth_token"):
        TwilioSandbox(auth_token="")


def test_token_endpoint_wrong_field_name_or_type_is_refused_and_ttl_may_be_negative(sandbox: TwilioSandbox) -> None:
    import jwt

    refused = [control(sandbox, "POST", "/token", payload).status_code
               for payload in ({"user": "bob"}, {"sub": 7}, {"sub": ""}, {"ttl": "60"}, {"ttl": True})]
    expired = control(sandbox, "POST", "/token", {"sub": "bob", "ttl": -60}).json()
    claims = jwt.decode(expired["access_token"], options={"verify_signature": False})

    assert refused == [400] * 5
    assert claims["sub"] == "bob" and claims["exp"] < time.time() and expired["expires_in"] == -60


def test_events_feed_streams_rest_requests_and_signed_webhooks_as_they_happen(sandbox: TwilioSandbox,
                                                                               app: FakeApp) -> None:
    create(sandbox, "Messages", SMS)  # before the feed is opened: replayed from ?after=0
    with requests.get(f"{sandbox.base_url}/_sandbox/events", stream=True, timeout=5) as feed:
        control(sandbox, "POST", "/inbound/sms", {"url": app.url("/sms"), "from": CUSTOMER, "to": SENDER, "body": "x"})
        events = []
        for line in feed.iter_lines(decode_unicode=True):
            if line.startswith("data: "):
                events.append(json.loads(line[6:]))
            if events and events[-1]["type"] == "inbound.sms":
                break
    assert feed.headers["Content-Type"].startswith("text/event-stream")
    assert feed.headers["Access-Control-Allow-Origin"] == "*"
    assert [e["type"] for e in events][:2] == ["rest.request", "rest.response"]
    inbound = events[-1]
    assert inbound["signature"] and inbound["status"] == 200 and inbound["ms"] >= 0


def test_control_endpoints_answer_a_browser_preflight_from_any_origin(sandbox: TwilioSandbox) -> None:
    preflight = requests.options(f"{sandbox.base_url}/_sandbox/token", timeout=5, headers={
        "Origin": "http://127.0.0.1:7071", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type"})
    assert preflight.status_code == 204 and preflight.headers["Access-Control-Allow-Origin"] == "*"
    assert preflight.headers["Access-Control-Allow-Headers"] == "content-type"
    assert control(sandbox, "POST", "/token", {}).headers["Access-Control-Allow-Origin"] == "*"


def test_live_inbound_call_waits_for_each_answer_and_refuses_one_of_the_wrong_kind(sandbox: TwilioSandbox,
                                                                                   app: FakeApp) -> None:
    app.voice(**IVR)
    started = control(sandbox, "POST", "/inbound/call", {"url": app.url("/ivr"), "from": CUSTOMER, "to": SENDER,
                                                         "live": True})
    sid = started.json()["sid"]

    def answer(waiting: str, value: object) -> requests.Response:
        assert sandbox.wait_for(lambda: [e["waiting"] for e in sandbox.activity if e["type"] == "call.waiting"]
                                .count(waiting) == 1)
        return control(sandbox, "POST", f"/calls/{sid}/answer", {"value": value})

    wrong = answer("digits", 1).status_code
    answers = [answer("digits", "1").status_code, answer("dial", "busy").status_code,
               answer("record", False).status_code]
    assert sandbox.wait_for(lambda: "inbound.call" in event_types(sandbox))
    ended = next(e for e in sandbox.activity if e["type"] == "inbound.call")

    assert started.status_code == 202 and wrong == 400 and answers == [200, 200, 200]
    assert ended["said"] == ["Press 1 for sales", "Leave a message", "No message recorded"]
    assert control(sandbox, "POST", f"/calls/{sid}/answer", {"value": "1"}).status_code == 400  # ended
