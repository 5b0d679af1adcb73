"""Request text as log lines show it: escaped like repr and cut short, so it can neither forge a line nor flood one."""

from __future__ import annotations

MAX_CHARS = 64


def shown(text: str) -> str:
    """text as repr shows it ('alice', 'a\\nb'), its first MAX_CHARS characters only, '...' after when cut."""
    return repr(text[:MAX_CHARS]) + ("..." if len(text) > MAX_CHARS else "")
