"""The app's Twilio REST requests, for every option set it can send, pass Prism's validation against Twilio's
official OpenAPI spec, and the app then answers 201 with the body openapi.yaml documents.

Prism answers a request that violates Twilio's spec with a 4xx problem+json (see the `prism` fixture), which
the app turns into a non-201 answer: so a 201 from the app means its request was valid.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import pytest
import requests
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

import make_call
import send_sms
from tests.support import (ACCOUNT_SID, API_KEY_SECRET, API_KEY_SID, AUTH_TOKEN, RECIPIENT, SENDER, body_of,
                           form_request, json_request, openapi_document)

SMS_URL = "https://myapp.example.com/api/send_sms"
CALL_URL = "https://myapp.example.com/api/make_call"
MESSAGING_SERVICE_SID = "MG" + "0123456789abcdef" * 2
APP_SPEC = "urn:app-openapi"


@lru_cache(maxsize=None)
def documented_201(schema_name: str) -> Draft202012Validator:
    """A validator for openapi.yaml's components/schemas/<schema_name> (OpenAPI 3.1 schemas are JSON Schema)."""
    registry = Registry().with_resource(APP_SPEC, Resource.from_contents(openapi_document(),
                                                                         default_specification=DRAFT202012))
    return Draft202012Validator({"$ref": f"{APP_SPEC}#/components/schemas/{schema_name}"}, registry=registry)


@pytest.fixture
def app_on_prism(prism: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("TWILIO_ACCOUNT_SID", ACCOUNT_SID)
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", AUTH_TOKEN)
    monkeypatch.setenv("TWILIO_PHONE_NUMBER", SENDER)
    monkeypatch.setenv("TWILIO_API_BASE_URL", prism.base_url)
    prism.mark()
    return prism


def assert_created(prism: Any, response: Any, schema_name: str) -> None:
    body = body_of(response)
    assert response.status_code == 201, f"{body}\n--- Prism's log ---\n{prism.log_text()}"
    errors = [f"/{'/'.join(map(str, e.absolute_path))}: {e.message}"
              for e in documented_201(schema_name).iter_errors(body)]
    assert errors == [], f"the 201 body {body} is not openapi.yaml's {schema_name}"


SMS_OPTION_SETS = {
    "body": {"to": RECIPIENT, "body": "Hello"},
    "from": {"to": RECIPIENT, "from": SENDER, "body": "Hello"},
    "status_callback": {"to": RECIPIENT, "body": "Hello", "status_callback": "https://example.com/status"},
    "one_media_url": {"to": RECIPIENT, "media_url": "https://example.com/cat.jpg"},
    # Repeated MediaUrl keys; Prism validates only the last value of a repeated form key.
    "ten_media_urls_and_body": {"to": RECIPIENT, "body": "Look",
                                "media_url": [f"https://example.com/{i}.jpg" for i in range(10)]},
    "unicode_1600": {"to": RECIPIENT, "body": "😀" * 1600},
}


@pytest.mark.parametrize("option_set", sorted(SMS_OPTION_SETS))
def test_send_sms_option_set_passes_twilio_spec_answers_201(app_on_prism: Any, option_set: str) -> None:
    response = send_sms.main(json_request(SMS_URL, SMS_OPTION_SETS[option_set]))
    assert_created(app_on_prism, response, "SmsCreated")


def test_send_sms_messaging_service_passes_twilio_spec_answers_201(app_on_prism: Any, monkeypatch: Any) -> None:
    monkeypatch.setenv("TWILIO_MESSAGING_SERVICE_SID", MESSAGING_SERVICE_SID)
    response = send_sms.main(json_request(SMS_URL, {"to": RECIPIENT, "body": "via service",
                                                    "status_callback": "https://example.com/s"}))
    assert_created(app_on_prism, response, "SmsCreated")


def test_send_sms_api_key_auth_form_body_passes_twilio_spec_answers_201(app_on_prism: Any, monkeypatch: Any) -> None:
    monkeypatch.setenv("TWILIO_API_KEY_SID", API_KEY_SID)
    monkeypatch.setenv("TWILIO_API_KEY_SECRET", API_KEY_SECRET)
    response = send_sms.main(form_request(SMS_URL, [("to", RECIPIENT), ("body", "k"),
                                                    ("media_url", "https://e.example/a.png"),
                                                    ("media_url", "https://e.example/b.png")]))
    assert_created(app_on_prism, response, "SmsCreated")


CALL_OPTION_SETS = {
    "default_message": {"to": RECIPIENT},
    "message": {"to": RECIPIENT, "message": "Your code is 1 2 3 4"},
    "voice_language": {"to": RECIPIENT, "message": "Hola", "voice": "Polly.Lupe", "language": "es-US"},
    "from_status_callback": {"to": RECIPIENT, "from": SENDER, "message": "x" * 1000,
                             "status_callback": "https://example.com/call-status"},
}


@pytest.mark.parametrize("option_set", sorted(CALL_OPTION_SETS))
def test_make_call_option_set_passes_twilio_spec_answers_201(app_on_prism: Any, option_set: str) -> None:
    response = make_call.main(json_request(CALL_URL, CALL_OPTION_SETS[option_set]))
    assert_created(app_on_prism, response, "CallCreated")


def test_make_call_api_key_auth_passes_twilio_spec_answers_201(app_on_prism: Any, monkeypatch: Any) -> None:
    monkeypatch.setenv("TWILIO_API_KEY_SID", API_KEY_SID)
    monkeypatch.setenv("TWILIO_API_KEY_SECRET", API_KEY_SECRET)
    response = make_call.main(json_request(CALL_URL, {"to": RECIPIENT, "message": "k"}))
    assert_created(app_on_prism, response, "CallCreated")


def test_prism_create_request_without_to_answers_422(prism: Any) -> None:
    """The detector itself: a create request violating Twilio's spec is refused, not mocked as created."""
    response = requests.post(f"{prism.base_url}/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json",
                             data={"Body": "no recipient"}, auth=(ACCOUNT_SID, AUTH_TOKEN), timeout=30)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")


def test_prism_path_the_app_never_calls_answers_404(prism: Any) -> None:
    """The spec Prism serves keeps only the app's paths (see conftest): any other request is refused, not mocked."""
    response = requests.post(f"{prism.base_url}/2010-04-01/Accounts/{ACCOUNT_SID}/Recordings.json",
                             data={"Body": "x"}, auth=(ACCOUNT_SID, AUTH_TOKEN), timeout=30)
    assert response.status_code == 404, response.text
