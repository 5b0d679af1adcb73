"""Secret hygiene: across every flow, no response body or header carries a credential; logs mask numbers.

The autouse `logs` fixture in conftest checks every log record of every test; this module drives each flow
and also checks what goes back to callers.
"""

from __future__ import annotations

import azure.functions as func
import pytest

import make_call
import send_sms
import sms_webhook
import voice_webhook
from tests.support import (ACCOUNT_SID, API_KEY_SECRET, API_KEY_SID, AUTH_TOKEN, RECIPIENT, json_request,
                           signed_form)

SECRETS = (AUTH_TOKEN, API_KEY_SECRET)
SMS_URL = "http://localhost:7071/api/send_sms"
CALL_URL = "http://localhost:7071/api/make_call"
WEBHOOK_URL = "http://localhost:7071/api/sms_webhook"


def exposed(response: func.HttpResponse) -> str:
    return response.get_body().decode("utf-8", "replace") + "\n" + "\n".join(
        f"{k}: {v}" for k, v in response.headers.items())


def mobile_flows(sandbox) -> dict[str, func.HttpResponse]:
    ok = {"to": RECIPIENT, "body": "hi", "message": "hi"}
    results = {}
    for name, main, url in (("send_sms", send_sms.main, SMS_URL), ("make_call", make_call.main, CALL_URL)):
        payload = {k: v for k, v in ok.items() if k != ("message" if name == "send_sms" else "body")}
        results[f"{name}_created"] = main(json_request(url, payload))
        results[f"{name}_invalid"] = main(json_request(url, {"to": "nope"}))
        results[f"{name}_rejected"] = main(json_request(url, {**payload, "to": "+15005550001"}))
        for label, kind, status in (("auth", "status", 401), ("server", "status", 500), ("limited", "status", 429),
                                    ("reset", "reset", 0)):
            sandbox.inject_fault(kind, status=status or 500, times=None)
            results[f"{name}_{label}"] = main(json_request(url, payload))
            sandbox.clear_faults()
    return results


@pytest.mark.parametrize("auth", ["auth_token", "api_key"])
def test_mobile_flows_never_expose_credentials(app_env, monkeypatch, auth, logs):
    if auth == "api_key":
        monkeypatch.setenv("TWILIO_API_KEY_SID", API_KEY_SID)
        monkeypatch.setenv("TWILIO_API_KEY_SECRET", API_KEY_SECRET)
    results = mobile_flows(app_env)
    assert {r.status_code for r in results.values()} == {201, 400, 422, 429, 502}
    for label, response in results.items():
        text = exposed(response)
        for secret in SECRETS + (ACCOUNT_SID,):
            assert secret not in text, f"{label} exposes a credential"
    assert any(name.startswith("shared") for name, _ in logs.records)  # the app did log; the fixture checks them


def test_timeout_and_missing_settings_never_expose_credentials(app_env, monkeypatch):
    monkeypatch.setenv("TWILIO_HTTP_TIMEOUT_SECONDS", "0.5")
    app_env.inject_fault("hang", times=None)
    timed_out = send_sms.main(json_request(SMS_URL, {"to": RECIPIENT, "body": "x"}))
    app_env.release_hangs()
    monkeypatch.delenv("TWILIO_PHONE_NUMBER")
    monkeypatch.setenv("TWILIO_HTTP_TIMEOUT_SECONDS", "not-a-number")
    misconfigured = make_call.main(json_request(CALL_URL, {"to": RECIPIENT}))
    assert (timed_out.status_code, misconfigured.status_code) == (504, 503)
    for response in (timed_out, misconfigured):
        for secret in SECRETS + (ACCOUNT_SID,):
            assert secret not in exposed(response)


@pytest.mark.parametrize("main", [sms_webhook.main, voice_webhook.main])
def test_webhook_flows_never_expose_the_auth_token(monkeypatch, main):
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", AUTH_TOKEN)
    params = {"From": "+14155550199", "To": "+15005550006", "Body": "hi", "Direction": "inbound"}
    responses = [main(signed_form(WEBHOOK_URL, params)), main(signed_form(WEBHOOK_URL, params, token="forged"))]
    monkeypatch.delenv("TWILIO_AUTH_TOKEN")
    responses.append(main(signed_form(WEBHOOK_URL, params)))
    assert [r.status_code for r in responses] == [200, 403, 503]
    for response in responses:
        assert AUTH_TOKEN not in exposed(response)


def test_masked_numbers_are_logged_for_a_sent_sms(app_env, logs):
    send_sms.main(json_request(SMS_URL, {"to": RECIPIENT, "body": "x"}))
    app_lines = [text for name, text in logs.records if name == "shared.sends"]
    assert app_lines and all("+14*******23" in line for line in app_lines)
