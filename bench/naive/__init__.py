"""Naive, tutorial-style versions of the four functions: the baseline the app is compared with.

Written the way the Twilio + Azure Functions quick-starts do it: everything imported at module top, a new
``Client`` per request (so a new HTTP session and connection per request), no timeout. The only deviation is a
``TwilioHttpClient`` subclass that rewrites the origin to ``TWILIO_API_BASE_URL`` so the naive code does the
same network work against the same local Twilio stand-in as the app.
"""
