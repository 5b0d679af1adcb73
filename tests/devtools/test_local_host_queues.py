"""The local host's queue triggers against Azurite: Base64 bodies, dequeue_count, retries, -poison, host.json."""

from __future__ import annotations

import json
import textwrap
import time
from pathlib import Path

import pytest

from devtools.local_host import LocalHost

WORKER = """
import json
from pathlib import Path

import azure.functions as func


def main(msg: func.QueueMessage) -> None:
    body = msg.get_body().decode()
    with open(Path(__file__).parent / "seen.jsonl", "a") as seen:
        seen.write(json.dumps({"body": body, "dequeue_count": msg.dequeue_count}) + "\\n")
    if body == "boom":
        raise RuntimeError("this message always fails")
"""


@pytest.fixture
def queue_app(tmp_path: Path, azurite, monkeypatch) -> Path:
    """A toy app with one queueTrigger function on `jobs`; host.json: 2 tries, retried at once, quick polls."""
    import uuid

    queue = "jobs-" + uuid.uuid4().hex[:8]
    folder = tmp_path / "worker"
    folder.mkdir()
    (folder / "function.json").write_text(json.dumps({"bindings": [
        {"name": "msg", "type": "queueTrigger", "direction": "in", "queueName": queue, "connection": "JobsStorage"}]}))
    (folder / "__init__.py").write_text(textwrap.dedent(WORKER))
    (tmp_path / "host.json").write_text(json.dumps({"version": "2.0", "extensions": {"queues": {
        "maxDequeueCount": 2, "visibilityTimeout": "00:00:00", "maxPollingInterval": "00:00:00.500"}}}))
    monkeypatch.setenv("JobsStorage", azurite.connection_string)
    return tmp_path


def put(connection: str, queue: str, text: str) -> None:
    from azure.storage.queue import QueueClient, TextBase64EncodePolicy

    from azure.core.exceptions import ResourceExistsError

    client = QueueClient.from_connection_string(connection, queue, message_encode_policy=TextBase64EncodePolicy())
    try:
        client.create_queue()  # the producer's side: the host may not have polled yet
    except ResourceExistsError:
        pass
    client.send_message(text)


def put_form(text: str) -> str:
    import base64

    return base64.b64encode(text.encode()).decode()  # as it was put: the poison queue keeps the message as it was


def seen(root: Path) -> list[dict]:
    path = root / "worker" / "seen.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_queue_trigger_base64_message_runs_once_with_dequeue_count_then_failing_one_goes_to_poison(queue_app,
                                                                                                   azurite):
    from azure.storage.queue import QueueClient

    queue = json.loads((queue_app / "worker" / "function.json").read_text())["bindings"][0]["queueName"]
    with LocalHost(queue_app, port=0, function_key="") as host:
        assert "worker" in host.queue_functions and "worker" not in host.functions
        put(azurite.connection_string, queue, "hello")
        put(azurite.connection_string, queue, "boom")
        deadline = time.monotonic() + 20
        while len(seen(queue_app)) < 3 and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1)  # a third try of "boom" would show by now
    runs = sorted((r["body"], r["dequeue_count"]) for r in seen(queue_app))
    assert runs == [("boom", 1), ("boom", 2), ("hello", 1)]
    poison = QueueClient.from_connection_string(azurite.connection_string, queue + "-poison")
    assert [m.content for m in poison.peek_messages(max_messages=5)] == [put_form("boom")]
    assert QueueClient.from_connection_string(azurite.connection_string, queue).peek_messages() == []
