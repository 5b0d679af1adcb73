"""The sandbox as Twilio's side of the app: call flows, status callbacks, inbound SMS and multi-step calls."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from werkzeug.datastructures import MultiDict

from devtools.sandbox import TwilioSandbox
from tests.devtools.sandbox.support import (CUSTOMER, IVR, SMS, SMS_TWIML, VOICE_TWIML, FakeApp, call_form,
                                            create)
from tests.support import ACCOUNT_SID, SENDER


# -- call flow and status callbacks --------------------------------------------------------------------------------
def test_call_flow_fetches_url_signed_with_call_params_and_records_twiml(sandbox: TwilioSandbox, app: FakeApp) -> None:
    sid = create(sandbox, "Calls", call_form(app.url("/voice"))).json()["sid"]

    assert sandbox.wait_for(lambda: sandbox.calls[0]["status"] == "completed")
    (fetch,) = app.to("/voice")
    assert fetch["valid"] and fetch["method"] == "POST"
    assert fetch["params"] | {"CallStatus": "?"} == {
        "AccountSid": ACCOUNT_SID, "ApiVersion": "2010-04-01", "CallSid": sid, "CallStatus": "?", "Called": CUSTOMER,
        "Caller": SENDER, "Direction": "outbound-api", "From": SENDER, "To": CUSTOMER}
    assert fetch["headers"]["User-Agent"] == "TwilioProxy/1.1" and fetch["headers"]["I-Twilio-Idempotency-Token"]
    assert fetch["headers"]["Content-Type"] == "application/x-www-form-urlencoded"
    recorded = sandbox.calls[0]["sandbox"]
    assert (recorded["twiml"], recorded["webhook_status"], recorded["twilio_error"]) == (VOICE_TWIML, 200, None)
    assert sandbox.calls[0]["duration"] is not None and sandbox.calls[0]["end_time"] is not None


def test_call_flow_get_method_signs_the_full_url(sandbox: TwilioSandbox, app: FakeApp) -> None:
    create(sandbox, "Calls", call_form(app.url("/voice?lang=en"), Method="GET"))

    assert sandbox.wait_for(lambda: sandbox.calls[0]["status"] == "completed")
    (fetch,) = app.to("/voice")
    assert fetch["method"] == "GET" and fetch["valid"]
    assert fetch["params"]["lang"] == "en" and fetch["params"]["CallStatus"] == "in-progress"


@pytest.mark.parametrize(("path", "code"), [("/text", 12300), ("/broken", 12100), ("/error", 11200), (None, 11200)])
def test_call_flow_bad_answer_fails_call_with_twilio_error(sandbox: TwilioSandbox, app: FakeApp, path: str | None,
                                                           code: int, refused_port: int) -> None:
    url = app.url(path) if path else f"http://127.0.0.1:{refused_port}/voice"

    create(sandbox, "Calls", call_form(url))

    assert sandbox.wait_for(lambda: sandbox.calls[0]["status"] == "failed")
    recorded = sandbox.calls[0]["sandbox"]
    assert recorded["twilio_error"]["code"] == code and recorded["twiml"] is None
    (event,) = [e for e in sandbox.activity if e["type"] == "call.webhook"]
    assert (event["twilio_error"]["code"], event["url"]) == (code, url)


def test_call_flow_status_callbacks_are_signed_and_in_order(sandbox: TwilioSandbox, app: FakeApp) -> None:
    sid = create(sandbox, "Calls", call_form(app.url("/voice"), StatusCallback=app.url("/status"))).json()["sid"]

    assert sandbox.wait_for(lambda: len(app.to("/status")) == 4)
    assert [(r["path"], r["params"]["CallStatus"]) for r in app.received] == [
        ("/status", "initiated"), ("/status", "ringing"), ("/status", "in-progress"), ("/voice", "in-progress"),
        ("/status", "completed")]
    assert all(r["valid"] and r["params"]["CallSid"] == sid for r in app.received)
    assert [r["params"]["SequenceNumber"] for r in app.to("/status")] == ["0", "1", "2", "3"]
    assert "CallDuration" in app.to("/status")[-1]["params"]


def test_message_status_callbacks_queued_sent_delivered_are_signed(sandbox: TwilioSandbox, app: FakeApp) -> None:
    sid = create(sandbox, "Messages", MultiDict({**SMS, "StatusCallback": app.url("/status")})).json()["sid"]

    assert sandbox.wait_for(lambda: len(app.to("/status")) == 3)
    callbacks = app.to("/status")
    assert [c["params"]["MessageStatus"] for c in callbacks] == ["queued", "sent", "delivered"]
    assert all(c["valid"] and c["params"]["MessageSid"] == c["params"]["SmsSid"] == sid for c in callbacks)
    assert sandbox.wait_for(lambda: sandbox.messages[0]["date_sent"] is not None)


# -- inbound simulation --------------------------------------------------------------------------------------------
def test_inbound_sms_posts_signed_params_and_stores_the_reply(sandbox: TwilioSandbox, app: FakeApp) -> None:
    result = sandbox.simulate_inbound_sms(app.url("/sms"), CUSTOMER, SENDER, "hello app",
                                          media_urls=["https://example.com/cat.png"])

    assert (result["status"], result["content_type"], result["twiml"]) == (200, "application/xml", SMS_TWIML)
    assert "twilio_error" not in result
    (received,) = app.to("/sms")
    params = received["params"]
    assert received["valid"] and received["method"] == "POST"
    assert (params["From"], params["To"], params["Body"], params["AccountSid"]) == (CUSTOMER, SENDER, "hello app",
                                                                                   ACCOUNT_SID)
    assert params["MessageSid"] == params["SmsSid"] == result["sid"] and params["SmsStatus"] == "received"
    assert (params["NumMedia"], params["MediaUrl0"], params["MediaContentType0"]) == (
        "1", "https://example.com/cat.png", "image/png")
    (reply,) = sandbox.messages
    assert (reply["to"], reply["from"], reply["body"], reply["direction"]) == (
        CUSTOMER, SENDER, "Thanks, got it!", "outbound-reply")


@pytest.mark.parametrize(("path", "code"), [("/empty", None), ("/text", 12300), ("/broken", 12100), ("/error", 11200)])
def test_inbound_sms_answer_is_judged_as_twilio_does(sandbox: TwilioSandbox, app: FakeApp, path: str,
                                                     code: int | None) -> None:
    result = sandbox.simulate_inbound_sms(app.url(path), CUSTOMER, SENDER, "hi")

    assert result.get("twilio_error", {}).get("code") == code
    assert sandbox.messages == []


def test_inbound_call_posts_signed_ringing_params_and_returns_twiml(sandbox: TwilioSandbox, app: FakeApp) -> None:
    result = sandbox.simulate_inbound_call(app.url("/voice"), CUSTOMER, SENDER)

    assert (result["status"], result["twiml"]) == (200, VOICE_TWIML) and "twilio_error" not in result
    (received,) = app.to("/voice")
    assert received["valid"] and received["params"]["CallSid"] == result["sid"]
    assert (received["params"]["CallStatus"], received["params"]["Direction"]) == ("ringing", "inbound")


def test_inbound_get_method_sends_signed_query(sandbox: TwilioSandbox, app: FakeApp) -> None:
    result = sandbox.simulate_inbound_call(app.url("/voice"), CUSTOMER, SENDER, method="GET")

    (received,) = app.to("/voice")
    assert result["twiml"] == VOICE_TWIML and received["method"] == "GET" and received["valid"]
    assert received["params"]["From"] == CUSTOMER


# -- multi-step inbound calls: the caller's side -------------------------------------------------------------------
def test_inbound_call_gather_with_digits_requests_relative_action_with_query_signed(sandbox: TwilioSandbox,
                                                                                      app: FakeApp) -> None:
    app.voice(ivr__start='<Gather action="menu?step=menu&amp;attempt=2"><Say>Your code?</Say></Gather><Say>No</Say>',
              ivr__menu='<Say>Thanks</Say><Redirect method="GET">../done?from=menu</Redirect><Say>never</Say>',
              done="<Say>Bye</Say><Hangup/><Say>never</Say>")

    result = sandbox.simulate_inbound_call(app.url("/ivr/start"), CUSTOMER, SENDER, digits=["42#"])

    assert [(r["method"], r["url"]) for r in app.received[:2]] == [
        ("POST", app.url("/ivr/start")), ("POST", app.url("/ivr/menu?step=menu&attempt=2"))]
    assert app.received[2]["method"] == "GET" and app.received[2]["url"].startswith(app.url("/done?from=menu&"))
    assert all(r["valid"] and r["params"]["CallSid"] == result["sid"] for r in app.received)
    start, menu, done = (r["params"] for r in app.received)
    assert (start["CallStatus"], menu["CallStatus"], done["CallStatus"]) == ("ringing", "in-progress", "in-progress")
    assert menu["Digits"] == "42" and done["from"] == "menu" and "ApplicationSid" not in start
    assert [(step["url"], step["params"], step["status"]) for step in result["steps"]] == [
        (app.url("/ivr/start"), {}, 200), (app.url("/ivr/menu?step=menu&attempt=2"), {"Digits": "42"}, 200),
        (app.url("/done?from=menu"), {}, 200)]
    assert (result["said"], result["ended"], result["status"]) == (["Your code?", "Thanks", "Bye"], "hangup", 200)
    assert result["twiml"] == result["steps"][0]["twiml"] and "Your code?" in result["twiml"]


def test_inbound_call_gather_no_input_with_action_on_empty_result_posts_empty_digits(sandbox: TwilioSandbox,
                                                                                     app: FakeApp) -> None:
    app.voice(ivr='<Gather action="/menu" actionOnEmptyResult="true"/><Say>unreached</Say>', menu="<Say>Hm?</Say>")

    result = sandbox.simulate_inbound_call(app.url("/ivr"), CUSTOMER, SENDER, digits=[""])

    (menu,) = app.to("/menu")
    assert menu["valid"] and menu["params"]["Digits"] == ""
    assert (result["said"], result["ended"], result["steps"][0]["verbs"]) == (["Hm?"], "end", ["Gather: no input"])


def test_inbound_call_gather_no_input_without_action_on_empty_result_follows_the_redirect(sandbox: TwilioSandbox,
                                                                                          app: FakeApp) -> None:
    app.voice(ivr='<Gather action="/menu"><Say>Press 1</Say></Gather><Redirect>/retry</Redirect>',
              retry="<Say>Try again later</Say>")

    result = sandbox.simulate_inbound_call(app.url("/ivr"), CUSTOMER, SENDER)  # no digits left: no input

    assert [r["path"] for r in app.received] == ["/ivr", "/retry"] and app.to("/menu") == []
    assert "Digits" not in app.to("/retry")[0]["params"]
    assert (result["said"], result["ended"]) == (["Press 1", "Try again later"], "end")


def test_inbound_call_dial_with_action_posts_scripted_status_and_without_action_continues(sandbox: TwilioSandbox,
                                                                                          app: FakeApp) -> None:
    app.voice(dial=IVR["dial"], after='<Dial>+14155550999</Dial><Say>Back from the second dial</Say>')

    result = sandbox.simulate_inbound_call(app.url("/dial"), CUSTOMER, SENDER, dial_outcomes=["no-answer"])

    assert [r["path"] for r in app.received] == ["/dial", "/after"] and all(r["valid"] for r in app.received)
    params = app.to("/after")[0]["params"]
    assert (params["DialCallStatus"], params["DialCallDuration"]) == ("no-answer", "0") and "DialCallSid" not in params
    assert result["dialed"] == [["+14155550123", "client:bob"], ["+14155550999"]]
    assert result["steps"][1]["verbs"] == ["Dial +14155550999: completed", "Say: Back from the second dial"]
    assert (result["said"], result["ended"]) == (["Back from the second dial"], "end")


def test_inbound_call_dial_answered_posts_completed_duration_and_dial_call_sid(sandbox: TwilioSandbox,
                                                                              app: FakeApp) -> None:
    app.voice(dial=IVR["dial"], after="<Hangup/>")

    sandbox.simulate_inbound_call(app.url("/dial"), CUSTOMER, SENDER)

    params = app.to("/after")[0]["params"]
    assert (params["DialCallStatus"], params["DialCallDuration"]) == ("completed", "12")
    assert params["DialCallSid"].startswith("CA") and params["DialCallSid"] != params["CallSid"]


def test_inbound_call_record_posts_status_callback_then_action_and_hangs_up(sandbox: TwilioSandbox,
                                                                           app: FakeApp) -> None:
    app.voice(after=IVR["after"], recorded=IVR["recorded"])

    result = sandbox.simulate_inbound_call(app.url("/after"), CUSTOMER, SENDER)

    assert [r["path"] for r in app.received] == ["/after", "/recording-status", "/recorded"]
    assert all(r["valid"] for r in app.received)
    status, action = app.received[1]["params"], app.received[2]["params"]
    recording = {name: status[name] for name in ("RecordingSid", "RecordingUrl", "RecordingDuration")}
    assert recording["RecordingSid"].startswith("RE") and recording["RecordingDuration"] == "7"
    assert recording["RecordingUrl"] == (f"{sandbox.base_url}/2010-04-01/Accounts/{ACCOUNT_SID}/Recordings/"
                                         f"{recording['RecordingSid']}")
    assert (status["RecordingStatus"], status["CallSid"], status["AccountSid"]) == ("completed", result["sid"],
                                                                                    ACCOUNT_SID)
    assert {name: action[name] for name in recording} == recording and action["Digits"] == "hangup"
    assert action["From"] == CUSTOMER and "From" not in status
    assert [(step["status"], step["twiml"] is None) for step in result["steps"]] == [(200, False), (204, True),
                                                                                     (200, False)]
    assert (result["said"], result["ended"]) == (["Leave a message"], "hangup")  # hung up: "Thanks" is not played


def test_inbound_call_record_without_audio_skips_the_action_and_runs_the_next_verb(sandbox: TwilioSandbox,
                                                                                  app: FakeApp) -> None:
    app.voice(after=IVR["after"], recorded=IVR["recorded"])

    result = sandbox.simulate_inbound_call(app.url("/after"), CUSTOMER, SENDER, record=False)

    assert [r["path"] for r in app.received] == ["/after"]
    assert (result["said"], result["ended"]) == (["Leave a message", "No message recorded"], "end")
    assert result["steps"][0]["verbs"][1] == "Record: no audio"


def test_inbound_call_redirect_loop_stops_at_the_step_limit(sandbox: TwilioSandbox, app: FakeApp) -> None:
    app.voice(loop="<Say>Again</Say><Redirect>/loop</Redirect>")

    result = sandbox.simulate_inbound_call(app.url("/loop"), CUSTOMER, SENDER, max_steps=5)

    assert len(app.to("/loop")) == len(result["steps"]) == 5
    assert (result["ended"], result["said"], result["steps"][-1]["verbs"][-1]) == ("step limit", ["Again"] * 5,
                                                                                   "step limit")


@pytest.mark.parametrize(("path", "code"), [("/error", 11200), ("/broken", 12100), ("/text", 12300)])
def test_inbound_call_bad_answer_at_a_later_step_ends_call_with_twilio_error(sandbox: TwilioSandbox, app: FakeApp,
                                                                             path: str, code: int) -> None:
    app.voice(ivr=f'<Gather action="{path}"/><Say>unreached</Say>')

    result = sandbox.simulate_inbound_call(app.url("/ivr"), CUSTOMER, SENDER, digits=["1"])

    assert (result["status"], result["twilio_error"]["code"], result["ended"]) == (200, code, "error")
    assert [step["twilio_error"] and step["twilio_error"]["code"] for step in result["steps"]] == [None, code]
    assert result["said"] == [] and "<Gather" in result["twiml"]


def test_client_call_sends_client_from_and_caller_with_application_sid(sandbox: TwilioSandbox,
                                                                       app: FakeApp) -> None:
    app.voice(client="<Dial><Client>bob</Client></Dial>")

    result = sandbox.simulate_client_call(app.url("/client"), "alice", "client:bob")

    (received,) = app.received
    params = received["params"]
    assert received["valid"] and (params["From"], params["Caller"], params["To"]) == ("client:alice", "client:alice",
                                                                                       "client:bob")
    assert params["ApplicationSid"].startswith("AP") and len(params["ApplicationSid"]) == 34
    assert (params["Direction"], result["dialed"], result["ended"]) == ("inbound", [["client:bob"]], "end")


def test_inbound_call_activity_log_has_one_step_event_per_request_then_the_call(sandbox: TwilioSandbox,
                                                                                app: FakeApp) -> None:
    app.voice(**IVR)

    result = sandbox.simulate_inbound_call(app.url("/ivr"), CUSTOMER, SENDER, digits=["1"], dial_outcomes=["busy"])

    events = sandbox.activity
    assert [e["type"] for e in events] == ["call.step"] * 5 + ["inbound.call"]
    steps = events[:5]
    assert [(e["step"], e["sid"], urlsplit(e["url"]).path, e["status"]) for e in steps] == [
        (1, result["sid"], "/ivr", 200), (2, result["sid"], "/dial", 200), (3, result["sid"], "/after", 200),
        (4, result["sid"], "/recording-status", 204), (5, result["sid"], "/recorded", 200)]
    assert (steps[1]["params"]["Digits"], steps[2]["params"]["DialCallStatus"]) == ("1", "busy")
    assert steps[3]["params"]["RecordingStatus"] == "completed" and steps[3]["twiml"] is None
    assert all(e["twiml"] == step["twiml"] for e, step in zip(steps, result["steps"], strict=True))
    call = events[5]
    assert (call["sid"], call["ended"], call["steps"], call["twiml"]) == (result["sid"], "hangup", 5, result["twiml"])
    assert result["dialed"] == [["+14155550123", "client:bob"]]


def test_inbound_call_bad_dial_outcome_or_step_limit_raises_value_error(sandbox: TwilioSandbox) -> None:
    with pytest.raises(ValueError, match="dial outcomes"):
        sandbox.simulate_inbound_call("http://127.0.0.1:1/voice", CUSTOMER, SENDER, dial_outcomes=["maybe"])
    with pytest.raises(ValueError, match="max_steps"):
        sandbox.simulate_inbound_call("http://127.0.0.1:1/voice", CUSTOMER, SENDER, max_steps=0)
