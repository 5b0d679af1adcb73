"""Schemathesis fuzz of the running app: openapi.yaml generates the requests, the local Functions host serves them
over real HTTP (with the function key), and the app's Twilio REST requests go to the sandbox.

Every answer must be < 500 and conform to openapi.yaml, and `no_invalid_input_reaches_twilio` (registered with
schemathesis, so a failing input shrinks) ties it to what the sandbox received: a 4xx answer sent no create request
to Twilio, a 201 exactly one. Twilio's own failure modes are in test_twilio_faults.py; the hand-made requests at the
end each found a bug that generated requests did not.
"""

from __future__ import annotations

import copy
import xml.etree.ElementTree as ET
from typing import Any, Iterator

import pytest
import requests

schemathesis = pytest.importorskip("schemathesis")

from hypothesis import HealthCheck, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from schemathesis import GenerationMode  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import (  # noqa: E402
    content_type_conformance, response_headers_conformance, response_schema_conformance, status_code_conformance)

from tests.support import ACCOUNT_SID, AUTH_TOKEN, RECIPIENT, ROOT, SENDER, openapi_document, sign  # noqa: E402

FUNCTION_KEY = "fuzz-function-key-7b0e"
MOBILE = "^/(send_sms|make_call)$"
# Per mobile operation: 350 positive + 150 negative generated cases (+ the spec's examples), JSON and form bodies:
# 2 x ~520 in all. Negative cases cost three times as much to generate as positive ones.
POSITIVE_EXAMPLES, NEGATIVE_EXAMPLES = 350, 150
IDEMPOTENCY_KEY = "#/components/parameters/IdempotencyKey"
WEBHOOK_EXAMPLES = 20  # per webhook operation (GET and POST of voice_webhook and sms_webhook)
FUZZ_SETTINGS = dict(derandomize=True, database=None, deadline=None,
                     suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                            HealthCheck.filter_too_much, HealthCheck.data_too_large])


def load_schema(*modes: GenerationMode) -> Any:
    schema = schemathesis.openapi.from_dict(copy.deepcopy(openapi_document()))
    # The tests send the function key themselves; the coverage phase's deterministic cases would take minutes.
    schema.config.generation.update(modes=list(modes), with_security_parameters=False)
    schema.config.phases.coverage.enabled = False
    # No state storage here, so no Idempotency-Key is generated (with one, a request would be a 503): the key's
    # handling, against Azurite, is tests/test_idempotency.py's; this fuzz is about the request body.
    for path in ("/send_sms", "/make_call"):
        operation = schema.raw_schema["paths"][path]["post"]
        operation["parameters"] = [p for p in operation["parameters"] if p != {"$ref": IDEMPOTENCY_KEY}]
    return schema


positive = load_schema(GenerationMode.POSITIVE)
negative = load_schema(GenerationMode.NEGATIVE)
schema = load_schema(GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
# format: phone -> numbers the app accepts and the sandbox creates, so that positive cases reach Twilio (Twilio's
# magic +1500555... test numbers make the sandbox refuse a create; test_twilio_faults.py covers that).
schemathesis.openapi.format("phone", st.one_of(
    st.sampled_from([RECIPIENT, SENDER, "+14155550199", "+447911123456", "+33612345678"]),
    st.from_regex(r"\A\+[1-9]\d{6,14}\Z").filter(lambda number: not number.startswith("+1500555")),
))


class Live:
    """The running test's sandbox and local host (one pair per test, shared by all its generated cases)."""

    current: Live | None = None  # read by the registered check

    def __init__(self, sandbox: Any, api: str) -> None:
        self.sandbox, self.api = sandbox, api
        self.session = requests.Session()
        self.session.trust_env = False  # no proxy or netrc look-up per request

    def call(self, case: Any) -> Any:
        self.sandbox.reset()  # the check then sees only this case's Twilio requests
        return case.call_and_validate(base_url=self.api, session=self.session, checks=CHECKS,
                                      headers={"x-functions-key": FUNCTION_KEY})


@schemathesis.check
def no_invalid_input_reaches_twilio(ctx: Any, response: Any, case: Any) -> None:
    """A 4xx answer sent no create request to Twilio; a 201 answer sent exactly one."""
    assert Live.current is not None, "no sandbox: use the `live` fixture"
    created = [r for r in Live.current.sandbox.requests if r["method"] == "POST"]
    if 400 <= response.status_code < 500 and created:
        raise AssertionError(f"a {response.status_code} answer sent {len(created)} create request(s) to Twilio: "
                             f"{[r['form'] for r in created]}")
    if response.status_code == 201 and len(created) != 1:
        raise AssertionError(f"a 201 answer sent {len(created)} create requests to Twilio, not one")


CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
          response_headers_conformance, no_invalid_input_reaches_twilio]


@pytest.fixture
def live(monkeypatch: pytest.MonkeyPatch) -> Iterator[Live]:
    """The Twilio sandbox and the local host serving the app with a function key, both on 127.0.0.1:0."""
    from devtools.local_host import LocalHost
    from devtools.sandbox import TwilioSandbox

    # step_delay: created messages and calls never progress, so no status callback leaves the machine.
    sandbox = TwilioSandbox(account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN, host="127.0.0.1", port=0,
                            step_delay=3600).start()
    for name, value in (("TWILIO_ACCOUNT_SID", ACCOUNT_SID), ("TWILIO_AUTH_TOKEN", AUTH_TOKEN),
                        ("TWILIO_PHONE_NUMBER", SENDER), ("TWILIO_API_BASE_URL", sandbox.base_url)):
        monkeypatch.setenv(name, value)
    host = LocalHost(ROOT, host="127.0.0.1", port=0, function_key=FUNCTION_KEY).start()
    Live.current = Live(sandbox, host.base_url + "/api")
    try:
        yield Live.current
    finally:
        Live.current = None
        host.stop()
        sandbox.stop()


@pytest.mark.slow
@positive.include(path_regex=MOBILE).parametrize()
@settings(max_examples=POSITIVE_EXAMPLES, **FUZZ_SETTINGS)
def test_mobile_api_generated_valid_request_conforms_and_creates_once_on_201(case: Any, live: Live) -> None:
    live.call(case)


@pytest.mark.slow
@negative.include(path_regex=MOBILE).parametrize()
@settings(max_examples=NEGATIVE_EXAMPLES, **FUZZ_SETTINGS)
def test_mobile_api_generated_invalid_request_conforms_and_creates_nothing_on_4xx(case: Any, live: Live) -> None:
    live.call(case)  # the app may accept some (an empty field counts as absent), but only as documented


@pytest.mark.slow
@schema.include(path_regex="_webhook$").parametrize()
@settings(max_examples=WEBHOOK_EXAMPLES, **FUZZ_SETTINGS)
def test_webhook_generated_unsigned_request_answers_403(case: Any, live: Live) -> None:
    assert live.call(case).status_code == 403  # a generated X-Twilio-Signature is never the valid one


PATHOLOGICAL_JSON = {
    "nested_arrays_30000_deep": b"[" * 30000 + b"]" * 30000,
    "nested_objects_10000_deep": b'{"a":' * 10000 + b"1" + b"}" * 10000,
    "field_nested_20000_deep": b'{"to":' + b"[" * 20000 + b"]" * 20000 + b"}",
    "integer_of_5000_digits": b'{"to": ' + b"9" * 5000 + b"}",
}


@pytest.mark.parametrize("path", ["/send_sms", "/make_call"])
@pytest.mark.parametrize("name", sorted(PATHOLOGICAL_JSON))
def test_mobile_api_pathological_json_answers_400_invalid_json(live: Live, path: str, name: str) -> None:
    """JSON that Python's parser refuses with RecursionError, or a ValueError that is no JSONDecodeError."""
    response = live.session.post(live.api + path, data=PATHOLOGICAL_JSON[name], timeout=30,
                                 headers={"content-type": "application/json", "x-functions-key": FUNCTION_KEY})
    assert (response.status_code, response.json()["error"]["code"]) == (400, "invalid_json"), response.text
    schema[path]["POST"].validate_response(response)
    assert live.sandbox.requests == []


@pytest.mark.parametrize("message", ["bell \x07 and vertical tab \x0b", "nul \x00 and escape \x1b[31m"])
def test_make_call_message_with_control_characters_is_refused_or_yields_well_formed_twiml(live: Live,
                                                                                          message: str) -> None:
    """Once such a message was accepted and its TwiML did not parse: Twilio answers that with error 12100 and the
    callee hears an application error. Refusing it (400 on `message`, nothing sent) is fine too."""
    response = live.session.post(live.api + "/make_call", json={"to": RECIPIENT, "message": message}, timeout=30,
                                 headers={"x-functions-key": FUNCTION_KEY})
    if response.status_code == 400:
        assert response.json()["error"]["field"] == "message"
        assert live.sandbox.requests == []
        return
    assert response.status_code == 201, response.text
    url = live.sandbox.requests[0]["form"]["Url"][0]
    params = {"AccountSid": ACCOUNT_SID, "CallSid": "CA" + "0" * 32, "From": SENDER, "To": RECIPIENT,
              "CallStatus": "in-progress", "Direction": "outbound-api", "ApiVersion": "2010-04-01"}
    twiml = live.session.post(url, data=params, headers={"X-Twilio-Signature": sign(url, params)}, timeout=30)
    assert twiml.status_code == 200, twiml.text
    assert ET.fromstring(twiml.content).find("Say") is not None, twiml.text


@pytest.mark.parametrize("hook", ["voice_webhook", "sms_webhook"])
def test_webhook_json_body_with_empty_body_sha256_answers_403(live: Live, hook: str) -> None:
    """`?bodySHA256=` (empty) with a JSON body and any signature once crashed the signature validator."""
    response = live.session.post(f"{live.api}/{hook}?bodySHA256=", data=b"{}", timeout=30,
                                 headers={"Content-Type": "application/json", "X-Twilio-Signature": "forged"})
    assert (response.status_code, response.json()["error"]["code"]) == (403, "invalid_signature"), response.text
    schema[f"/{hook}"]["POST"].validate_response(response)
