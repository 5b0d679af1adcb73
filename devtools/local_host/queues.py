"""Queue triggers run as the Functions host runs them: poll, Base64, visibility, maxDequeueCount and -poison."""

from __future__ import annotations

import base64
import binascii
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from azure.functions.queue import QueueMessage

from .config import LOGGER_NAME, _module_name, _read_json

log = logging.getLogger(LOGGER_NAME)

# While its function runs a message stays hidden this long, renewed at half of it, as the host does (its lease is
# longer; a short one brings a message back soon after a killed process, which the local tests rely on).
PROCESSING_VISIBILITY_SECONDS = 10
MIN_POLL_SECONDS = 0.1  # the first wait after an empty poll; it doubles up to maxPollingInterval


@dataclass(frozen=True)
class QueueSpec:
    """One queueTrigger function folder."""

    name: str
    queue: str
    connection: str  # the app setting holding the connection string
    module: str
    entry_point: str
    trigger_name: str


@dataclass(frozen=True)
class QueueOptions:
    """host.json `extensions.queues`, with the Functions host's defaults."""

    batch_size: int = 16
    new_batch_threshold: int | None = None  # default: batch_size / 2
    max_polling_seconds: float = 60.0
    visibility_seconds: float = 0.0  # after a failure: how long before the retry
    max_dequeue_count: int = 5


def _seconds(span: str) -> float:
    """A host.json TimeSpan ("00:00:02", "00:01:00.500") in seconds."""
    hours, minutes, seconds = span.split(":")
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


def read_queue_options(root: Path) -> QueueOptions:
    path = root / "host.json"
    queues = (((_read_json(path) if path.is_file() else {}).get("extensions") or {}).get("queues")) or {}
    defaults = QueueOptions()
    return QueueOptions(
        batch_size=int(queues.get("batchSize", defaults.batch_size)),
        new_batch_threshold=int(queues["newBatchThreshold"]) if "newBatchThreshold" in queues else None,
        max_polling_seconds=_seconds(queues["maxPollingInterval"]) if "maxPollingInterval" in queues
        else defaults.max_polling_seconds,
        visibility_seconds=_seconds(queues["visibilityTimeout"]) if "visibilityTimeout" in queues
        else defaults.visibility_seconds,
        max_dequeue_count=int(queues.get("maxDequeueCount", defaults.max_dequeue_count)))


def discover_queue_functions(root: Path) -> dict[str, QueueSpec]:
    """Every top-level folder of root whose function.json has a queueTrigger binding, by name."""
    specs = {}
    for manifest in sorted(root.glob("*/function.json")):
        data = _read_json(manifest)
        trigger = next((b for b in data.get("bindings", []) if b.get("type", "").lower() == "queuetrigger"), None)
        if trigger is not None:
            name = manifest.parent.name
            specs[name] = QueueSpec(name, trigger["queueName"], trigger.get("connection") or "AzureWebJobsStorage",
                                    _module_name(manifest.parent, data.get("scriptFile") or "__init__.py"),
                                    data.get("entryPoint") or "main", trigger.get("name") or "msg")
    return specs


def decode(content: str) -> bytes:
    """The message body as the host hands it over: Base64-decoded (the host's default messageEncoding)."""
    try:
        return base64.b64decode(content, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("the message is not Base64: the Functions host would not run the function") from None


class QueueListener:
    """Polls one function's queue on a thread and runs the function on up to batch_size messages at a time."""

    def __init__(self, spec: QueueSpec, entry: Callable[..., object], options: QueueOptions) -> None:
        from azure.storage.queue import QueueClient

        http_log = logging.getLogger("azure.core.pipeline.policies.http_logging_policy")
        if http_log.level == logging.NOTSET:  # each poll would log its request and answer in several lines
            http_log.setLevel(logging.WARNING)
        self.spec, self.entry, self.options = spec, entry, options
        connection = os.environ[spec.connection]
        client = {"retry_total": 0, "connection_timeout": 5}  # a storage account out of reach: log and poll again
        self.client = QueueClient.from_connection_string(connection, spec.queue, **client)
        self.poison = QueueClient.from_connection_string(connection, spec.queue + "-poison", **client)
        self.running = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, name=f"poll-{spec.name}", daemon=True)

    def start(self) -> QueueListener:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _poll(self) -> None:
        threshold = self.options.new_batch_threshold
        threshold = self.options.batch_size // 2 if threshold is None else threshold
        wait = MIN_POLL_SECONDS
        created = failing = False
        while not self._stop.is_set():
            with self._lock:
                room = self.options.batch_size - self.running if self.running <= threshold else 0
            messages = []
            if room:
                try:
                    if not created:
                        self._ensure(self.client)
                        created = True
                    messages = list(self.client.receive_messages(messages_per_page=room, max_messages=room,
                                                                 visibility_timeout=PROCESSING_VISIBILITY_SECONDS))
                    failing = False
                except Exception as exc:  # noqa: BLE001 - storage down: the host keeps polling
                    if not failing:  # once per outage, not once per poll
                        log.warning("%s: polling %s failed: %s", self.spec.name, self.spec.queue, type(exc).__name__)
                    failing = True
            for message in messages:
                with self._lock:
                    self.running += 1
                # A daemon thread per message (at most batch_size): a running one (a broadcast chunk can take a
                # minute) does not hold up stopping; its lease lapses and it runs again, as on a stopped instance.
                threading.Thread(target=self._run, args=(message,), name=f"queue-{self.spec.name}",
                                 daemon=True).start()
            wait = MIN_POLL_SECONDS if messages else min(wait * 2, self.options.max_polling_seconds)
            self._stop.wait(MIN_POLL_SECONDS if messages or not room else wait)

    def _run(self, message: Any) -> None:
        try:
            self._invoke(message)
        finally:
            with self._lock:
                self.running -= 1

    def _invoke(self, message: Any) -> None:
        lease = threading.Event()
        renewing = threading.Thread(target=self._renew, args=(message, lease), daemon=True)
        renewing.start()
        failed = False
        try:
            body = decode(message.content)
            msg = QueueMessage(id=message.id, body=body, pop_receipt=message.pop_receipt,
                               dequeue_count=message.dequeue_count, insertion_time=message.inserted_on,
                               expiration_time=message.expires_on, time_next_visible=message.next_visible_on)
            self.entry(**{self.spec.trigger_name: msg})
        except Exception:  # noqa: BLE001 - as the host: logged, retried after visibilityTimeout, then poisoned
            log.exception("Executed 'Functions.%s' (Failed, Id=%s, DequeueCount=%d)", self.spec.name, message.id,
                          message.dequeue_count)
            failed = True
        finally:
            lease.set()
            renewing.join()
        if not failed:
            self.client.delete_message(message)
            log.info("Executed 'Functions.%s' (Succeeded, Id=%s)", self.spec.name, message.id)
        elif message.dequeue_count >= self.options.max_dequeue_count:
            self._ensure(self.poison)
            self.poison.send_message(message.content)
            self.client.delete_message(message)
            log.warning("%s: message %s moved to %s-poison", self.spec.name, message.id, self.spec.queue)
        else:
            self.client.update_message(message, visibility_timeout=int(self.options.visibility_seconds))

    def _renew(self, message: Any, done: threading.Event) -> None:
        """Keep the message hidden while its function runs (message.pop_receipt follows each renewal)."""
        while not done.wait(PROCESSING_VISIBILITY_SECONDS / 2):
            try:
                renewed = self.client.update_message(message.id, message.pop_receipt,
                                                     visibility_timeout=PROCESSING_VISIBILITY_SECONDS)
                message.pop_receipt = renewed.pop_receipt
            except Exception as exc:  # noqa: BLE001 - a lost lease: the message may run again, as on Azure
                log.warning("%s: could not renew message %s: %s", self.spec.name, message.id, type(exc).__name__)

    @staticmethod
    def _ensure(client: Any) -> None:
        from azure.core.exceptions import ResourceExistsError

        try:
            client.create_queue()
        except ResourceExistsError:
            pass
