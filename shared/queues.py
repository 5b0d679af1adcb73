"""Storage queues of the app's account: a client per queue and process, messages Base64-encoded as the host reads them."""

from __future__ import annotations

import json
import os
import threading
from typing import TYPE_CHECKING, Any

from shared.settings import Settings, SettingsError
from shared import state
from shared.state import STORAGE_SETTINGS, TIMEOUT_SECONDS

if TYPE_CHECKING:
    from azure.storage.queue import QueueClient

BROADCASTS = "twilio-broadcast"  # broadcast_worker/function.json's queueName
MAX_DELAY_SECONDS = 7 * 24 * 3600  # the longest initial visibility delay the service takes

_lock = threading.Lock()
_clients: dict[tuple[Any, ...], QueueClient] = {}


def queue(settings: Settings, name: str) -> QueueClient:
    """A client for queue `name`, created in the storage account on first use in this process. Messages are
    Base64-encoded text: what the Functions host's queue trigger decodes by default."""
    state.sdk_logging(settings)
    key = (settings.storage_connection_string, settings.storage_account_name, settings.storage_credential,
           settings.storage_client_id, name)
    with _lock:
        client = _clients.get(key)
        if client is None:
            client = _clients[key] = _connect(settings, name)
            from azure.core.exceptions import ResourceExistsError

            try:
                client.create_queue()
            except ResourceExistsError:
                pass  # the usual case after the first run: it is there
        return client


def _connect(settings: Settings, name: str) -> QueueClient:
    """No automatic retries, as for tables: a failure answers 503 promptly and nothing is half-sent."""
    from azure.storage.queue import QueueClient, TextBase64EncodePolicy

    options = {"connection_timeout": TIMEOUT_SECONDS, "read_timeout": TIMEOUT_SECONDS, "retry_total": 0,
               "message_encode_policy": TextBase64EncodePolicy()}
    if settings.storage_connection_string:
        return QueueClient.from_connection_string(settings.storage_connection_string, name, **options)
    if not settings.storage_account_name:
        raise SettingsError(missing=(" or ".join(s for s in STORAGE_SETTINGS if not s.endswith("tableServiceUri")),))
    return QueueClient(f"https://{settings.storage_account_name}.queue.core.windows.net", name,
                       credential=state.credential(settings), **options)


def put(settings: Settings, name: str, message: dict[str, Any], delay_seconds: int = 0) -> None:
    """Put a JSON message on the queue, invisible for delay_seconds (at most MAX_DELAY_SECONDS)."""
    queue(settings, name).send_message(json.dumps(message, separators=(",", ":")),
                                       visibility_timeout=min(max(0, int(delay_seconds)), MAX_DELAY_SECONDS))


def _forget_clients_in_child() -> None:
    global _lock
    _lock = threading.Lock()
    _clients.clear()


os.register_at_fork(after_in_child=_forget_clients_in_child)
