"""The hardening contract, through each function's public main(req): origin, settings, destination guard, URL
fields, the error boundary, fork safety, Twilio's keywords and the cost of a forged webhook."""

from __future__ import annotations

import itertools
import json
import os
import statistics
import string
import time

import azure.functions as func
import pytest
from twilio.request_validator import RequestValidator

import make_call
import send_sms
import sms_webhook
import voice_webhook
from shared.webhook import MAX_PARAMS
from sms_webhook import TWILIO_KEYWORDS
from tests.support import AUTH_TOKEN, RECIPIENT, body_of, creates, json_request, signed_form

SMS_URL = "http://localhost:7071/api/send_sms"
CALL_URL = "http://localhost:7071/api/make_call"
HOOK_URL = "http://localhost:7071/api/sms_webhook"


def call_url_given_to_twilio(sandbox) -> str:
    [create] = [r for r in sandbox.requests if r["method"] == "POST" and r["path"].endswith("/Calls.json")]
    return create["form"]["Url"][0]


# 1. A call's webhook URL never comes from request headers.

def test_make_call_forwarded_host_without_public_origin_is_ignored(app_env):
    response = make_call.main(json_request(CALL_URL, {"to": RECIPIENT}, headers={
        "x-forwarded-host": "attacker.example", "x-forwarded-proto": "https"}))
    assert response.status_code == 201, response.get_body()
    assert call_url_given_to_twilio(app_env) == "http://localhost:7071/api/voice_webhook"


def test_make_call_website_hostname_is_the_origin_over_https(app_env, monkeypatch):
    monkeypatch.setenv("WEBSITE_HOSTNAME", "myapp.azurewebsites.net")
    make_call.main(json_request(CALL_URL, {"to": RECIPIENT}, headers={"x-forwarded-host": "attacker.example"}))
    assert call_url_given_to_twilio(app_env) == "https://myapp.azurewebsites.net/api/voice_webhook"


@pytest.mark.parametrize("local", ["localhost:7071", "127.0.0.1:7071", "0.0.0.0:7071", "LOCALHOST"])
def test_make_call_local_website_hostname_falls_back_to_request_url(app_env, monkeypatch, local):
    monkeypatch.setenv("WEBSITE_HOSTNAME", local)
    make_call.main(json_request("http://127.0.0.2:7072/api/make_call", {"to": RECIPIENT}))
    assert call_url_given_to_twilio(app_env) == "http://127.0.0.2:7072/api/voice_webhook"


def test_make_call_public_base_url_wins_over_website_hostname(app_env, monkeypatch):
    monkeypatch.setenv("WEBSITE_HOSTNAME", "myapp.azurewebsites.net")
    monkeypatch.setenv("PUBLIC_BASE_URL", "https://calls.example.com/")
    make_call.main(json_request(CALL_URL, {"to": RECIPIENT}))
    assert call_url_given_to_twilio(app_env) == "https://calls.example.com/api/voice_webhook"


def test_make_call_unusable_request_host_without_public_origin_returns_503_naming_public_base_url(app_env):
    response = make_call.main(json_request("http://example.com:abc/api/make_call", {"to": RECIPIENT}))
    assert response.status_code == 503
    assert "PUBLIC_BASE_URL" in body_of(response)["error"]["message"]
    assert creates(app_env, "Calls") == 0


# 2. A forged webhook request is always a 403, never a 500.

@pytest.mark.parametrize("host", ["example.com:abc", "example.com:99999", "[::1", "exa mple.com", ""])
@pytest.mark.parametrize("main", [sms_webhook.main, voice_webhook.main])
def test_webhook_unparsable_forwarded_host_returns_403(monkeypatch, main, host):
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", AUTH_TOKEN)
    request = signed_form(HOOK_URL, {"From": "+14155550199", "Body": "hi"}, signed_url=f"https://{host}/api/x",
                          headers={"x-forwarded-host": host, "x-forwarded-proto": "https"})
    assert main(request).status_code == 403


@pytest.mark.parametrize("url", ["http://example.com:abc/api/sms_webhook", "http://example.com:99999/api/sms_webhook",
                                 "http://[::1/api/sms_webhook"])
def test_webhook_unparsable_request_host_returns_403(monkeypatch, url):
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", AUTH_TOKEN)
    request = func.HttpRequest("POST", url, body=b"Body=hi", headers={
        "content-type": "application/x-www-form-urlencoded", "x-twilio-signature": "c2lnbmF0dXJl"})
    assert sms_webhook.main(request).status_code == 403


# 3. Settings are validated fully; a bad one gives 503 not_configured naming it.

BAD_SETTINGS = {
    "PUBLIC_BASE_URL": ["https://example.com:99999", "https://example.com:abc", "https://example.com/?a=1",
                        "https://example.com/#top", "ftp://example.com", "https://user:pw@example.com"],
    "TWILIO_API_BASE_URL": ["http://127.0.0.1:99999", "http://127.0.0.1/?x", "http://127.0.0.1/#x"],
    "DEFAULT_REGION": ["XX", "USA", "1"],
    "ALLOWED_DESTINATION_COUNTRIES": ["XX", "US,ZZ"],
    "ALLOWED_DESTINATION_PREFIXES": ["1", "+1a"],
    "WEBSITE_HOSTNAME": ["exa mple.net", "example.net:abc", "user@example.net"],
}


@pytest.mark.parametrize(("name", "value"), [(n, v) for n, values in BAD_SETTINGS.items() for v in values])
def test_settings_invalid_value_returns_503_naming_it(app_env, monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    response = send_sms.main(json_request(SMS_URL, {"to": RECIPIENT, "body": "hi"}))
    error = body_of(response)["error"]
    assert (response.status_code, error["code"]) == (503, "not_configured")
    assert name in error["message"]
    assert value not in error["message"] or value in name  # names only, never values
    assert creates(app_env, "Messages") == 0


@pytest.mark.parametrize("value", ["(415) 555-0199", "+1415abc0199", "client:", "nobody"])
def test_settings_invalid_blocked_numbers_answers_503_naming_it_where_read(monkeypatch, value):
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", AUTH_TOKEN)
    monkeypatch.setenv("BLOCKED_NUMBERS", value)
    response = sms_webhook.main(signed_form(HOOK_URL, {"From": "+14155550199", "Body": "hi"}))
    error = body_of(response)["error"]
    assert (response.status_code, error["code"]) == (503, "not_configured")
    assert "BLOCKED_NUMBERS" in error["message"] and value not in error["message"]


@pytest.mark.parametrize(("name", "value"), [("PUBLIC_BASE_URL", "https://example.com:99999"),
                                             ("WEBSITE_HOSTNAME", "exa mple.net")])
def test_settings_invalid_public_origin_on_a_webhook_answers_503_not_403(monkeypatch, name, value):
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", AUTH_TOKEN)
    monkeypatch.setenv(name, value)
    response = sms_webhook.main(signed_form(HOOK_URL, {"From": "+14155550199", "Body": "hi"}))
    assert (response.status_code, body_of(response)["error"]["code"]) == (503, "not_configured")


@pytest.mark.parametrize("entry", ["anonymous", "Restricted", "unavailable", "client:alice"])
def test_voice_webhook_blocked_caller_word_or_client_is_rejected(monkeypatch, entry):
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", AUTH_TOKEN)
    monkeypatch.setenv("BLOCKED_NUMBERS", f"+14155550100,{entry}")
    request = signed_form("http://localhost:7071/api/voice_webhook", {"From": entry.lower() if entry != "client:alice"
                                                                      else entry, "Direction": "inbound"})
    assert b"<Reject" in voice_webhook.main(request).get_body()


def test_sms_webhook_blocked_national_number_with_region_matches(monkeypatch):
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", AUTH_TOKEN)
    monkeypatch.setenv("BLOCKED_NUMBERS", "(415) 555-0199")
    monkeypatch.setenv("DEFAULT_REGION", "us")
    response = sms_webhook.main(signed_form(HOOK_URL, {"From": "+14155550199", "Body": "hi"}))
    assert response.get_body().endswith(b"<Response />")


# 4. The destination guard knows countries and premium numbers.

PREMIUM = {"us_900": "+19005550123", "uk_909": "+449090000000", "uk_shared_cost_0870": "+448702000000"}


@pytest.mark.parametrize("number", sorted(PREMIUM.values()))
@pytest.mark.parametrize(("main", "url", "extra"), [(send_sms.main, SMS_URL, {"body": "hi"}),
                                                    (make_call.main, CALL_URL, {})])
def test_destination_premium_or_shared_cost_is_refused_without_any_setting(app_env, main, url, extra, number):
    response = main(json_request(url, {"to": number, **extra}))
    error = body_of(response)["error"]
    assert (response.status_code, error["code"], error["field"]) == (400, "destination_not_allowed", "to")
    assert app_env.requests == []


@pytest.mark.parametrize("number", ["+18765550123", "+18095550123", "+447624000000"])  # Jamaica, Dominican Rep., IoM
def test_destination_country_outside_allowed_countries_is_refused(app_env, monkeypatch, number):
    monkeypatch.setenv("ALLOWED_DESTINATION_COUNTRIES", "US,CA,GB")
    monkeypatch.setenv("ALLOWED_DESTINATION_PREFIXES", "+1,+44")  # the text prefix alone lets these through
    response = send_sms.main(json_request(SMS_URL, {"to": number, "body": "hi"}))
    assert (response.status_code, body_of(response)["error"]["code"]) == (400, "destination_not_allowed")
    assert app_env.requests == []


def test_destination_in_allowed_country_is_sent(app_env, monkeypatch):
    monkeypatch.setenv("ALLOWED_DESTINATION_COUNTRIES", "us, ca")
    assert send_sms.main(json_request(SMS_URL, {"to": RECIPIENT, "body": "hi"})).status_code == 201


def test_destination_with_both_settings_must_pass_both(app_env, monkeypatch):
    monkeypatch.setenv("ALLOWED_DESTINATION_COUNTRIES", "US")
    monkeypatch.setenv("ALLOWED_DESTINATION_PREFIXES", "+1212")
    response = send_sms.main(json_request(SMS_URL, {"to": RECIPIENT, "body": "hi"}))  # US, but +1415
    assert (response.status_code, body_of(response)["error"]["code"]) == (400, "destination_not_allowed")


@pytest.mark.parametrize("field", ["to", "from"])
@pytest.mark.parametrize("value", ["+1415abc0123", "+1 415 CALL NOW", "1-800-FLOWERS"])
def test_phone_number_with_letters_returns_400_invalid_phone_number(app_env, monkeypatch, field, value):
    monkeypatch.setenv("DEFAULT_REGION", "US")
    payload = {"to": RECIPIENT, "body": "hi", field: value}
    error = body_of(send_sms.main(json_request(SMS_URL, payload)))["error"]
    assert (error["code"], error["field"]) == ("invalid_phone_number", field)
    assert app_env.requests == []


# 5. URL fields are checked as strictly as the others.

BAD_URLS = ["http://example.com/cb", "https://example.com/c\x01b", "https://example.com/\x7f", "https://example.com/\ud800",
            "https://user:password@example.com/cb", "https://example.com:99999/cb", "https://example.com:abc/cb",
            "https://exa mple.com/cb", "https:///cb", "https://[::1/cb"]


@pytest.mark.parametrize("url", BAD_URLS)
@pytest.mark.parametrize(("main", "endpoint", "field"), [(send_sms.main, SMS_URL, "media_url"),
                                                         (send_sms.main, SMS_URL, "status_callback"),
                                                         (make_call.main, CALL_URL, "status_callback")])
def test_url_field_invalid_returns_400_invalid_url_naming_field(app_env, main, endpoint, field, url):
    response = main(json_request(endpoint, {"to": RECIPIENT, "body": "hi", field: url} if endpoint == SMS_URL
                                 else {"to": RECIPIENT, field: url}))
    error = body_of(response)["error"]
    assert (response.status_code, error["code"], error["field"]) == (400, "invalid_url", field)
    assert app_env.requests == []


# 6. The error boundary cannot itself fail.

@pytest.mark.parametrize("raw", [b'{"\\ud800": 1}', b'{"to": "\\udc00"}', b'{"to": "+14155550123", "body": "\\ud83d"}',
                                 b'{"to": "+14155550123", "body": "hi", "media_url": "https://a.example/\\udfff"}'])
def test_error_boundary_lone_surrogate_input_returns_400_valid_utf8_json(app_env, raw):
    response = send_sms.main(json_request(SMS_URL, raw))
    assert response.status_code == 400
    body = json.loads(response.get_body().decode("utf-8", "strict"))
    assert set(body["error"]) >= {"code", "message"}
    assert app_env.requests == []


# 10. Fork-safe client: a child never shares the parent's keep-alive socket.

@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_twilio_client_after_fork_child_and_parent_each_get_their_own_answers(app_env):
    assert send_sms.main(json_request(SMS_URL, {"to": RECIPIENT, "body": "warm"})).status_code == 201
    for round_ in range(5):
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # child: send at the same time as the parent, report the SID it got
            code = 1
            try:
                response = send_sms.main(json_request(SMS_URL, {"to": RECIPIENT, "body": f"child {round_}"}))
                os.write(write, response.get_body())
                code = 0
            finally:
                os._exit(code)
        os.close(write)
        parent = body_of(send_sms.main(json_request(SMS_URL, {"to": RECIPIENT, "body": f"parent {round_}"})))
        with os.fdopen(read, "rb") as pipe:
            child = json.loads(pipe.read())
        assert os.waitpid(pid, 0)[1] == 0
        bodies = {message["sid"]: message["body"] for message in app_env.messages}
        assert bodies[parent["sid"]] == f"parent {round_}"
        assert bodies[child["sid"]] == f"child {round_}"


# 11. Twilio's keywords get no auto-reply.

@pytest.mark.parametrize("keyword", sorted(TWILIO_KEYWORDS))
@pytest.mark.parametrize("spelling", [str.upper, str.lower, str.title, lambda k: f"  {k.lower()}\n"])
def test_sms_webhook_twilio_keyword_gets_empty_response(monkeypatch, keyword, spelling):
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", AUTH_TOKEN)
    response = sms_webhook.main(signed_form(HOOK_URL, {"From": "+14155550199", "Body": spelling(keyword)}))
    assert response.get_body().endswith(b"<Response />")


def test_twilio_keywords_are_exactly_twilios_opt_out_opt_in_and_help_words():
    assert TWILIO_KEYWORDS == {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT",
                               "START", "YES", "UNSTOP", "HELP", "INFO"}


@pytest.mark.parametrize("body", ["stop it", "HELP me", "yes please", "info?"])
def test_sms_webhook_keyword_inside_a_sentence_gets_the_auto_reply(monkeypatch, body):
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", AUTH_TOKEN)
    response = sms_webhook.main(signed_form(HOOK_URL, {"From": "+14155550199", "Body": body}))
    assert b"<Message>" in response.get_body()


# 12. Rejecting a forged webhook stays cheap.

@pytest.fixture
def hmacs(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every signature RequestValidator computes."""
    computed: list[str] = []
    original = RequestValidator.compute_signature

    def counting(self, uri, params, algorithm=None):
        computed.append(uri)
        return original(self, uri, params, algorithm)

    monkeypatch.setattr(RequestValidator, "compute_signature", counting)
    return computed


def forged(pairs: int) -> func.HttpRequest:
    """A forged form webhook with `pairs` distinct 4-letter keys and empty values (5 bytes a pair)."""
    keys = ("".join(letters) for letters in itertools.product(string.ascii_letters, repeat=4))
    body = "&".join(itertools.islice(keys, pairs)).encode()
    return func.HttpRequest("POST", HOOK_URL, body=body, headers={
        "content-type": "application/x-www-form-urlencoded", "x-twilio-signature": "Zm9yZ2Vk"})


def test_webhook_more_than_max_params_is_refused_before_any_hmac(monkeypatch, hmacs):
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", AUTH_TOKEN)
    assert sms_webhook.main(forged(MAX_PARAMS + 1)).status_code == 403
    assert hmacs == []
    assert sms_webhook.main(forged(20)).status_code == 403
    assert hmacs  # a small forged request is checked as usual


def test_webhook_64k_forged_body_costs_a_few_times_a_normal_forged_request(monkeypatch):
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", AUTH_TOKEN)
    huge, normal = forged(13_000), forged(15)
    assert 60_000 < len(huge.get_body()) <= 64 * 1024

    def cost(request: func.HttpRequest) -> float:
        started = time.perf_counter()
        assert sms_webhook.main(request).status_code == 403
        return time.perf_counter() - started

    ratios = [cost(huge) / cost(normal) for _ in range(30)]
    assert statistics.median(ratios) < 5
