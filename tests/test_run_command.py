"""The one command: with no credentials it serves the app against the sandbox, and its printed curls work."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from tests.conftest import APP_SETTINGS, ROOT


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def running() -> tuple[subprocess.Popen, list[str]]:
    env = {k: v for k, v in os.environ.items() if k not in APP_SETTINGS and k != "FUNCTIONS_HOST_KEY"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "devtools.run", "--port", str(free_port()), "--sandbox-port", str(free_port()),
         "--sandbox", "always"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line.rstrip("\n"))
        if line.startswith("Ready."):
            break
    assert lines and lines[-1].startswith("Ready."), "\n".join(lines)
    yield proc, lines
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def test_run_command_printed_curls_send_sms_place_call_and_get_inbound_reply(running):
    proc, lines = running
    curls = [line for line in lines if line.startswith("curl ")]
    assert len(curls) == 5
    results = [subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=20).stdout
               for command in curls]
    sms, call, inbound_sms, inbound_call, activity = results
    assert json.loads(sms)["sid"].startswith("SM")
    assert json.loads(call)["sid"].startswith("CA")
    assert "<Message>Hey, thanks for the ping!" in json.loads(inbound_sms)["twiml"]
    assert "<Say>" in json.loads(inbound_call)["twiml"]
    kinds = [event["type"] for event in json.loads(activity)]
    assert "rest.request" in kinds and "inbound.sms" in kinds


def test_run_command_ctrl_c_stops_everything(running):
    proc, lines = running
    app_port = int(next(line for line in lines if "send_sms: http" in line).rsplit(":", 1)[1].split("/")[0])
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=10) == 0
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", app_port)) != 0  # nothing listens any more
