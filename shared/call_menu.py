"""CALL_MENU as a typed menu: the prompt an inbound caller hears, what each key does."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Callable, Mapping, Union

KEY = re.compile(r"[0-9*#]")  # one key press: what <Gather numDigits="1"> returns


@dataclass(frozen=True)
class Say:
    """Say this text, then hang up."""

    text: str


@dataclass(frozen=True)
class Forward:
    """Dial this number (E.164, one the destination guard lets the app dial)."""

    number: str


@dataclass(frozen=True)
class Voicemail:
    """Take a voicemail."""


Option = Union[Say, Forward, Voicemail]


@dataclass(frozen=True)
class Menu:
    """What the caller hears (prompt), and what each key does."""

    prompt: str
    options: Mapping[str, Option]


def parse_menu(raw: str, dialable: Callable[[str], str]) -> Menu:
    """CALL_MENU's JSON, {"prompt": text, "options": {"1": {"say": text} | {"forward": number} | {"voicemail": true}}},
    as a Menu; dialable(number) gives a forward number in E.164 or raises ValueError. ValueError if raw is not one."""
    try:
        menu = json.loads(raw)  # a JSONDecodeError is a ValueError
    except RecursionError:  # nesting deeper than the parser allows
        raise ValueError("CALL_MENU is nested too deeply") from None
    if not isinstance(menu, dict):
        raise ValueError("CALL_MENU is not a JSON object")
    prompt, options = menu.get("prompt"), menu.get("options")
    if not (isinstance(prompt, str) and prompt.strip() and isinstance(options, dict) and options):
        raise ValueError("CALL_MENU needs a prompt and options")
    return Menu(prompt, {key: _option(key, option, dialable) for key, option in options.items()})


def _option(key: str, option: object, dialable: Callable[[str], str]) -> Option:
    if not (KEY.fullmatch(key) and isinstance(option, dict) and len(option) == 1):
        raise ValueError(f"bad option {key!r}")
    (action, value), = option.items()
    if action == "say" and isinstance(value, str) and value.strip():
        return Say(value)
    if action == "forward" and isinstance(value, str):
        return Forward(dialable(value))
    if action == "voicemail" and value is True:
        return Voicemail()
    raise ValueError(f"bad option {key!r}")
