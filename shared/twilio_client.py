"""The process-wide Twilio REST client (lazy, cached, fork-safe) with the calls the app makes: create, fetch, find."""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING, Any

from shared.channels import Channel
from shared.settings import Settings
from shared.transport import Transport
from shared.twilio_errors import BadResponse

if TYPE_CHECKING:
    from twilio.base.version import Version

_lock = threading.Lock()
_cached: tuple[tuple[Any, ...], Version] | None = None
API_ORIGIN = "https://api.twilio.com"  # rewritten to TWILIO_API_BASE_URL by the Transport
HEADERS = {"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"}


def rest_api(settings: Settings) -> Version:
    """The process's one Twilio REST API client (the SDK's 2010-04-01 Version object), created on first use and
    again only when its settings change."""
    global _cached
    username, password, account_sid = settings.rest_credentials()
    key = (username, password, account_sid, settings.api_base_url, settings.http_timeout)
    with _lock:
        if _cached is None or _cached[0] != key:
            # The SDK's Client (auth, user agent) and Version (URLs, error parsing); going through client.messages
            # would also import every other 2010 resource module, a quarter of the cold start.
            from twilio.base.domain import Domain
            from twilio.base.version import Version
            from twilio.rest import Client

            client = Client(username, password, account_sid,
                            http_client=Transport(settings.http_timeout, settings.api_base_url))
            _cached = (key, Version(Domain(client, API_ORIGIN), "2010-04-01"))
        return _cached[1]


def _forget_client_in_child() -> None:
    """A forked child must not share the parent's keep-alive socket: each side could read the other's answer."""
    global _cached, _lock
    _cached = None
    _lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_client_in_child)


def create(settings: Settings, channel: Channel, params: dict[str, Any]) -> dict[str, Any]:
    """POST a new 2010-04-01 resource of the channel with Twilio's parameter names; its JSON.
    Sent once: a 5xx, a timeout or a reset is never retried (the resource may exist already)."""
    data = {name: value for name, value in params.items() if value is not None}
    created = _json(settings, "create", channel, "", data=data)
    sid = created.get("sid") if isinstance(created, dict) else None
    if not (isinstance(sid, str) and sid.startswith(channel.sid_prefixes)):
        raise BadResponse("no SID")
    return created


def fetch(settings: Settings, channel: Channel, sid: str) -> dict[str, Any]:
    """GET one 2010-04-01 resource of the channel by SID; its JSON."""
    found = _json(settings, "fetch", channel, f"/{sid}")
    if not isinstance(found, dict) or found.get("sid") != sid:
        raise BadResponse("not the resource")
    return found


def find(settings: Settings, channel: Channel, filters: dict[str, str | None]) -> list[dict[str, Any]]:
    """GET the first page of the channel's 2010-04-01 list, newest first, filtered with Twilio's list parameters
    (To, From, DateSent>, StartTime>, PageSize; None leaves one out); its resources."""
    page = _json(settings, "fetch", channel, "", params={k: v for k, v in filters.items() if v is not None})
    listed = page.get(channel.resource.lower()) if isinstance(page, dict) else None
    if not isinstance(listed, list) or not all(isinstance(item, dict) and item.get("sid") for item in listed):
        raise BadResponse("not the list")
    return listed


def _json(settings: Settings, action: str, channel: Channel, tail: str, **options: Any) -> Any:
    """One request through the SDK's Version (create: POST, fetch: GET) to the channel's resources + tail; its JSON."""
    version = rest_api(settings)
    uri = f"/Accounts/{version.domain.twilio.account_sid}/{channel.resource}{tail}.json"
    try:
        return getattr(version, action)("POST" if action == "create" else "GET", uri, headers=dict(HEADERS),
                                        **options)
    except ValueError:  # the SDK's json.loads of a 2xx body
        raise BadResponse("not JSON") from None
