"""Webhook-signature matrix in-process: every genuine variant accepted, every forgery 403 with no side effect."""

from __future__ import annotations

import azure.functions as func
import pytest

import sms_webhook
import voice_webhook
from tests.support import AUTH_TOKEN
from tests.signature_cases import FORGERIES, GENUINE, Raw

WEBHOOKS = {"sms_webhook": sms_webhook.main, "voice_webhook": voice_webhook.main}
SEEN = "http://localhost:7071"


@pytest.fixture
def handler_runs(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Records every TwiML document a handler builds: empty means no handler ran."""
    import shared.twiml as twiml

    built: list[str] = []
    for name in ("say", "reject", "message", "empty"):
        original = getattr(twiml, name)
        monkeypatch.setattr(twiml, name, lambda *a, _o=original, _n=name, **k: built.append(_n) or _o(*a, **k))
    return built


def invoke(monkeypatch: pytest.MonkeyPatch, webhook: str, raw: Raw) -> func.HttpResponse:
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", AUTH_TOKEN)
    for name, value in raw.env.items():
        monkeypatch.setenv(name, value)
    return WEBHOOKS[webhook](func.HttpRequest(raw.method, raw.url, headers=raw.headers, body=raw.body))


@pytest.mark.parametrize("webhook", sorted(WEBHOOKS))
@pytest.mark.parametrize("case", sorted(GENUINE))
def test_webhook_genuine_variant_is_accepted(monkeypatch, handler_runs, webhook, case):
    response = invoke(monkeypatch, webhook, GENUINE[case](SEEN, f"/api/{webhook}"))
    assert response.status_code == 200, response.get_body()
    assert response.get_body().startswith(b"<?xml")
    assert len(handler_runs) == 1


@pytest.mark.parametrize("webhook", sorted(WEBHOOKS))
@pytest.mark.parametrize("case", sorted(FORGERIES))
def test_webhook_forgery_is_rejected_with_403_and_no_side_effect(monkeypatch, handler_runs, webhook, case):
    response = invoke(monkeypatch, webhook, FORGERIES[case](SEEN, f"/api/{webhook}"))
    assert response.status_code == 403, response.get_body()
    assert b"invalid_signature" in response.get_body()
    assert handler_runs == []
