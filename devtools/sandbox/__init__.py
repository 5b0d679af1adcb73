"""Embedded Twilio REST sandbox: a local api.twilio.com stand-in for dev and tests."""

from .core import TwilioSandbox

__all__ = ["TwilioSandbox"]
