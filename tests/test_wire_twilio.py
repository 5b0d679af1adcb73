"""deploy/wire_twilio.py against the Twilio sandbox: wires the number and the TwiML App once, then changes nothing."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest

from deploy import wire_twilio
from tests.support import ACCOUNT_SID, API_KEY_SECRET, API_KEY_SID, AUTH_TOKEN, ROOT, SENDER

BASE_URL = "https://func-abc123.azurewebsites.net"
VOICE_URL, SMS_URL = f"{BASE_URL}/api/voice_webhook", f"{BASE_URL}/api/sms_webhook"


@pytest.fixture
def account(sandbox: Any) -> dict[str, str]:
    """The sandbox account owning SENDER, and the environment an azd hook would get."""
    sandbox.add_phone_number(SENDER)
    sandbox.add_phone_number("+15005550010")  # another number of the account: left alone
    return {"TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": AUTH_TOKEN, "TWILIO_PHONE_NUMBER": SENDER,
            "TWILIO_API_BASE_URL": sandbox.base_url, "AZURE_ENV_NAME": "voice-prod", "SERVICE_API_BASE_URL": BASE_URL}


def run(env: dict[str, str], capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = wire_twilio.main(list(argv), env=env)
    out, err = capsys.readouterr()
    assert AUTH_TOKEN not in out + err and API_KEY_SECRET not in out + err
    return code, out + err


def writes(sandbox: Any) -> list[str]:
    return [f"{r['method']} {r['path']}" for r in sandbox.requests if r["method"] != "GET"]


def test_wire_twilio_first_run_points_number_and_new_twiml_app_at_the_webhooks(sandbox, account, capsys):
    code, out = run(account, capsys)
    assert code == 0, out
    number = next(n for n in sandbox.phone_numbers if n["phone_number"] == SENDER)
    assert (number["voice_url"], number["voice_method"], number["sms_url"], number["sms_method"]) == (
        VOICE_URL, "POST", SMS_URL, "POST")
    other = next(n for n in sandbox.phone_numbers if n["phone_number"] != SENDER)
    assert other["voice_url"] is None
    [app] = sandbox.applications
    assert (app["friendly_name"], app["voice_url"], app["voice_method"]) == ("voice-prod", VOICE_URL, "POST")
    assert f"TWILIO_TWIML_APP_SID={app['sid']}" in out


def test_wire_twilio_second_run_changes_nothing_and_says_so(sandbox, account, capsys):
    assert run(account, capsys)[0] == 0
    before = len(writes(sandbox))
    code, out = run(account, capsys)
    assert code == 0 and "Nothing to change." in out
    assert len(writes(sandbox)) == before and len(sandbox.applications) == 1


def test_wire_twilio_known_twiml_app_sid_is_updated_not_duplicated(sandbox, account, capsys):
    assert run(account, capsys)[0] == 0
    [app] = sandbox.applications
    moved = {**account, "TWILIO_TWIML_APP_SID": app["sid"], "AZURE_ENV_NAME": "renamed"}
    code, out = run(moved, capsys, "--base-url", "https://voice.example.com")
    assert code == 0, out
    [app] = sandbox.applications
    assert app["voice_url"] == "https://voice.example.com/api/voice_webhook"
    assert "TWILIO_TWIML_APP_SID" not in out  # already known: nothing to store


def test_wire_twilio_dry_run_prints_the_changes_and_writes_nothing(sandbox, account, capsys):
    code, out = run(account, capsys, "--dry-run")
    assert code == 0
    assert f"would update number {SENDER}: voice_url={VOICE_URL}" in out and "would create the TwiML App" in out
    assert writes(sandbox) == [] and sandbox.applications == []


def test_wire_twilio_failed_read_exits_nonzero_naming_the_step_and_writes_nothing(sandbox, account, capsys):
    sandbox.inject_fault("status", status=404, body={"code": 20404, "message": "Not found", "status": 404},
                         method="GET", path_contains="/Applications.json")
    code, out = run(account, capsys)
    assert code == 1
    assert "find the TwiML App 'voice-prod': Twilio error 20404 (HTTP 404)" in out
    assert writes(sandbox) == []  # the number was read fine, but nothing is wired until every read succeeded


def test_wire_twilio_twilio_error_midway_exits_nonzero_naming_the_step_and_code(sandbox, account, capsys):
    sandbox.inject_fault("status", status=400, method="POST", path_contains="/Applications.json",
                         body={"code": 21218, "message": "Invalid ApplicationSid", "status": 400})
    code, out = run(account, capsys)
    assert code == 1
    assert "create the TwiML App 'voice-prod': Twilio error 21218 (HTTP 400)" in out
    assert sandbox.applications == [] and "TWILIO_TWIML_APP_SID=" not in out


def test_wire_twilio_number_routed_through_another_app_is_refused_before_any_write(sandbox, account, capsys):
    number = next(n for n in sandbox.phone_numbers if n["phone_number"] == SENDER)
    sandbox._store.update("numbers", number["sid"], {"voice_application_sid": "AP" + "1" * 32})
    code, out = run(account, capsys)
    assert code == 1 and "voice_application_sid=AP111" in out
    assert writes(sandbox) == []


def test_wire_twilio_missing_credentials_exits_nonzero_naming_the_setting(account, capsys):
    env = {name: value for name, value in account.items() if name != "TWILIO_AUTH_TOKEN"}
    code, out = run(env, capsys)
    assert code == 1 and "TWILIO_AUTH_TOKEN" in out


def test_wire_twilio_api_key_auth_works(sandbox, account, capsys):
    env = {**{k: v for k, v in account.items() if k != "TWILIO_AUTH_TOKEN"},
           "TWILIO_API_KEY_SID": API_KEY_SID, "TWILIO_API_KEY_SECRET": API_KEY_SECRET}
    assert run(env, capsys)[0] == 0


def fake_azd(folder: Path) -> Path:
    """An `azd` that records its arguments in folder/azd.log."""
    azd = folder / "azd"
    azd.write_text(f'#!/bin/sh\necho "$@" >> {folder / "azd.log"}\n')
    azd.chmod(azd.stat().st_mode | stat.S_IEXEC)
    return folder / "azd.log"


def test_wire_twilio_azd_mode_stores_the_new_sid_with_azd_env_set(sandbox, account, capsys, tmp_path, monkeypatch):
    log = fake_azd(tmp_path)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    code, out = run(account, capsys, "--azd")
    assert code == 0, out
    assert log.read_text().split() == ["env", "set", "TWILIO_TWIML_APP_SID", sandbox.applications[0]["sid"]]


def test_azd_hook_script_wires_twilio_as_azd_runs_it(sandbox, account, tmp_path):
    log = fake_azd(tmp_path)
    env = {**account, "PATH": f"{tmp_path}{os.pathsep}{os.environ['PATH']}"}
    hook = subprocess.run([str(ROOT / "deploy" / "azd-hook.sh")], env=env, cwd=tmp_path, capture_output=True,
                          text=True, timeout=60)
    assert hook.returncode == 0, hook.stdout + hook.stderr
    assert sandbox.phone_numbers[0]["voice_url"] == VOICE_URL and "TWILIO_TWIML_APP_SID" in log.read_text()
    assert AUTH_TOKEN not in hook.stdout + hook.stderr
