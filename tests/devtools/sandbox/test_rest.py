"""The sandbox's emulated Twilio REST API: messages, calls, magic numbers, auth, routing, request ids."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest
import requests
from twilio.base.exceptions import TwilioRestException
from twilio.rest import Client
from werkzeug.datastructures import MultiDict

from devtools.sandbox import TwilioSandbox
from tests.devtools.sandbox.support import CUSTOMER, SMS, FakeApp, api, create
from tests.support import ACCOUNT_SID, API_KEY_SECRET, API_KEY_SID, AUTH_TOKEN, SENDER


# -- messages ------------------------------------------------------------------------------------------------------
def test_messages_create_and_fetch_through_sdk_return_twilio_shape(client: Client, sandbox: TwilioSandbox) -> None:
    created = client.messages.create(to=CUSTOMER, from_=SENDER, body="Hello there")
    fetched = client.messages(created.sid).fetch()

    assert created.sid.startswith("SM") and len(created.sid) == 34
    assert (created.status, created.direction, created.account_sid) == ("queued", "outbound-api", ACCOUNT_SID)
    assert (fetched.sid, fetched.to, fetched.from_, fetched.body) == (created.sid, CUSTOMER, SENDER, "Hello there")
    assert isinstance(created.date_created, datetime) and created.date_created.tzinfo is not None
    assert created.uri == f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/{created.sid}.json"
    assert sandbox.messages[0]["sid"] == created.sid
    assert sandbox.requests[0]["form"]["Body"] == ["Hello there"]


def test_messages_repeated_media_url_counts_media_and_keeps_every_value(sandbox: TwilioSandbox) -> None:
    urls = ["https://example.com/a.jpg", "https://example.com/b.png"]
    form = MultiDict([("To", CUSTOMER), ("From", SENDER), ("MediaUrl", urls[0]), ("MediaUrl", urls[1])])

    response = create(sandbox, "Messages", form)

    assert response.status_code == 201 and response.json()["num_media"] == "2"
    assert sandbox.requests[0]["form"]["MediaUrl"] == urls


def test_messages_service_without_from_is_accepted_then_given_a_sender(sandbox: TwilioSandbox) -> None:
    form = MultiDict({"To": CUSTOMER, "MessagingServiceSid": "MG" + "1" * 32, "Body": "hi"})

    response = create(sandbox, "Messages", form)

    assert (response.status_code, response.json()["status"], response.json()["from"]) == (201, "accepted", None)
    assert sandbox.wait_for(lambda: sandbox.messages[0]["status"] == "delivered")
    assert sandbox.messages[0]["from"] == SENDER


@pytest.mark.parametrize(("drop", "extra", "code"), [
    ("To", {}, 21604), ("From", {}, 21603), ("Body", {}, 21602), (None, {"Body": "x" * 1601}, 21617)])
def test_messages_missing_or_bad_param_returns_400_with_code(sandbox: TwilioSandbox, drop: str | None,
                                                             extra: dict[str, str], code: int) -> None:
    form = MultiDict({**{k: v for k, v in SMS.items() if k != drop}, **extra})

    response = create(sandbox, "Messages", form)

    assert (response.status_code, response.json()["code"]) == (400, code)
    assert sandbox.messages == []


@pytest.mark.parametrize(("to", "from_", "code"), [
    ("+15005550001", SENDER, 21211), ("+15005550002", SENDER, 21612), ("+15005550003", SENDER, 21408),
    ("+15005550004", SENDER, 21610), ("+15005550009", SENDER, 21614), (CUSTOMER, "+15005550001", 21212),
    (CUSTOMER, "+15005550007", 21606), (CUSTOMER, "+15005550008", 21611)])
def test_messages_magic_number_raises_documented_code(client: Client, to: str, from_: str, code: int) -> None:
    with pytest.raises(TwilioRestException) as caught:
        client.messages.create(to=to, from_=from_, body="magic")

    assert (caught.value.status, caught.value.code) == (400, code)


def test_messages_error_body_has_exactly_twilio_error_fields(sandbox: TwilioSandbox) -> None:
    response = create(sandbox, "Messages", MultiDict({"To": "+15005550001", "From": SENDER, "Body": "x"}))

    assert response.json() == {"code": 21211, "message": "The 'To' number +15005550001 is not a valid phone number.",
                               "more_info": "https://www.twilio.com/docs/errors/21211", "status": 400}


# -- calls ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("to", "from_", "code"), [
    ("+15005550001", SENDER, 21217), ("+15005550002", SENDER, 21214), ("+15005550003", SENDER, 21215),
    ("+15005550004", SENDER, 21216), (CUSTOMER, "+15005550001", 21212), (CUSTOMER, "+15005550007", 21210)])
def test_calls_magic_number_raises_documented_code(client: Client, to: str, from_: str, code: int) -> None:
    with pytest.raises(TwilioRestException) as caught:
        client.calls.create(to=to, from_=from_, url="https://example.com/voice")

    assert (caught.value.status, caught.value.code) == (400, code)


@pytest.mark.parametrize(("form", "code"), [
    ({"From": SENDER, "Url": "https://example.com/v"}, 21201),
    ({"To": CUSTOMER, "Url": "https://example.com/v"}, 21213),
    ({"To": CUSTOMER, "From": SENDER}, 21205), ({"To": CUSTOMER, "From": SENDER, "Url": "ftp://x.example"}, 21205),
])
def test_calls_missing_or_bad_param_returns_400_with_code(sandbox: TwilioSandbox, form: dict[str, str],
                                                          code: int) -> None:
    response = create(sandbox, "Calls", MultiDict(form))

    assert (response.status_code, response.json()["code"]) == (400, code)
    assert sandbox.calls == []


def test_calls_create_and_fetch_through_sdk_return_queued_call(client: Client, app: FakeApp) -> None:
    created = client.calls.create(to=CUSTOMER, from_=SENDER, url=app.url("/voice"))

    assert created.sid.startswith("CA") and (created.status, created.direction) == ("queued", "outbound-api")
    assert client.calls(created.sid).fetch().to == CUSTOMER


# -- auth and routing ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("auth", [None, (ACCOUNT_SID, "wrong-token"), (API_KEY_SID, "wrong-secret"),
                                  ("SK" + "1" * 32, API_KEY_SECRET)])
def test_auth_missing_or_wrong_credentials_returns_401_20003(sandbox: TwilioSandbox, auth: Any) -> None:
    response = create(sandbox, "Messages", SMS, auth=auth)

    assert (response.status_code, response.json()["code"]) == (401, 20003)
    assert response.headers["WWW-Authenticate"].startswith("Basic")
    assert sandbox.messages == []


def test_auth_api_key_and_secret_are_accepted(sandbox: TwilioSandbox) -> None:
    response = create(sandbox, "Messages", SMS, auth=(API_KEY_SID, API_KEY_SECRET))

    assert response.status_code == 201


def test_auth_other_account_in_path_returns_401_20003(sandbox: TwilioSandbox) -> None:
    url = api(sandbox, "Messages").replace(ACCOUNT_SID, "AC" + "9" * 32)

    response = requests.post(url, data=SMS, auth=(API_KEY_SID, API_KEY_SECRET), timeout=5)

    assert (response.status_code, response.json()["code"]) == (401, 20003)


def test_rest_unknown_sid_or_path_returns_404_20404(sandbox: TwilioSandbox) -> None:
    unknown_sid = requests.get(api(sandbox, "Messages", "SM" + "0" * 32), auth=(ACCOUNT_SID, AUTH_TOKEN), timeout=5)
    unknown_path = requests.get(api(sandbox, "Queues"), auth=(ACCOUNT_SID, AUTH_TOKEN), timeout=5)

    assert (unknown_sid.status_code, unknown_sid.json()["code"]) == (404, 20404)
    assert (unknown_path.status_code, unknown_path.json()["code"]) == (404, 20404)


def test_rest_update_returns_405_20004(sandbox: TwilioSandbox) -> None:
    sid = create(sandbox, "Messages", SMS).json()["sid"]

    update = requests.post(api(sandbox, "Messages", sid), data={"Body": "x"}, auth=(ACCOUNT_SID, AUTH_TOKEN), timeout=5)

    assert (update.status_code, update.json()["code"]) == (405, 20004)


def listed(sandbox: TwilioSandbox, resource: str, **query: str) -> list[str]:
    """The SIDs a list request answers; `DateSent_after`-style names become Twilio's DateSent> (the URL then reads
    DateSent>=2026-12-05, as Twilio's docs write it)."""
    names = {"_after": ">", "_before": "<"}
    params = {re.sub("_(after|before)$", lambda m: names[m.group()], name): value for name, value in query.items()}
    answer = requests.get(f"{api(sandbox, resource)}?{urlencode(params, safe='<>')}", auth=(ACCOUNT_SID, AUTH_TOKEN),
                          timeout=5)
    assert answer.status_code == 200, answer.text
    return [item["sid"] for item in answer.json()[resource.lower()]]


def test_list_messages_filters_by_to_from_and_date_sent_as_twilio_documents(client: Client,
                                                                           sandbox: TwilioSandbox) -> None:
    first, other_to, second = (create(sandbox, "Messages", MultiDict({**SMS, **extra})).json()["sid"]
                               for extra in ({}, {"To": "+15557654321"}, {"Body": "again"}))
    assert sandbox.wait_for(lambda: all(m["date_sent"] for m in sandbox.messages))
    today = datetime.now(timezone.utc).date()
    day, before, after = (str(today + timedelta(days=n)) for n in (0, -1, 1))

    assert listed(sandbox, "Messages", To=CUSTOMER) == [second, first]  # newest first
    assert listed(sandbox, "Messages", From=SENDER, DateSent=day) == [second, other_to, first]
    assert listed(sandbox, "Messages", To=CUSTOMER, DateSent_after=day) == [second, first]
    assert listed(sandbox, "Messages", To=CUSTOMER, DateSent_after=after) == []
    assert listed(sandbox, "Messages", To=CUSTOMER, DateSent_before=before) == []
    next_page = requests.get(api(sandbox, "Messages"), params={"PageSize": "1"}, auth=(ACCOUNT_SID, AUTH_TOKEN),
                             timeout=5).json()["next_page_uri"]
    assert listed(sandbox, "Messages", **dict(parse_qsl(urlsplit(next_page).query))) == [other_to]
    recent = datetime.now(timezone.utc) - timedelta(minutes=1)
    sdk = client.messages.list(to=CUSTOMER, from_=SENDER, date_sent_after=recent)  # a date and time, to the second
    assert [message.sid for message in sdk] == [second, first]


def test_list_calls_filters_by_start_time_which_a_call_has_once_dialed(client: Client, sandbox: TwilioSandbox,
                                                                       app: FakeApp) -> None:
    call = client.calls.create(to=CUSTOMER, from_=SENDER, url=app.url("/voice"))
    today = str(datetime.now(timezone.utc).date())
    assert sandbox.wait_for(lambda: sandbox.calls[0]["start_time"])

    assert listed(sandbox, "Calls", To=CUSTOMER, From=SENDER, StartTime_after=today) == [call.sid]
    assert listed(sandbox, "Calls", To=SENDER) == []
    assert [found.sid for found in client.calls.list(to=CUSTOMER, start_time_after=datetime(2026, 1, 1))] == [call.sid]


@pytest.mark.parametrize("query", ["DateSent>=yesterday", "PageSize=0", "PageSize=1001", "DateSent=2026-12-05T10:00"])
def test_list_bad_filter_returns_400_20001(sandbox: TwilioSandbox, query: str) -> None:
    answer = requests.get(f"{api(sandbox, 'Messages')}?{query}", auth=(ACCOUNT_SID, AUTH_TOKEN), timeout=5)

    assert (answer.status_code, answer.json()["code"]) == (400, 20001)


def test_request_id_header_matches_activity_and_request_log(sandbox: TwilioSandbox) -> None:
    sandbox.inject_fault("status", status=503, method="GET")
    answers = [create(sandbox, "Messages", SMS), create(sandbox, "Messages", MultiDict({"To": CUSTOMER})),
               requests.get(api(sandbox, "Messages", "SM" + "0" * 32), auth=(ACCOUNT_SID, AUTH_TOKEN), timeout=5)]

    header_ids = [answer.headers["Twilio-Request-Id"] for answer in answers]
    events = sandbox.activity
    assert [answer.status_code for answer in answers] == [201, 400, 503]
    assert header_ids == [entry["request_id"] for entry in sandbox.requests]
    assert header_ids == [e["request_id"] for e in events if e["type"] == "rest.request"]
    assert header_ids == [e["request_id"] for e in events if e["type"] == "rest.response"]
    assert len(set(header_ids)) == 3 and all(rid.startswith("RQ") for rid in header_ids)
