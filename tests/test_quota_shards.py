"""Sharded quota counters against real Azurite: exact limits from concurrent processes, refused only when full."""

from __future__ import annotations

import contextlib
import hashlib
import json
import subprocess
import sys
import textwrap
from datetime import datetime, timedelta, timezone

import pytest

import send_sms
from shared.quota import SHARDS
from tests.support import ROOT, TableFaults, creates, entities, json_request

SMS_URL = "http://localhost:7071/api/send_sms"
TO = "+14155550123"

# One of two instances of the app: imports, says it is ready, waits for "go", then sends 32 SMS at once.
WORKER = textwrap.dedent("""
    import json, sys
    from concurrent.futures import ThreadPoolExecutor
    import azure.functions as func
    import send_sms

    def send(i):
        request = func.HttpRequest("POST", "http://localhost:7071/api/send_sms", body=json.dumps(
            {"to": "+14155550123", "body": f"p{i}"}).encode(), headers={
            "content-type": "application/json", "x-ms-client-principal-id": f"user{i}"})
        return send_sms.main(request).status_code

    print("ready", flush=True)
    sys.stdin.readline()
    with ThreadPoolExecutor(max_workers=32) as pool:
        print(json.dumps(list(pool.map(send, range(32)))), flush=True)
""")


def sms(user: str = "alice"):
    return send_sms.main(json_request(SMS_URL, {"to": TO, "body": "hi"}, headers={"x-ms-client-principal-id": user}))


def counter_rows(connection_string: str, quota: str) -> list[dict]:
    return [e for e in entities(connection_string, "TwilioQuotas") if e["PartitionKey"] == quota]


def app_counter_key() -> str:
    """The app-wide daily counter's RowKey as the README gives it: the UTC day and the SHA-256 of the subject."""
    return f"{datetime.now(timezone.utc):%Y-%m-%d}-{hashlib.sha256(b'app').hexdigest()}"


def put_rows(connection_string: str, quota: str, counts: dict[str, int]) -> None:
    from azure.core.exceptions import ResourceExistsError
    from azure.data.tables import TableClient, UpdateMode

    midnight = datetime.now(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
    with TableClient.from_connection_string(connection_string, "TwilioQuotas") as client:
        with contextlib.suppress(ResourceExistsError):  # the first test of a process: the app has not made it yet
            client.create_table()
        for key, count in counts.items():
            client.upsert_entity({"PartitionKey": quota, "RowKey": key, "count": count, "expires_at": midnight},
                                 mode=UpdateMode.REPLACE)


@pytest.mark.slow
@pytest.mark.parametrize(("quota", "limit", "signed_in"), [
    ("QUOTA_SMS_PER_DAY", 40, True),
    ("QUOTA_SMS_PER_DAY", 37, True),  # not a multiple of the shards: shares of 2 and 1
    ("QUOTA_SMS_PER_USER_PER_DAY", 37, False),  # sign-in off: every caller is `anonymous`, one bucket
])
def test_quota_shared_counter_64_sends_from_two_processes_exactly_the_limit_succeed(
        stateful, azurite, monkeypatch, quota, limit, signed_in):
    monkeypatch.setenv(quota, str(limit))
    if not signed_in:
        monkeypatch.delenv("AUTH_EASY_AUTH")
    workers = [subprocess.Popen([sys.executable, "-c", WORKER], cwd=ROOT, stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, text=True) for _ in range(2)]  # two instances of one app
    for worker in workers:
        assert worker.stdout.readline() == "ready\n"
    for worker in workers:  # both at once, each with 32 threads
        worker.stdin.write("go\n")
        worker.stdin.flush()
    statuses = sorted(s for worker in workers for s in json.loads(worker.communicate(timeout=120)[0]))
    assert statuses == [201] * limit + [429] * (64 - limit)
    assert creates(stateful, "Messages") == limit
    rows = counter_rows(azurite.connection_string, quota)
    assert sum(row["count"] for row in rows) == limit
    assert len(rows) <= SHARDS and all(row["count"] <= -(-limit // SHARDS) for row in rows)  # each within its share
    midnight = datetime.now(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
    assert {row["expires_at"] for row in rows} == {midnight}  # state_cleanup deletes them after the window


@pytest.mark.parametrize("full", [1, SHARDS - 1])
def test_quota_app_wide_rows_full_others_empty_sends_until_every_row_is_full(stateful, azurite, monkeypatch, full):
    monkeypatch.setenv("QUOTA_SMS_PER_DAY", str(SHARDS))  # a share of 1 per row
    key = app_counter_key()
    put_rows(azurite.connection_string, "QUOTA_SMS_PER_DAY", {f"{key}-{n:02d}": 1 for n in range(full)})
    left = SHARDS - full
    assert [sms(f"u{n}").status_code for n in range(left + 1)] == [201] * left + [429]
    assert creates(stateful, "Messages") == left


def test_quota_app_wide_twilio_422_gives_the_slot_back(stateful, azurite, monkeypatch):
    monkeypatch.setenv("QUOTA_SMS_PER_DAY", "1")
    stateful.inject_fault("status", status=400, body={"code": 21211, "message": "Invalid 'To'", "status": 400})
    assert sms().status_code == 422
    assert [sms().status_code, sms().status_code] == [201, 429]
    assert sum(row["count"] for row in counter_rows(azurite.connection_string, "QUOTA_SMS_PER_DAY")) == 1


def test_quota_app_wide_count_of_the_unsharded_row_still_counts(stateful, azurite, monkeypatch):
    monkeypatch.setenv("QUOTA_SMS_PER_DAY", "20")
    put_rows(azurite.connection_string, "QUOTA_SMS_PER_DAY", {app_counter_key(): 18})  # today's sends before sharding
    assert [sms().status_code for _ in range(3)] == [201, 201, 429]


def test_quota_app_wide_slot_given_back_elsewhere_is_taken_although_this_process_saw_every_row_full(
        stateful, azurite, monkeypatch):
    monkeypatch.setenv("QUOTA_SMS_PER_DAY", str(SHARDS))  # a share of 1 per row
    assert [sms(f"u{n}").status_code for n in range(SHARDS + 1)] == [201] * SHARDS + [429]
    key = app_counter_key()
    put_rows(azurite.connection_string, "QUOTA_SMS_PER_DAY", {f"{key}-07": 0})  # another instance gave one back
    assert [sms().status_code, sms().status_code] == [201, 429]  # refused only by a fresh read of the rows


def test_quota_app_wide_charge_after_the_first_costs_one_table_operation(stateful, azurite, monkeypatch):
    monkeypatch.setenv("QUOTA_SMS_PER_DAY", "100")
    calls = TableFaults(monkeypatch, "TwilioQuotas").arm().operations
    assert sms().status_code == 201
    assert calls == ["query_entities", "create_entity"]  # a read, then the write
    calls.clear()
    assert [sms().status_code, sms().status_code] == [201, 201]
    assert calls == ["update_entity", "update_entity"]  # each a write into the row this process wrote last, as it was
