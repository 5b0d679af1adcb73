"""Delivery status against real Azurite: status callbacks move a send's record forward, its owner looks it up."""

from __future__ import annotations

import random
from concurrent.futures import ThreadPoolExecutor
from typing import Iterator

import azure.functions as func
import pytest
import requests

import call_status
import make_call
import message_status
import send_sms
import status_callback
from tests.support import ROOT, body_of, entities, json_request, signed_form
from tests.signature_cases import FORGERIES

SMS_URL = "http://localhost:7071/api/send_sms"
CALL_URL = "http://localhost:7071/api/make_call"
CALLBACK_URL = "https://app.example.com/api/status_callback"
TO = "+14155550123"


@pytest.fixture
def tracked(stateful, monkeypatch):
    """The stateful app with a public origin: its sends register status callbacks."""
    monkeypatch.setenv("PUBLIC_BASE_URL", "https://app.example.com")
    return stateful


def sent_sms(user: str = "alice") -> str:
    response = send_sms.main(json_request(SMS_URL, {"to": TO, "body": "hi"}, headers={"x-ms-client-principal-id": user}))
    assert response.status_code == 201, response.get_body()
    return body_of(response)["sid"]


def placed_call(user: str = "alice") -> str:
    response = make_call.main(json_request(CALL_URL, {"to": TO}, headers={"x-ms-client-principal-id": user}))
    assert response.status_code == 201, response.get_body()
    return body_of(response)["sid"]


def lookup(kind: str, sid: str, user: str = "alice") -> func.HttpResponse:
    main, route = (message_status.main, "messages") if kind == "message" else (call_status.main, "calls")
    return main(func.HttpRequest("GET", f"http://localhost:7071/api/{route}/{sid}", body=b"", route_params={"sid": sid},
                                 headers={"x-ms-client-principal-id": user}))


def callback(**params: str) -> func.HttpResponse:
    return status_callback.main(signed_form(CALLBACK_URL, params))


def test_send_registers_the_status_callback_and_call_events(tracked):
    sent_sms()
    placed_call()
    message_create, call_create = [r["form"] for r in tracked.requests if r["method"] == "POST"]
    assert message_create["StatusCallback"] == [CALLBACK_URL]
    assert call_create["StatusCallback"] == [CALLBACK_URL]
    assert call_create["StatusCallbackEvent"] == ["initiated", "ringing", "answered", "completed"]


def test_send_with_its_own_status_callback_registers_that_one_only(tracked):
    send_sms.main(json_request(SMS_URL, {"to": TO, "body": "hi", "status_callback": "https://mine.example/cb"},
                               headers={"x-ms-client-principal-id": "alice"}))
    [create] = [r["form"] for r in tracked.requests if r["method"] == "POST"]
    assert create["StatusCallback"] == ["https://mine.example/cb"]


def test_send_without_public_origin_registers_no_callback(stateful, monkeypatch):
    sent_sms()
    [create] = [r["form"] for r in stateful.requests if r["method"] == "POST"]
    assert "StatusCallback" not in create


def test_lookup_owner_sees_the_send_with_documented_fields(tracked):
    sid = sent_sms()
    response = lookup("message", sid)
    assert response.status_code == 200
    body = body_of(response)
    assert set(body) == {"sid", "status", "to", "from", "date_created", "date_updated"}
    assert (body["sid"], body["to"], body["from"]) == (sid, TO, "+15005550006")
    assert body["date_created"].endswith("Z") and body["date_updated"].endswith("Z")


@pytest.mark.parametrize("who", ["another caller", "unknown sid", "malformed sid", "a call sid as a message"])
def test_lookup_anything_but_the_owners_send_is_404_not_found(tracked, who):
    sid = sent_sms()
    user, kind, target = {"another caller": ("bob", "message", sid),
                          "unknown sid": ("alice", "message", "SM" + "0" * 32),
                          "malformed sid": ("alice", "message", "../../etc"),
                          "a call sid as a message": ("alice", "message", placed_call())}[who]
    response = lookup(kind, target, user)
    assert (response.status_code, body_of(response)["error"]["code"]) == (404, "not_found")


MESSAGE_ORDERS = {
    "in order": (["queued", "sending", "sent", "delivered"], "delivered"),
    "reversed": (["delivered", "sent", "sending", "queued"], "delivered"),
    "duplicated": (["sent", "sent", "delivered", "queued", "delivered"], "delivered"),
    "read after delivered": (["delivered", "read"], "read"),
    "delivered after read": (["read", "delivered"], "read"),
    "failed then late sent": (["failed", "sent", "queued"], "failed"),
}


@pytest.mark.parametrize("order", sorted(MESSAGE_ORDERS))
def test_status_callback_message_statuses_only_move_forward(tracked, order):
    statuses, final = MESSAGE_ORDERS[order]
    sid = sent_sms()
    for status in statuses:
        assert callback(MessageSid=sid, MessageStatus=status).get_body().endswith(b"<Response />")
    assert body_of(lookup("message", sid))["status"] == final


def test_status_callback_error_code_is_recorded_with_its_message(tracked):
    sid = sent_sms()
    callback(MessageSid=sid, MessageStatus="undelivered", ErrorCode="30003")
    body = body_of(lookup("message", sid))
    assert (body["status"], body["error_code"], body["error_message"]) == ("undelivered", 30003,
                                                                           "Unreachable destination handset")


def test_status_callback_call_follows_sequence_number_in_any_order(tracked):
    sid = placed_call()
    events = [("initiated", 0), ("ringing", 1), ("in-progress", 2), ("completed", 3)]
    shuffled = events + events[:2]
    random.Random(7).shuffle(shuffled)
    for status, sequence in shuffled:
        extra = {"CallDuration": "42"} if status == "completed" else {}
        callback(CallSid=sid, CallStatus=status, SequenceNumber=str(sequence), **extra)
    body = body_of(lookup("call", sid))
    assert (body["status"], body["duration"]) == ("completed", 42)


def test_status_callback_unknown_sid_is_200_and_ignored(tracked, logs):
    response = callback(MessageSid="SM" + "f" * 32, MessageStatus="delivered")
    assert (response.status_code, response.get_body().endswith(b"<Response />")) == (200, True)
    assert any("unknown message" in text for _, text in logs.records)


@pytest.mark.parametrize("case", sorted(FORGERIES))
def test_status_callback_forgery_is_403_or_405_and_changes_nothing(tracked, monkeypatch, case):
    sid = sent_sms()
    raw = FORGERIES[case]("http://localhost:7071", "/api/status_callback")
    for name, value in raw.env.items():
        monkeypatch.setenv(name, value)
    body = raw.body.replace(b"MessageSid=SM", b"Ignored=SM")  # the matrix's SMS parameters
    response = status_callback.main(func.HttpRequest(raw.method, raw.url, headers=raw.headers, body=body))
    assert response.status_code == (405 if raw.method == "GET" else 403)  # Twilio posts status callbacks
    monkeypatch.setenv("PUBLIC_BASE_URL", "https://app.example.com")
    assert body_of(lookup("message", sid))["status"] == "queued"


def test_lookup_without_callbacks_refreshes_from_twilio(stateful, monkeypatch):
    sid = sent_sms()  # no public origin: no callback, so the lookup asks Twilio
    assert stateful.wait_for(lambda: stateful.messages[0]["status"] == "delivered", timeout=5)
    body = body_of(lookup("message", sid))
    assert body["status"] == "delivered"
    fetches = [r for r in stateful.requests if r["method"] == "GET"]
    assert len(fetches) == 1 and fetches[0]["path"].endswith(f"/Messages/{sid}.json")
    body_of(lookup("message", sid))  # final now: no second fetch
    assert len([r for r in stateful.requests if r["method"] == "GET"]) == 1


def test_lookup_refresh_twilio_error_maps_as_for_the_sends(stateful, monkeypatch):
    sid = sent_sms()
    stateful.inject_fault("status", status=503, method="GET")
    response = lookup("message", sid)
    assert (response.status_code, body_of(response)["error"]["code"]) == (502, "twilio_unavailable")


def fetches(sandbox) -> int:
    return len([r for r in sandbox.requests if r["method"] == "GET"])


def test_lookup_of_a_status_twilio_keeps_non_final_fetches_it_at_most_once_per_10_s(stateful):
    sid = sent_sms()
    stateful.inject_fault("status", status=200, body={"sid": sid, "status": "sending"}, method="GET", times=None)
    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(lambda _: body_of(lookup("message", sid))["status"], range(50)))
    assert set(statuses) <= {"queued", "sending"} and statuses.count("sending") >= 1
    assert fetches(stateful) == 1


def test_lookup_refreshed_final_call_status_is_not_undone_by_a_late_in_progress_callback(stateful, azurite):
    sid = placed_call()  # no public origin: no callbacks registered, so the lookup asks Twilio
    stateful.inject_fault("status", status=200, body={"sid": sid, "status": "completed"}, method="GET")
    assert body_of(lookup("call", sid))["status"] == "completed"  # refreshed: stored without a SequenceNumber
    callback(CallSid=sid, CallStatus="in-progress", SequenceNumber="2")  # late, and delivered after the refresh
    [record] = entities(azurite.connection_string, "TwilioSends")
    assert record["status"] == "completed"
    assert body_of(lookup("call", sid))["status"] == "completed"
    assert fetches(stateful) == 1


# -- end to end: the sandbox delivers the callbacks shuffled and duplicated, over HTTP -----------------------------
@pytest.fixture
def host(stateful, monkeypatch) -> Iterator:
    from devtools.local_host import LocalHost

    with LocalHost(ROOT, host="127.0.0.1", port=0, function_key="").start() as running:
        monkeypatch.setenv("PUBLIC_BASE_URL", running.base_url)
        yield running


@pytest.mark.parametrize(("function", "payload", "route", "final", "callbacks"), [
    ("send_sms", {"to": TO, "body": "hi"}, "messages", "delivered", 3 * 2),  # queued, sent, delivered: twice each
    ("make_call", {"to": TO, "message": "hi"}, "calls", "completed", 4 * 2),
])
def test_e2e_shuffled_duplicated_callbacks_end_in_the_final_state(host, app_env, function, payload, route, final,
                                                                   callbacks):
    app_env.shuffle_callbacks()
    headers = {"x-ms-client-principal-id": "alice"}
    sid = requests.post(host.url_for(function), json=payload, headers=headers, timeout=10).json()["sid"]
    assert app_env.wait_for(lambda: len([e for e in app_env.activity if e["type"] == "status_callback"]) == callbacks,
                            timeout=10)
    body = requests.get(f"{host.base_url}/api/{route}/{sid}", headers=headers, timeout=10).json()
    assert body["status"] == final
    assert [r for r in app_env.requests if r["method"] == "GET"] == []  # the callbacks said it all
