"""devtools.run, what ./run.sh runs: sandbox or real Twilio, function keys, ports, signals, Core Tools. Real
subprocesses on loopback, each bounded in time, in temporary copies so a developer's local.settings.json is never
touched."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Iterator
from urllib.parse import urlsplit

import pytest

from devtools.processes import alive, stop_process_group
from tests.servers import node
from tests.support import APP_SETTINGS, ROOT

# The bytecode caches are copied (a checkout has them after its first run): without them every launch in a fresh copy
# recompiles the app and devtools, about 0.1 s of CPU.
NOT_COPIED = shutil.ignore_patterns(".git", ".venv", ".cache", ".hypothesis", ".pytest_cache", "node_modules",
                                    "tests", "bench", "local.settings.json")
REAL_LOOKING = {"TWILIO_ACCOUNT_SID": "AC" + "0123456789abcdef" * 2, "TWILIO_AUTH_TOKEN": "f" * 32}
EXAMPLE = json.loads((ROOT / "local.settings.example.json").read_text())["Values"]


def listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


NO_AZURITE = "DefaultEndpointsProtocol=https;AccountName=unused;AccountKey=dW51c2Vk;EndpointSuffix=core.windows.net"


def clean_env(**overrides: str) -> dict[str, str]:
    """The test's environment without app settings; a (never used) storage account, so that only the tests
    that need it start Azurite."""
    env = {k: v for k, v in os.environ.items() if k not in APP_SETTINGS and k not in ("FUNCTIONS_HOST_KEY", "PYTHON")}
    return {**env, "AzureWebJobsStorage": NO_AZURITE, **overrides}


class Command:
    """A subprocess whose merged stdout/stderr lines are collected by a thread (reads never block the test)."""

    def __init__(self, argv: list[str], cwd: Path, env: dict[str, str]) -> None:
        # Its own process group, so teardown can kill whatever it left; SIGHUP not ignored even under nohup.
        self.proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, process_group=0,
                                     preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_DFL))
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_for_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not any(line.startswith("Ready.") for line in self.lines):
            assert self._reader.is_alive() and time.monotonic() < deadline, self.output
            time.sleep(0.05)

    def finish(self, timeout: float = 15) -> int:
        code = self.proc.wait(timeout)
        self._reader.join(5)
        return code


@pytest.fixture
def app(tmp_path: Path) -> Path:
    """A copy of the app (functions, shared, devtools) without local.settings.json, .venv or tests."""
    shutil.copytree(ROOT, tmp_path / "app", ignore=NOT_COPIED)
    return tmp_path / "app"


@pytest.fixture
def start(app: Path) -> Iterator:
    """start(*args, env=...) runs devtools.run in the app copy, its servers on ports they pick (--port 0
    --sandbox-port 0; `port` reads them from its output); everything is killed afterwards."""
    commands: list[Command] = []

    def start(*args: str, env: dict[str, str] | None = None, prefix: tuple[str, ...] = ()) -> Command:
        ports = ("--port", "0", "--sandbox-port", "0")
        argv = [*prefix, sys.executable, "-m", "devtools.run", *ports, *args]
        commands.append(Command(argv, app, clean_env() if env is None else env))
        return commands[-1]

    yield start
    for command in commands:  # SIGTERM first, so that run.py stops what it started in other process groups (Azurite)
        stop_process_group(command.proc, timeout=15)


def port(command: Command, server: str) -> int:
    """The port the app ("app": its functions' URLs) or the sandbox ("sandbox") listens on, as printed."""
    prefix = "  send_sms: " if server == "app" else "Twilio: SANDBOX at "
    url = next(line[len(prefix):] for line in command.lines if line.startswith(prefix))
    return int(urlsplit(url).port)


def token(command: Command) -> str:
    """A bearer token for alice from the sandbox's development identity provider."""
    request = urllib.request.Request(f"http://127.0.0.1:{port(command, 'sandbox')}/_sandbox/token",
                                     b'{"sub": "alice"}', {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=15) as response:
        return json.loads(response.read())["access_token"]


def status_of(url: str, payload: dict, headers: dict[str, str] | None = None) -> int:
    request = urllib.request.Request(url, json.dumps(payload).encode(), {"Content-Type": "application/json",
                                                                         **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=15) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


@pytest.mark.slow
def test_run_command_printed_examples_run_as_pasted_sign_in_replay_status_and_inbound(start, app):
    (app / "node_modules").symlink_to(ROOT / "node_modules")  # Azurite, as installed by the tests' npm ci
    node()
    command = start("--sandbox", "always", env=clean_env(AzureWebJobsStorage="UseDevelopmentStorage=true"))
    command.wait_for_ready()
    examples = command.output.split("Try it (copy-paste):")[1].split("Ready.")[0]
    lines = [line for line in examples.splitlines() if line and not line.startswith("#")]
    assert [line.split("=")[0] for line in lines[:2]] == ["TOKEN", "SMS"] and len(lines) == 11
    script = "\n".join(f"{line}; echo; echo @@@" if line.startswith("curl ") else line for line in lines[:4])
    script += "\nsleep 3\n" + "\n".join(f"{line}; echo; echo @@@" for line in lines[4:10])  # callbacks arrive
    script += "\nsleep 3\n" + f"{lines[10]}; echo; echo @@@"  # the broadcast, 1 segment a second, is done
    done = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=60)
    replay, status, voice, inbound_sms, inbound_call, activity, _, broadcast = done.stdout.split("@@@")[:8]
    first_sms = json.loads(done.stderr.splitlines()[0])  # the answer shown to the user
    assert first_sms["sid"].startswith("SM")
    assert "Idempotent-Replayed: true" in replay and first_sms["sid"] in replay
    message, call = (json.loads(part) for part in status.strip().split("\n"))
    assert (message["sid"], message["status"]) == (first_sms["sid"], "delivered")
    assert call["sid"].startswith("CA") and call["status"] == "completed"
    assert_voice_token_for_alice(json.loads(voice))
    assert "<Message>Hey, thanks for the ping!" in json.loads(inbound_sms)["twiml"]
    assert "<Say>" in json.loads(inbound_call)["twiml"]
    kinds = [event["type"] for event in json.loads(activity)]
    assert "status_callback" in kinds and "inbound.sms" in kinds
    assert 'Authorization: Bearer $TOKEN' in lines[1]  # the mobile API is called as a signed-in user
    admitted = json.loads(done.stderr.splitlines()[2])  # after the SMS's and the call's answers
    assert admitted["recipients"] == 2 and [r["code"] for r in admitted["rejected"]] == ["invalid_phone_number"]
    assert json.loads(broadcast)["counts"]["rejected"] == 1
    assert len([r for r in json.loads(activity) if r["type"] == "rest.request" and r["method"] == "POST"
                and r["path"].endswith("/Messages.json")]) == 1  # the replay sent nothing
    azurite = next(line for line in command.lines if line.startswith("State: Azurite"))
    azurite_port = int(azurite.split("127.0.0.1:")[1].split(",")[0])
    assert listening(azurite_port)
    command.proc.send_signal(signal.SIGTERM)
    assert command.finish() == 0 and not listening(azurite_port)  # Ctrl-C/SIGTERM stops Azurite too


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP], ids=lambda s: s.name)
def test_run_command_signal_stops_host_and_sandbox(start, signum):
    command = start("--sandbox", "always")
    command.wait_for_ready()
    ports = port(command, "app"), port(command, "sandbox")
    assert all(listening(port) for port in ports)
    command.proc.send_signal(signum)
    assert command.finish() == 0
    assert f"Stopping ({signum.name})" in command.output
    assert not any(listening(port) for port in ports)


def test_run_command_sigint_as_background_job_stops_everything(start):
    # bash starts background jobs with SIGINT ignored: Python then never raises KeyboardInterrupt by itself.
    command = start("--sandbox", "always", prefix=("bash", "-c", '"$@" & echo "pid $!"; wait $!', "bash"))
    command.wait_for_ready()
    pid = int(next(line for line in command.lines if line.startswith("pid "))[4:])
    os.kill(pid, signal.SIGINT)
    assert command.finish() == 0, command.output
    assert "Stopping (SIGINT)" in command.output
    assert not alive(pid) and not listening(port(command, "app"))


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP], ids=lambda s: s.name)
def test_run_command_signal_with_func_stops_func_and_its_children(start, tmp_path, signum, refused_port):
    bin_dir, pids = tmp_path / "bin", tmp_path / "func.pids"
    bin_dir.mkdir()
    (bin_dir / "func").write_text('#!/bin/sh\nsleep 300 &\necho "$$ $!" > "$FAKE_FUNC_PIDS"\nwait\n')
    (bin_dir / "func").chmod(0o755)
    env = clean_env(PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}", FAKE_FUNC_PIDS=str(pids))
    command = start("--func", "--port", str(refused_port), env=env)  # func start needs a port; this fake binds none
    command.wait_for_ready()
    deadline = time.monotonic() + 10
    while not pids.exists() or not pids.read_text().strip():
        assert time.monotonic() < deadline, command.output
        time.sleep(0.05)
    func_pids = [int(pid) for pid in pids.read_text().split()]
    try:
        assert all(alive(pid) for pid in func_pids)
        command.proc.send_signal(signum)
        assert command.finish() == 0, command.output
        assert not any(alive(pid) for pid in func_pids)
    finally:
        for pid in filter(alive, func_pids):
            os.kill(pid, signal.SIGKILL)
    assert not listening(port(command, "sandbox"))


def assert_voice_token_for_alice(answer: dict) -> None:
    """voice_token's 200 body: a Voice SDK token for alice, signed with the sandbox's API key, for its TwiML App."""
    import jwt

    from devtools.run import SANDBOX_API_KEY_SID, SANDBOX_TWIML_APP_SID

    assert answer["identity"] == "alice", answer
    header, claims = jwt.get_unverified_header(answer["token"]), jwt.decode(answer["token"],
                                                                              options={"verify_signature": False})
    assert (header["alg"], header["cty"], claims["iss"]) == ("HS256", "twilio-fpa;v=1", SANDBOX_API_KEY_SID)
    assert claims["grants"]["identity"] == "alice"
    assert claims["grants"]["voice"]["outgoing"]["application_sid"] == SANDBOX_TWIML_APP_SID


def test_run_command_sandbox_voice_token_works_with_the_sandbox_api_key(start):
    command = start("--sandbox", "always")
    command.wait_for_ready()
    api, signed_in = f"http://127.0.0.1:{port(command, 'app')}/api", {"Authorization": "Bearer " + token(command)}
    request = urllib.request.Request(f"{api}/voice_token", b"", signed_in, method="POST")
    with urllib.request.urlopen(request, timeout=15) as response:
        assert response.status == 200
        assert_voice_token_for_alice(json.loads(response.read()))
    # With an API key set the app's REST requests authenticate with it, and the sandbox takes it as Twilio does.
    assert status_of(f"{api}/send_sms", {"to": "+14155550123", "body": "hi"}, signed_in) == 201


def test_run_command_func_with_port_0_exits_2_with_one_line(start, tmp_path):
    (tmp_path / "func").write_text("#!/bin/sh\nexit 0\n")
    (tmp_path / "func").chmod(0o755)
    command = start("--func", env=clean_env(PATH=f"{tmp_path}{os.pathsep}{os.environ['PATH']}"))  # --port 0
    assert command.finish() == 2
    assert len(command.lines) == 1 and "--port" in command.output, command.output


def test_run_command_func_without_core_tools_exits_2_with_one_line(start, tmp_path):
    command = start("--func", env=clean_env(PATH=str(tmp_path)))  # no func there
    assert command.finish() == 2
    assert len(command.lines) == 1 and "--func" in command.output and "func" in command.output.split("--func")[1]


@pytest.mark.parametrize("flag", ["--port", "--sandbox-port"])
def test_run_command_busy_port_exits_2_with_one_line_naming_the_flag(start, flag):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        command = start("--sandbox", "always", flag, str(port))
        assert command.finish() == 2
    assert len(command.lines) == 1 and f"{flag} {port}" in command.output, command.output
    assert "in use" in command.output


def write_settings(app: Path, **values: str) -> None:
    (app / "local.settings.json").write_text(json.dumps({"IsEncrypted": False, "Values": {**EXAMPLE, **values}}))


@pytest.mark.parametrize("settings", ["none", "example"])
def test_run_command_sandbox_never_without_real_credentials_exits_2_with_one_line(start, app, settings):
    if settings == "example":
        write_settings(app)
    command = start("--sandbox", "never")
    assert command.finish() == 2
    assert len(command.lines) == 1 and "--sandbox never" in command.output, command.output
    assert ("placeholder" in command.output) == (settings == "example")


@pytest.mark.parametrize("source, values, named", [
    ("file", {}, "TWILIO_ACCOUNT_SID in local.settings.json"),
    ("file", {"TWILIO_ACCOUNT_SID": REAL_LOOKING["TWILIO_ACCOUNT_SID"]}, "TWILIO_AUTH_TOKEN in local.settings.json"),
    ("env", {"TWILIO_ACCOUNT_SID": "AC123", "TWILIO_AUTH_TOKEN": "t"}, "TWILIO_ACCOUNT_SID in the environment"),
], ids=["example_sid", "example_token", "malformed_sid"])
def test_run_command_placeholder_credentials_use_sandbox_with_one_line_notice(start, app, source, values, named):
    if source == "file":
        write_settings(app, **values)
    command = start(env=clean_env(**values) if source == "env" else None)
    command.wait_for_ready()
    notices = [line for line in command.lines if line.startswith("Notice:")]
    assert len(notices) == 1 and named in notices[0] and "sandbox" in notices[0], command.output
    assert any(line.startswith("Twilio: SANDBOX") for line in command.lines)


@pytest.mark.parametrize("origin, warned", [
    ({}, True),
    ({"WEBSITE_HOSTNAME": "localhost:7071"}, True),
    ({"PUBLIC_BASE_URL": "https://tunnel.example.test"}, False),
    ({"WEBSITE_HOSTNAME": "myapp.azurewebsites.net"}, False),
], ids=["unset", "local_hostname", "public_base_url", "public_hostname"])
def test_run_command_real_twilio_without_public_origin_warns_naming_PUBLIC_BASE_URL(start, origin, warned):
    command = start(env=clean_env(**REAL_LOOKING, **origin))
    command.wait_for_ready()
    assert any(line.startswith("Twilio: REAL") for line in command.lines), command.output
    assert any("send real SMS and place real calls, at this account's cost" in line for line in command.lines)
    warnings = [line for line in command.lines if "cannot reach" in line]
    assert len(warnings) == int(warned), command.output
    assert all("PUBLIC_BASE_URL" in line and "127.0.0.1" in line for line in warnings)


def test_run_command_invalid_settings_are_each_named_before_ready(start):
    command = start(env=clean_env(INBOUND_CALL_FLOW="ivr", CALL_MENU="{not json", TWILIO_HTTP_TIMEOUT_SECONDS="soon"))
    command.wait_for_ready()
    invalid = [line for line in command.lines if line.startswith("Invalid setting:")]
    named = [line.split()[2].rstrip(";") for line in invalid]
    assert named == ["TWILIO_HTTP_TIMEOUT_SECONDS", "INBOUND_CALL_FLOW", "CALL_MENU"], command.output
    assert "INBOUND_CALL_FLOW (one of: greeting, forward, menu, voicemail)" in invalid[1]
    assert not any(value in command.output for value in ("ivr", "{not json", "soon"))
    ready = next(i for i, line in enumerate(command.lines) if line.startswith("Ready."))
    assert command.lines.index(invalid[-1]) < ready


@pytest.mark.parametrize("notify, warned", [("", True), ("+14155550100", False)])
def test_run_command_voicemail_flow_without_notify_number_warns_at_start(start, notify, warned):
    command = start(env=clean_env(INBOUND_CALL_FLOW="voicemail", VOICEMAIL_NOTIFY_SMS=notify))
    command.wait_for_ready()
    assert any("without VOICEMAIL_NOTIFY_SMS" in line for line in command.lines) == warned, command.output


def test_run_command_examples_use_a_new_idempotency_key_each_run_and_pretty_print_activity():
    from devtools.run import curl_examples

    first, second = (dict(curl_examples("http://app", None, "http://sandbox", True)) for _ in range(2))
    title = next(title for title in first if "with the same key" in title)
    key = lambda commands: commands[title].split("Idempotency-Key: ")[1].split("'")[0]  # noqa: E731
    assert key(first) != key(second) and key(first) in next(c for c in first.values() if "SMS=$(" in c)
    assert next(c for t, c in first.items() if "activity" in t).endswith("| python3 -m json.tool")


@pytest.mark.parametrize("source, named", [
    ("flag", "key from --function-key"),
    ("env", "key from FUNCTIONS_HOST_KEY (environment)"),
    ("file", "key from FUNCTIONS_HOST_KEY in local.settings.json"),
    ("none", "not enforced"),
    ("empty_flag", "not enforced"),  # --function-key '' turns off a FUNCTIONS_HOST_KEY
])
def test_run_command_function_key_from_each_source_is_named_and_enforced(start, app, source, named):
    key = "k3y-" + source
    args, env = ["--sandbox", "always"], clean_env()
    if source == "flag":
        args += ["--function-key", key]
    elif source in ("env", "empty_flag"):
        env["FUNCTIONS_HOST_KEY"] = key
        args += ["--function-key", ""] if source == "empty_flag" else []
    elif source == "file":
        write_settings(app, FUNCTIONS_HOST_KEY=key)
    command = start(*args, env=env)
    command.wait_for_ready()
    key_lines = [line for line in command.lines if line.startswith("Function keys:")]
    assert len(key_lines) == 1 and named in key_lines[0], command.output
    url = f"http://127.0.0.1:{port(command, 'app')}/api/send_sms"
    sms = {"to": "+14155550123", "body": "hi"}
    signed_in = {"authorization": "Bearer " + token(command)}  # the sandbox is the identity provider
    assert status_of(url, sms, signed_in) == (201 if named == "not enforced" else 401)
    assert status_of(url, sms, {"x-functions-key": key, **signed_in}) == 201
