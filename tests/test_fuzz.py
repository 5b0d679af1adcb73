"""Schemathesis fuzz of the running app: openapi.yaml drives >= 1000 requests at send_sms and make_call.

The app runs under the local Functions host (function key required) against the Twilio sandbox, both on
127.0.0.1:0. Every response must be documented (status, content type, body schema, headers) and none may be a
5xx; every REST request the sandbox receives must belong to a 201/422/429/502/504 answer and carry only
validated input (valid E.164 numbers, https URLs, bounded text), and any other answer must have sent nothing.
Totals go to stdout and to .cache/fuzz-summary.json (for the README's Reliability section).

Beside the generated requests: edge requests schemathesis does not make (methods, keys, content types, sizes),
every upstream failure (422/429/502/503/504) through the host, the TwiML of every call created (fetched signed,
as Twilio does), and JSON that Python's parser refuses in unusual ways.
"""

from __future__ import annotations

import collections
import json
import logging
import re
import socket
import time
import xml.etree.ElementTree as ET
from typing import Any, Iterator
from urllib.parse import parse_qs, parse_qsl, urlsplit

import pytest
import requests

schemathesis = pytest.importorskip("schemathesis")
hypothesis = pytest.importorskip("hypothesis")

from hypothesis import HealthCheck, Phase, example, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from schemathesis import GenerationMode  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import (  # noqa: E402
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.conftest import ACCOUNT_SID, AUTH_TOKEN, RECIPIENT, ROOT, SENDER, sign  # noqa: E402

SPEC = ROOT / "openapi.yaml"
SUMMARY = ROOT / ".cache" / "fuzz-summary.json"
FUNCTION_KEY = "fuzz-function-key-7b0e"
OPERATIONS = ("/send_sms", "/make_call")
FORM_TYPE = "application/x-www-form-urlencoded"
MODES = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
EXAMPLES_PER_MODE = 300  # per operation and mode: 2 x 2 x 300 = 1200 generated requests
MIN_REQUESTS = 1000
WEBHOOKS = (("/voice_webhook", "GET"), ("/voice_webhook", "POST"), ("/sms_webhook", "GET"), ("/sms_webhook", "POST"))
WEBHOOK_EXAMPLES_PER_MODE = 50  # per webhook operation and mode: 4 x 2 x 50 = 400 requests
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
          response_headers_conformance]
# Answers that may follow a Twilio REST request; every other answer must have sent nothing to Twilio.
REACHES_TWILIO = {201, 422, 429, 502, 504}
MAX_FAILURES_SHOWN = 5

# format: phone -> mostly numbers the app accepts (so positive cases reach the sandbox), including Twilio's magic
# test numbers that the sandbox answers with 422, plus well-shaped numbers that may or may not be valid.
VALID_NUMBERS = [RECIPIENT, "+14155550199", "+12125550123", "+447911123456", "+33612345678", "+4915123456789",
                 SENDER]
MAGIC_NUMBERS = [f"+1500555000{digit}" for digit in "1234789"]
PHONE = st.one_of(
    st.sampled_from(VALID_NUMBERS),
    st.sampled_from(MAGIC_NUMBERS),
    st.from_regex(r"\A\+1[2-9]\d\d[2-9]\d{6}\Z"),
    st.from_regex(r"\A\+[1-9]\d{6,14}\Z"),
)
E164 = re.compile(r"\+[1-9]\d{6,14}")
# Characters XML 1.0 cannot carry (a fixed app may drop them from what <Say> speaks).
XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


@pytest.fixture
def live(monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> Iterator[tuple[Any, Any]]:
    """The Twilio sandbox and the local host serving the app with a function key, both on 127.0.0.1:0."""
    if request.config.pluginmanager.has_plugin("logging"):
        # A thousand requests' INFO/DEBUG lines would bury a failure report.
        request.getfixturevalue("caplog").set_level(logging.WARNING)
    from devtools.local_host import LocalHost
    from devtools.sandbox import TwilioSandbox

    # step_delay: created messages and calls never progress, so the sandbox never calls back to the
    # status_callback URLs the fuzzer invents (they must not leave the machine); calls are checked below.
    sandbox = TwilioSandbox(account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN, api_keys={}, host="127.0.0.1",
                            port=0, step_delay=3600).start()
    monkeypatch.setenv("TWILIO_ACCOUNT_SID", ACCOUNT_SID)
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", AUTH_TOKEN)
    monkeypatch.setenv("TWILIO_PHONE_NUMBER", SENDER)
    monkeypatch.setenv("TWILIO_API_BASE_URL", sandbox.base_url)
    monkeypatch.setenv("TWILIO_HTTP_TIMEOUT_SECONDS", "5")
    monkeypatch.setenv("BLOCKED_NUMBERS", "+14155550199, anonymous")  # webhooks parse every From against it
    host = LocalHost(ROOT, host="127.0.0.1", port=0, function_key=FUNCTION_KEY).start()
    try:
        yield sandbox, host
    finally:
        host.stop()
        sandbox.stop()


def twilio_form_problems(path: str, form: dict[str, list[str]], voice_webhook: str) -> list[str]:
    """What is wrong with a create request the app sent to Twilio (empty: only validated input)."""
    import phonenumbers

    problems = []

    def first(name: str) -> str | None:
        values = form.get(name) or []
        if len(values) > 1 and name != "MediaUrl":
            problems.append(f"{name} sent {len(values)} times")
        return values[0] if values else None

    for name in ("To", "From"):
        number = first(name)
        if number is None:
            if name == "To" or path.endswith("/Calls.json"):
                problems.append(f"no {name}")
            continue
        if not E164.fullmatch(number) or not phonenumbers.is_valid_number(phonenumbers.parse(number)):
            problems.append(f"{name}={number!r} is not a valid E.164 number")
    urls = list(form.get("MediaUrl", [])) + [u for u in [first("StatusCallback")] if u is not None]
    for url in urls:
        parts = urlsplit(url)
        if parts.scheme != "https" or not parts.hostname or len(url) > 2048 or any(c.isspace() for c in url):
            problems.append(f"URL {url!r} is not an absolute https URL")
    if path.endswith("/Messages.json"):
        body = first("Body")
        if len(form.get("MediaUrl", [])) > 10:
            problems.append("more than 10 MediaUrl")
        if body is not None and (len(body) > 1600 or body != body.strip() or not body or "\x00" in body):
            problems.append(f"Body of {len(body)} characters is not validated text")
        if body is None and not form.get("MediaUrl"):
            problems.append("neither Body nor MediaUrl")
    elif path.endswith("/Calls.json"):
        url = first("Url") or ""
        if not url.startswith(voice_webhook):
            problems.append(f"Url {url!r} is not this app's voice_webhook")
        query = parse_qs(urlsplit(url).query)
        message = (query.get("Message") or [""])[0]
        if len(message) > 1000 or "\x00" in message:
            problems.append("Message is not validated text")
    else:
        problems.append(f"unexpected REST request to {path}")
    return problems


def test_fuzz_mobile_api_with_schemathesis(live: tuple[Any, Any]) -> None:
    """>= 1000 generated requests (positive and negative) at send_sms and make_call: documented, no 5xx, and
    only validated input reaches Twilio; then edge requests and the TwiML of every call created."""
    sandbox, host = live
    api = host.base_url + "/api"
    voice_webhook = api + "/voice_webhook"
    schemathesis.openapi.format("phone", PHONE)
    try:
        schema = schemathesis.openapi.from_path(SPEC)
        session = requests.Session()
        started = time.monotonic()
        results: list[dict[str, Any]] = []
        failures: list[str] = []
        calls_created: list[dict[str, str]] = []

        for path in OPERATIONS:
            operation = schema[path]["POST"]
            for mode in MODES:

                @settings(max_examples=EXAMPLES_PER_MODE, derandomize=True, database=None, deadline=None,
                          phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck),
                          print_blob=False)
                @given(case=operation.as_strategy(generation_mode=mode))
                def fuzz(case: Any) -> None:
                    before = len(sandbox.requests)
                    try:
                        response = case.call(base_url=api, session=session,
                                             headers={"x-functions-key": FUNCTION_KEY}, timeout=30)
                    except requests.RequestException as exc:
                        failures.append(f"{path} {mode}: {type(exc).__name__}: {exc}\n{case.as_curl_command()}")
                        return
                    sent = sandbox.requests[before:]
                    status = response.status_code
                    content_type = ", ".join(response.headers.get("content-type", []))
                    code = None
                    if "json" in content_type:
                        try:
                            error = response.json().get("error")
                            code = error.get("code") if isinstance(error, dict) else error
                        except (ValueError, AttributeError):
                            pass
                    results.append({"operation": path.strip("/"), "mode": str(mode), "status": status,
                                    "media_type": case.media_type, "code": code, "twilio_requests": len(sent)})
                    where = (f"\n  request: {case.as_curl_command(base_url=api)}\n"
                             f"  response: {status} {content_type} {response.text[:400]!r}")
                    try:
                        case.validate_response(response, checks=CHECKS, headers={"x-functions-key": FUNCTION_KEY})
                    except (Exception, BaseExceptionGroup) as exc:  # noqa: BLE001 - collected, reported together below
                        failures.append(f"{path} {mode}: {str(exc).strip()[:1500]}{where}")
                    if status not in REACHES_TWILIO and sent:
                        failures.append(f"{path} {mode}: a {status} answer sent {len(sent)} Twilio request(s){where}")
                    if status in (201, 422) and len(sent) != 1:
                        failures.append(f"{path} {mode}: a {status} answer sent {len(sent)} Twilio requests{where}")
                    for entry in sent:
                        problems = twilio_form_problems(entry["path"], entry["form"], voice_webhook)
                        if problems:
                            failures.append(f"{path} {mode}: invalid input reached Twilio: {problems}{where}")
                        if status == 201 and entry["path"].endswith("/Calls.json"):
                            calls_created.append({"url": entry["form"]["Url"][0], "to": entry["form"]["To"][0],
                                                  "from": entry["form"]["From"][0]})
                    if sent:
                        sandbox.reset()  # keeps the request log short; the count before each request is then 0

                fuzz()
        fuzz_seconds = time.monotonic() - started
        edges = probe_edges(schema, session, api, sandbox, failures)
        twiml = check_voice_webhook_serves_each_call(schema, session, calls_created, failures)
    finally:
        from schemathesis.specs.openapi.formats import unregister_string_format

        unregister_string_format("phone")  # leave no fuzz-only strategy registered

    summary = summarise(results, edges, failures, fuzz_seconds, twiml)
    write_summary(summary)

    assert summary["requests"] >= MIN_REQUESTS, summary
    assert summary["server_errors_5xx"] == 0, summary["by_status"]
    assert summary["by_status"].get("201", 0) >= 0.1 * summary["requests"], "too few generated requests got 201"
    assert summary["by_status"].get("401", 0) == 0, "the function key was not sent"
    assert not failures, f"{len(failures)} fuzz failure(s); first {MAX_FAILURES_SHOWN}:\n\n" + "\n\n".join(
        failures[:MAX_FAILURES_SHOWN])


def edge_requests(api: str, path: str) -> list[tuple[str, str, dict[str, str], bytes, int]]:
    """Requests schemathesis does not generate: methods, keys, content types, sizes (with the status expected)."""
    key = {"x-functions-key": FUNCTION_KEY}
    valid = json.dumps({"to": RECIPIENT, "body": "edge"} if path == "/send_sms" else {"to": RECIPIENT}).encode()
    url = api + path
    cases = [(method, url, key, b"", 405) for method in ("GET", "PUT", "DELETE", "PATCH")]
    cases += [
        ("POST", url, {"content-type": "application/json"}, valid, 401),
        ("POST", url, {"content-type": "application/json", "x-functions-key": "wrong"}, valid, 401),
        ("POST", url + "?code=wrong", {"content-type": "application/json"}, valid, 401),
        ("POST", url + "?code=" + FUNCTION_KEY, {"content-type": "application/json"}, valid, 201),
        ("POST", url, {**key, "content-type": "application/json; charset=utf-8"}, valid, 201),
        ("POST", url, {**key, "content-type": "application/merge-patch+json"}, valid, 201),
        ("POST", url, {**key, "content-type": "text/plain"}, valid, 415),
        ("POST", url, {**key, "content-type": "application/xml"}, b"<to>+14155550123</to>", 415),
        ("POST", url, {**key, "content-type": "multipart/form-data; boundary=x"},
         b'--x\r\nContent-Disposition: form-data; name="to"\r\n\r\n+14155550123\r\n--x--\r\n', 415),
        ("POST", url, key, valid, 415),  # no content type
        ("POST", url, {**key, "content-type": "application/json"}, b"", 400),
        ("POST", url, {**key, "content-type": "application/json"}, b"[1, 2]", 400),
        ("POST", url, {**key, "content-type": "application/json"}, b"\xff\xfe{}", 400),
        ("POST", url, {**key, "content-type": "application/json"}, b'{"to": "' + b"9" * 70_000 + b'"}', 413),
        ("POST", url, {**key, "content-type": "application/x-www-form-urlencoded"},
         b"to=%2B14155550123&to=%2B14155550123&body=x&message=x", 400),
    ]
    return cases


def probe_edges(schema: Any, session: requests.Session, api: str, sandbox: Any, failures: list[str]) -> list[dict]:
    """Send the edge requests; each answer must be the expected one, documented, and send nothing unless created."""
    rows = []
    for path in OPERATIONS:
        operation = schema[path]["POST"]
        for method, url, headers, body, expected in edge_requests(api, path):
            before = len(sandbox.requests)
            response = session.request(method, url, headers=headers, data=body, timeout=30)
            sent = len(sandbox.requests) - before
            rows.append({"operation": path.strip("/"), "status": response.status_code, "twilio_requests": sent})
            where = f"{method} {url.replace(FUNCTION_KEY, '<key>')} {headers.get('content-type')!r} {body[:60]!r} -> " \
                    f"{response.status_code} {response.headers.get('content-type')} {response.text[:300]!r}"
            try:
                assert response.status_code == expected, f"expected {expected}"
                operation.validate_response(response)
                assert (sent > 0) == (response.status_code in REACHES_TWILIO), f"{sent} Twilio request(s)"
                if response.status_code == 405:
                    assert response.headers.get("Allow") == "POST", "no Allow: POST"
            except (Exception, BaseExceptionGroup) as exc:  # noqa: BLE001 - collected, reported together
                failures.append(f"edge request: {type(exc).__name__}: {str(exc)[:1000]}\n  {where}")
            if sent:
                sandbox.reset()
    return rows


class _Signed(dict):
    """Form parameters as RequestValidator signs them (every value of a repeated key)."""

    def getall(self, name: str) -> list[str]:
        return self[name]


def fuzz_webhooks(schema: Any, session: requests.Session, api: str, sandbox: Any, failures: list[str]) -> list[dict]:
    """Generated webhook requests: positive ones signed as Twilio signs them (must be 200 TwiML), the rest as
    generated, i.e. unsigned or wrongly signed (must be 403, or 413 for an oversized body); all documented."""
    rows: list[dict[str, Any]] = []
    for path, method in WEBHOOKS:
        operation = schema[path][method]
        for mode in MODES:

            @settings(max_examples=WEBHOOK_EXAMPLES_PER_MODE, derandomize=True, database=None, deadline=None,
                      phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck),
                      print_blob=False)
            @given(case=operation.as_strategy(generation_mode=mode))
            def fuzz(case: Any) -> None:
                kwargs = case.as_transport_kwargs(base_url=api)
                prepared = session.prepare_request(requests.Request(**kwargs))
                signed = mode.is_positive and case.media_type in (None, FORM_TYPE)
                if signed:
                    body = prepared.body.decode() if isinstance(prepared.body, bytes) else prepared.body or ""
                    params = _Signed()
                    for key, value in parse_qsl(body, keep_blank_values=True):
                        params.setdefault(key, []).append(value)
                    prepared.headers["X-Twilio-Signature"] = sign(prepared.url, params)
                response = session.send(prepared, timeout=30)
                malformed = response.status_code == 200 and twiml_problem(response, None) is not None
                rows.append({"operation": f"{method} {path.strip('/')}", "status": response.status_code,
                             "signed": signed, "malformed": malformed})
                where = (f"\n  request: {method} {prepared.url} {prepared.headers.get('content-type')} "
                         f"{str(prepared.body)[:300]!r} signed={signed}\n"
                         f"  response: {response.status_code} {response.text[:300]!r}")
                try:
                    case.validate_response(response, checks=CHECKS)
                    expected = {200} if signed else {403, 413}
                    assert response.status_code in expected, f"expected {sorted(expected)}"
                except (Exception, BaseExceptionGroup) as exc:  # noqa: BLE001 - collected, reported together
                    failures.append(f"{method} {path} {mode}: {str(exc).strip()[:1500]}{where}")
                if sandbox.requests:
                    failures.append(f"{method} {path} {mode}: a webhook request reached the Twilio REST API{where}")
                    sandbox.reset()

            fuzz()
    return rows


def fetch_twiml(session: requests.Session, call: dict[str, str]) -> requests.Response:
    """POST to a created call's Url exactly as Twilio does: the call's parameters as a form, signed."""
    params = {"AccountSid": ACCOUNT_SID, "ApiVersion": "2010-04-01", "CallSid": "CA" + "0" * 32,
              "CallStatus": "in-progress", "Direction": "outbound-api", "From": call["from"], "To": call["to"],
              "Called": call["to"], "Caller": call["from"]}
    return session.post(call["url"], data=params, timeout=30, headers={"X-Twilio-Signature": sign(call["url"], params)})


def twiml_problem(response: requests.Response, url: str | None) -> str | None:
    """Why an answer is not well-formed TwiML that says the call's message (None: it is; url None: any TwiML)."""
    try:
        document = ET.fromstring(response.content)
    except ET.ParseError as exc:
        return f"not well-formed XML ({exc})"
    if url is None:
        return None if document.tag == "Response" else "not a <Response>"
    say = document.find("Say")
    if document.tag != "Response" or say is None:
        return "no <Response><Say>"
    message = (parse_qs(urlsplit(url).query).get("Message") or [None])[0]
    expected = None if message is None else XML_INVALID.sub("", message.replace("\r\n", "\n").replace("\r", "\n"))
    if expected is not None and (say.text or "") != expected:
        return f"<Say> speaks {say.text!r}, not the message {message!r}"
    return None


def check_voice_webhook_serves_each_call(schema: Any, session: requests.Session, calls: list[dict[str, str]],
                                         failures: list[str]) -> dict[str, Any]:
    """Fetch each created call's TwiML; the answer must be documented (else a failure) and is parsed as XML.

    Malformed TwiML is counted here and pinned by test_make_call_message_always_yields_well_formed_twiml.
    """
    operation = schema["/voice_webhook"]["POST"]
    documented = 0
    malformed: list[str] = []
    for call in calls:
        response = fetch_twiml(session, call)
        where = f"POST {call['url']} (signed) -> {response.status_code} {response.text[:300]!r}"
        try:
            operation.validate_response(response)
            assert response.status_code == 200, f"status {response.status_code}"
            documented += 1
        except (Exception, BaseExceptionGroup) as exc:  # noqa: BLE001 - collected, reported together
            failures.append(f"voice_webhook for a created call: {type(exc).__name__}: {str(exc)[:1000]}\n  {where}")
            continue
        problem = twiml_problem(response, call["url"])
        if problem:
            malformed.append(f"{problem}: {where}")
    return {"calls_fetched": len(calls), "documented_200": documented,
            "well_formed_twiml": documented - len(malformed), "malformed_twiml": len(malformed),
            "malformed_examples": malformed[:3]}


def write_summary(section: dict[str, Any]) -> None:
    """Merge section into .cache/fuzz-summary.json (each fuzz test owns its keys) and print it."""
    SUMMARY.parent.mkdir(parents=True, exist_ok=True)
    try:
        current = json.loads(SUMMARY.read_text())
    except (OSError, ValueError):
        current = {}
    current.update(section)
    SUMMARY.write_text(json.dumps(current, indent=2, sort_keys=True) + "\n")
    print("\nfuzz summary:", json.dumps({k: v for k, v in section.items() if k != "failures_shown"}, sort_keys=True))


def summarise(results: list[dict[str, Any]], edges: list[dict[str, Any]], failures: list[str], seconds: float,
              twiml: dict[str, Any]) -> dict[str, Any]:
    def count(key: str, rows: list[dict[str, Any]] = results) -> dict[str, int]:
        return dict(sorted(collections.Counter(str(r[key]) for r in rows).items()))

    return {
        "tool": f"schemathesis {schemathesis.__version__}, hypothesis {hypothesis.__version__}",
        "generation": {"modes": [str(m) for m in MODES], "max_examples_per_operation_and_mode": EXAMPLES_PER_MODE,
                       "derandomize": True},
        "requests": len(results),
        "by_operation": count("operation"),
        "by_mode": count("mode"),
        "by_media_type": count("media_type"),
        "by_status": count("status"),
        "by_operation_status": {op: count("status", [r for r in results if r["operation"] == op])
                                for op in sorted({r["operation"] for r in results})},
        "error_codes": dict(sorted(collections.Counter(str(r["code"]) for r in results if r["status"] >= 400).items())),
        "server_errors_5xx": sum(1 for r in results if r["status"] >= 500),
        "created_201": sum(1 for r in results if r["status"] == 201),
        "twilio_requests": sum(r["twilio_requests"] for r in results),
        "twilio_requests_after_rejected_input": sum(r["twilio_requests"] for r in results
                                                    if r["status"] not in REACHES_TWILIO),
        "edge_requests": {"requests": len(edges), "by_status": count("status", edges),
                          "twilio_requests_after_rejected_input": sum(r["twilio_requests"] for r in edges
                                                                      if r["status"] not in REACHES_TWILIO)},
        "voice_webhook": twiml,
        "failures": len(failures),
        "failures_shown": failures[:MAX_FAILURES_SHOWN],
        "fuzz_seconds": round(seconds, 1),
    }


def test_make_call_message_always_yields_well_formed_twiml(live: tuple[Any, Any]) -> None:
    """Any message make_call accepts (201) must come back from voice_webhook as well-formed TwiML that says it.

    A message make_call refuses (400) is fine; one it accepts must not break the call when Twilio fetches the
    TwiML (Twilio answers unparsable TwiML with error 12100 and the callee hears an application error).
    """
    sandbox, host = live
    api = host.base_url + "/api"
    session = requests.Session()
    problems: list[str] = []

    @settings(max_examples=150, derandomize=True, database=None, deadline=None,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck), print_blob=False)
    @given(message=st.text(min_size=1, max_size=40))
    @example(message="bell \x07 and vertical tab \x0b")
    def check(message: str) -> None:
        payload = {"to": RECIPIENT, "message": message}
        response = session.post(api + "/make_call", json=payload, headers={"x-functions-key": FUNCTION_KEY}, timeout=30)
        sent = sandbox.requests
        sandbox.reset()
        if response.status_code != 201:
            assert response.status_code == 400, response.text
            return
        url = sent[-1]["form"]["Url"][0]
        twiml = fetch_twiml(session, {"url": url, "to": RECIPIENT, "from": SENDER})
        problem = twiml_problem(twiml, url) if twiml.status_code == 200 else f"answered {twiml.status_code}"
        if problem:
            problems.append(f"POST /api/make_call {json.dumps(payload)} -> 201; Twilio's signed POST to {url} -> "
                            f"{twiml.status_code} {twiml.text[:200]!r}: {problem}")

    check()
    assert not problems, f"{len(problems)} accepted message(s) gave broken TwiML, e.g.:\n" + "\n".join(problems[:3])


def upstream_failures(sandbox: Any, refused: str) -> list[tuple[str, int, str, int, Any]]:
    """(name, status, error code, Twilio requests sent, arm(monkeypatch)) for each way Twilio or a setting fails.

    Only 429 and a refused connection (Twilio cannot have acted) are retried: 3 attempts, else exactly one.
    """
    twilio_error = {"code": 21211, "message": "The 'To' number is not a valid phone number.", "status": 400,
                    "more_info": "https://www.twilio.com/docs/errors/21211"}
    problem = {"type": "https://www.twilio.com/docs/errors/21211", "title": "Invalid 'To' Phone Number",
               "status": 400, "code": 21211, "detail": "The 'To' number is not a valid phone number."}
    fault = sandbox.inject_fault
    return [
        ("twilio 400", 422, "twilio_rejected", 1, lambda mp: fault("status", status=400, body=twilio_error)),
        ("twilio 400 problem+json", 422, "twilio_rejected", 1, lambda mp: fault(
            "status", status=400, body=problem, content_type="application/problem+json")),
        ("twilio 429 Retry-After 0", 429, "rate_limited", 3, lambda mp: fault(
            "status", status=429, headers={"Retry-After": "0"}, times=None,
            body={"code": 20429, "message": "Too Many Requests", "status": 429})),
        ("twilio 429 no Retry-After", 429, "rate_limited", 3, lambda mp: fault("status", status=429, times=None)),
        ("twilio 401", 502, "twilio_auth_failed", 1, lambda mp: fault("status", status=401)),
        ("twilio 404", 502, "twilio_error", 1, lambda mp: fault("status", status=404)),
        ("twilio 500", 502, "twilio_unavailable", 1, lambda mp: fault("status", status=500)),
        ("twilio 503 html", 502, "twilio_unavailable", 1, lambda mp: fault(
            "status", status=503, body="<html>down</html>", content_type="text/html")),
        ("connection reset", 502, "twilio_unreachable", 1, lambda mp: fault("reset")),
        ("connection refused", 502, "twilio_unreachable", 0, lambda mp: mp.setenv("TWILIO_API_BASE_URL", refused)),
        ("twilio hangs", 504, "twilio_timeout", 1,
         lambda mp: (mp.setenv("TWILIO_HTTP_TIMEOUT_SECONDS", "0.5"), fault("hang"))),
        ("TWILIO_ACCOUNT_SID unset", 503, "not_configured", 0, lambda mp: mp.delenv("TWILIO_ACCOUNT_SID")),
        ("TWILIO_HTTP_TIMEOUT_SECONDS=soon", 503, "not_configured", 0,
         lambda mp: mp.setenv("TWILIO_HTTP_TIMEOUT_SECONDS", "soon")),
    ]


def test_every_upstream_failure_answer_conforms_to_the_spec(live: tuple[Any, Any],
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """422/429/502/503/504 through the running host: documented status, body schema and headers (Retry-After)."""
    sandbox, host = live
    schema = schemathesis.openapi.from_path(SPEC)
    api = host.base_url + "/api"
    session = requests.Session()
    problems = []
    bodies = {"/send_sms": {"to": RECIPIENT, "body": "fault"}, "/make_call": {"to": RECIPIENT, "message": "fault"}}
    with socket.socket() as unlistened:  # bound, never listening: connecting to it is refused
        unlistened.bind(("127.0.0.1", 0))
        refused = "http://127.0.0.1:%d" % unlistened.getsockname()[1]
        for path in OPERATIONS:
            operation = schema[path]["POST"]
            for name, status, code, sends, arm in upstream_failures(sandbox, refused):
                with monkeypatch.context() as scoped:
                    arm(scoped)
                    response = session.post(api + path, json=bodies[path], timeout=30,
                                            headers={"x-functions-key": FUNCTION_KEY})
                sandbox.release_hangs()
                sandbox.clear_faults()
                sent = len(sandbox.requests)
                sandbox.reset()
                try:
                    assert (response.status_code, response.json()["error"]["code"]) == (status, code)
                    operation.validate_response(response)
                    assert sent == sends, f"{sent} Twilio request(s), expected {sends}"
                except (Exception, BaseExceptionGroup) as exc:  # noqa: BLE001 - collected, reported together
                    problems.append(f"{path} {name}: {type(exc).__name__}: {str(exc)[:800]}\n  -> "
                                    f"{response.status_code} {dict(response.headers)} {response.text[:300]!r}")
    assert not problems, "\n\n".join(problems)


PATHOLOGICAL_JSON = {
    "nested arrays (30000 deep, 60 KB)": b"[" * 30000 + b"]" * 30000,
    "nested objects (10000 deep)": b'{"a":' * 10000 + b"1" + b"}" * 10000,
    "a field nested 20000 deep": b'{"to":' + b"[" * 20000 + b"]" * 20000 + b"}",
    "a 5000-digit integer": b'{"to": ' + b"9" * 5000 + b"}",
}


@pytest.mark.parametrize("name", sorted(PATHOLOGICAL_JSON))
def test_pathological_json_under_the_size_limit_is_a_400_not_a_500(live: tuple[Any, Any], name: str) -> None:
    """JSON that Python's parser refuses with RecursionError or a non-JSONDecodeError ValueError: still 400."""
    sandbox, host = live
    schema = schemathesis.openapi.from_path(SPEC)
    body = PATHOLOGICAL_JSON[name]
    problems = []
    for path in OPERATIONS:
        response = requests.post(host.base_url + "/api" + path, data=body, timeout=30,
                                 headers={"content-type": "application/json", "x-functions-key": FUNCTION_KEY})
        try:
            assert response.status_code == 400, f"status {response.status_code}"
            assert response.json()["error"]["code"] == "invalid_json"
            schema[path]["POST"].validate_response(response)
        except (Exception, BaseExceptionGroup) as exc:  # noqa: BLE001 - both operations reported together
            problems.append(f"POST /api{path} (content-type: application/json, {len(body)} bytes: "
                            f"{body[:24]!r}…) -> {response.status_code} {response.text[:200]!r}: {exc}")
    assert sandbox.requests == []
    assert not problems, "\n".join(problems)


def test_fuzz_webhooks_signed_and_unsigned_with_schemathesis(live: tuple[Any, Any]) -> None:
    """voice_webhook and sms_webhook, GET and POST: signed requests get 200 TwiML, the rest 403; never a 5xx."""
    sandbox, host = live
    schema = schemathesis.openapi.from_path(SPEC)
    failures: list[str] = []
    started = time.monotonic()
    rows = fuzz_webhooks(schema, requests.Session(), host.base_url + "/api", sandbox, failures)
    section = {"requests": len(rows), "signed": sum(1 for r in rows if r["signed"]),
               "by_operation": dict(sorted(collections.Counter(r["operation"] for r in rows).items())),
               "by_status": dict(sorted(collections.Counter(str(r["status"]) for r in rows).items())),
               "server_errors_5xx": sum(1 for r in rows if r["status"] >= 500),
               "malformed_twiml": sum(1 for r in rows if r["malformed"]), "failures": len(failures),
               "seconds": round(time.monotonic() - started, 1)}
    write_summary({"webhook_fuzz": section})
    assert section["requests"] == len(WEBHOOKS) * len(MODES) * WEBHOOK_EXAMPLES_PER_MODE
    assert section["signed"] >= section["requests"] // 4, "too few signed requests"
    assert not failures, f"{len(failures)} webhook fuzz failure(s); first {MAX_FAILURES_SHOWN}:\n\n" + "\n\n".join(
        failures[:MAX_FAILURES_SHOWN])


@pytest.mark.parametrize("hook", ["voice_webhook", "sms_webhook"])
def test_webhook_json_body_with_an_empty_body_sha256_is_403_not_500(live: tuple[Any, Any], hook: str) -> None:
    """Found by the webhook fuzz: `?bodySHA256=` (empty) + a JSON body + any signature crashed the validator."""
    _, host = live
    response = requests.post(f"{host.base_url}/api/{hook}?bodySHA256=", data=b"{}", timeout=30,
                             headers={"Content-Type": "application/json", "X-Twilio-Signature": "forged"})
    assert response.status_code == 403, f"{response.status_code} {response.text}"
    assert response.json()["error"]["code"] == "invalid_signature"
