"""The sandbox's IncomingPhoneNumbers and Applications answers are shaped as Twilio's OpenAPI spec says."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests
from jsonschema import Draft7Validator, FormatChecker

from tests.contract.conftest import TWILIO_SPEC
from tests.servers import node
from tests.support import ACCOUNT_SID, AUTH_TOKEN, SENDER

ROOT_PATH = f"/2010-04-01/Accounts/{ACCOUNT_SID}"


def json_schema(schema: Any) -> Any:
    """An OpenAPI 3.0 schema as JSON Schema: `nullable: true` becomes a null alternative."""
    if isinstance(schema, list):
        return [json_schema(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    converted = {key: json_schema(value) for key, value in schema.items() if key != "nullable"}
    if schema.get("nullable"):
        return {"anyOf": [converted, {"type": "null"}]}
    return converted


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    node()  # npm ci of the pinned spec
    return json.loads(TWILIO_SPEC.read_text(encoding="utf-8"))


def errors(spec: dict[str, Any], schema: dict[str, Any], body: Any) -> list[str]:
    validator = Draft7Validator({**json_schema(schema), "components": json_schema(spec["components"])},
                                format_checker=FormatChecker())
    return [f"/{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(body)]


def answer(sandbox: Any, method: str, path: str, status: int, **fields: str) -> Any:
    response = requests.request(method, f"{sandbox.base_url}{ROOT_PATH}{path}", data=fields or None,
                                auth=(ACCOUNT_SID, AUTH_TOKEN), timeout=10)
    assert response.status_code == status, response.text
    return response.json()


def operation_schema(spec: dict[str, Any], path: str, method: str, status: int) -> dict[str, Any]:
    responses = spec["paths"]["/2010-04-01/Accounts/{AccountSid}" + path][method]["responses"]
    return responses[str(status)]["content"]["application/json"]["schema"]


def test_sandbox_routing_answers_match_twilio_spec(sandbox: Any, spec: dict[str, Any]) -> None:
    number = sandbox.add_phone_number(SENDER)
    created = answer(sandbox, "POST", "/Applications.json", 201, FriendlyName="prod", VoiceUrl="https://a.example/v")
    checked = {
        ("/IncomingPhoneNumbers.json", "get", 200): answer(sandbox, "GET", "/IncomingPhoneNumbers.json", 200),
        ("/IncomingPhoneNumbers/{Sid}.json", "post", 200): answer(
            sandbox, "POST", f"/IncomingPhoneNumbers/{number['sid']}.json", 200, VoiceUrl="https://a.example/v",
            VoiceMethod="POST", SmsUrl="https://a.example/s", SmsMethod="POST"),
        ("/IncomingPhoneNumbers/{Sid}.json", "get", 200): answer(
            sandbox, "GET", f"/IncomingPhoneNumbers/{number['sid']}.json", 200),
        ("/Applications.json", "post", 201): created,
        ("/Applications.json", "get", 200): answer(sandbox, "GET", "/Applications.json?FriendlyName=prod", 200),
        ("/Applications/{Sid}.json", "get", 200): answer(sandbox, "GET", f"/Applications/{created['sid']}.json", 200),
        ("/Applications/{Sid}.json", "post", 200): answer(sandbox, "POST", f"/Applications/{created['sid']}.json",
                                                          200, VoiceMethod="GET"),
    }
    found = {key: errors(spec, operation_schema(spec, *key), body) for key, body in checked.items()}
    assert found == {key: [] for key in checked}


def test_sandbox_routing_list_filters_and_unknown_or_unsupported_requests_answer_as_twilio(sandbox: Any) -> None:
    sandbox.add_phone_number(SENDER)
    sandbox.add_phone_number("+15005550010")
    listed = answer(sandbox, "GET", f"/IncomingPhoneNumbers.json?PhoneNumber=%2B{SENDER[1:]}", 200)
    assert [n["phone_number"] for n in listed["incoming_phone_numbers"]] == [SENDER]
    assert answer(sandbox, "GET", f"/Applications/AP{'0' * 32}.json", 404)["code"] == 20404
    assert answer(sandbox, "POST", "/IncomingPhoneNumbers.json", 405, PhoneNumber=SENDER)["code"] == 20004
