"""The sandbox's injected faults: status answers, hangs, resets, raw bytes, trickles and odd bodies."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
import requests
from twilio.rest import Client

from devtools.sandbox import TwilioSandbox
from tests.devtools.sandbox.support import (CUSTOMER, SMS, FakeApp, api, call_form, create, event_types, raw_create,
                                            read_pieces, split_response)
from tests.support import ACCOUNT_SID, AUTH_TOKEN, SENDER


def test_fault_status_429_sends_headers_and_twilio_body_then_runs_out(sandbox: TwilioSandbox) -> None:
    sandbox.inject_fault("status", status=429, headers={"Retry-After": "2"}, times=2)

    answers = [create(sandbox, "Messages", SMS) for _ in range(3)]

    assert [a.status_code for a in answers] == [429, 429, 201]
    assert answers[0].headers["Retry-After"] == "2"
    assert answers[0].json() == {"code": 20429, "message": "Too Many Requests", "status": 429,
                                 "more_info": "https://www.twilio.com/docs/errors/20429"}
    assert len(sandbox.messages) == 1 and len(sandbox.requests) == 3
    assert sandbox.faults == []


def test_fault_status_custom_body_and_content_type_until_cleared(sandbox: TwilioSandbox) -> None:
    sandbox.inject_fault("status", status=502, body="<html>down</html>", content_type="text/html", times=None)

    first, second = create(sandbox, "Messages", SMS), create(sandbox, "Messages", SMS)
    armed = sandbox.faults
    sandbox.clear_faults()

    assert [(a.status_code, a.text, a.headers["Content-Type"]) for a in (first, second)] == [
        (502, "<html>down</html>", "text/html")] * 2
    assert [(f["kind"], f["times"]) for f in armed] == [("status", None)]
    assert create(sandbox, "Messages", SMS).status_code == 201


def test_fault_path_and_method_filters_skip_other_requests(sandbox: TwilioSandbox, app: FakeApp) -> None:
    sandbox.inject_fault("status", status=503, path_contains="/Calls", method="post")

    message = create(sandbox, "Messages", SMS)
    fetch = requests.get(api(sandbox, "Calls", "CA" + "0" * 32), auth=(ACCOUNT_SID, AUTH_TOKEN), timeout=5)
    call = create(sandbox, "Calls", call_form(app.url("/voice")))

    assert (message.status_code, fetch.status_code, call.status_code) == (201, 404, 503)


def test_fault_hang_holds_the_request_until_released_then_closes_without_answer(sandbox: TwilioSandbox) -> None:
    sandbox.inject_fault("hang")

    with pytest.raises(requests.exceptions.ReadTimeout):
        create(sandbox, "Messages", SMS, timeout=0.2)
    sock = raw_create(sandbox)  # the fault ran out: answered at once
    assert read_pieces(sock)[0][1].startswith(b"HTTP/1.1 201")
    sandbox.inject_fault("hang")
    hung = raw_create(sandbox)
    assert sandbox.wait_for(lambda: event_types(sandbox).count("rest.fault") == 2)
    sandbox.release_hangs()

    assert read_pieces(hung) == []
    assert len(sandbox.messages) == 1 and len(sandbox.requests) == 3


def test_fault_hang_and_trickle_end_when_the_sandbox_stops() -> None:
    sb = TwilioSandbox(account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN).start()
    sb.inject_fault("hang")
    hung = raw_create(sb)
    assert sb.wait_for(lambda: len(sb.requests) == 1)
    sb.inject_fault("trickle")
    trickling = raw_create(sb)
    assert sb.wait_for(lambda: len(sb.requests) == 2)

    started = time.monotonic()
    sb.stop()

    assert time.monotonic() - started < 1.0
    assert read_pieces(hung) == []
    assert len(b"".join(piece for _, piece in read_pieces(trickling))) < 100


def test_fault_reset_sends_tcp_reset_after_reading_the_request(sandbox: TwilioSandbox) -> None:
    sandbox.inject_fault("reset")
    sock = raw_create(sandbox)

    with sock, pytest.raises(ConnectionResetError):
        sock.recv(1024)

    assert sandbox.requests[0]["form"]["Body"] == ["Hello there"]
    assert sandbox.messages == []


def test_fault_reset_raises_connection_error_in_the_sdk(client: Client, sandbox: TwilioSandbox) -> None:
    sandbox.inject_fault("reset")

    with pytest.raises(requests.exceptions.ConnectionError):
        client.messages.create(to=CUSTOMER, from_=SENDER, body="x")


def test_fault_raw_writes_exactly_the_given_bytes_then_closes(sandbox: TwilioSandbox) -> None:
    malformed = b"HTTP/1.1 201 Created\r\nContent-Length: 50\r\nContent-Type: application/json\r\n\r\n{\"sid\""
    sandbox.inject_fault("raw", body=malformed)

    assert b"".join(piece for _, piece in read_pieces(raw_create(sandbox))) == malformed
    assert sandbox.messages == []


def test_fault_raw_default_bytes_are_not_http(sandbox: TwilioSandbox) -> None:
    sandbox.inject_fault("raw")

    with pytest.raises(requests.exceptions.ConnectionError, match="BadStatusLine"):
        create(sandbox, "Messages", SMS)


def test_fault_trickle_sends_the_whole_answer_in_small_pieces_over_time(sandbox: TwilioSandbox) -> None:
    sandbox.inject_fault("trickle", chunk_bytes=100, interval=0.05)

    pieces = read_pieces(raw_create(sandbox))

    status_line, headers, body = split_response(b"".join(piece for _, piece in pieces))
    assert status_line == "HTTP/1.1 201 Created" and headers["Connection"] == "close"
    assert json.loads(body)["sid"] == sandbox.messages[0]["sid"] and headers["Content-Length"] == str(len(body))
    assert len(pieces) >= 4 and all(len(piece) <= 100 for _, piece in pieces)
    assert pieces[-1][0] - pieces[0][0] >= 0.15


def test_fault_trickle_never_trips_a_per_read_timeout(sandbox: TwilioSandbox) -> None:
    sandbox.inject_fault("trickle", chunk_bytes=200, interval=0.1)
    started = time.monotonic()

    response = create(sandbox, "Messages", SMS, timeout=(2, 0.3))

    assert response.status_code == 201 and response.json()["status"] == "queued"
    assert time.monotonic() - started > 0.3
    (answer,) = [e for e in sandbox.activity if e["type"] == "rest.response"]
    assert answer["fault"]["kind"] == "trickle"


@pytest.mark.parametrize(("preset", "status", "content_type", "body"), [
    ("html", 200, "text/html; charset=utf-8", None), ("list", 201, "application/json", []),
    ("no_sid", 201, "application/json", {}), ("redirect", 302, "text/html; charset=utf-8", None),
    ("truncated", 201, "application/json", None)])
def test_fault_odd_preset_answers_its_odd_body(sandbox: TwilioSandbox, preset: str, status: int, content_type: str,
                                               body: Any) -> None:
    sandbox.inject_fault("odd", preset=preset)

    response = create(sandbox, "Messages", SMS, allow_redirects=False)

    assert (response.status_code, response.headers["Content-Type"]) == (status, content_type)
    if body is not None:
        assert response.json() == body
    elif preset == "html":
        assert response.text.startswith("<!DOCTYPE html>")
    elif preset == "redirect":
        assert response.headers["Location"] == "https://www.twilio.com/login"
    else:
        assert response.text.startswith('{"sid": "SM')
        with pytest.raises(ValueError):
            json.loads(response.text)
    assert sandbox.messages == []


@pytest.mark.parametrize(("kind", "options", "problem"), [
    ("bogus", {}, "unknown fault kind"), ("odd", {}, "preset"), ("odd", {"preset": "weird"}, "preset"),
    ("status", {"times": 0}, "times"), ("status", {"status": 99}, "status"), ("trickle", {"chunk_bytes": 0}, "chunk")])
def test_fault_bad_arguments_raise_value_error(sandbox: TwilioSandbox, kind: str, options: dict[str, Any],
                                               problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        sandbox.inject_fault(kind, **options)

    assert sandbox.faults == []
