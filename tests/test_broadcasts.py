"""Broadcasts against real Azurite (tables and queue) and the sandbox: admission, the worker, status, cancel."""

from __future__ import annotations

import json
import time

import azure.functions as func
import pytest
from azure.functions.queue import QueueMessage

import broadcast_worker
import broadcasts
import sms_webhook
import status_callback
from tests.support import TableFaults, body_of, entities, json_request, refused_port, signed_form

URL = "http://localhost:7071/api/broadcasts"
CALLBACK_URL = "https://app.example.com/api/status_callback"
OPTED_OUT = "+15005550004"  # the sandbox answers 21610 for it, as Twilio does for a number that texted STOP


def numbers(n: int) -> list[str]:
    return [f"+1415555{1000 + i:04d}" for i in range(n)]


@pytest.fixture
def broadcasting(stateful, monkeypatch, azurite):
    """The stateful app with a public origin, alice allowed to broadcast; the queue emptied after the test."""
    monkeypatch.setenv("BROADCAST_SENDERS", "alice")
    monkeypatch.setenv("PUBLIC_BASE_URL", "https://app.example.com")
    monkeypatch.setenv("BROADCAST_SEGMENTS_PER_SECOND", "50")
    yield stateful
    queue(azurite).clear_messages()


def queue(azurite):
    from azure.core.exceptions import ResourceExistsError
    from azure.storage.queue import BinaryBase64DecodePolicy, QueueClient, TextBase64EncodePolicy

    client = QueueClient.from_connection_string(azurite.connection_string, "twilio-broadcast",
                                                message_encode_policy=TextBase64EncodePolicy(),
                                                message_decode_policy=BinaryBase64DecodePolicy())
    try:
        client.create_queue()
    except ResourceExistsError:
        pass
    return client


def admit(payload, user="alice", headers=None):
    return broadcasts.main(json_request(URL, payload, headers={"x-ms-client-principal-id": user, **(headers or {})}))


def show(broadcast_id, user="alice", method="GET", query=""):
    request = func.HttpRequest(method, f"{URL}/{broadcast_id}{query}", body=b"", route_params={"id": broadcast_id},
                               headers={"x-ms-client-principal-id": user},
                               params=dict(p.split("=") for p in query.lstrip("?").split("&") if p))
    return broadcasts.main(request)


def drain(azurite, seconds=30.0, fail=None):
    """Run broadcast_worker on the queue's messages as the host would (Base64, dequeue count) until it stays empty."""
    client = queue(azurite)
    deadline, idle = time.monotonic() + seconds, 0
    while time.monotonic() < deadline and idle < 15:
        messages = list(client.receive_messages(max_messages=16, visibility_timeout=30))
        if not messages and not client.peek_messages() and client.get_queue_properties().approximate_message_count == 0:
            idle += 1
        for message in messages:
            idle = 0
            try:
                broadcast_worker.main(QueueMessage(id=message.id, body=message.content,
                                                        dequeue_count=message.dequeue_count))
                client.delete_message(message)
            except Exception:  # noqa: BLE001 - the host's retry: visible again at once
                if fail is not None:
                    fail.append(message.dequeue_count)
                if message.dequeue_count >= 5:
                    client.delete_message(message)
                else:
                    client.update_message(message, content=message.content.decode(), visibility_timeout=0)
        time.sleep(0.1)


def creates_to(sandbox):
    return [r["form"]["To"][0] for r in sandbox.requests if r["method"] == "POST" and r["path"].endswith("/Messages.json")]


# -- admission -------------------------------------------------------------------------------------------------------
def test_broadcasts_admission_valid_list_returns_202_with_rejected_and_duplicates_once(broadcasting, azurite):
    response = admit({"to": ["+14155551000", "4155551000x", "+14155551001", "+1 415 555 1000", "+19005550100"],
                      "body": "Outage at 5pm"})
    assert response.status_code == 202, response.get_body()
    body = body_of(response)
    assert body["status"] == "scheduled" and body["recipients"] == 2 and body["id"].startswith("BR")
    assert response.headers["Location"] == f"/api/broadcasts/{body['id']}"
    assert [(r["index"], r["code"]) for r in body["rejected"]] == [(1, "invalid_phone_number"),
                                                                   (4, "destination_not_allowed")]
    assert body["estimated_done_at"].endswith("Z")
    assert broadcasting.messages == []  # admission sends nothing itself


@pytest.mark.parametrize(("env", "user", "status", "code"), [
    ({"BROADCAST_SENDERS": ""}, "alice", 503, "not_configured"),
    ({"AUTH_EASY_AUTH": ""}, "alice", 503, "not_configured"),
    ({}, "mallory", 403, "forbidden"),
])
def test_broadcasts_admission_unauthorised_caller_is_refused(broadcasting, monkeypatch, env, user, status, code):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    response = admit({"to": ["+14155551000"], "body": "x"}, user=user)
    assert (response.status_code, body_of(response)["error"]["code"]) == (status, code)
    if status == 503:
        assert "BROADCAST_SENDERS" in body_of(response)["error"]["message"] or "AUTH_" in body_of(response)["error"]["message"]


def test_broadcasts_admission_no_valid_entry_is_400_naming_to(broadcasting):
    response = admit({"to": ["nope", "+19005550100"], "body": "x"})
    assert (response.status_code, body_of(response)["error"]["field"]) == (400, "to")


def test_broadcasts_admission_over_app_quota_is_429_and_queues_nothing(broadcasting, monkeypatch, azurite):
    monkeypatch.setenv("QUOTA_SMS_PER_DAY", "3")
    assert admit({"to": numbers(2), "body": "x"}).status_code == 202
    response = admit({"to": numbers(2), "body": "x"})
    assert (response.status_code, body_of(response)["error"]["code"]) == (429, "quota_exceeded")
    assert admit({"to": numbers(1), "body": "x"}).status_code == 202  # nothing was taken by the refused one
    assert len([e for e in entities(azurite.connection_string, "TwilioBroadcasts") if e["RowKey"] == ""]) == 2


def test_broadcasts_admission_idempotency_key_replays_the_202_and_fans_out_once(broadcasting, azurite):
    first = admit({"to": numbers(3), "body": "x"}, headers={"Idempotency-Key": "k1"})
    again = admit({"to": numbers(3), "body": "x"}, headers={"Idempotency-Key": "k1"})
    assert again.status_code == 202 and body_of(again) == body_of(first)
    assert again.headers["Idempotent-Replayed"] == "true" and again.headers["Location"] == first.headers["Location"]
    assert len([e for e in entities(azurite.connection_string, "TwilioBroadcasts") if e["RowKey"] == ""]) == 1


def test_broadcasts_admission_idempotency_key_with_a_huge_rejected_list_still_replays_once(broadcasting, azurite):
    payload = {"to": numbers(1) + [f"not a number {i:019d}" for i in range(2000)], "body": "x"}  # 150 KB rejected
    first = admit(payload, headers={"Idempotency-Key": "k2"})
    assert first.status_code == 202 and len(body_of(first)["rejected"]) == 2000
    again = admit(payload, headers={"Idempotency-Key": "k2"})
    assert again.status_code == 202 and again.headers["Idempotent-Replayed"] == "true"
    replayed = body_of(again)
    assert replayed["id"] == body_of(first)["id"] and replayed["rejected_truncated"] is True
    assert replayed["rejected"] == body_of(first)["rejected"][:len(replayed["rejected"])]
    assert len([e for e in entities(azurite.connection_string, "TwilioBroadcasts") if e["RowKey"] == ""]) == 1


def test_broadcasts_admission_storage_down_is_503_and_nothing_is_sent(broadcasting, monkeypatch, azurite):
    from devtools.azurite import connection_string

    with refused_port() as tables, refused_port() as queues:
        monkeypatch.setenv("AzureWebJobsStorage", connection_string(tables, queue_port=queues))
        response = admit({"to": numbers(3), "body": "x"})
    assert (response.status_code, body_of(response)["error"]["code"]) == (503, "state_unavailable")
    monkeypatch.setenv("AzureWebJobsStorage", azurite.connection_string)
    drain(azurite, seconds=2)
    assert broadcasting.messages == []


def test_broadcasts_admission_storage_failing_after_the_quota_gives_its_slots_back(broadcasting, monkeypatch, azurite):
    monkeypatch.setenv("QUOTA_SMS_PER_DAY", "3")
    TableFaults(monkeypatch, "TwilioBroadcasts").arm(1)  # the header's `scheduled`, after the rows and the chunks
    response = admit({"to": numbers(3), "body": "x"})
    assert (response.status_code, body_of(response)["error"]["code"]) == (503, "state_unavailable")
    assert admit({"to": numbers(3), "body": "x"}).status_code == 202  # the failed one's 3 slots were given back
    assert admit({"to": numbers(1), "body": "x"}).status_code == 429


# -- the worker, status, cancel --------------------------------------------------------------------------------------
@pytest.mark.slow
def test_broadcasts_worker_sends_every_recipient_once_and_callbacks_deliver_them(broadcasting, azurite):
    body = body_of(admit({"to": numbers(60) + [OPTED_OUT], "body": "Class cancelled"}))
    started = time.monotonic()
    drain(azurite, seconds=60)
    to = creates_to(broadcasting)
    assert sorted(to) == sorted(numbers(60) + [OPTED_OUT]) and len(set(to)) == len(to)
    assert time.monotonic() - started >= 60 / 50 * 0.9  # paced to 50 segments a second
    for message in broadcasting.messages:
        if message["to"] != OPTED_OUT:
            status_callback.main(signed_form(CALLBACK_URL, {"MessageSid": message["sid"], "MessageStatus": "delivered"}))
    shown = body_of(show(body["id"]))
    assert shown["status"] == "done" and shown["counts"]["delivered"] == 60 and shown["counts"]["skipped"] == 1
    assert sum(shown["counts"].values()) == 61 and "finished_at" in shown
    skipped = body_of(show(body["id"], query="?state=skipped"))["items"]
    assert skipped == [{"index": 60, "to": OPTED_OUT, "reason": "opted_out"}]
    # 21610 recorded the opt-out: the next broadcast skips the number without asking Twilio
    body = body_of(admit({"to": [OPTED_OUT], "body": "again"}))
    drain(azurite, seconds=5)
    assert creates_to(broadcasting).count(OPTED_OUT) == 1
    assert body_of(show(body["id"]))["counts"]["skipped"] == 1


def test_broadcasts_worker_redelivered_chunk_sends_nobody_twice(broadcasting, azurite):
    admit({"to": numbers(20), "body": "x"})
    client = queue(azurite)
    [message] = client.receive_messages(max_messages=1)
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(2) as instances:  # the same message delivered to two instances at once
        list(instances.map(lambda attempt: broadcast_worker.main(
            QueueMessage(id=message.id, body=message.content, dequeue_count=attempt)), (1, 2)))
    assert sorted(creates_to(broadcasting)) == numbers(20)


@pytest.mark.slow
def test_broadcasts_worker_chunk_failing_every_try_ends_its_recipients_poisoned(broadcasting, azurite, monkeypatch):
    body = body_of(admit({"to": numbers(4), "body": "x"}))
    monkeypatch.setenv("TWILIO_API_BASE_URL", "http://127.0.0.1:9")  # Twilio unreachable: never asked, retried
    tries: list[int] = []
    drain(azurite, seconds=10, fail=tries)
    assert tries == [1, 2, 3, 4, 5]
    shown = body_of(show(body["id"]))
    assert shown["counts"]["failed"] == 4 and shown["status"] == "done"
    assert {item["reason"] for item in body_of(show(body["id"], query="?state=failed"))["items"]} == {"poisoned"}


def test_broadcasts_cancel_pending_recipients_are_never_sent(broadcasting, azurite, monkeypatch):
    monkeypatch.setenv("BROADCAST_SEGMENTS_PER_SECOND", "1")
    body = body_of(admit({"to": numbers(300), "body": "x"}))
    canceled = show(body["id"], method="DELETE")
    assert canceled.status_code == 200
    shown = body_of(canceled)
    assert shown["status"] == "canceled" and shown["counts"]["canceled"] == 300
    drain(azurite, seconds=3)
    assert creates_to(broadcasting) == []


def test_broadcasts_status_of_anothers_broadcast_is_404(broadcasting, monkeypatch):
    monkeypatch.setenv("BROADCAST_SENDERS", "alice,bob")
    body = body_of(admit({"to": numbers(1), "body": "x"}))
    assert show(body["id"], user="bob").status_code == 404
    assert show("BR" + "0" * 32).status_code == 404


def test_sms_webhook_stop_and_start_record_and_forget_the_opt_out(broadcasting, azurite):
    from shared.optouts import opted_out
    from shared.settings import load_settings

    url = "https://app.example.com/api/sms_webhook"
    sms_webhook.main(signed_form(url, {"From": "+14155551000", "Body": "stop "}))
    assert opted_out(load_settings(), "+14155551000")
    sms_webhook.main(signed_form(url, {"From": "+14155551000", "Body": "START"}))
    assert not opted_out(load_settings(), "+14155551000")
