"""Upstream faults through send_sms and make_call: every failure maps to its documented status, no blind retry."""

from __future__ import annotations

import time

import pytest
import requests

import make_call
import send_sms
from tests.support import RECIPIENT, body_of, json_request
from tests.support import creates as count_creates

SMS_URL = "http://localhost:7071/api/send_sms"
CALL_URL = "http://localhost:7071/api/make_call"
ENDPOINTS = {
    "send_sms": (send_sms.main, SMS_URL, {"to": RECIPIENT, "body": "fault test"}, "Messages"),
    "make_call": (make_call.main, CALL_URL, {"to": RECIPIENT, "message": "fault test"}, "Calls"),
}


def invoke(name: str):
    main, url, payload, _ = ENDPOINTS[name]
    started = time.monotonic()
    response = main(json_request(url, payload))
    return response, time.monotonic() - started


def creates(sandbox, name: str) -> int:
    return count_creates(sandbox, ENDPOINTS[name][3])


@pytest.fixture
def attempts(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every HTTP request the Twilio transport sends, counted even when nothing answers it."""
    sent: list[str] = []
    original = requests.Session.send

    def counting_send(self, request, **kwargs):
        sent.append(request.url)
        return original(self, request, **kwargs)

    monkeypatch.setattr(requests.Session, "send", counting_send)
    return sent


TWILIO_CONTENT_ERRORS = [21211, 21408, 21610, 21612, 21614, 21606, 21212, 21210, 21608, 21604, 21602, 21617]


@pytest.mark.parametrize("name", sorted(ENDPOINTS))
@pytest.mark.parametrize("twilio_code", TWILIO_CONTENT_ERRORS)
def test_upstream_content_error_returns_422_with_twilio_code(app_env, name, twilio_code):
    app_env.inject_fault("status", status=400, body={"code": twilio_code, "message": f"Error {twilio_code}",
                                                     "more_info": f"https://www.twilio.com/docs/errors/{twilio_code}",
                                                     "status": 400})
    response, _ = invoke(name)
    assert response.status_code == 422
    error = body_of(response)["error"]
    assert (error["code"], error["twilio_code"]) == ("twilio_rejected", twilio_code)
    assert error["more_info"] == f"https://www.twilio.com/docs/errors/{twilio_code}"
    assert creates(app_env, name) == 1


@pytest.mark.parametrize("name", sorted(ENDPOINTS))
def test_upstream_problem_details_error_returns_422_with_code_and_detail(app_env, name):
    app_env.inject_fault("status", status=400, content_type="application/problem+json", body={
        "type": "https://www.twilio.com/docs/errors/21211", "title": "Invalid 'To' Phone Number",
        "status": 400, "code": 21211, "detail": "The 'To' number is not a valid phone number.",
        "instance": "/2010-04-01/Accounts/AC/Messages.json"})
    response, _ = invoke(name)
    assert response.status_code == 422
    error = body_of(response)["error"]
    assert error["twilio_code"] == 21211
    assert "not a valid phone number" in error["message"]
    assert error["more_info"] == "https://www.twilio.com/docs/errors/21211"


@pytest.mark.parametrize("name", sorted(ENDPOINTS))
def test_upstream_problem_details_server_error_returns_502_without_retry(app_env, name):
    app_env.inject_fault("status", status=503, content_type="application/problem+json", body={
        "type": "https://www.twilio.com/docs/errors/20500", "title": "Internal error", "status": 503,
        "code": 20500})
    response, _ = invoke(name)
    assert (response.status_code, body_of(response)["error"]["code"]) == (502, "twilio_unavailable")
    assert creates(app_env, name) == 1


@pytest.mark.parametrize("name", sorted(ENDPOINTS))
def test_upstream_credentials_rejected_returns_502(app_env, name, monkeypatch):
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", "wrong-token")
    response, _ = invoke(name)
    assert response.status_code == 502
    assert body_of(response)["error"]["code"] == "twilio_auth_failed"
    assert body_of(response)["error"]["twilio_code"] == 20003
    assert "wrong-token" not in response.get_body().decode()


@pytest.mark.parametrize("name", sorted(ENDPOINTS))
def test_upstream_404_returns_502(app_env, name):
    app_env.inject_fault("status", status=404)
    response, _ = invoke(name)
    assert (response.status_code, body_of(response)["error"]["code"]) == (502, "twilio_error")


@pytest.mark.parametrize("name", sorted(ENDPOINTS))
@pytest.mark.parametrize("status", [500, 502, 503])
def test_upstream_5xx_returns_502_and_is_sent_exactly_once(app_env, name, status):
    app_env.inject_fault("status", status=status, times=None)
    response, _ = invoke(name)
    assert (response.status_code, body_of(response)["error"]["code"]) == (502, "twilio_unavailable")
    assert creates(app_env, name) == 1


@pytest.mark.parametrize("name", sorted(ENDPOINTS))
def test_upstream_non_json_error_body_returns_502(app_env, name):
    app_env.inject_fault("status", status=500, body="<html>Bad gateway</html>", content_type="text/html")
    response, _ = invoke(name)
    assert (response.status_code, body_of(response)["error"]["code"]) == (502, "twilio_unavailable")
    assert creates(app_env, name) == 1


@pytest.mark.parametrize("name", sorted(ENDPOINTS))
def test_upstream_non_json_4xx_body_returns_422(app_env, name):
    app_env.inject_fault("status", status=400, body="Bad Request", content_type="text/plain")
    response, _ = invoke(name)
    assert response.status_code == 422
    assert body_of(response)["error"]["code"] == "twilio_rejected"


@pytest.mark.parametrize("name", sorted(ENDPOINTS))
def test_upstream_hang_returns_504_within_timeout_and_is_sent_once(app_env, name, monkeypatch):
    monkeypatch.setenv("TWILIO_HTTP_TIMEOUT_SECONDS", "1")
    app_env.inject_fault("hang", times=None)
    response, elapsed = invoke(name)
    app_env.release_hangs()
    assert (response.status_code, body_of(response)["error"]["code"]) == (504, "twilio_timeout")
    assert 0.9 <= elapsed < 1.6
    assert creates(app_env, name) == 1


@pytest.mark.parametrize("name", sorted(ENDPOINTS))
def test_upstream_trickling_answer_returns_504_within_the_total_budget(app_env, name, monkeypatch):
    monkeypatch.setenv("TWILIO_HTTP_TIMEOUT_SECONDS", "1")
    app_env.inject_fault("trickle", chunk_bytes=4, interval=0.05)  # every read is fast; the whole answer is not
    response, elapsed = invoke(name)
    assert (response.status_code, body_of(response)["error"]["code"]) == (504, "twilio_timeout")
    assert elapsed < 1.5
    assert creates(app_env, name) == 1


@pytest.mark.parametrize("name", sorted(ENDPOINTS))
def test_upstream_answer_cut_off_in_transit_returns_502_connection_lost(app_env, name):
    app_env.inject_fault("raw", body=b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\n"
                                     b"Content-Length: 500\r\n\r\n{\"sid\": \"SM")
    response, _ = invoke(name)
    assert (response.status_code, body_of(response)["error"]["code"]) == (502, "twilio_connection_lost")
    assert creates(app_env, name) == 1


@pytest.mark.parametrize("name", sorted(ENDPOINTS))
@pytest.mark.parametrize("preset", ["html", "list", "no_sid", "redirect", "truncated"])
def test_upstream_odd_preset_returns_502_bad_response(app_env, name, preset):
    app_env.inject_fault("odd", preset=preset)
    response, _ = invoke(name)
    assert (response.status_code, body_of(response)["error"]["code"]) == (502, "twilio_bad_response")
    assert creates(app_env, name) == 1


@pytest.mark.parametrize("name", sorted(ENDPOINTS))
def test_upstream_reset_after_request_sent_returns_502_connection_lost_and_is_sent_once(app_env, name):
    app_env.inject_fault("reset", times=None)
    response, _ = invoke(name)
    error = body_of(response)["error"]
    assert (response.status_code, error["code"]) == (502, "twilio_connection_lost")
    assert "check before retrying" in error["message"]
    assert creates(app_env, name) == 1


@pytest.mark.parametrize("name", sorted(ENDPOINTS))
def test_upstream_201_with_another_kind_of_sid_returns_502_bad_response(app_env, name):
    app_env.inject_fault("status", status=201, body={"sid": "PN" + "0" * 32})
    response, _ = invoke(name)
    assert (response.status_code, body_of(response)["error"]["code"]) == (502, "twilio_bad_response")
    assert "check before retrying" in body_of(response)["error"]["message"]


@pytest.mark.parametrize("name", sorted(ENDPOINTS))
def test_upstream_429_forever_is_retried_at_most_twice_then_returns_429(app_env, name):
    app_env.inject_fault("status", status=429, headers={"Retry-After": "0"},
                         body={"code": 20429, "message": "Too Many Requests", "status": 429}, times=None)
    response, elapsed = invoke(name)
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "0"
    assert body_of(response)["error"]["code"] == "rate_limited"
    assert creates(app_env, name) == 3
    assert elapsed < 2


@pytest.mark.parametrize("name", sorted(ENDPOINTS))
def test_upstream_429_once_is_retried_and_succeeds(app_env, name):
    app_env.inject_fault("status", status=429, body={"code": 20429, "message": "Too Many Requests", "status": 429})
    response, _ = invoke(name)
    assert response.status_code == 201
    assert creates(app_env, name) == 2


@pytest.mark.parametrize("name", sorted(ENDPOINTS))
def test_upstream_429_retry_after_beyond_budget_is_not_retried(app_env, name):
    app_env.inject_fault("status", status=429, headers={"Retry-After": "30"}, times=None)
    response, elapsed = invoke(name)
    assert (response.status_code, response.headers["Retry-After"]) == (429, "30")
    assert creates(app_env, name) == 1
    assert elapsed < 1


@pytest.mark.parametrize("name", sorted(ENDPOINTS))
def test_upstream_connect_refused_is_retried_within_bound_then_returns_502(app_env, name, monkeypatch, attempts,
                                                                          refused_port):
    monkeypatch.setenv("TWILIO_API_BASE_URL", f"http://127.0.0.1:{refused_port}")
    response, elapsed = invoke(name)
    assert (response.status_code, body_of(response)["error"]["code"]) == (502, "twilio_unreachable")
    assert len(attempts) == 3
    assert elapsed < 2


def test_upstream_connect_refused_then_up_is_retried_and_succeeds(app_env, monkeypatch, attempts, refused_port):
    import threading
    port = refused_port  # the sandbox that comes up late binds it too (see refused_port)
    monkeypatch.setenv("TWILIO_API_BASE_URL", f"http://127.0.0.1:{port}")
    from devtools.sandbox import TwilioSandbox
    from tests.support import ACCOUNT_SID, AUTH_TOKEN

    late = TwilioSandbox(account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN, host="127.0.0.1", port=port)
    timer = threading.Timer(0.05, late.start)
    timer.start()
    try:
        response, _ = invoke("send_sms")
    finally:
        timer.join()
        late.stop()
    assert response.status_code == 201, response.get_body()
    assert 2 <= len(attempts) <= 3
    assert len(late.messages) == 1
