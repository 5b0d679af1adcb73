"""App settings: the declaration and README's table of it, parsing (defaults, errors, the typed call menu), the
decorators handing them to each handler once per request, and an invalid one breaking only what reads it."""

from __future__ import annotations

import json
import re
from dataclasses import MISSING, fields

import azure.functions as func
import pytest

import make_call
import send_sms
import sms_webhook
import voice_token
import voice_webhook
from shared import api, webhook
from shared.call_menu import Forward, Menu, Say, Voicemail
from shared.settings import (ALLOWED, DECLARED, QUOTA_SETTINGS, SETTING_NAMES, Settings, SettingsError, load_settings,
                             parse_settings)
from tests.support import AUTH_TOKEN, RECIPIENT, ROOT, SENDER, body_of, creates, json_request, signed_form

MENU = {"prompt": "Press 1 for hours, 2 for sales, 3 to leave a message.",
        "options": {"1": {"say": "We are open nine to five."}, "2": {"forward": "+14155550177"},
                    "3": {"voicemail": True}}}


# -- the declaration ---------------------------------------------------------------------------------------------
def test_settings_every_field_but_present_and_invalid_declares_env_concern_parser_and_default():
    for f in fields(Settings):
        if f.name in ("present", "invalid"):
            continue
        assert f.metadata["env"] and f.metadata["concern"], f.name
        assert callable(f.metadata["parse"]) and f.default is not MISSING, f.name


def test_setting_names_are_the_declared_env_names_each_once():
    assert SETTING_NAMES == tuple(f.metadata["env"] for f in DECLARED)
    assert len(set(SETTING_NAMES)) == len(SETTING_NAMES) == len(fields(Settings)) - 2


def test_settings_parser_uses_only_settings_declared_before_it():
    for position, f in enumerate(DECLARED):
        assert set(f.metadata["uses"]) <= {earlier.name for earlier in DECLARED[:position]}, f.name


def test_settings_each_concern_is_declared_in_one_block():
    concerns = [f.metadata["concern"] for f in DECLARED]
    blocks = [concern for before, concern in zip([None, *concerns], concerns) if concern != before]
    assert len(blocks) == len(set(blocks)), blocks


def test_quota_settings_are_the_quotas_concern_in_declaration_order():
    assert QUOTA_SETTINGS == tuple(f.metadata["env"] for f in DECLARED if f.metadata["concern"] == "quotas")
    assert all(name.startswith("QUOTA_") for name in QUOTA_SETTINGS) and len(QUOTA_SETTINGS) == 5


def readme_settings_table() -> list[list[str]]:
    """The cells of each row of README.md's settings table (the first table under "## Settings")."""
    section = (ROOT / "README.md").read_text(encoding="utf-8").split("\n## Settings\n", 1)[1].split("\n## ", 1)[0]
    lines = section[section.index("\n|"):].split("\n\n", 1)[0].strip().splitlines()
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[2:]]  # after header, rule


def test_readme_settings_table_name_column_lists_every_declared_setting_once():
    names = [name for row in readme_settings_table() for name in re.findall(r"`([^`]+)`", row[0])]
    assert sorted(names) == sorted(SETTING_NAMES)


def test_readme_settings_table_names_no_undeclared_setting():
    setting_like = re.compile(r"[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+|AzureWebJobsStorage\w*")
    mentioned = {token for row in readme_settings_table() for cell in row for token in re.findall(r"`([^`]+)`", cell)
                 if setting_like.fullmatch(token)}
    assert mentioned and mentioned <= set(SETTING_NAMES), mentioned - set(SETTING_NAMES)


# -- parsing -----------------------------------------------------------------------------------------------------
def test_parse_settings_empty_env_gives_every_declared_default():
    settings = parse_settings({})
    assert all(getattr(settings, f.name) == f.default for f in DECLARED)
    assert settings.present == frozenset() and settings.quotas == {}


def test_parse_settings_blank_values_mean_unset():
    assert parse_settings({name: " \t " for name in SETTING_NAMES}) == parse_settings({})


def test_parse_settings_values_are_stripped_and_present_names_what_is_set():
    settings = parse_settings({"TWILIO_PHONE_NUMBER": " +15005550006 ", "VOICE_NAME": ""})
    assert settings.phone_number == "+15005550006" and settings.present == {"TWILIO_PHONE_NUMBER"}


def test_settings_quotas_maps_each_quota_set_above_zero_to_its_limit():
    settings = parse_settings({"QUOTA_SMS_PER_DAY": "5", "QUOTA_CALLS_PER_DAY": "0"})
    assert settings.quotas == {"QUOTA_SMS_PER_DAY": 5} and settings.quota_sms_per_day == 5


@pytest.mark.parametrize(("name", "raw", "expected"), [
    ("TWILIO_HTTP_TIMEOUT_SECONDS", "2.5", 2.5), ("IDEMPOTENCY_TTL_HOURS", "720", 720),
    ("VOICE_TOKEN_TTL_SECONDS", "60", 60), ("FORWARD_TIMEOUT_SECONDS", "600", 600), ("VOICEMAIL_MAX_SECONDS", "1", 1),
    ("INBOUND_CALL_FLOW", "Menu", "menu"), ("AUTH_EASY_AUTH", "1", True), ("WEBSITE_AUTH_ENABLED", "yes", False),
    ("DEFAULT_REGION", "gb", "GB"), ("PUBLIC_BASE_URL", "https://voice.example.com/", "https://voice.example.com"),
    ("WEBSITE_HOSTNAME", "App.AzureWebsites.net", "app.azurewebsites.net"),
    ("WEBSITE_HOSTNAME", "localhost:7071", None),
])
def test_parse_settings_valid_value_parses_to_its_type(name, raw, expected):
    [f] = [f for f in DECLARED if f.metadata["env"] == name]
    assert getattr(parse_settings({name: raw}), f.name) == expected


@pytest.mark.parametrize(("name", "raw"), [
    ("TWILIO_HTTP_TIMEOUT_SECONDS", "0"), ("TWILIO_HTTP_TIMEOUT_SECONDS", "301"),
    ("TWILIO_HTTP_TIMEOUT_SECONDS", "nan"),
    ("IDEMPOTENCY_TTL_HOURS", "0"), ("IDEMPOTENCY_TTL_HOURS", "721"), ("VOICE_TOKEN_TTL_SECONDS", "59"),
    ("FORWARD_TIMEOUT_SECONDS", "4"), ("VOICEMAIL_MAX_SECONDS", "14401"), ("QUOTA_SMS_PER_DAY", "-1"),
    ("AUTH_EASY_AUTH", "yes"), ("AUTH_ISSUER", "issuer"), ("AzureWebJobsStorage__tableServiceUri", "tables"),
])
def test_parse_settings_value_out_of_range_raises_settings_error_naming_it_when_read(name, raw):
    settings = parse_settings({name: raw})
    assert settings.invalid == (name,)
    [f] = [f for f in DECLARED if f.metadata["env"] == name]
    with pytest.raises(SettingsError) as raised:
        getattr(settings, f.name)
    assert raised.value.invalid == (name,) and raw not in raised.value.message.replace(ALLOWED.get(name, ""), "")


def test_parse_settings_invalid_setting_breaks_only_its_own_field():
    settings = parse_settings({"INBOUND_CALL_FLOW": "ivr", "CALL_MENU": "{not json", "VOICE_NAME": "Polly.Joanna"})
    assert settings.invalid == ("INBOUND_CALL_FLOW", "CALL_MENU")
    assert (settings.voice_name, settings.forward_to, settings.http_timeout) == ("Polly.Joanna", (), 10.0)
    with pytest.raises(SettingsError) as raised:
        settings.inbound_call_flow  # noqa: B018
    assert raised.value.invalid == ("INBOUND_CALL_FLOW",)
    assert "INBOUND_CALL_FLOW (one of: greeting, forward, menu, voicemail)" in raised.value.message


def test_parse_settings_invalid_region_makes_the_settings_parsed_with_it_invalid_naming_both():
    settings = parse_settings({"DEFAULT_REGION": "XX", "BLOCKED_NUMBERS": "(415) 555-0199",
                               "FORWARD_TO": "+14155550177", "SMS_AUTO_REPLY": "hi"})
    assert settings.invalid == ("DEFAULT_REGION", "BLOCKED_NUMBERS", "FORWARD_TO")
    with pytest.raises(SettingsError) as raised:
        settings.forward_to  # noqa: B018
    assert raised.value.invalid == ("FORWARD_TO", "DEFAULT_REGION") and settings.sms_auto_reply == "hi"


def test_parse_settings_number_settings_use_the_region_and_destination_guard_declared_before_them():
    settings = parse_settings({"DEFAULT_REGION": "US", "BLOCKED_NUMBERS": "(415) 555-0199",
                               "FORWARD_TO": "(415) 555-0177, client:alice", "VOICEMAIL_NOTIFY_SMS": "4155550188"})
    assert settings.blocked_numbers == {"+14155550199"}
    assert settings.forward_to == ("+14155550177", "client:alice") and settings.voicemail_notify_sms == "+14155550188"
    with pytest.raises(SettingsError) as raised:
        parse_settings({"ALLOWED_DESTINATION_COUNTRIES": "GB", "FORWARD_TO": "+14155550177"}).forward_to  # noqa: B018
    assert raised.value.invalid == ("FORWARD_TO",)


# -- the call menu -----------------------------------------------------------------------------------------------
def test_call_menu_valid_json_parses_into_a_typed_menu():
    menu = parse_settings({"CALL_MENU": json.dumps(MENU)}).call_menu
    assert menu == Menu(MENU["prompt"], {"1": Say("We are open nine to five."), "2": Forward("+14155550177"),
                                         "3": Voicemail()})


def test_call_menu_national_forward_number_is_read_in_the_default_region():
    raw = json.dumps({**MENU, "options": {"2": {"forward": "(415) 555-0177"}}})
    menu = parse_settings({"DEFAULT_REGION": "US", "CALL_MENU": raw}).call_menu
    assert menu is not None and menu.options == {"2": Forward("+14155550177")}


def test_call_menu_unset_is_none():
    assert parse_settings({"CALL_MENU": "  "}).call_menu is None


@pytest.mark.parametrize("raw", [
    "{not json", "[]", "null", '"menu"', "[" * 100_000,
    json.dumps({"prompt": "Hi"}), json.dumps({**MENU, "prompt": " "}), json.dumps({**MENU, "options": {}}),
    json.dumps({**MENU, "options": {"12": {"say": "two keys"}}}),
    json.dumps({**MENU, "options": {"1": {"say": "hi", "voicemail": True}}}),
    json.dumps({**MENU, "options": {"1": {"say": 7}}}), json.dumps({**MENU, "options": {"1": {"voicemail": False}}}),
    json.dumps({**MENU, "options": {"1": {"forward": "+19005550123"}}}),  # premium: never dialled
    json.dumps({**MENU, "options": {"1": {"dance": True}}}),
])
def test_call_menu_invalid_raises_settings_error_naming_call_menu(raw):
    with pytest.raises(SettingsError) as raised:
        parse_settings({"CALL_MENU": raw}).call_menu  # noqa: B018
    assert raised.value.invalid == ("CALL_MENU",)


# -- handed to the handler, once per request ---------------------------------------------------------------------
@pytest.fixture
def loads(monkeypatch: pytest.MonkeyPatch) -> list[Settings]:
    """Every Settings the decorators load, in order."""
    loaded: list[Settings] = []

    def counted() -> Settings:
        loaded.append(load_settings())
        return loaded[-1]

    monkeypatch.setattr(api, "load_settings", counted)
    monkeypatch.setattr(webhook, "load_settings", counted)
    return loaded


def test_mobile_api_request_loads_settings_once_and_hands_them_to_the_handler(loads):
    seen = []

    @api.mobile_api
    def main(req: func.HttpRequest, settings: Settings) -> func.HttpResponse:
        seen.append(settings)
        return api.ok({})

    assert main(json_request("http://localhost:7071/api/x", {})).status_code == 200
    assert len(loads) == 1 and seen == loads


def test_twilio_webhook_request_loads_settings_once_for_signature_and_handler(loads, monkeypatch):
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", AUTH_TOKEN)
    response = sms_webhook.main(signed_form("http://localhost:7071/api/sms_webhook", {"From": "+14155550199",
                                                                                     "Body": "hi"}))
    assert response.status_code == 200 and len(loads) == 1


@pytest.mark.parametrize("main", [voice_token.main, sms_webhook.main])
def test_decorated_main_wrong_method_answers_405_without_loading_settings(loads, main):
    request = func.HttpRequest("PUT", "http://localhost:7071/api/x", body=b"")
    assert main(request).status_code == 405 and loads == []


def test_mobile_api_invalid_setting_answers_503_json_naming_it(monkeypatch):
    monkeypatch.setenv("AUTH_EASY_AUTH", "yes")
    response = voice_token.main(json_request("http://localhost:7071/api/voice_token", {}))
    error = body_of(response)["error"]
    assert (response.status_code, error["code"]) == (503, "not_configured")
    assert "AUTH_EASY_AUTH (true or false)" in error["message"]


def test_twilio_webhook_invalid_setting_it_reads_answers_503(monkeypatch):
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", AUTH_TOKEN)
    monkeypatch.setenv("BLOCKED_NUMBERS", "nobody")
    assert sms_webhook.main(signed_form("http://localhost:7071/api/sms_webhook", {"Body": "hi"})).status_code == 503


# -- one bad setting breaks only the functions that read it ------------------------------------------------------
def sms_request() -> func.HttpRequest:
    return json_request("http://localhost:7071/api/send_sms", {"to": RECIPIENT, "body": "hi"})


def inbound_call() -> func.HttpRequest:
    return signed_form("http://localhost:7071/api/voice_webhook", {"CallSid": "CA" + "c" * 32, "From": "+14155550100",
                                                                  "To": SENDER, "Direction": "inbound"})


@pytest.mark.parametrize(("name", "value"), [("INBOUND_CALL_FLOW", "ivr"), ("CALL_MENU", "{not json"),
                                             ("FORWARD_TIMEOUT_SECONDS", "soon"), ("VOICE_TOKEN_TTL_SECONDS", "59")])
def test_send_sms_voice_only_setting_invalid_still_sends(app_env, monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    assert send_sms.main(sms_request()).status_code == 201
    assert creates(app_env, "Messages") == 1


def test_voice_webhook_inbound_call_with_invalid_flow_answers_503_naming_the_allowed_flows(app_env, monkeypatch):
    monkeypatch.setenv("INBOUND_CALL_FLOW", "ivr")
    response = voice_webhook.main(inbound_call())
    error = body_of(response)["error"]
    assert (response.status_code, error["code"]) == (503, "not_configured")
    assert "INBOUND_CALL_FLOW (one of: greeting, forward, menu, voicemail)" in error["message"]
    assert "ivr" not in error["message"]


@pytest.mark.parametrize(("name", "value"), [("QUOTA_SMS_PER_DAY", "-1"), ("QUOTA_SMS_PER_USER_PER_DAY", "many"),
                                             ("TWILIO_HTTP_TIMEOUT_SECONDS", "soon")])
def test_voice_webhook_sms_setting_invalid_still_answers_calls(app_env, monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    response = send_sms.main(sms_request())
    assert (response.status_code, body_of(response)["error"]["code"]) == (503, "not_configured")
    assert name in body_of(response)["error"]["message"] and creates(app_env, "Messages") == 0
    assert b"<Say" in voice_webhook.main(inbound_call()).get_body()
    if name.startswith("QUOTA_SMS"):
        call = make_call.main(json_request("http://localhost:7071/api/make_call", {"to": RECIPIENT}))
        assert call.status_code == 201, call.get_body()
