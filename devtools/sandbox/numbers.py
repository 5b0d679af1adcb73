"""The account's voice and SMS routing as Twilio's REST API holds it: IncomingPhoneNumbers and (TwiML) Applications."""

from __future__ import annotations

import re
from typing import Any

from werkzeug.datastructures import MultiDict

from .state import API_VERSION, Resource, Store, new_sid, now_rfc2822, public

# Each resource's routing fields, as Twilio's JSON names them; a form field is their CamelCase (VoiceUrl).
ROUTING = ("voice_url", "voice_method", "voice_fallback_url", "voice_fallback_method", "voice_caller_id_lookup",
           "sms_url", "sms_method", "sms_fallback_url", "sms_fallback_method", "status_callback",
           "status_callback_method")
NUMBER_FIELDS = (*ROUTING, "friendly_name", "voice_application_sid", "sms_application_sid")
APPLICATION_FIELDS = (*ROUTING, "friendly_name", "sms_status_callback", "message_status_callback",
                      "public_application_connect_enabled")
COLLECTIONS = {"IncomingPhoneNumbers": ("numbers", "incoming_phone_numbers", "PN", NUMBER_FIELDS),
               "Applications": ("applications", "applications", "AP", APPLICATION_FIELDS)}
FILTERS = {"PhoneNumber": "phone_number", "FriendlyName": "friendly_name"}  # list query -> field matched exactly


def _routing_defaults() -> dict[str, Any]:
    return {**{name: None for name in ROUTING}, "voice_method": "POST", "voice_fallback_method": "POST",
            "sms_method": "POST", "sms_fallback_method": "POST", "status_callback_method": "POST",
            "voice_caller_id_lookup": False}


def number_resource(account_sid: str, phone_number: str) -> Resource:
    """An IncomingPhoneNumber shaped like Twilio's JSON, routed nowhere yet."""
    sid, now = new_sid("PN"), now_rfc2822()
    return {"account_sid": account_sid, "address_requirements": "none", "address_sid": None, "api_version": API_VERSION,
            "beta": False, "bundle_sid": None, "capabilities": {"voice": True, "sms": True, "mms": True, "fax": False},
            "date_created": now, "date_updated": now, "emergency_address_sid": None,
            "emergency_address_status": "unregistered", "emergency_status": "Inactive", "friendly_name": phone_number,
            "identity_sid": None, "origin": "twilio", "phone_number": phone_number, "sid": sid,
            "sms_application_sid": None, "status": "in-use", "trunk_sid": None, "voice_application_sid": None,
            "voice_receive_mode": "voice", **_routing_defaults(),
            "uri": f"/{API_VERSION}/Accounts/{account_sid}/IncomingPhoneNumbers/{sid}.json"}


def application_resource(account_sid: str, sid: str) -> Resource:
    """A new Application shaped like Twilio's JSON, before the creating request's fields are applied."""
    now = now_rfc2822()
    return {"account_sid": account_sid, "api_version": API_VERSION, "date_created": now, "date_updated": now,
            "friendly_name": None, "message_status_callback": None, "public_application_connect_enabled": True,
            "sid": sid, "sms_status_callback": None, **_routing_defaults(),
            "uri": f"/{API_VERSION}/Accounts/{account_sid}/Applications/{sid}.json"}


def _changes(form: MultiDict[str, str], fields: tuple[str, ...]) -> dict[str, Any]:
    """The form's values for the resource's fields (VoiceUrl -> voice_url); methods upper-cased, flags as bools."""
    changes: dict[str, Any] = {}
    for name, value in form.items():
        field = re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()
        if field in fields:
            if field.endswith("_method"):
                value = value.upper()
            changes[field] = value.lower() == "true" if field in ("voice_caller_id_lookup",
                                                                   "public_application_connect_enabled") else value
    return changes


class Routing:
    """List, fetch, create (Applications) and update the routing resources, answering as Twilio's REST API does."""

    def __init__(self, store: Store, account_sid: str) -> None:
        self._store, self._account_sid = store, account_sid

    def answer(self, method: str, collection: str, sid: str | None, request: Any) -> tuple[int, Any] | None:
        """(status, JSON) for a request to a routing collection, or None when Twilio has no such operation."""
        kind, key, prefix, fields = COLLECTIONS[collection]
        if sid is None and method == "GET":
            return 200, self._page(kind, key, collection, request.args)
        if sid is None and method == "POST" and kind == "applications":
            created = application_resource(self._account_sid, new_sid(prefix))
            created.update(_changes(request.form, fields))
            self._store.add(kind, created)
            return 201, public(created)
        if sid is None:
            return None
        if method == "GET":
            found = self._store.get(kind, sid)
        elif method == "POST":
            found = self._store.update(kind, sid, _changes(request.form, fields))
        else:
            return None
        return (200, public(found)) if found else (404, None)

    def _page(self, kind: str, key: str, collection: str, query: MultiDict[str, str]) -> dict[str, Any]:
        """Every match (filters: PhoneNumber, FriendlyName) on one page, in Twilio's paging envelope."""
        wanted = {field: query[name] for name, field in FILTERS.items() if name in query}
        found = [public(r) for r in self._store.all(kind) if all(r.get(f) == v for f, v in wanted.items())]
        size = max(int(query.get("PageSize") or 50), len(found))
        uri = f"/{API_VERSION}/Accounts/{self._account_sid}/{collection}.json?PageSize={size}&Page=0"
        return {key: found, "end": max(len(found) - 1, 0), "first_page_uri": uri,
                "next_page_uri": None, "page": 0, "page_size": size, "previous_page_uri": None, "start": 0,
                "uri": uri}
