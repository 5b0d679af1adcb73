"""Shared state in Azure Table Storage: one lazily created client per process, tables created once, errors -> 503."""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Iterator

from shared.errors import AppError
from shared.settings import Settings, SettingsError

if TYPE_CHECKING:
    from azure.data.tables import TableClient

logger = logging.getLogger("shared.state")

TIMEOUT_SECONDS = 5.0
STORAGE_SETTINGS = ("AzureWebJobsStorage", "AzureWebJobsStorage__accountName", "AzureWebJobsStorage__tableServiceUri")

_lock = threading.Lock()
_service: tuple[tuple[Any, ...], Any] | None = None
_tables: dict[str, TableClient] = {}


def table(settings: Settings, name: str) -> TableClient:
    """A client for table `name`, created in the storage account on first use in this process."""
    global _service
    key = (settings.storage_connection_string, settings.storage_account_name, settings.storage_table_uri)
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
    """A TableServiceClient: the connection string, else the account with the app's managed identity.
    No automatic retries: a retried create or update could be counted twice; callers retry on an ETag."""
    if not settings.storage_configured:
        raise SettingsError(missing=(" or ".join(STORAGE_SETTINGS),))
    from azure.data.tables import TableServiceClient

    options = {"connection_timeout": TIMEOUT_SECONDS, "read_timeout": TIMEOUT_SECONDS, "retry_total": 0}
    if settings.storage_connection_string:
        return TableServiceClient.from_connection_string(settings.storage_connection_string, **options)
    endpoint = settings.storage_table_uri or f"https://{settings.storage_account_name}.table.core.windows.net"
    from azure.identity import DefaultAzureCredential  # imported on this path only: about 250 ms of cold start

    return TableServiceClient(endpoint=endpoint, credential=DefaultAzureCredential(), **options)


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


def replace_if_unchanged(client: TableClient, entity: Any) -> bool:
    """Write a read entity back only if nobody changed it since (its ETag). False, after a short jittered pause,
    when someone did: the caller reads it again and retries. No read-modify-write goes without this."""
    from azure.core import MatchConditions
    from azure.core.exceptions import ResourceModifiedError
    from azure.data.tables import UpdateMode

    try:
        client.update_entity(entity, mode=UpdateMode.REPLACE, etag=entity.metadata["etag"],
                             match_condition=MatchConditions.IfNotModified)
        return True
    except ResourceModifiedError:
        time.sleep(random.uniform(0, 0.01))
        return False


def _forget_clients_in_child() -> None:
    global _service, _lock
    _service, _lock = None, threading.Lock()
    _tables.clear()


os.register_at_fork(after_in_child=_forget_clients_in_child)
