"""The sandbox's command line: serve, inbound SMS and calls, listings, faults."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys

import pytest
import requests

from devtools.sandbox import DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN, TwilioSandbox
from devtools.sandbox.cli import main as cli_main
from tests.devtools.sandbox.support import CUSTOMER, IVR, SMS_TWIML, FakeApp
from tests.support import ACCOUNT_SID, AUTH_TOKEN, ROOT, SENDER


def test_cli_call_with_digits_dial_outcome_and_no_record_prints_the_steps(sandbox: TwilioSandbox, app: FakeApp,
                                                                          capsys: pytest.CaptureFixture[str]) -> None:
    app.voice(**IVR)

    code = cli_main(["call", "--sandbox", sandbox.base_url, "--url", app.url("/ivr"), "--from", CUSTOMER,
                     "--to", SENDER, "--digits", "1", "--dial-outcome", "busy", "--no-record"])

    out = capsys.readouterr().out
    assert code == 0 and app.to("/after")[0]["params"]["DialCallStatus"] == "busy"
    assert f"[2] POST {app.url('/dial')} Digits=1 -> 200" in out
    assert f"[3] POST {app.url('/after')} DialCallStatus=busy DialCallDuration=0 -> 200" in out
    assert "    Record: no audio\n" in out and out.endswith("call ended: end\n")


def test_cli_sms_call_and_listings_print_results(sandbox: TwilioSandbox, app: FakeApp,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    base = ["--sandbox", sandbox.base_url]
    sms = cli_main(["sms", *base, "--url", app.url("/sms"), "--from", CUSTOMER, "--to", SENDER, "--body", "hi cli"])
    sms_out = capsys.readouterr().out
    call = cli_main(["call", *base, "--url", app.url("/text"), "--from", CUSTOMER, "--to", SENDER])
    call_err = capsys.readouterr().err
    listings = {name: (cli_main([name, *base]), json.loads(capsys.readouterr().out))
                for name in ("activity", "messages", "calls")}

    assert (sms, sms_out.strip()) == (0, SMS_TWIML) and app.to("/sms")[0]["params"]["Body"] == "hi cli"
    assert call == 1 and "Twilio error 12300" in call_err
    assert [e["type"] for e in listings["activity"][1]] == ["inbound.sms", "call.step", "inbound.call"]
    assert [m["body"] for m in listings["messages"][1]] == ["Thanks, got it!"] and listings["calls"] == (0, [])


def test_cli_fault_and_clear_faults_drive_the_control_endpoints(sandbox: TwilioSandbox,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    base = ["--sandbox", sandbox.base_url]
    armed = cli_main(["fault", "trickle", *base, "--chunk-bytes", "8", "--interval", "0.01", "--times", "0",
                      "--header", "X-Test:1", "--path-contains", "/Messages"])
    printed = json.loads(capsys.readouterr().out)
    listed = sandbox.faults
    cleared = cli_main(["clear-faults", *base])
    bad = cli_main(["fault", "odd", *base])

    assert (armed, cleared, bad) == (0, 0, 2)
    assert {k: printed[k] for k in ("kind", "chunk_bytes", "interval", "times", "headers", "path_contains")} == {
        "kind": "trickle", "chunk_bytes": 8, "interval": 0.01, "times": None, "headers": {"X-Test": "1"},
        "path_contains": "/Messages"}
    assert [f["id"] for f in listed] == [printed["id"]] and sandbox.faults == []
    assert "preset" in capsys.readouterr().err


def test_cli_unreachable_sandbox_exits_2(capsys: pytest.CaptureFixture[str], refused_port: int) -> None:
    assert cli_main(["activity", "--sandbox", f"http://127.0.0.1:{refused_port}"]) == 2
    assert "cannot reach the sandbox" in capsys.readouterr().err


@pytest.mark.parametrize("token", [None, AUTH_TOKEN])
def test_cli_serve_prints_url_and_default_credentials_and_stops_on_sigint(token: str | None) -> None:
    command = [sys.executable, "-m", "devtools.sandbox", "serve", "--port", "0"]  # it prints the port it bound
    if token:
        command += ["--account-sid", ACCOUNT_SID, "--auth-token", token]
    env = {name: value for name, value in os.environ.items() if not name.startswith("TWILIO_")}
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None and process.stderr is not None
        base_url = process.stdout.readline().strip()
        assert re.fullmatch(r"http://127\.0\.0\.1:[1-9]\d*", base_url), base_url
        account = ACCOUNT_SID if token else DEFAULT_ACCOUNT_SID
        response = requests.get(f"{base_url}/2010-04-01/Accounts/{account}/Calls/CA{'0' * 32}.json",
                                auth=(account, token or DEFAULT_AUTH_TOKEN), timeout=5)
        assert response.status_code == 404
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=5) == 0
        banner = process.stderr.read()
        assert account in banner
        assert (DEFAULT_AUTH_TOKEN in banner, AUTH_TOKEN in banner) == (token is None, False)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()
