"""End to end over real HTTP: the local Functions host serving this app, wired to the Twilio sandbox."""

from __future__ import annotations

import time
from typing import Iterator

import pytest
import requests

from tests.support import RECIPIENT, ROOT, SENDER, sign
from tests.signature_cases import FORGERIES, GENUINE

FUNCTION_KEY = "e2e-function-key"
CALLER = "+14155550142"


@pytest.fixture
def host(app_env) -> Iterator:
    """The app on a free loopback port, keys enforced, Twilio REST going to the sandbox."""
    from devtools.local_host import LocalHost

    with LocalHost(ROOT, host="127.0.0.1", port=0, function_key=FUNCTION_KEY).start() as running:
        yield running


def post(host, name: str, payload: dict, **kwargs) -> requests.Response:
    headers = {"x-functions-key": FUNCTION_KEY, **kwargs.pop("headers", {})}
    return requests.post(host.url_for(name), json=payload, headers=headers, timeout=10, **kwargs)


def test_e2e_send_sms_reaches_the_sandbox_with_to_from_body(host, app_env):
    response = post(host, "send_sms", {"to": RECIPIENT, "body": "Hello over HTTP"})
    assert response.status_code == 201, response.text
    assert response.headers["content-type"].startswith("application/json")
    [message] = app_env.messages
    assert (message["to"], message["from"], message["body"]) == (RECIPIENT, SENDER, "Hello over HTTP")
    assert message["sid"] == response.json()["sid"]


def test_e2e_make_call_sandbox_fetches_signed_voice_webhook_and_gets_the_message(host, app_env):
    response = post(host, "make_call", {"to": RECIPIENT, "message": "Your table is ready & waiting"})
    assert response.status_code == 201, response.text
    assert app_env.wait_for(lambda: app_env.calls and app_env.calls[0]["sandbox"].get("twiml"), timeout=5)
    outcome = app_env.calls[0]["sandbox"]
    assert outcome["webhook_status"] == 200  # the app validated the sandbox's X-Twilio-Signature
    assert not outcome.get("twilio_error")
    assert "<Say>Your table is ready &amp; waiting</Say>" in outcome["twiml"]


def test_e2e_inbound_sms_gets_the_auto_reply_recorded_as_outbound(host, app_env):
    result = app_env.simulate_inbound_sms(host.url_for("sms_webhook"), CALLER, SENDER, "hi there")
    assert result["status"] == 200 and not result.get("twilio_error")
    assert "<Message>Hey, thanks for the ping! Twilio and Azure rock!</Message>" in result["twiml"]
    assert app_env.wait_for(lambda: any(m["to"] == CALLER for m in app_env.messages))


def test_e2e_inbound_call_from_blocked_number_is_rejected(host, app_env, monkeypatch):
    monkeypatch.setenv("BLOCKED_NUMBERS", CALLER)
    result = app_env.simulate_inbound_call(host.url_for("voice_webhook"), CALLER, SENDER)
    assert result["status"] == 200
    assert "<Reject />" in result["twiml"]


def test_e2e_inbound_call_from_other_number_hears_the_greeting(host, app_env, monkeypatch):
    monkeypatch.setenv("BLOCKED_NUMBERS", "+14155550000")
    result = app_env.simulate_inbound_call(host.url_for("voice_webhook"), CALLER, SENDER)
    assert "<Say>Hello! Thanks for calling. Goodbye.</Say>" in result["twiml"]


def test_e2e_forged_webhook_over_http_returns_403(host):
    url = host.url_for("sms_webhook")
    response = requests.post(url, data={"From": CALLER, "Body": "hi"}, timeout=5,
                             headers={"X-Twilio-Signature": sign(url, {"From": CALLER, "Body": "other"})})
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "invalid_signature"


def test_e2e_magic_number_returns_documented_422(host):
    response = post(host, "send_sms", {"to": "+15005550001", "body": "x"})
    assert response.status_code == 422
    assert response.json()["error"]["twilio_code"] == 21211


def test_e2e_hung_sandbox_answers_504_within_the_timeout(host, app_env, monkeypatch):
    monkeypatch.setenv("TWILIO_HTTP_TIMEOUT_SECONDS", "1")
    app_env.inject_fault("hang", times=None)
    started = time.monotonic()
    response = post(host, "send_sms", {"to": RECIPIENT, "body": "x"})
    elapsed = time.monotonic() - started
    app_env.release_hangs()
    assert response.status_code == 504
    assert elapsed < 1.6


@pytest.mark.parametrize("key_header", [{}, {"x-functions-key": "wrong"}])
def test_e2e_missing_or_wrong_function_key_returns_401(host, app_env, key_header):
    response = requests.post(host.url_for("send_sms"), json={"to": RECIPIENT, "body": "x"}, headers=key_header,
                             timeout=5)
    assert response.status_code == 401
    assert app_env.requests == []


def test_e2e_function_key_in_code_query_parameter_is_accepted(host):
    response = requests.post(host.url_for("send_sms") + f"?code={FUNCTION_KEY}",
                             json={"to": RECIPIENT, "body": "x"}, timeout=5)
    assert response.status_code == 201


def test_e2e_get_on_mobile_endpoint_is_the_apps_json_405_after_the_hosts_key_check(host, app_env):
    assert requests.get(host.url_for("send_sms"), timeout=5).status_code == 401  # the host: no function key
    response = requests.get(host.url_for("send_sms"), headers={"x-functions-key": FUNCTION_KEY}, timeout=5)
    assert (response.status_code, response.json()["error"]["code"]) == (405, "method_not_allowed")
    assert response.headers["Allow"] == "POST"  # function.json lists no methods: the app answers
    assert app_env.requests == []


def send_raw(host, webhook: str, builder, monkeypatch) -> requests.Response:
    raw = builder(host.base_url, f"/api/{webhook}")
    for name, value in raw.env.items():
        monkeypatch.setenv(name, value)
    return requests.request(raw.method, raw.url, headers=raw.headers, data=raw.body, timeout=5)


@pytest.mark.parametrize("webhook", ["sms_webhook", "voice_webhook"])
@pytest.mark.parametrize("case", sorted(GENUINE))
def test_e2e_webhook_genuine_variant_over_http_is_accepted(host, monkeypatch, webhook, case):
    response = send_raw(host, webhook, GENUINE[case], monkeypatch)
    assert response.status_code == 200, response.text
    assert response.text.startswith("<?xml")


@pytest.mark.parametrize("webhook", ["sms_webhook", "voice_webhook"])
@pytest.mark.parametrize("case", sorted(FORGERIES))
def test_e2e_webhook_forgery_over_http_is_rejected(host, monkeypatch, webhook, case):
    response = send_raw(host, webhook, FORGERIES[case], monkeypatch)
    assert response.status_code == 403, response.text
    assert response.json()["error"]["code"] == "invalid_signature"
