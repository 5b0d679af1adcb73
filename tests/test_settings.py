"""App settings, straight through parse_settings: the typed call menu."""

from __future__ import annotations

import json

import pytest

from shared.call_menu import Forward, Menu, Say, Voicemail
from shared.settings import SettingsError, parse_settings

MENU = {"prompt": "Press 1 for hours, 2 for sales, 3 to leave a message.",
        "options": {"1": {"say": "We are open nine to five."}, "2": {"forward": "+14155550177"},
                    "3": {"voicemail": True}}}


def test_call_menu_valid_json_parses_into_a_typed_menu():
    menu = parse_settings({"CALL_MENU": json.dumps(MENU)}).call_menu
    assert menu == Menu(MENU["prompt"], {"1": Say("We are open nine to five."), "2": Forward("+14155550177"),
                                         "3": Voicemail()})


def test_call_menu_national_forward_number_is_read_in_the_default_region():
    menu = parse_settings({"DEFAULT_REGION": "US",
                           "CALL_MENU": json.dumps({**MENU, "options": {"2": {"forward": "(415) 555-0177"}}})}).call_menu
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
        parse_settings({"CALL_MENU": raw})
    assert raised.value.invalid == ("CALL_MENU",)
