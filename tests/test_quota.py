"""Quotas against real Azurite: per user, app-wide and per destination; exact under threads and processes."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone

import pytest

from azure.data.tables import TableClient, UpdateMode

import make_call
import send_sms
from devtools.azurite import Azurite
from shared import state
from tests.servers import node
from tests.support import ROOT, TableFaults, body_of, creates, entities, json_request

SMS_URL = "http://localhost:7071/api/send_sms"
CALL_URL = "http://localhost:7071/api/make_call"
TO = "+14155550123"
OTHER = "+14155550124"




def sms(user: str = "alice", to: str = TO, body: str = "hi"):
    return send_sms.main(json_request(SMS_URL, {"to": to, "body": body}, headers={"x-ms-client-principal-id": user}))


def call(user: str = "alice", to: str = TO):
    return make_call.main(json_request(CALL_URL, {"to": to}, headers={"x-ms-client-principal-id": user}))


def assert_quota_exceeded(response, quota: str, max_retry_after: int) -> None:
    error = body_of(response)["error"]
    assert (response.status_code, error["code"], error["quota"]) == (429, "quota_exceeded", quota)
    assert 1 <= int(response.headers["Retry-After"]) <= max_retry_after


def seconds_to_midnight() -> int:
    now = datetime.now(timezone.utc)
    return 86400 - (now.hour * 3600 + now.minute * 60 + now.second) + 1


def test_quota_per_user_sms_over_limit_returns_429_and_other_users_still_send(stateful, monkeypatch):
    monkeypatch.setenv("QUOTA_SMS_PER_USER_PER_DAY", "2")
    assert [sms().status_code for _ in range(2)] == [201, 201]
    assert_quota_exceeded(sms(), "QUOTA_SMS_PER_USER_PER_DAY", seconds_to_midnight())
    assert sms("bob").status_code == 201
    assert creates(stateful, "Messages") == 3


def test_quota_per_user_calls_counts_calls_not_sms(stateful, monkeypatch):
    monkeypatch.setenv("QUOTA_CALLS_PER_USER_PER_DAY", "1")
    assert call().status_code == 201
    assert_quota_exceeded(call(), "QUOTA_CALLS_PER_USER_PER_DAY", seconds_to_midnight())
    assert sms().status_code == 201
    assert creates(stateful, "Calls") == 1


def test_quota_per_user_lookalike_identities_have_a_bucket_each(stateful, monkeypatch):
    monkeypatch.setenv("QUOTA_SMS_PER_USER_PER_DAY", "1")
    users = ["bob.smith", "bob-smith", "bob_smith", "josé", "josè"]
    assert [sms(user).status_code for user in users] == [201] * len(users)
    assert [sms(user).status_code for user in users] == [429] * len(users)


def test_quota_app_wide_sms_is_shared_by_every_user(stateful, monkeypatch):
    monkeypatch.setenv("QUOTA_SMS_PER_DAY", "2")
    assert (sms("alice").status_code, sms("bob").status_code) == (201, 201)
    assert_quota_exceeded(sms("carol"), "QUOTA_SMS_PER_DAY", seconds_to_midnight())


def test_quota_per_destination_counts_sms_and_calls_together_per_hour(stateful, monkeypatch):
    monkeypatch.setenv("QUOTA_PER_DESTINATION_PER_HOUR", "2")
    assert (sms("alice").status_code, call("bob").status_code) == (201, 201)
    assert_quota_exceeded(sms("carol"), "QUOTA_PER_DESTINATION_PER_HOUR", 3600)
    assert sms("carol", to=OTHER).status_code == 201


def test_quota_per_destination_charges_from_this_process_cost_one_table_operation(stateful, azurite, monkeypatch):
    monkeypatch.setenv("QUOTA_PER_DESTINATION_PER_HOUR", "3")
    calls = TableFaults(monkeypatch, "TwilioQuotas").arm().operations
    assert sms(to=OTHER).status_code == 201
    assert calls == ["create_entity"]  # never seen by this process: inserted without a read
    calls.clear()
    assert sms(to=OTHER).status_code == 201
    assert calls == ["update_entity"]  # written as this process last saw it
    [row] = [e for e in entities(azurite.connection_string, "TwilioQuotas")]
    with TableClient.from_connection_string(azurite.connection_string, "TwilioQuotas") as client:
        client.update_entity({**row, "count": 2}, mode=UpdateMode.REPLACE)  # another instance's send meanwhile
    calls.clear()
    assert [sms(to=OTHER).status_code, sms(to=OTHER).status_code] == [201, 429]
    assert calls == ["update_entity", "get_entity", "update_entity", "get_entity"]  # refused as seen, read, written
    assert creates(stateful, "Messages") == 3

def test_quota_over_one_limit_gives_back_the_slots_already_taken(stateful, monkeypatch, azurite):
    monkeypatch.setenv("QUOTA_SMS_PER_USER_PER_DAY", "5")
    monkeypatch.setenv("QUOTA_SMS_PER_DAY", "1")
    assert sms("alice").status_code == 201
    assert sms("bob").status_code == 429
    counts = {e["PartitionKey"]: e["count"] for e in entities(azurite.connection_string, "TwilioQuotas") if e["count"]}
    assert counts == {"QUOTA_SMS_PER_USER_PER_DAY": 1, "QUOTA_SMS_PER_DAY": 1}  # bob's user slot went back


@pytest.mark.parametrize(("quota", "failing"), [("QUOTA_SMS_PER_DAY", 1), ("QUOTA_SMS_PER_DAY", 2),
                                              ("QUOTA_PER_DESTINATION_PER_HOUR", 1)],
                         ids=["2nd quota read", "2nd quota write", "3rd quota insert"])
def test_quota_storage_error_on_a_later_quota_gives_back_every_slot(stateful, monkeypatch, quota, failing):
    for name in ("QUOTA_SMS_PER_USER_PER_DAY", "QUOTA_SMS_PER_DAY", "QUOTA_PER_DESTINATION_PER_HOUR"):
        monkeypatch.setenv(name, "3")
    faults = TableFaults(monkeypatch)
    for _ in range(3):  # three "nothing was sent" answers
        state._views.clear()  # each as a new instance: it reads a counter before it writes it
        faults.arm(failing, partition=quota)
        response = sms()
        assert (response.status_code, body_of(response)["error"]["code"]) == (503, "state_unavailable")
        assert len(faults.operations) == failing  # the fault was met, and ended the request
    faults.arm()
    assert [sms().status_code for _ in range(4)] == [201, 201, 201, 429]  # the limit of 3 is intact
    assert creates(stateful, "Messages") == 3


def test_quota_twilio_422_gives_the_slot_back(stateful, monkeypatch):
    monkeypatch.setenv("QUOTA_SMS_PER_USER_PER_DAY", "1")
    stateful.inject_fault("status", status=400, body={"code": 21211, "message": "Invalid 'To'", "status": 400})
    assert sms().status_code == 422
    assert sms().status_code == 201


@pytest.mark.parametrize(("fault", "answer"), [({"status": 401}, (502, "twilio_auth_failed")),
                                               ({"status": 429, "times": 3}, (429, "rate_limited"))])
def test_quota_twilio_refusing_before_acting_gives_the_slot_back(stateful, monkeypatch, fault, answer):
    monkeypatch.setenv("QUOTA_SMS_PER_USER_PER_DAY", "1")
    stateful.inject_fault("status", **fault)
    response = sms()
    assert (response.status_code, body_of(response)["error"]["code"]) == answer
    assert sms().status_code == 201


@pytest.mark.parametrize("fault", [{"kind": "status", "status": 500}, {"kind": "reset"}])
def test_quota_twilio_5xx_or_lost_connection_keeps_the_slot(stateful, monkeypatch, fault):
    monkeypatch.setenv("QUOTA_SMS_PER_USER_PER_DAY", "1")
    stateful.inject_fault(fault.pop("kind"), **fault)
    assert sms().status_code == 502  # the SMS may exist, so it counts
    assert sms().status_code == 429


def test_quota_invalid_request_takes_no_slot(stateful, monkeypatch):
    monkeypatch.setenv("QUOTA_SMS_PER_USER_PER_DAY", "1")
    assert sms(to="+1415").status_code == 400
    assert sms().status_code == 201


@pytest.mark.parametrize("value", ["ten", "-1", "1.5"])
def test_quota_invalid_setting_returns_503_naming_it(stateful, monkeypatch, value):
    monkeypatch.setenv("QUOTA_SMS_PER_DAY", value)
    response = sms()
    assert response.status_code == 503
    assert "QUOTA_SMS_PER_DAY" in body_of(response)["error"]["message"]


def test_quota_zero_means_unlimited_and_touches_no_storage(app_env, monkeypatch, refused_port):
    monkeypatch.setenv("QUOTA_SMS_PER_DAY", "0")
    monkeypatch.setenv("AzureWebJobsStorage", f"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey="
                       f"a2V5;TableEndpoint=http://127.0.0.1:{refused_port}/devstoreaccount1;")  # nothing listens
    assert sms().status_code == 201


def test_quota_storage_down_returns_503_state_unavailable_and_sends_nothing(app_env, monkeypatch):
    own = Azurite(node()).start()  # its own instance: the session's Azurite keeps running
    monkeypatch.setenv("AzureWebJobsStorage", own.connection_string)
    monkeypatch.setenv("QUOTA_SMS_PER_DAY", "5")
    try:
        assert sms().status_code == 201
    finally:
        own.stop()
    response = sms()
    error = body_of(response)["error"]
    assert (response.status_code, error["code"]) == (503, "state_unavailable")
    assert "AccountKey" not in error["message"]
    assert creates(app_env, "Messages") == 1


def test_quota_64_concurrent_sends_exactly_the_limit_succeed(stateful, monkeypatch):
    monkeypatch.setenv("QUOTA_SMS_PER_USER_PER_DAY", "10")
    with ThreadPoolExecutor(max_workers=64) as pool:
        statuses = sorted(pool.map(lambda i: sms(body=f"n{i}").status_code, range(64)))
    assert statuses == [201] * 10 + [429] * 54
    assert creates(stateful, "Messages") == 10


WORKER = textwrap.dedent("""
    import json, sys
    from concurrent.futures import ThreadPoolExecutor
    import azure.functions as func
    import send_sms

    def send(i):
        request = func.HttpRequest("POST", "http://localhost:7071/api/send_sms", body=json.dumps(
            {"to": "+14155550123", "body": f"p{i}"}).encode(), headers={
            "content-type": "application/json", "x-ms-client-principal-id": "alice"})
        return send_sms.main(request).status_code

    with ThreadPoolExecutor(max_workers=16) as pool:
        print(json.dumps(list(pool.map(send, range(32)))))
""")


def test_quota_two_processes_sharing_azurite_exactly_the_limit_succeed(stateful, monkeypatch):
    monkeypatch.setenv("QUOTA_SMS_PER_USER_PER_DAY", "10")
    workers = [subprocess.Popen([sys.executable, "-c", WORKER], cwd=ROOT, stdout=subprocess.PIPE, text=True)
               for _ in range(2)]  # the environment (settings) is inherited: two instances of one app
    statuses = sorted(s for worker in workers for s in json.loads(worker.communicate(timeout=120)[0]))
    assert statuses == [201] * 10 + [429] * 54
    assert creates(stateful, "Messages") == 10


def test_quota_per_user_counts_the_bearer_tokens_subject(app_env, azurite, monkeypatch):
    monkeypatch.setenv("AUTH_ISSUER", app_env.idp.issuer)
    monkeypatch.setenv("AUTH_AUDIENCE", app_env.idp.audience)
    monkeypatch.setenv("QUOTA_SMS_PER_USER_PER_DAY", "1")

    def as_user(sub: str):
        return send_sms.main(json_request(SMS_URL, {"to": TO, "body": "hi"},
                                          headers={"authorization": "Bearer " + app_env.idp.token(sub)}))

    assert [as_user("alice").status_code, as_user("alice").status_code, as_user("bob").status_code] == [201, 429, 201]
