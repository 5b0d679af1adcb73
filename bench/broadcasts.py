"""6. Broadcasts: pacing through one local host (wall time and the busiest second against the rate), storage
operations of a 10,000-recipient admission and Table operations per broadcast message against one send_sms, counted
at Azurite."""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import tempfile
import time
from collections import defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any, Iterator

from bench.common import (PYTHON, ROOT, SENDER, Table, app, app_settings, child_env, environment, http_request,
                          request_spec)
from bench.state import Operations

SECTION = "6. broadcasts (local host, Azurite, the sandbox)"
BROADCASTER = "bench"
QUEUE = "twilio-broadcast"


def numbers(n: int) -> list[str]:
    return [f"+1415{5550000 + i:07d}" for i in range(n)]


def run(table: Table, sandbox: Any, recipients: int, rate: int, admitted: int, messages: int) -> None:
    from devtools.azurite import Azurite, npm_ci

    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "azurite.log"
        azurite = Azurite(npm_ci(), debug_log=log).start()  # its log counts the operations
        try:
            settings = _settings(sandbox, azurite.connection_string, rate=1000)
            admission = _admission(settings, Operations(log, azurite.queue_debug_log), admitted)
            per_message, per_send = _worker(settings, azurite.connection_string, Operations(log), messages)
        finally:
            azurite.stop()
        azurite = Azurite(npm_ci()).start()  # no debug log: it would slow the pacing down
        try:
            wall, busiest = _pacing(sandbox, azurite.connection_string, recipients, rate)
        finally:
            azurite.stop()
    ideal = recipients / rate  # one segment each
    table.add(SECTION, f"pacing: {recipients} recipients at {rate} segments/s, wall time", f"{wall:.1f} s", "",
              f"{wall / ideal:.3f}× segments/rate ({ideal:.0f} s)", "≤ 1.05×", wall / ideal <= 1.05)
    table.add(SECTION, "pacing: most creates of one sender in any 1-second window", str(busiest), "",
              f"{busiest / rate:.2f}× rate", "≤ 1.1× rate", busiest / rate <= 1.1)
    table.add(SECTION, f"admission of {admitted:,} recipients: storage operations", str(admission), "",
              f"1 per {admitted / admission:.0f} recipients", "≤ 1 per 50", admission <= admitted / 50)
    table.add(SECTION, "Table operations per broadcast message (the worker, callbacks not included)",
              f"{per_message:.2f}", "", f"{per_message / per_send:.2f}× send_sms ({per_send:.2f})")
    table.notes.append(
        f"Broadcasts: pacing through one `devtools.local_host` process (its queue trigger on Azurite, the sandbox's "
        f"status callbacks back to it), wall time from the 202 to the last create, creates as the sandbox recorded "
        f"them per sender; admission: one POST /api/broadcasts in process, every request Azurite logged (tables and "
        f"queue); worker: broadcast_worker.main on the chunks of a {messages}-recipient broadcast in process, the "
        f"operations Azurite logged during those calls per recipient, against {messages} plain send_sms.")


def _settings(sandbox: Any, connection_string: str, rate: int, public: str = "http://127.0.0.1:1") -> dict:
    return {**app_settings(sandbox.base_url), "AzureWebJobsStorage": connection_string, "AUTH_EASY_AUTH": "true",
            "WEBSITE_AUTH_ENABLED": "True",
            "BROADCAST_SENDERS": BROADCASTER, "BROADCAST_SEGMENTS_PER_SECOND": str(rate), "PUBLIC_BASE_URL": public}


def _post(to: list[str]) -> Any:
    import azure.functions as func

    body = json.dumps({"to": to, "body": "Class cancelled"}).encode()
    return func.HttpRequest("POST", "http://127.0.0.1:1/api/broadcasts", body=body,
                            headers={"content-type": "application/json", "x-ms-client-principal-id": BROADCASTER})


def _admission(settings: dict, counter: Operations, admitted: int) -> int:
    """Storage operations Azurite logged for one admission of `admitted` recipients (after a warm-up one)."""
    main = app("broadcasts").load_main()
    with environment(settings):
        for to in (numbers(2), numbers(admitted)):  # the first creates the tables and the queue
            time.sleep(0.5)
            counter.mark()
            response = main(_post(to))
            if response.status_code != 202:
                raise RuntimeError(f"admission answered {response.status_code}: {response.get_body()[:300]!r}")
            time.sleep(1.0)  # Azurite writes its log a little late
    _queue(settings["AzureWebJobsStorage"]).clear_messages()
    return counter.since_mark()


def _worker(settings: dict, connection_string: str, counter: Operations, messages: int) -> tuple[float, float]:
    """Operations per recipient while broadcast_worker.main sends a broadcast's chunks; per plain send_sms."""
    from azure.functions.queue import QueueMessage

    worker, send = app("broadcast_worker").load_main(), app("send_sms").load_main()
    client = _queue(connection_string)
    operations = 0
    with environment(settings):
        if app("broadcasts").load_main()(_post(numbers(messages))).status_code != 202:
            raise RuntimeError("admission failed")
        deadline = time.monotonic() + 60
        done = 0
        while done < messages and time.monotonic() < deadline:
            for message in client.receive_messages(max_messages=16, visibility_timeout=60):
                chunk = json.loads(message.content)
                time.sleep(0.5)
                counter.mark()
                worker(QueueMessage(id=message.id, body=message.content, dequeue_count=message.dequeue_count))
                time.sleep(0.5)
                operations += counter.since_mark()
                done += chunk["last"] - chunk["first"]
                client.delete_message(message)
            time.sleep(0.1)
        if done < messages:
            raise RuntimeError(f"the worker sent {done} of {messages}")
    spec = request_spec("send_sms")
    with environment({key: settings[key] for key in settings if not key.startswith(("AUTH_", "WEBSITE_"))}):
        _sent(send, spec)  # the send's table exists
        time.sleep(0.5)
        counter.mark()
        for _ in range(messages):
            _sent(send, spec)
        time.sleep(0.5)
        per_send = counter.since_mark() / messages
    return operations / messages, per_send


def _sent(send: Any, spec: dict) -> None:
    if send(http_request(spec)).status_code != 201:
        raise RuntimeError("send_sms failed")


def _pacing(sandbox: Any, connection_string: str, recipients: int, rate: int) -> tuple[float, int]:
    """Wall time from the 202 to the last create, and the most creates of one sender in any 1-second window."""
    import requests

    with _host(sandbox, connection_string, rate) as url:
        before = len(sandbox.requests)
        response = requests.post(f"{url}/api/broadcasts", json={"to": numbers(recipients), "body": "Class cancelled"},
                                 headers={"x-ms-client-principal-id": BROADCASTER}, timeout=120)
        admitted = time.time()
        if response.status_code != 202:
            raise RuntimeError(f"admission answered {response.status_code}: {response.text[:300]}")
        deadline = admitted + recipients / rate * 2 + 60
        while time.time() < deadline:
            creates = [r for r in sandbox.requests[before:]
                       if r["method"] == "POST" and r["path"].endswith("/Messages.json")]
            if len(creates) >= recipients:
                break
            time.sleep(0.5)
        else:
            raise RuntimeError(f"{len(creates)} of {recipients} created in time")
        _queue(connection_string).clear_messages()
    senders: dict[str, list[float]] = defaultdict(list)
    for r in creates:
        senders[r["form"].get("From", [SENDER])[0]].append(datetime.fromisoformat(r["time"]).timestamp())
    busiest = max(sum(1 for t in times if start <= t < start + 1) for times in senders.values() for start in times)
    return max(t for times in senders.values() for t in times) - admitted, busiest


@contextlib.contextmanager
def _host(sandbox: Any, connection_string: str, rate: int) -> Iterator[str]:
    """One `devtools.local_host` process of the app (its queue triggers polling Azurite): its base URL."""
    with socket.socket() as probe:  # a free port, known before the start: the status callbacks come back to it
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    host = subprocess.Popen([PYTHON, "-m", "devtools.local_host", "--root", str(ROOT), "--port", str(port),
                             "--function-key", ""], cwd=ROOT,
                            env=child_env(_settings(sandbox, connection_string, rate, public=url)),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or host.poll() is not None:
                    raise RuntimeError("the local host did not start") from None
                time.sleep(0.1)
        yield url
    finally:
        host.terminate()
        host.wait(timeout=10)


def _queue(connection_string: str) -> Any:
    from azure.core.exceptions import ResourceExistsError
    from azure.storage.queue import BinaryBase64DecodePolicy, QueueClient, TextBase64EncodePolicy

    client = QueueClient.from_connection_string(connection_string, QUEUE, message_encode_policy=TextBase64EncodePolicy(),
                                                message_decode_policy=BinaryBase64DecodePolicy())
    with contextlib.suppress(ResourceExistsError):
        client.create_queue()
    return client
