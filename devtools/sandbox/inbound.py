"""Simulated inbound SMS and voice calls: signed webhook requests to the app."""

from __future__ import annotations

import mimetypes
from collections.abc import Sequence
from functools import partial
from typing import Any

from .errors import API_VERSION
from .flows import FlowContext, run_message_lifecycle
from .resources import build_message, count_segments, new_sid
from .twiml import evaluate_reply, reply_messages


def location_params(prefix: str, number: str) -> dict[str, str]:
    """Twilio's geographic hints (Country/State/City/Zip); fixed sample values for +1."""
    if number.startswith("+1"):
        values = {"Country": "US", "State": "CA", "City": "SAN FRANCISCO", "Zip": "94105"}
    else:
        values = {"Country": "", "State": "", "City": "", "Zip": ""}
    return {f"{prefix}{name}": value for name, value in values.items()}


def simulate_inbound_sms(
    ctx: FlowContext,
    webhook_url: str,
    from_: str,
    to: str,
    body: str,
    *,
    media_urls: Sequence[str] = (),
    method: str = "POST",
) -> dict[str, Any]:
    """Deliver an inbound SMS to the app's webhook; record <Message> replies."""
    sid = new_sid("MM" if media_urls else "SM")
    params: dict[str, str] = {
        "MessageSid": sid,
        "SmsSid": sid,
        "SmsMessageSid": sid,
        "AccountSid": ctx.account_sid,
        "From": from_,
        "To": to,
        "Body": body,
        "NumMedia": str(len(media_urls)),
        "NumSegments": str(count_segments(body)),
        "SmsStatus": "received",
        "ApiVersion": API_VERSION,
        **location_params("From", from_),
        **location_params("To", to),
    }
    for index, media_url in enumerate(media_urls):
        params[f"MediaUrl{index}"] = media_url
        params[f"MediaContentType{index}"] = mimetypes.guess_type(media_url)[0] or "image/jpeg"
    result = ctx.sender.send(webhook_url, params, method)
    outcome = evaluate_reply(result, allow_empty=True)
    reply_sids: list[str] = []
    for verb in reply_messages(outcome.root):
        message = build_message(
            ctx.account_sid,
            to=verb.to or from_,
            from_=verb.from_ or to,
            body=verb.body,
            media_urls=verb.media_urls,
            direction="outbound-reply",
            sandbox={"source": "twiml-reply", "in_reply_to": sid, "status_callback": None},
        )
        ctx.store.add("messages", message)
        reply_sids.append(message["sid"])
    ctx.store.log(
        "inbound.sms",
        sid=sid,
        twiml=outcome.twiml,
        twilio_error=outcome.twilio_error,
        replies=reply_sids,
        **result.as_dict(),
    )
    for reply_sid in reply_sids:
        ctx.runner.spawn(f"msg-{reply_sid}", partial(run_message_lifecycle, ctx, reply_sid))
    reply: dict[str, Any] = {
        "status": result.status,
        "content_type": result.content_type,
        "twiml": outcome.twiml,
        "sid": sid,
        "replies": reply_sids,
    }
    if outcome.twilio_error:
        reply["twilio_error"] = outcome.twilio_error
    return reply


def simulate_inbound_call(
    ctx: FlowContext, webhook_url: str, from_: str, to: str, *, method: str = "POST"
) -> dict[str, Any]:
    """Ring the app's voice webhook as an inbound call and return its TwiML."""
    sid = new_sid("CA")
    params: dict[str, str] = {
        "AccountSid": ctx.account_sid,
        "ApiVersion": API_VERSION,
        "CallSid": sid,
        "CallStatus": "ringing",
        "Direction": "inbound",
        "From": from_,
        "To": to,
        "Caller": from_,
        "Called": to,
        **location_params("From", from_),
        **location_params("To", to),
        **location_params("Caller", from_),
        **location_params("Called", to),
    }
    result = ctx.sender.send(webhook_url, params, method)
    outcome = evaluate_reply(result, allow_empty=False)
    ctx.store.log(
        "inbound.call",
        sid=sid,
        twiml=outcome.twiml,
        twilio_error=outcome.twilio_error,
        **result.as_dict(),
    )
    reply: dict[str, Any] = {
        "status": result.status,
        "content_type": result.content_type,
        "twiml": outcome.twiml,
        "sid": sid,
    }
    if outcome.twilio_error:
        reply["twilio_error"] = outcome.twilio_error
    return reply
