"""deploy/wire_twilio.py's requests (recorded at the sandbox) pass Prism's validation against Twilio's OpenAPI spec."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from deploy import wire_twilio
from tests.support import ACCOUNT_SID, AUTH_TOKEN, SENDER


def pairs(fields: dict[str, list[str]]) -> list[tuple[str, str]]:
    return [(name, value) for name, values in fields.items() for value in values]


@pytest.fixture
def wiring_requests(sandbox: Any) -> list[dict[str, Any]]:
    """Every request of a first run (find, update the number, create the app) and of a run that updates the app
    found by its SID."""
    sandbox.add_phone_number(SENDER)
    env = {"TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": AUTH_TOKEN, "TWILIO_PHONE_NUMBER": SENDER,
           "TWILIO_API_BASE_URL": sandbox.base_url, "AZURE_ENV_NAME": "voice-prod"}
    assert wire_twilio.main(["--base-url", "https://func-1.azurewebsites.net"], env=env) == 0
    env["TWILIO_TWIML_APP_SID"] = sandbox.applications[0]["sid"]
    assert wire_twilio.main(["--base-url", "https://voice.example.com"], env=env) == 0
    return sandbox.requests


def request_refused(answer: requests.Response) -> bool:
    """Whether Prism refused the request itself. A 2xx is a mocked answer to a valid request; so is a 500 whose
    violations all lie in Prism's own mocked response (`--errors`: the spec's examples of these list pages break
    its own uri formats and SID patterns)."""
    if answer.status_code < 300:
        return False
    violations = answer.json().get("validation", []) if answer.status_code == 500 else [{"location": ["request"]}]
    return not violations or any(v["location"][0] != "response" for v in violations)


def test_wire_twilio_every_request_passes_twilio_spec(prism: Any, wiring_requests: list[dict[str, Any]]) -> None:
    kinds = {(r["method"], r["path"].split("/")[4]) for r in wiring_requests}
    assert kinds == {("GET", "IncomingPhoneNumbers.json"), ("POST", "IncomingPhoneNumbers"),
                     ("GET", "Applications.json"), ("POST", "Applications.json"), ("GET", "Applications"),
                     ("POST", "Applications")}  # list, update; list, create, fetch, update
    prism.mark()
    for request in wiring_requests:
        answer = requests.request(request["method"], prism.base_url + request["path"],
                                  params=pairs(request["query"]), data=pairs(request["form"]) or None,
                                  auth=(ACCOUNT_SID, AUTH_TOKEN), timeout=30)
        assert not request_refused(answer), f"{request['method']} {request['path']}: {answer.text}\n{prism.log_text()}"


def test_prism_number_update_against_twilio_spec_refuses_a_bad_method(prism: Any) -> None:
    """The detector: an update Twilio's spec forbids (VoiceMethod outside GET/POST) is refused, not mocked."""
    response = requests.post(f"{prism.base_url}/2010-04-01/Accounts/{ACCOUNT_SID}/IncomingPhoneNumbers/"
                             f"PN{'0' * 32}.json", data={"VoiceMethod": "PUT"}, auth=(ACCOUNT_SID, AUTH_TOKEN),
                             timeout=30)
    assert response.status_code == 422, response.text
