"""Table Storage for the app's shared state: a client per process, ETag-conditional operations, 503 on failure."""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any, Callable, Iterator, NamedTuple

from shared.errors import AppError
from shared.settings import Settings, SettingsError

if TYPE_CHECKING:
    from azure.data.tables import TableClient

logger = logging.getLogger("shared.state")
# Logs every request and response of the Azure SDK at INFO, headers and all, in many lines: in Azure that is
# Application Insights cost. It stays at AZURE_SDK_LOG_LEVEL (WARNING unless set).
SDK_HTTP_LOGGER = logging.getLogger("azure.core.pipeline.policies.http_logging_policy")

TIMEOUT_SECONDS = 5.0
STORAGE_SETTINGS = ("AzureWebJobsStorage", "AzureWebJobsStorage__accountName", "AzureWebJobsStorage__tableServiceUri")
# The tables the app owns. Every row carries `expires_at`: readers ignore it after then, state_cleanup deletes it.
QUOTAS, IDEMPOTENCY, SENDS = "TwilioQuotas", "TwilioIdempotency", "TwilioSends"
BROADCASTS, OPT_OUTS = "TwilioBroadcasts", "TwilioOptOuts"
TABLES = (QUOTAS, IDEMPOTENCY, SENDS, BROADCASTS, OPT_OUTS)
MAX_BATCH = 100  # operations in one entity group transaction (all of one partition)
RACE_PAUSE_SECONDS = 0.01  # the most a lost race waits before reading again (jittered: racers spread out)

Row = dict[str, Any]
Change = Callable[["Row | None"], "Row | None"]  # the row as read (None: missing) -> the whole new row, or None
Choose = Callable[[dict[str, Row]], list[Row]]  # the rows as read, by RowKey -> new rows, any one of which will do

_lock = threading.Lock()
_service: tuple[tuple[Any, ...], Any] | None = None
_tables: dict[str, TableClient] = {}
# (table, partition, RowKey or prefix) -> the rows as this process last read and wrote them (remember=True, and
# update_one_of)
View = tuple[str, str, str]
_views: dict[View, dict[str, Row]] = {}
MAX_VIEWS = 256
_busy: set[tuple[View, str]] = set()  # the rows of views that a thread of this process is writing (update_one_of)
_view_lock = threading.Lock()


class Stored(NamedTuple):
    """The outcome of a conditional write: the row as it now stands, its ETag, and whether this write made it."""

    row: Row | None
    etag: str | None
    written: bool


def table(settings: Settings, name: str) -> TableClient:
    """A client for table `name`, created in the storage account on first use in this process."""
    global _service
    sdk_logging(settings)
    key = (settings.storage_connection_string, settings.storage_account_name, settings.storage_table_uri,
           settings.storage_credential, settings.storage_client_id)
    with _lock:
        if _service is None or _service[0] != key:
            _service = (key, _connect(settings))
            _tables.clear()
        client = _tables.get(name)
        if client is None:
            with state_errors():
                _service[1].create_table_if_not_exists(name)
            client = _tables[name] = _service[1].get_table_client(name)
        return client


def _connect(settings: Settings) -> Any:
    """A TableServiceClient: the connection string, else the account with the app's identity (credential).
    No automatic retries: a retried create or update could be counted twice; callers retry on an ETag."""
    if not settings.storage_configured:
        raise SettingsError(missing=(" or ".join(STORAGE_SETTINGS),))
    from azure.data.tables import TableServiceClient

    options = {"connection_timeout": TIMEOUT_SECONDS, "read_timeout": TIMEOUT_SECONDS, "retry_total": 0}
    if settings.storage_connection_string:
        return TableServiceClient.from_connection_string(settings.storage_connection_string, **options)
    endpoint = settings.storage_table_uri or f"https://{settings.storage_account_name}.table.core.windows.net"
    return TableServiceClient(endpoint=endpoint, credential=credential(settings), **options)


def sdk_logging(settings: Settings) -> None:
    """The Azure SDK's HTTP logging (a request and response in several lines each) at AZURE_SDK_LOG_LEVEL."""
    level = settings.azure_sdk_log_level.upper()
    if logging.getLevelName(SDK_HTTP_LOGGER.level) != level:  # set once: setLevel clears every logger's cache
        SDK_HTTP_LOGGER.setLevel(level)


def credential(settings: Settings) -> Any:
    """The identity the Functions host itself uses for AzureWebJobsStorage__*: with __credential=managedidentity a
    managed identity (the user-assigned one whose client ID __clientId names, else the system-assigned one),
    otherwise DefaultAzureCredential (environment, workload identity, managed identity, then developer sign-ins)."""
    # imported on this path only: about 250 ms of cold start
    from azure.identity import DefaultAzureCredential, ManagedIdentityCredential

    if settings.storage_credential == "managedidentity":
        return ManagedIdentityCredential(client_id=settings.storage_client_id)
    return DefaultAzureCredential()


@contextmanager
def state_errors() -> Iterator[None]:
    """A storage failure on a path whose promise needs state: 503 state_unavailable (no secrets in the message)."""
    from azure.core.exceptions import AzureError

    try:
        yield
    except AzureError as exc:
        logger.warning("Table Storage failed: %s", type(exc).__name__)
        raise AppError(503, "state_unavailable", "The app's state storage is unavailable; nothing was sent. "
                       "Try again later.") from None


def expired(row: Row, now: datetime) -> bool:
    """Whether the row's retention is over: readers treat it as absent."""
    return row["expires_at"] <= now


def get(settings: Settings, name: str, partition: str, row: str = "") -> Row | None:
    """The row, or None when there is none."""
    from azure.core.exceptions import ResourceNotFoundError

    try:
        return table(settings, name).get_entity(partition, row)
    except ResourceNotFoundError:
        return None


def insert_or_get(settings: Settings, name: str, row: Row, *, tries: int) -> Stored:
    """Insert the row; if one with its keys exists, that one instead (written=False). The insert goes first: it is
    the one operation on the common path, and the service decides who was first."""
    from azure.core.exceptions import ResourceExistsError

    client = table(settings, name)
    for attempt in range(tries):
        try:
            return Stored(row, client.create_entity(row)["etag"], True)
        except ResourceExistsError:
            existing = get(settings, name, row["PartitionKey"], row["RowKey"])
        if existing is not None:
            return Stored(existing, existing.metadata["etag"], False)
        _pause(attempt)  # deleted between the two: insert again
    raise _too_busy(name)


def update_if_unchanged(settings: Settings, name: str, partition: str, row: str, change: Change, *,
                        tries: int, remember: bool = False) -> Stored:
    """Read the row, compute change(row) and write the result only if nobody wrote the row meanwhile (its ETag; an
    insert when it was missing). A lost race waits a jittered moment and starts again, `tries` times at most, then
    503 state_unavailable. change returns the whole new row, or None to leave the row as it is (written=False),
    which is only ever answered from a fresh read.
    remember: the process keeps the row as it last read and wrote it, and tries one write from that first (an insert
    when it never saw the row): one operation while nobody else wrote the row, the refused write more when someone
    did. For rows this process mostly writes alone, such as a caller's or a number's counter."""
    client = table(settings, name)
    view = (name, partition, row)
    if remember:
        remembered = _views.get(view, {}).get(row)
        new = change(remembered)
        if new is not None:
            stored = _write_as_read(client, new, _etag(remembered))
            if stored is not None:
                _remember(view, {}, stored)
                return stored
    for attempt in range(tries):
        current = get(settings, name, partition, row)
        if remember:
            _remember(view, {row: current} if current is not None else {})
        new = change(current)
        if new is None:
            return Stored(current, current.metadata["etag"] if current is not None else None, False)
        stored = _write_as_read(client, new, _etag(current))
        if stored is not None:
            if remember:
                _remember(view, {}, stored)
            return stored
        _pause(attempt)
    raise _too_busy(name)


def insert_all(settings: Settings, name: str, rows: list[Row]) -> None:
    """Insert rows of one partition, MAX_BATCH to a transaction (each all or nothing): one request per MAX_BATCH."""
    client = table(settings, name)
    for start in range(0, len(rows), MAX_BATCH):
        client.submit_transaction([("create", row) for row in rows[start:start + MAX_BATCH]])


def update_one_of(settings: Settings, name: str, partition: str, prefix: str, choose: Choose, *,
                  select: list[str], tries: int) -> Stored:
    """Read the rows of one partition whose RowKey starts with `prefix` (one query), and write one of choose(rows)
    that nobody wrote meanwhile (its ETag; an insert where it was missing): any one of them will do. When every one
    is lost, a jittered wait and a fresh read, `tries` times at most, then 503 state_unavailable. The rows are read
    with only the `select` properties (less to parse); choose returns the whole new rows, or none to write nothing
    (written=False), which is only ever answered from a fresh read.

    The process remembers the rows as it last read and wrote them, and tries one write from that view first: while
    no other writer has touched the row it picks, the charge costs one operation instead of two. A stale view only
    costs the lost write (the ETag refuses it), then the fresh read as before. Which row: see _pick."""
    client = table(settings, name)
    view = (name, partition, prefix + "*")  # not the key of a single row's view (update_if_unchanged)
    remembered = _views.get(view)
    if remembered is not None and (candidates := choose(remembered)):
        stored = _write_one_of(client, view, remembered, candidates, every=False)
        if stored is not None:
            return stored
    for attempt in range(tries):
        rows = _remember(view, _rows_starting(client, partition, prefix, select))
        candidates = choose(rows)
        if not candidates:
            return Stored(None, None, False)
        stored = _write_one_of(client, view, rows, candidates, every=True)  # one lost: the next may be as read
        if stored is not None:
            return stored
        _pause(attempt)
    raise _too_busy(name)


def _write_one_of(client: TableClient, view: View, rows: dict[str, Row], candidates: list[Row], *,
                  every: bool) -> Stored | None:
    """Write the candidate _pick prefers over the row as read; if that write is lost and `every`, the others in
    turn. None when every write tried was lost."""
    best = _pick(view, rows, candidates)
    try:
        for new in [best, *(c for c in candidates if c is not best)] if every else [best]:
            stored = _write_as_read(client, new, _etag(rows.get(new["RowKey"])))
            if stored is not None:
                _remember(view, rows, stored)
                return stored
        return None
    finally:
        with _view_lock:
            _busy.discard((view, best["RowKey"]))


def _pick(view: View, rows: dict[str, Row], candidates: list[Row]) -> Row:
    """The candidate to write: first one that no other thread of this process is writing (they would refuse each
    other's ETag), then one this process wrote last, which another instance, preferring its own, is unlikely to
    have written since; else choose's order. Marked as being written until _write_one_of is done with it."""
    with _view_lock:
        best = min(candidates, key=lambda new: ((view, new["RowKey"]) in _busy, not _mine(rows.get(new["RowKey"]))))
        _busy.add((view, best["RowKey"]))
    return best


def _mine(row: Row | None) -> bool:
    return row is not None and row.metadata.get("mine", False)


def _remember(view: View, rows: dict[str, Row], written: Stored | None = None) -> dict[str, Row]:
    """Keep this process's view of a partition's rows, and return it: a fresh read as read, except that a row this
    process wrote and nobody wrote since stays marked as its own; a write merged into the view as it now stands,
    since other threads write into it meanwhile. A new dict each time, as threads read views without the lock.
    Views are kept in the order they were last read; the oldest go once there are too many (past windows)."""
    if written is not None:
        from azure.data.tables import TableEntity

        entity = TableEntity(written.row)
        entity._metadata = {"etag": written.etag, "mine": True}  # noqa: SLF001 - as the SDK sets the ETag
    with _view_lock:
        if written is not None:
            rows = _views[view] = {**_views.get(view, rows), entity["RowKey"]: entity}
            return rows
        before = _views.pop(view, {})
        rows = {key: before[key] if _mine(before.get(key)) and _etag(before[key]) == _etag(row) else row
                for key, row in rows.items()}
        _views[view] = rows
        if len(_views) > MAX_VIEWS:
            del _views[next(iter(_views))]
        return rows


def update_all_of(settings: Settings, name: str, partition: str, prefix: str, choose: Choose, *,
                  select: list[str] | None, tries: int) -> bool:
    """As update_one_of, but every row of choose(rows) is written, in one transaction: all of them, each only if
    nobody wrote it since it was read, or none (then a fresh read, `tries` times at most, then 503). False when
    choose returned no rows: nothing was written."""
    from azure.core import MatchConditions
    from azure.data.tables import TableTransactionError, UpdateMode

    client = table(settings, name)
    for attempt in range(tries):
        rows = _rows_starting(client, partition, prefix, select)
        changes = choose(rows)
        if not changes:
            return False
        operations = [("create", new) if new["RowKey"] not in rows else
                      ("update", new, {"mode": UpdateMode.REPLACE, "etag": rows[new["RowKey"]].metadata["etag"],
                                       "match_condition": MatchConditions.IfNotModified}) for new in changes]
        try:
            client.submit_transaction(operations)
            return True
        except TableTransactionError as exc:
            if exc.status_code not in (409, 412):  # not a lost race: storage failed
                raise
        _pause(attempt)
    raise _too_busy(name)


def _rows_starting(client: TableClient, partition: str, prefix: str, select: list[str] | None) -> dict[str, Row]:
    """The rows of the partition whose RowKey starts with prefix, by RowKey, with only the `select` properties
    (None: every property)."""
    after = prefix[:-1] + chr(ord(prefix[-1]) + 1)  # the first RowKey past every one that starts with prefix
    return {row["RowKey"]: row for row in client.query_entities(
        "PartitionKey eq @partition and RowKey ge @prefix and RowKey lt @after",
        parameters={"partition": partition, "prefix": prefix, "after": after},
        select=None if select is None else ["RowKey", *select])}


def _etag(row: Row | None) -> str | None:
    return row.metadata["etag"] if row is not None else None


def _write_as_read(client: TableClient, new: Row, etag: str | None) -> Stored | None:
    """Write new over the row as it was read (its ETag): an insert where it was missing (no ETag), else a replace
    only if the ETag is unchanged. None when someone wrote (or deleted) the row since: a lost race."""
    from azure.core import MatchConditions
    from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
    from azure.data.tables import UpdateMode

    try:
        if etag is None:
            return Stored(new, client.create_entity(new)["etag"], True)
        written = client.update_entity(new, mode=UpdateMode.REPLACE, etag=etag,
                                       match_condition=MatchConditions.IfNotModified)
        return Stored(new, written["etag"], True)
    except (ResourceExistsError, ResourceModifiedError, ResourceNotFoundError):
        return None


def replace_if_unchanged(settings: Settings, name: str, row: Row, etag: str) -> str | None:
    """Replace the row only if it still has this ETag: the new ETag; None when someone changed or deleted it since."""
    from azure.core import MatchConditions
    from azure.core.exceptions import ResourceModifiedError, ResourceNotFoundError
    from azure.data.tables import UpdateMode

    try:
        return table(settings, name).update_entity(row, mode=UpdateMode.REPLACE, etag=etag,
                                                   match_condition=MatchConditions.IfNotModified)["etag"]
    except (ResourceModifiedError, ResourceNotFoundError):
        return None


def delete_if_unchanged(settings: Settings, name: str, partition: str, row: str, etag: str) -> bool:
    """Delete the row only if it still has this ETag; False when someone changed it since (a deleted row is gone)."""
    from azure.core import MatchConditions
    from azure.core.exceptions import ResourceModifiedError

    try:
        table(settings, name).delete_entity(partition, row, etag=etag, match_condition=MatchConditions.IfNotModified)
        return True
    except ResourceModifiedError:
        return False


def _pause(attempt: int) -> None:
    """After a lost race: a jittered wait, longer after each loss up to RACE_PAUSE_SECONDS."""
    time.sleep(random.uniform(0, min(RACE_PAUSE_SECONDS, 0.001 * 2 ** attempt)))


def _too_busy(name: str) -> AppError:
    logger.warning("Gave up on a row of %s after too many concurrent changes", name)
    return AppError(503, "state_unavailable", "The app's state storage is too busy; nothing was sent. Try again.")


def _forget_clients_in_child() -> None:
    global _service, _lock
    _service, _lock = None, threading.Lock()
    _tables.clear()
    _views.clear()


os.register_at_fork(after_in_child=_forget_clients_in_child)
