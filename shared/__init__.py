"""Shared Twilio module: settings, client, TwiML, webhook security, errors and phone numbers."""
