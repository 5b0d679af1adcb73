"""Tests of the Prism contract harness (tests/contract/prism.py) and of what
Prism 5.14.2 + Twilio's api_v2010 spec accept from the real `twilio` SDK."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import requests
from twilio.base import values
from twilio.base.exceptions import TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

from . import prism as harness
from .prism import prism_twilio  # noqa: F401  (session fixture)

ACCOUNT_SID = "AC0123456789abcdef0123456789abcdef"
AUTH_TOKEN = "0123456789abcdef0123456789abcdef"
MESSAGING_SERVICE_SID = "MG0123456789abcdef0123456789abcdef"
MESSAGES_PATH = f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
CALLS_PATH = f"/2010-04-01/Accounts/{ACCOUNT_SID}/Calls.json"


class PrismHttpClient(TwilioHttpClient):
    """Sends the SDK's requests to Prism: origin rewritten, path unchanged."""

    def __init__(self, base_url: str) -> None:
        super().__init__()
        self.base_url = base_url.rstrip("/")
        self.sent_urls: list[str] = []

    def request(self, method, url, *args, **kwargs):  # type: ignore[override]
        if url.startswith(harness.TWILIO_ORIGIN + "/"):
            url = self.base_url + url[len(harness.TWILIO_ORIGIN) :]
        self.sent_urls.append(url)
        return super().request(method, url, *args, **kwargs)


@pytest.fixture
def prism(prism_twilio):  # noqa: F811
    prism_twilio.mark()
    return prism_twilio


@pytest.fixture
def client(prism) -> Client:
    return Client(ACCOUNT_SID, AUTH_TOKEN, http_client=PrismHttpClient(prism.base_url))


def _only_request(prism) -> harness.PrismRequestLog:
    reqs = prism.requests()
    assert len(reqs) == 1, [r.lines for r in reqs]
    return reqs[0]


def _messages(problems) -> list[str]:
    return [p.message for p in problems]


# --------------------------------------------------------------------------
# Valid SDK calls: no validation problems
# --------------------------------------------------------------------------


def test_sdk_messages_create_with_from_media_and_callback_no_validation_errors(prism, client):
    msg = client.messages.create(
        to="+15558675310",
        from_="+15017122661",
        body="Your order is ready",
        media_url=["https://example.com/a.png", "https://example.com/b.jpg"],
        status_callback="https://example.com/twilio/status",
    )

    assert prism.validation_errors() == []
    req = _only_request(prism)
    assert (req.method, req.path, req.status) == ("POST", MESSAGES_PATH, 201)
    assert msg.sid.startswith("SM") and len(msg.sid) == 34
    assert msg.status == "queued"


def test_sdk_messages_create_with_messaging_service_no_validation_errors(prism, client):
    msg = client.messages.create(
        messaging_service_sid=MESSAGING_SERVICE_SID, to="+15558675310", body="Hello"
    )

    assert prism.validation_errors() == []
    assert _only_request(prism).status == 201
    assert msg.sid.startswith("SM")


def test_sdk_calls_create_with_status_callback_events_no_validation_errors(prism, client):
    call = client.calls.create(
        to="+15558675310",
        from_="+15017122661",
        url="https://example.com/twiml/voice",
        method="POST",
        status_callback="https://example.com/twilio/call-status",
        status_callback_method="POST",
        status_callback_event=["initiated", "ringing", "answered", "completed"],
    )

    assert prism.validation_errors() == []
    req = _only_request(prism)
    assert (req.method, req.path, req.status) == ("POST", CALLS_PATH, 201)
    assert call.sid.startswith("CA") and len(call.sid) == 34


def test_sdk_message_instance_prism_example_parses_dates_and_nulls(prism, client):
    msg = client.messages.create(to="+15558675310", from_="+15017122661", body="x")

    assert isinstance(msg.date_created, dt.datetime)
    assert msg.date_created.tzinfo is not None  # RFC 2822 "Thu, 24 Aug 2023 05:01:45 +0000"
    assert msg.date_created == dt.datetime(2023, 8, 24, 5, 1, 45, tzinfo=dt.timezone.utc)
    assert msg.price is None and msg.error_code is None
    assert msg.num_media == "0"  # strings in Twilio's JSON, kept as str by the SDK


def test_sdk_messages_create_prism_returns_static_example_not_echo(prism, client):
    msg = client.messages.create(to="+15558675310", from_="+15017122661", body="mine")

    # Quirk: Prism returns the spec's first example ("create") verbatim.
    assert msg.to == "+14155552345"
    assert msg.body != "mine"
    assert msg.sid == "SMaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
    assert msg.account_sid == "ACaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"  # not ACCOUNT_SID


def test_sdk_http_client_rewrites_origin_keeps_path(prism):
    http = PrismHttpClient(prism.base_url)
    Client(ACCOUNT_SID, AUTH_TOKEN, http_client=http).messages.create(to="+15558675310", body="x")

    assert http.sent_urls == [prism.base_url + MESSAGES_PATH]


# --------------------------------------------------------------------------
# Invalid requests: 4xx + detected by the harness
# --------------------------------------------------------------------------


def test_sdk_messages_create_without_to_raises_422_and_is_detected(prism, client):
    with pytest.raises(TwilioRestException) as excinfo:
        client.messages.create(to=values.unset, from_="+15017122661", body="no recipient")

    assert excinfo.value.status == 422
    problems = prism.validation_errors()
    assert _messages(problems) == ["Request body must have required property 'To'"]
    assert problems[0].kind == "request" and problems[0].severity == "error"
    assert (problems[0].method, problems[0].path) == ("POST", MESSAGES_PATH)


def test_raw_post_without_body_returns_422_and_is_detected(prism):
    # Needs the patch_required_request_bodies work-around (see the unpatched test).
    resp = requests.post(prism.base_url + MESSAGES_PATH, auth=(ACCOUNT_SID, AUTH_TOKEN), timeout=10)

    assert resp.status_code == 422
    assert resp.headers["content-type"].startswith("application/problem+json")
    assert resp.json()["validation"][0]["message"] == "Body parameter is required"
    assert _messages(prism.validation_errors()) == ["Body parameter is required"]


def test_raw_post_form_without_required_param_returns_422_and_is_detected(prism):
    resp = requests.post(
        prism.base_url + MESSAGES_PATH, auth=(ACCOUNT_SID, AUTH_TOKEN), data={"Body": "hi"}, timeout=10
    )

    assert resp.status_code == 422
    assert resp.json()["validation"][0]["message"] == "Request body must have required property 'To'"
    assert _messages(prism.validation_errors()) == ["Request body must have required property 'To'"]


def test_raw_post_json_body_returns_415_and_is_detected(prism):
    resp = requests.post(
        prism.base_url + MESSAGES_PATH, auth=(ACCOUNT_SID, AUTH_TOKEN), json={"To": "+15558675310"}, timeout=10
    )

    assert resp.status_code == 415
    assert _messages(prism.validation_errors()) == ["Supported content types: application/x-www-form-urlencoded"]


def test_raw_post_bad_account_sid_and_types_returns_422_with_each_problem(prism):
    resp = requests.post(
        prism.base_url + "/2010-04-01/Accounts/ACnot-a-sid/Messages.json",
        auth=(ACCOUNT_SID, AUTH_TOKEN),
        data={"To": "+15558675310", "ValidityPeriod": "soon", "StatusCallback": "not a url"},
        timeout=10,
    )

    assert resp.status_code == 422
    msgs = _messages(prism.validation_errors())
    assert "Request path parameter accountsid must match pattern \"^AC[0-9a-fA-F]{32}$\"" in msgs
    assert "Request body property ValidityPeriod must be integer" in msgs
    assert 'Request body property StatusCallback must match format "uri"' in msgs


def test_raw_post_without_auth_returns_401_and_is_detected(prism):
    resp = requests.post(prism.base_url + MESSAGES_PATH, data={"To": "+15558675310"}, timeout=10)

    assert resp.status_code == 401
    assert resp.headers["www-authenticate"] == 'Basic realm="*"'
    [problem] = prism.validation_errors()
    assert (problem.kind, problem.message) == ("security", "Invalid security scheme used")


def test_raw_post_with_malformed_basic_auth_returns_401(prism):
    # Prism only checks the shape: "Basic base64(user:password)" with exactly one ':'.
    resp = requests.post(
        prism.base_url + MESSAGES_PATH,
        headers={"Authorization": "Basic bm8tY29sb24="},  # base64("no-colon")
        data={"To": "+15558675310"},
        timeout=10,
    )

    assert resp.status_code == 401
    assert [p.kind for p in prism.validation_errors()] == ["security"]


def test_raw_post_with_any_wellformed_basic_auth_is_accepted(prism):
    # Credentials are not checked, nor is the user compared with the path's AccountSid.
    resp = requests.post(
        prism.base_url + MESSAGES_PATH, auth=("someone", "anything"), data={"To": "+1"}, timeout=10
    )

    assert resp.status_code == 201
    assert prism.validation_errors() == []


def test_raw_post_unknown_path_returns_404_and_is_detected_as_routing(prism):
    resp = requests.post(
        prism.base_url + f"/2010-04-01/Accounts/{ACCOUNT_SID}/Nope.json",
        auth=(ACCOUNT_SID, AUTH_TOKEN),
        timeout=10,
    )

    assert resp.status_code == 404
    [problem] = prism.validation_errors()
    assert problem.kind == "routing"
    assert "NO_PATH_MATCHED_ERROR" in problem.message


def test_raw_post_phone_format_and_unknown_params_are_not_validated(prism):
    # Quirk: format "phone-number" is unknown to Prism (ignored) and the body
    # schemas allow additional properties, so these pass.
    resp = requests.post(
        prism.base_url + MESSAGES_PATH,
        auth=(ACCOUNT_SID, AUTH_TOKEN),
        data={"To": "not-a-phone", "From": "x", "Bogus": "1"},
        timeout=10,
    )

    assert resp.status_code == 201
    assert prism.validation_errors() == []


# --------------------------------------------------------------------------
# Repeated form keys (arrays) -- Prism work-around
# --------------------------------------------------------------------------


def test_patched_spec_repeated_media_url_is_accepted(prism):
    resp = requests.post(
        prism.base_url + MESSAGES_PATH,
        auth=(ACCOUNT_SID, AUTH_TOKEN),
        data=[("To", "+15558675310"), ("MediaUrl", "https://e.x/a.png"), ("MediaUrl", "https://e.x/b.png")],
        timeout=10,
    )

    assert resp.status_code == 201
    assert prism.validation_errors() == []


def test_patched_spec_repeated_media_url_invalid_last_value_is_detected(prism):
    resp = requests.post(
        prism.base_url + MESSAGES_PATH,
        auth=(ACCOUNT_SID, AUTH_TOKEN),
        data=[("To", "+15558675310"), ("MediaUrl", "https://e.x/a.png"), ("MediaUrl", "not a uri")],
        timeout=10,
    )

    assert resp.status_code == 422
    assert _messages(prism.validation_errors()) == ['Request body property MediaUrl.0 must match format "uri"']


def test_patched_spec_repeated_media_url_only_last_value_is_validated(prism):
    # Known Prism limitation (form parser keeps the last value of a repeated
    # key). If this starts failing, Prism got fixed: tighten the harness.
    resp = requests.post(
        prism.base_url + MESSAGES_PATH,
        auth=(ACCOUNT_SID, AUTH_TOKEN),
        data=[("To", "+15558675310"), ("MediaUrl", "not a uri"), ("MediaUrl", "https://e.x/b.png")],
        timeout=10,
    )

    assert resp.status_code == 201
    assert prism.validation_errors() == []


def test_unpatched_spec_rejects_repeated_form_array_accepts_empty_body_and_stops_cleanly(prism_twilio, tmp_path):  # noqa: F811
    node, _ = harness.require_node_tooling()
    install = harness.ensure_npm_packages()
    server = harness.PrismServer(
        install.twilio_api_v2010,  # original spec, no encoding work-around
        prism_entry=install.prism_entry,
        node=node,
        log_path=tmp_path / "prism-unpatched.log",
    )
    with server:
        pid = server.pid
        resp = requests.post(
            server.base_url + MESSAGES_PATH,
            auth=(ACCOUNT_SID, AUTH_TOKEN),
            data=[("To", "+15558675310"), ("MediaUrl", "https://e.x/a.png"), ("MediaUrl", "https://e.x/b.png")],
            timeout=10,
        )
        assert resp.status_code == 422
        assert _messages(server.validation_errors()) == ["Request body property MediaUrl must be array"]

        server.mark()
        empty = requests.post(server.base_url + MESSAGES_PATH, auth=(ACCOUNT_SID, AUTH_TOKEN), timeout=10)
        assert empty.status_code == 201  # requestBody.required is absent in Twilio's spec
        assert server.validation_errors() == []

    assert server.proc is None
    with pytest.raises(ProcessLookupError):
        os.killpg(pid, 0)  # whole process group is gone: no orphan node


# --------------------------------------------------------------------------
# Harness API
# --------------------------------------------------------------------------


def test_prism_server_start_with_missing_spec_raises_with_log_tail(prism_twilio, tmp_path):  # noqa: F811
    node, _ = harness.require_node_tooling()
    install = harness.ensure_npm_packages()
    server = harness.PrismServer(
        tmp_path / "missing.json", prism_entry=install.prism_entry, node=node,
        log_path=tmp_path / "prism.log", startup_timeout=30,
    )

    with pytest.raises(harness.PrismStartError, match="missing.json"):
        server.start()
    assert server.proc is None


_ORPHAN_SCRIPT = """
import importlib.util, sys, time
from pathlib import Path
spec = importlib.util.spec_from_file_location("prism_harness", sys.argv[1])
h = sys.modules["prism_harness"] = importlib.util.module_from_spec(spec)
spec.loader.exec_module(h)
install = h.ensure_npm_packages()
s = h.PrismServer(install.twilio_api_v2010, prism_entry=install.prism_entry,
                  node=sys.argv[2], log_path=Path(sys.argv[3]))
s.start()
print(s.pid, flush=True)
time.sleep(60)
"""


def test_prism_server_parent_killed_hard_prism_group_exits(prism_twilio, tmp_path):  # noqa: F811
    node, _ = harness.require_node_tooling()
    parent = subprocess.Popen(
        [sys.executable, "-c", _ORPHAN_SCRIPT, harness.__file__, node, str(tmp_path / "p.log")],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        prism_pid = int(parent.stdout.readline())
        os.killpg(prism_pid, 0)  # running
    finally:
        parent.kill()  # SIGKILL: no teardown, no atexit
        parent.wait()

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.killpg(prism_pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        os.killpg(prism_pid, signal.SIGKILL)
        pytest.fail("Prism outlived its SIGKILLed parent (PR_SET_PDEATHSIG not effective)")


def test_prism_fixture_api_exposes_base_url_log_and_startup_time(prism_twilio):  # noqa: F811
    assert prism_twilio.base_url.startswith("http://127.0.0.1:")
    assert prism_twilio.log_path.is_file()
    assert "Prism is listening on" in prism_twilio.log_text()
    assert prism_twilio.startup_seconds is not None and prism_twilio.startup_seconds > 0
    assert prism_twilio.spec.name == f"twilio_api_v2010.prism-v{harness._SPEC_PATCH_VERSION}.json"


def test_prism_mark_hides_problems_logged_before_it(prism_twilio):  # noqa: F811
    requests.post(prism_twilio.base_url + MESSAGES_PATH, timeout=10)  # 401
    assert prism_twilio.validation_errors() != []

    prism_twilio.mark()
    requests.post(prism_twilio.base_url + MESSAGES_PATH, auth=(ACCOUNT_SID, AUTH_TOKEN), data={"To": "+1"}, timeout=10)

    assert prism_twilio.validation_errors() == []
    assert [r.status for r in prism_twilio.requests()] == [201]


def test_ensure_npm_packages_when_installed_does_not_run_npm(prism_twilio, monkeypatch):  # noqa: F811
    def boom(*args, **kwargs):
        raise AssertionError("npm install must not run when the pinned versions are present")

    monkeypatch.setattr(harness, "_run_npm_install", boom)
    started = time.monotonic()
    install = harness.ensure_npm_packages()

    assert install.ran_npm is False
    assert time.monotonic() - started < 1.0
    assert install.prism_entry.is_file()
    assert install.twilio_api_v2010.is_file()
    for package, version in harness.PINNED_PACKAGES.items():
        pkg = json.loads((install.cache_dir / "node_modules" / package / "package.json").read_text())
        assert pkg["version"] == version


def test_patch_form_array_encodings_on_twilio_spec_adds_form_explode_once(prism_twilio):  # noqa: F811
    spec = json.loads(harness.ensure_npm_packages().twilio_api_v2010.read_text())

    changed = harness.patch_form_array_encodings(spec)

    assert "POST /2010-04-01/Accounts/{AccountSid}/Messages.json MediaUrl" in changed
    assert "POST /2010-04-01/Accounts/{AccountSid}/Calls.json StatusCallbackEvent" in changed
    content = spec["paths"]["/2010-04-01/Accounts/{AccountSid}/Messages.json"]["post"]["requestBody"]["content"]
    assert content["application/x-www-form-urlencoded"]["encoding"]["MediaUrl"] == {
        "style": "form",
        "explode": True,
        "allowReserved": True,
    }
    assert harness.patch_form_array_encodings(spec) == []


def test_patch_required_request_bodies_on_twilio_spec_marks_bodies_with_required_props(prism_twilio):  # noqa: F811
    spec = json.loads(harness.ensure_npm_packages().twilio_api_v2010.read_text())

    changed = harness.patch_required_request_bodies(spec)

    assert "POST /2010-04-01/Accounts/{AccountSid}/Messages.json" in changed
    assert "POST /2010-04-01/Accounts/{AccountSid}/Calls.json" in changed
    assert spec["paths"]["/2010-04-01/Accounts/{AccountSid}/Messages.json"]["post"]["requestBody"]["required"] is True
    assert harness.patch_required_request_bodies(spec) == []


def test_require_node_tooling_without_npm_and_no_ci_skips(monkeypatch):
    monkeypatch.setattr(harness.shutil, "which", lambda name: None)
    monkeypatch.delenv("CI", raising=False)

    with pytest.raises(pytest.skip.Exception, match="npm not found"):
        harness.require_node_tooling()


def test_require_node_tooling_without_npm_and_ci_set_fails(monkeypatch):
    monkeypatch.setattr(harness.shutil, "which", lambda name: None if name == "npm" else "/usr/bin/node")
    monkeypatch.setenv("CI", "true")

    with pytest.raises(pytest.fail.Exception, match="npm not found"):
        harness.require_node_tooling()


_SAMPLE_LOG = """\
node .../dist/index.js mock -h 127.0.0.1 -p 4010 --errors spec.json
[8:48:35 PM] › [CLI] …  awaiting  Starting Prism…
[8:48:36 PM] › [CLI] ℹ  info      POST       http://127.0.0.1:4010/2010-04-01/Accounts.json
[8:48:36 PM] › [CLI] ▶  start     Prism is listening on http://127.0.0.1:4010
[8:48:38 PM] › [HTTP SERVER] post /2010-04-01/Accounts/AC1/Messages.json ℹ  info      Request received
[8:48:38 PM] ›     [NEGOTIATOR] ℹ  info      Request contains an accept header: */*
[8:48:38 PM] ›     [VALIDATOR] ⚠  warning   Request did not pass the validation rules
[8:48:38 PM] ›     [VALIDATOR] ✖  error     Request body must have required property 'To'
[8:48:38 PM] › [HTTP SERVER] post /2010-04-01/Accounts/AC1/Messages.json ✖  error     Request terminated with error: https://stoplight.io/prism/errors#UNPROCESSABLE_ENTITY: Invalid request
[8:49:00 PM] › [HTTP SERVER] post /2010-04-01/Accounts/AC1/Calls.json ℹ  info      Request received
[8:49:00 PM] ›     [NEGOTIATOR] ℹ  info      Request contains an accept header: */*
[8:49:00 PM] ›     [VALIDATOR] ✔  success   The request passed the validation rules. Looking for the best response
[8:49:00 PM] ›     [NEGOTIATOR] ✔  success   Found a compatible content for */*
[8:49:00 PM] ›     [NEGOTIATOR] ✔  success   Responding with the requested status code 201
[8:49:00 PM] ›     [NEGOTIATOR] ℹ  info      > Responding with "201"
[8:49:01 PM] › [HTTP SERVER] get / ℹ  info      Request received
[8:49:01 PM] › [HTTP SERVER] get / ✖  error     Request terminated with error: https://stoplight.io/prism/errors#NO_PATH_MATCHED_ERROR: Route not resolved, no path matched
[8:49:02 PM] › [HTTP SERVER] post /x ℹ  info      Request received
[8:49:02 PM] ›     [VALIDATOR] ⚠  warning   Violation: response.body.sid must match pattern
"""


def test_parse_prism_log_sample_splits_requests_and_classifies_problems():
    reqs = harness.parse_prism_log(_SAMPLE_LOG)

    assert [(r.method, r.path, r.status, r.complete) for r in reqs] == [
        ("POST", "/2010-04-01/Accounts/AC1/Messages.json", None, True),
        ("POST", "/2010-04-01/Accounts/AC1/Calls.json", 201, True),
        ("GET", "/", None, True),
        ("POST", "/x", None, False),
    ]
    assert [str(p) for r in reqs for p in r.problems] == [
        "POST /2010-04-01/Accounts/AC1/Messages.json: [request/error] Request body must have required property 'To'",
        "GET /: [routing/error] https://stoplight.io/prism/errors#NO_PATH_MATCHED_ERROR: Route not resolved, no path matched",
        "POST /x: [response/warning] Violation: response.body.sid must match pattern",
    ]


def test_parse_prism_log_ansi_colored_lines_are_parsed():
    colored = (
        "\x1b[90m[8:48:38 PM]\x1b[39m › \x1b[1m[HTTP SERVER]\x1b[22m post /a \x1b[34mℹ\x1b[39m  info      Request received\n"
        "[8:48:38 PM] ›     [VALIDATOR] \x1b[31m✖\x1b[39m  \x1b[31merror\x1b[39m     Bad thing\n"
    )

    [req] = harness.parse_prism_log(colored)

    assert [p.message for p in req.problems] == ["Bad thing"]
