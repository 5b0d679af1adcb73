"""The MAC on voice_webhook URLs the app issues: proof that the app, not whoever made Twilio sign a URL, chose it."""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Mapping
from urllib.parse import parse_qsl, urlencode

from shared.urls import VOICE_WEBHOOK_PATH

MAC = "mac"  # the query parameter that carries it
DOMAIN = b"voice-step-v1"  # the key is used for nothing else, and a new scheme gets a new one


def signed_url(params: Mapping[str, object], auth_token: str, origin: str = "") -> str:
    """origin + the voice_webhook path + params and their MAC as the query (params in the order given)."""
    pairs = [(name, str(value)) for name, value in params.items()]
    return f"{origin}{VOICE_WEBHOOK_PATH}?{urlencode([*pairs, (MAC, _mac(pairs, auth_token))])}"


def app_params(query: str, auth_token: str) -> dict[str, str] | None:
    """The app's own parameters in a request's raw query string: {} when it names neither `step` nor `mac` (a URL
    the app hands out plain, such as the number's voice URL, whose GET query holds only Twilio's inputs); the
    parameters when the one `mac` covers every other parameter (the app POSTs to its steps, so Twilio adds
    nothing to that query); None otherwise: a URL the app did not issue, or one edited since."""
    pairs = parse_qsl(query, keep_blank_values=True)
    names = {name for name, _ in pairs}
    if not names & {MAC, "step"}:
        return {}
    macs = [value for name, value in pairs if name == MAC]
    params = [(name, value) for name, value in pairs if name != MAC]
    if len(macs) != 1 or not hmac.compare_digest(macs[0].encode(), _mac(params, auth_token).encode()):
        return None
    return dict(params)  # the MAC covers every pair, so a name the app did not repeat is not repeated


def _mac(pairs: list[tuple[str, str]], auth_token: str) -> str:
    """HMAC-SHA256 under a key derived from the auth token, over the pairs sorted and form-encoded (an encoding in
    which '&' and '=' inside a name or value cannot pass for separators), URL-safe base64 without padding."""
    key = hmac.new(auth_token.encode(), DOMAIN, hashlib.sha256).digest()
    digest = hmac.new(key, urlencode(sorted(pairs)).encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
