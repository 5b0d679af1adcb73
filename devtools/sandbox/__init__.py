"""Embedded Twilio REST sandbox: a local api.twilio.com stand-in for dev and tests."""

from .core import DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN, TwilioSandbox

__all__ = ["DEFAULT_ACCOUNT_SID", "DEFAULT_AUTH_TOKEN", "TwilioSandbox"]
