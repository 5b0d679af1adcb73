"""Idempotency-Key on send_sms and make_call against real Azurite: the replay matrix, concurrency, crashes."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import textwrap
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

import pytest

import make_call
import send_sms
from devtools.azurite import Azurite
from tests.servers import node
from shared.calls import CallRequest
from shared.messaging import SmsRequest
from tests.support import ROOT, TableFaults, body_of, creates, entities, json_request

SMS_URL = "http://localhost:7071/api/send_sms"
CALL_URL = "http://localhost:7071/api/make_call"
TO = "+14155550123"
REQUESTS = {"sms": {"to": TO, "body": "hello"}, "call": {"to": TO, "message": "hi"}}  # what sms() and call() send




def sms(key: str | None = "k1", body: object = None, user: str = "alice", main=send_sms.main, url: str = SMS_URL):
    headers = {"x-ms-client-principal-id": user, **({"idempotency-key": key} if key is not None else {})}
    payload = body if body is not None else {"to": TO, "body": "hello"}
    return main(json_request(url, payload, headers=headers))


def call(key: str | None = "c1", body: object = None):
    return sms(key, body if body is not None else {"to": TO, "message": "hi"}, main=make_call.main, url=CALL_URL)


def test_idempotency_same_key_same_request_replays_201_without_second_create(stateful):
    first, second = sms(), sms()
    assert (first.status_code, second.status_code) == (201, 201)
    assert body_of(second) == body_of(first)
    assert second.headers["Idempotent-Replayed"] == "true" and "Idempotent-Replayed" not in first.headers
    assert creates(stateful, "Messages") == 1


def test_idempotency_make_call_replays_too(stateful):
    assert body_of(call()) == body_of(call())
    assert creates(stateful, "Calls") == 1


def test_idempotency_retry_differing_only_in_key_order_and_number_format_replays(stateful, monkeypatch):
    monkeypatch.setenv("DEFAULT_REGION", "US")
    first = sms(body=json.loads('{"to": "+14155550123", "body": "hello"}'))
    second = sms(body=json.loads('{"body": "hello", "to": "(415) 555-0123"}'))
    assert second.headers["Idempotent-Replayed"] == "true"
    assert body_of(second) == body_of(first)


def test_idempotency_same_key_other_request_returns_422_key_reused(stateful):
    assert sms().status_code == 201
    response = sms(body={"to": TO, "body": "something else"})
    assert (response.status_code, body_of(response)["error"]["code"]) == (422, "idempotency_key_reused")
    assert creates(stateful, "Messages") == 1


def test_idempotency_keys_are_scoped_per_identity(stateful):
    assert sms(user="alice").status_code == 201
    assert sms(user="bob", body={"to": TO, "body": "bob's"}).status_code == 201
    assert creates(stateful, "Messages") == 2


@pytest.mark.parametrize("key", ["", "x" * 256, "clé", "tab\there", "new\nline"])
def test_idempotency_invalid_key_returns_400_and_sends_nothing(stateful, key):
    response = sms(key)
    assert (response.status_code, body_of(response)["error"]["code"]) == (400, "invalid_idempotency_key")
    assert stateful.requests == []


def test_idempotency_key_of_255_printable_characters_is_accepted(stateful):
    assert sms("~" + "a" * 253 + " ").status_code == 201


def test_idempotency_504_is_replayed_not_resent(stateful, monkeypatch):
    monkeypatch.setenv("TWILIO_HTTP_TIMEOUT_SECONDS", "1")
    stateful.inject_fault("hang")
    first = sms()
    stateful.release_hangs()
    second = sms()
    assert (first.status_code, second.status_code) == (504, 504)
    assert second.headers["Idempotent-Replayed"] == "true"
    assert body_of(second) == body_of(first)
    assert creates(stateful, "Messages") == 1


@pytest.mark.parametrize(("fault", "status", "code"), [
    ({"kind": "status", "status": 400, "body": {"code": 21211, "message": "Invalid To", "status": 400}}, 422,
     "twilio_rejected"),
    ({"kind": "status", "status": 500}, 502, "twilio_unavailable"),
    ({"kind": "reset"}, 502, "twilio_connection_lost"),
    ({"kind": "odd", "preset": "no_sid"}, 502, "twilio_bad_response"),
])
def test_idempotency_outcome_of_a_request_that_reached_twilio_is_replayed(stateful, fault, status, code):
    stateful.inject_fault(fault.pop("kind"), **fault)
    first, second = sms(), sms()
    assert (first.status_code, body_of(first)["error"]["code"]) == (status, code)
    assert second.status_code == status and second.headers["Idempotent-Replayed"] == "true"
    assert creates(stateful, "Messages") == 1


def test_idempotency_validation_error_is_not_stored_so_a_corrected_retry_sends(stateful):
    assert sms(body={"to": "+1415", "body": "hello"}).status_code == 400
    assert sms().status_code == 201


def test_idempotency_quota_429_is_not_stored(stateful, monkeypatch):
    monkeypatch.setenv("QUOTA_SMS_PER_USER_PER_DAY", "1")
    assert sms("a").status_code == 201
    assert sms("b", body={"to": TO, "body": "second"}).status_code == 429
    monkeypatch.setenv("QUOTA_SMS_PER_USER_PER_DAY", "2")
    assert sms("b", body={"to": TO, "body": "second"}).status_code == 201


def test_idempotency_503_is_not_stored(stateful, monkeypatch):
    monkeypatch.delenv("TWILIO_PHONE_NUMBER")
    assert sms().status_code == 503
    monkeypatch.setenv("TWILIO_PHONE_NUMBER", "+15005550006")
    assert sms().status_code == 201


def test_idempotency_replay_takes_no_quota(stateful, monkeypatch):
    monkeypatch.setenv("QUOTA_SMS_PER_USER_PER_DAY", "1")
    assert [sms().status_code for _ in range(3)] == [201, 201, 201]
    assert creates(stateful, "Messages") == 1


def test_idempotency_request_while_first_in_flight_returns_409_retry_after(stateful, monkeypatch):
    monkeypatch.setenv("TWILIO_HTTP_TIMEOUT_SECONDS", "10")  # room for the slow answer below, even on a busy machine
    stateful.inject_fault("trickle", chunk_bytes=64, interval=0.1)  # the first answer takes about 2 s to arrive
    first: dict = {}
    worker = threading.Thread(target=lambda: first.update(response=sms()))
    worker.start()
    assert stateful.wait_for(lambda: stateful.requests, timeout=5)  # the first request has reached Twilio
    second = sms()
    worker.join(10)
    assert (second.status_code, body_of(second)["error"]["code"]) == (409, "idempotency_in_progress")
    assert second.headers["Retry-After"] == "1"
    assert first["response"].status_code == 201
    assert creates(stateful, "Messages") == 1


def test_idempotency_concurrent_same_key_makes_exactly_one_create(stateful):
    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = sorted(pool.map(lambda _: sms().status_code, range(8)))
    assert creates(stateful, "Messages") == 1
    assert statuses.count(201) >= 1 and set(statuses) <= {201, 409}


WORKER = textwrap.dedent("""
    import json
    from concurrent.futures import ThreadPoolExecutor
    import azure.functions as func
    import send_sms

    def send(_):
        request = func.HttpRequest("POST", "http://localhost:7071/api/send_sms", body=json.dumps(
            {"to": "+14155550123", "body": "twice"}).encode(), headers={"content-type": "application/json",
            "x-ms-client-principal-id": "alice", "idempotency-key": "shared"})
        return send_sms.main(request).status_code

    with ThreadPoolExecutor(max_workers=4) as pool:
        print(json.dumps(list(pool.map(send, range(4)))))
""")


def test_idempotency_two_processes_same_key_make_exactly_one_create(stateful):
    workers = [subprocess.Popen([sys.executable, "-c", WORKER], cwd=ROOT, stdout=subprocess.PIPE, text=True)
               for _ in range(2)]
    statuses = [s for worker in workers for s in json.loads(worker.communicate(timeout=120)[0])]
    assert creates(stateful, "Messages") == 1
    assert 201 in statuses and set(statuses) <= {201, 409}


def record_key(identity: str, key: str) -> str:
    return hashlib.sha256(f"{identity}\0{key}".encode()).hexdigest()


def put_record(azurite, key: str, **fields) -> None:
    """A TwilioIdempotency row as a worker leaves it (e.g. one that died mid-request)."""
    from azure.data.tables import TableServiceClient

    with TableServiceClient.from_connection_string(azurite.connection_string) as service:
        service.create_table_if_not_exists("TwilioIdempotency").upsert_entity(
            {"PartitionKey": record_key("alice", key), "RowKey": "", **fields})


def test_idempotency_in_flight_record_of_a_dead_worker_returns_502_outcome_unknown(stateful, azurite):
    assert sms("other").status_code == 201  # the app has created its table
    now = datetime.now(timezone.utc)
    from shared.channels import SMS
    from shared.idempotency import fingerprint
    from shared.messaging import SmsRequest
    from shared.settings import load_settings

    same = fingerprint(SMS, SmsRequest.parse({"to": TO, "body": "hello"}, load_settings()))
    put_record(azurite, "k1", fingerprint=same, state="in_flight", started_at=now - timedelta(minutes=5),
               expires_at=now + timedelta(hours=1))
    response = sms()
    error = body_of(response)["error"]
    assert (response.status_code, error["code"]) == (502, "outcome_unknown")
    assert "Check before sending again" in error["message"]
    assert creates(stateful, "Messages") == 1


def test_idempotency_expired_key_may_be_reused_for_another_request(stateful, azurite):
    assert sms("other").status_code == 201
    past = datetime.now(timezone.utc) - timedelta(hours=1)
    put_record(azurite, "k1", fingerprint="0" * 64, state="done", status=201, body="{}", headers="{}",
               started_at=past - timedelta(hours=24), expires_at=past)
    first = sms()  # an expired record, even of another request: the key starts afresh
    assert first.status_code == 201 and "Idempotent-Replayed" not in first.headers
    assert sms().headers["Idempotent-Replayed"] == "true"
    assert creates(stateful, "Messages") == 2


@pytest.mark.parametrize("value", ["0", "721", "a day"])
def test_idempotency_ttl_setting_invalid_returns_503_naming_it(stateful, monkeypatch, value):
    monkeypatch.setenv("IDEMPOTENCY_TTL_HOURS", value)
    assert "IDEMPOTENCY_TTL_HOURS" in body_of(sms())["error"]["message"]


def test_idempotency_storage_down_with_key_is_503_and_without_key_sends(stateful, monkeypatch):
    own = Azurite(node()).start()
    monkeypatch.setenv("AzureWebJobsStorage", own.connection_string)
    assert sms("before").status_code == 201
    own.stop()
    response = sms("after")
    assert (response.status_code, body_of(response)["error"]["code"]) == (503, "state_unavailable")
    assert creates(stateful, "Messages") == 1
    assert sms(None).status_code == 201  # no key: no promise that needs state


def test_idempotency_claimed_key_whose_release_failed_is_resumed_by_a_retry_that_sends_once(stateful, monkeypatch):
    monkeypatch.setenv("QUOTA_SMS_PER_USER_PER_DAY", "5")
    faults = TableFaults(monkeypatch).arm(2, 3)  # the claim is written; the quota's insert fails, then the release
    first = sms()
    assert (first.status_code, body_of(first)["error"]["code"]) == (503, "state_unavailable")
    assert faults.operations[:3] == ["create_entity", "create_entity", "delete_entity"]
    faults.arm()
    second = sms()  # "nothing was sent, try again": the record says not_sent, so the retry sends
    assert second.status_code == 201 and "Idempotent-Replayed" not in second.headers
    assert sms().headers["Idempotent-Replayed"] == "true"
    assert creates(stateful, "Messages") == 1


def test_idempotency_worker_whose_not_sent_key_a_retry_resumed_sends_nothing(stateful, monkeypatch, azurite):
    import shared.quota

    monkeypatch.setenv("QUOTA_SMS_PER_USER_PER_DAY", "5")
    take, paused, resume = shared.quota._take, threading.Event(), threading.Event()

    def first_one_held(settings, slot):
        if not paused.is_set():  # the first request, between its claim and Twilio
            paused.set()
            resume.wait(10)
        return take(settings, slot)

    monkeypatch.setattr(shared.quota, "_take", first_one_held)
    first: dict = {}
    worker = threading.Thread(target=lambda: first.update(response=sms()))
    worker.start()
    assert paused.wait(10)
    second = sms()  # finds the key not_sent, resumes it and sends
    resume.set()
    worker.join(10)
    assert second.status_code == 201
    assert (first["response"].status_code, body_of(first["response"])["error"]["code"]) == (
        409, "idempotency_in_progress")  # its create_attempted found the key taken: it sent nothing
    assert creates(stateful, "Messages") == 1
    [counter] = entities(azurite.connection_string, "TwilioQuotas")
    assert counter["count"] == 1  # the first one's slot went back


def listings(sandbox, resource: str) -> list[dict]:
    """The list requests (GET .../Messages.json or .../Calls.json) that reached the sandbox."""
    return [r for r in sandbox.requests if r["method"] == "GET" and r["path"].endswith(f"/{resource}.json")]


def age(azurite, key: str, minutes: int = 5) -> None:
    """The key's record as it stands, begun `minutes` ago: its worker is long gone."""
    put_record(azurite, key, started_at=datetime.now(timezone.utc) - timedelta(minutes=minutes))


def attempt(azurite, key: str, kind: str, **fields) -> None:
    """An in-flight record whose worker died after asking Twilio, 5 minutes ago, for this kind of send to TO."""
    from shared.channels import CHANNELS
    from shared.idempotency import fingerprint
    from shared.settings import load_settings

    request = {"sms": SmsRequest, "call": CallRequest}[kind].parse(REQUESTS[kind], load_settings())
    now = datetime.now(timezone.utc)
    put_record(azurite, key, fingerprint=fingerprint(CHANNELS[kind], request), state="in_flight",
               phase="create_attempted", kind=kind, to_number=TO, from_number="+15005550006",
               started_at=now - timedelta(minutes=5), expires_at=now + timedelta(hours=1), **fields)


def test_idempotency_worker_died_after_twilio_created_the_sms_retry_gets_it_reconciled(stateful, azurite, monkeypatch):
    faults = TableFaults(monkeypatch).arm(4)  # claim, create_attempted, the send's record; its outcome is lost
    first = sms()
    assert faults.operations[3] == "update_entity"
    assert stateful.wait_for(lambda: stateful.messages[0]["date_sent"], timeout=5)
    assert sms().status_code == 409  # within its time budget the first may still be at work
    age(azurite, "k1")
    retry = sms()
    assert (retry.status_code, retry.headers["Idempotent-Replayed"]) == (201, "true")
    reconciled = body_of(retry)  # the same send, with its status as Twilio now shows it
    assert reconciled == {**body_of(first), "status": reconciled["status"], "reconciled": True}
    assert sms().get_body() == retry.get_body()  # stored: answered from the record from now on
    assert creates(stateful, "Messages") == 1
    [listing] = listings(stateful, "Messages")
    assert listing["query"]["To"] == [TO] and "DateSent>" in listing["query"]


def test_idempotency_worker_died_before_twilio_created_anything_is_outcome_unknown_and_never_resent(stateful, azurite):
    from shared.reconcile import digest

    attempt(azurite, "k1", "sms", body_sha256=digest("hello"))
    response = sms()
    assert (response.status_code, body_of(response)["error"]["code"]) == (502, "outcome_unknown")
    assert len(listings(stateful, "Messages")) == 1  # Twilio was asked what exists, and shows nothing
    assert creates(stateful, "Messages") == 0


def test_idempotency_unfinished_sms_with_another_body_to_the_number_is_not_taken_for_it(stateful, azurite):
    from shared.reconcile import digest

    assert sms(None, body={"to": TO, "body": "another text"}).status_code == 201
    assert stateful.wait_for(lambda: stateful.messages[0]["date_sent"], timeout=5)
    attempt(azurite, "k1", "sms", body_sha256=digest("hello"))
    assert body_of(sms())["error"]["code"] == "outcome_unknown"
    assert len(listings(stateful, "Messages")) == 1


@pytest.mark.parametrize(("calls", "status"), [(1, 201), (2, 502)])
def test_idempotency_unfinished_call_is_reconciled_only_when_exactly_one_call_matches(stateful, azurite, calls, status):
    for _ in range(calls):
        assert call(None).status_code == 201
    assert stateful.wait_for(lambda: all(c["start_time"] for c in stateful.calls), timeout=5)
    attempt(azurite, "c1", "call")
    response = call()
    assert response.status_code == status
    if status == 201:
        body = body_of(response)
        assert (body["sid"], body["to"], body["reconciled"]) == (stateful.calls[0]["sid"], TO, True)
        assert response.headers["Idempotent-Replayed"] == "true"
    else:
        assert body_of(response)["error"]["code"] == "outcome_unknown"
    assert len(listings(stateful, "Calls")) == 1
    assert creates(stateful, "Calls") == calls
