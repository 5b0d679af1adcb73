"""Retention against real Azurite: state_cleanup deletes expired rows of every app table, never a live one, and a
run cut short resumes; readers ignore expired rows (the status lookup answers 404)."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta, timezone

import pytest
from azure.data.tables import TableClient
from azure.functions.timer import TimerRequest

import state_cleanup
from shared import cleanup, state
from shared.settings import load_settings
from tests.support import entities
from tests.test_status import callback, lookup, sent_sms

NOW = datetime.now(timezone.utc)
PAST, FUTURE = NOW - timedelta(seconds=5), NOW + timedelta(days=1)


def put(connection_string: str, table: str, partition: str, expires_at: datetime, **fields: object) -> None:
    with TableClient.from_connection_string(connection_string, table) as client:
        client.upsert_entity({"PartitionKey": partition, "RowKey": "", "expires_at": expires_at, **fields})


def keys(connection_string: str, table: str) -> set[str]:
    return {row["PartitionKey"] for row in entities(connection_string, table)}


@pytest.fixture
def tables(stateful, azurite):
    """Every app table created in Azurite; returns the connection string."""
    settings = load_settings()
    for name in state.TABLES:
        state.table(settings, name)
    return azurite.connection_string


def test_cleanup_expired_rows_are_deleted_live_rows_remain_in_every_table(tables):
    for name in state.TABLES:
        for n in range(3):
            put(tables, name, f"old{n}", PAST)
            put(tables, name, f"live{n}", FUTURE)
    put(tables, state.SENDS, "no-expiry", FUTURE, note="kept")
    result = cleanup.sweep(load_settings())
    assert result.complete and result.deleted == {name: 3 for name in state.TABLES}
    for name in state.TABLES:
        assert {key for key in keys(tables, name) if key.startswith(("old", "live"))} == {"live0", "live1", "live2"}


def test_cleanup_run_cut_short_resumes_where_it_stopped(tables):
    first_table = state.TABLES[0]
    for n in range(25):
        put(tables, first_table, f"old{n:02}", PAST)
    ticks = itertools.count()
    clock = lambda: next(ticks) * 100.0  # noqa: E731 - each look at the clock: 100 s later
    first = cleanup.sweep(load_settings(), seconds=150, page_size=10, clock=clock)  # the budget allows one page
    assert not first.complete and sum(first.deleted.values()) == 10
    assert len(keys(tables, first_table)) == 15
    second = cleanup.sweep(load_settings(), page_size=10)
    assert second.complete and sum(second.deleted.values()) == 15
    assert keys(tables, first_table) == set()


def test_cleanup_row_changed_since_it_was_read_is_not_deleted(tables):
    put(tables, state.IDEMPOTENCY, "renewed", PAST)
    stale = entities(tables, state.IDEMPOTENCY)[0].metadata["etag"]
    put(tables, state.IDEMPOTENCY, "renewed", FUTURE)  # e.g. the key reused after expiry: a new ETag
    assert not state.delete_if_unchanged(load_settings(), state.IDEMPOTENCY, "renewed", "", stale)
    assert keys(tables, state.IDEMPOTENCY) == {"renewed"}


def test_cleanup_timer_function_runs_the_sweep(tables):
    put(tables, state.QUOTAS, "old", PAST)
    put(tables, state.QUOTAS, "live", FUTURE)
    state_cleanup.main(TimerRequest(past_due=False))
    assert keys(tables, state.QUOTAS) == {"live"}


def test_cleanup_without_storage_does_nothing():
    result = cleanup.sweep(load_settings())
    assert result.complete and result.deleted == {}


def expire(connection_string: str, sid: str) -> None:
    with TableClient.from_connection_string(connection_string, state.SENDS) as client:
        row = client.get_entity(sid, "")
        row["expires_at"] = PAST
        client.update_entity(row)


def test_lookup_expired_send_record_is_404_not_found(stateful, azurite):
    sid = sent_sms()
    assert lookup("message", sid).status_code == 200
    expire(azurite.connection_string, sid)
    response = lookup("message", sid)
    assert response.status_code == 404


def test_status_callback_expired_send_record_changes_nothing(stateful, azurite):
    sid = sent_sms()
    expire(azurite.connection_string, sid)
    assert callback(MessageSid=sid, MessageStatus="delivered").status_code == 200
    assert entities(azurite.connection_string, state.SENDS)[0]["status"] == "queued"
