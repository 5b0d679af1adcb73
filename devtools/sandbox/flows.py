"""Background lifecycles: message status progression and the outbound call flow."""

from __future__ import annotations

from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

from .errors import ALWAYS_VALID_FROM, API_VERSION
from .resources import Resource, rfc2822, utcnow
from .store import Kind, SandboxStore
from .tasks import TaskRunner
from .twiml import TwimlOutcome, evaluate_reply, parse_twiml
from .webhooks import WebhookResult, WebhookSender

CALL_EVENTS = ("initiated", "ringing", "answered", "completed")


@dataclass
class FlowContext:
    """What the background flows need from the sandbox."""

    account_sid: str
    store: SandboxStore
    sender: WebhookSender
    runner: TaskRunner
    step_delay: float = 0.02


def send_status_callback(
    ctx: FlowContext,
    kind: Kind,
    sid: str,
    url: str,
    params: dict[str, str],
    method: str = "POST",
) -> WebhookResult:
    """POST (or GET) one signed status callback and log it."""
    result = ctx.sender.send(url, params, method)
    ctx.store.log(
        "status_callback",
        resource=kind[:-1],
        sid=sid,
        resource_status=params.get("MessageStatus") or params.get("CallStatus"),
        **result.as_dict(),
    )
    return result


# -- messages --------------------------------------------------------------
def message_callback_params(message: Resource) -> dict[str, str]:
    """Parameters Twilio posts to a message StatusCallback."""
    params = {
        "MessageSid": message["sid"],
        "SmsSid": message["sid"],
        "AccountSid": message["account_sid"],
        "From": message.get("from") or "",
        "To": message["to"],
        "MessageStatus": message["status"],
        "SmsStatus": message["status"],
        "ApiVersion": API_VERSION,
    }
    if message.get("messaging_service_sid"):
        params["MessagingServiceSid"] = message["messaging_service_sid"]
    return params


def run_message_lifecycle(ctx: FlowContext, sid: str) -> None:
    """Advance a message queued -> sent -> delivered, posting callbacks if requested."""
    steps: list[tuple[str, dict[str, Any]]] = [("queued", {}), ("sent", {}), ("delivered", {})]
    for status, changes in steps:
        if not ctx.runner.sleep(ctx.step_delay):
            return
        current = ctx.store.get("messages", sid)
        if current is None:
            return
        changes = dict(changes, status=status)
        if current.get("from") is None:  # Messaging Service picks a sender when queuing
            changes["from"] = ALWAYS_VALID_FROM
        if status == "sent":
            changes["date_sent"] = rfc2822(utcnow())
        updated = ctx.store.update("messages", sid, changes)
        if updated is None:
            return
        callback = updated.get("sandbox", {}).get("status_callback")
        if callback:
            send_status_callback(ctx, "messages", sid, callback, message_callback_params(updated))


# -- calls -----------------------------------------------------------------
def call_params(call: Resource, status: str) -> dict[str, str]:
    """Base parameters of every request Twilio makes about a call."""
    return {
        "AccountSid": call["account_sid"],
        "ApiVersion": API_VERSION,
        "CallSid": call["sid"],
        "CallStatus": status,
        "Called": call["to"],
        "Caller": call["from"],
        "Direction": call["direction"],
        "From": call["from"],
        "To": call["to"],
    }


class _CallFlow:
    """One outbound call's progression; runs in a TaskRunner thread."""

    def __init__(self, ctx: FlowContext, sid: str) -> None:
        self.ctx = ctx
        self.sid = sid
        self.sequence = 0

    def run(self) -> None:
        ctx = self.ctx
        call = ctx.store.get("calls", self.sid)
        if call is None:
            return
        meta = call.get("sandbox", {})
        if not ctx.runner.sleep(ctx.step_delay):
            return
        self.callback("initiated", "initiated")
        for status in ("ringing", "in-progress"):
            if not ctx.runner.sleep(ctx.step_delay):
                return
            changes: dict[str, Any] = {"status": status}
            if status == "in-progress":
                changes["start_time"] = rfc2822(utcnow())
            ctx.store.update("calls", self.sid, changes)
            self.callback("ringing" if status == "ringing" else "answered", status)
        call = ctx.store.get("calls", self.sid)
        if call is None:  # the sandbox was reset meanwhile: nothing left to drive
            return
        outcome = self.fetch_twiml(call, meta)
        if ctx.runner.stopping:
            return
        final = "failed" if outcome.twilio_error else "completed"
        if not ctx.runner.sleep(ctx.step_delay):
            return
        current = ctx.store.get("calls", self.sid)
        if current is None:
            return
        end = utcnow()
        duration = 0
        if current.get("start_time"):
            duration = max(0, int((end - parsedate_to_datetime(current["start_time"])).total_seconds()))
        ctx.store.update("calls", self.sid, {"status": final, "end_time": rfc2822(end), "duration": str(duration)})
        self.callback("completed", final, extra={"CallDuration": str(duration)})

    def fetch_twiml(self, call: Resource, meta: dict[str, Any]) -> TwimlOutcome:
        """Request the call's Url (or parse inline Twiml) and record the outcome."""
        ctx = self.ctx
        result: WebhookResult | None = None
        if meta.get("url"):
            params = call_params(call, "in-progress")
            result = ctx.sender.send(meta["url"], params, meta.get("method") or "POST")
            outcome = evaluate_reply(result, allow_empty=False)
            self.log_fetch(result, outcome, role="url")
            if outcome.twilio_error and meta.get("fallback_url") and not ctx.runner.stopping:
                fallback_params = dict(params)
                fallback_params["ErrorCode"] = str(outcome.twilio_error["code"])
                fallback_params["ErrorUrl"] = meta["url"]
                result = ctx.sender.send(meta["fallback_url"], fallback_params, meta.get("fallback_method") or "POST")
                outcome = evaluate_reply(result, allow_empty=False)
                self.log_fetch(result, outcome, role="fallback_url")
        else:
            outcome = parse_twiml(meta.get("inline_twiml") or "")
            ctx.store.log("call.twiml", call_sid=self.sid, twiml=outcome.twiml, twilio_error=outcome.twilio_error)
        ctx.store.update(
            "calls",
            self.sid,
            {},
            sandbox={
                "twiml": outcome.twiml,
                "webhook_status": result.status if result is not None else None,
                "twilio_error": outcome.twilio_error,
            },
        )
        return outcome

    def log_fetch(self, result: WebhookResult, outcome: TwimlOutcome, *, role: str) -> None:
        self.ctx.store.log(
            "call.webhook",
            call_sid=self.sid,
            role=role,
            twiml=outcome.twiml,
            twilio_error=outcome.twilio_error,
            **result.as_dict(),
        )

    def callback(self, event: str, status: str, extra: dict[str, str] | None = None) -> None:
        """Post a status callback if the call asked for this event."""
        call = self.ctx.store.get("calls", self.sid)
        if call is None:
            return
        meta = call.get("sandbox", {})
        url = meta.get("status_callback")
        if not url or event not in meta.get("status_callback_events", CALL_EVENTS):
            return
        params = call_params(call, status)
        params.update(
            {
                "CallbackSource": "call-progress-events",
                "SequenceNumber": str(self.sequence),
                "Timestamp": rfc2822(utcnow()),
            }
        )
        params.update(extra or {})
        self.sequence += 1
        send_status_callback(self.ctx, "calls", self.sid, url, params, meta.get("status_callback_method") or "POST")


def run_call_flow(ctx: FlowContext, sid: str) -> None:
    """Drive a created call: callbacks, TwiML fetch, final status."""
    _CallFlow(ctx, sid).run()
