"""Twilio Voice SDK access tokens for signed-in callers: in-app calling through the TwiML App."""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Any

from shared.identity import voice_identity
from shared.settings import Settings, SettingsError
from shared.timestamps import iso_z


def voice_token(settings: Settings, identity: str) -> dict[str, Any]:
    """{"identity", "token", "expires_at"}: an AccessToken with a VoiceGrant for the caller's own identity.
    Never for an anonymous caller: a token is a licence to dial out at the account's expense."""
    if not (settings.auth_issuer or settings.auth_easy_auth):
        raise SettingsError(missing=("AUTH_ISSUER or AUTH_EASY_AUTH",))
    settings.require("TWILIO_ACCOUNT_SID", "TWILIO_API_KEY_SID", "TWILIO_API_KEY_SECRET", "TWILIO_TWIML_APP_SID")
    from twilio.jwt.access_token import AccessToken
    from twilio.jwt.access_token.grants import VoiceGrant

    client_identity = voice_identity(identity)
    token = AccessToken(settings.account_sid, settings.api_key_sid, settings.api_key_secret,
                        identity=client_identity, ttl=settings.voice_token_ttl)
    token.add_grant(VoiceGrant(outgoing_application_sid=settings.twiml_app_sid, incoming_allow=True,
                               push_credential_sid=settings.push_credential_sid))
    expires = int(time.time()) + settings.voice_token_ttl  # the SDK sets exp = now + ttl as it signs
    jwt = token.to_jwt()
    return {"identity": client_identity, "token": jwt,
            "expires_at": iso_z(datetime.fromtimestamp(expires, timezone.utc))}
