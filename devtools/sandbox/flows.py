"""Twilio's side of the story: message statuses, the outbound call flow and simulated inbound SMS and calls."""

from __future__ import annotations

import itertools
import logging
import mimetypes
import random
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from .errors import ALWAYS_VALID_FROM, API_VERSION
from .state import Kind, Resource, Store, message_resource, new_sid, now_rfc2822
from .webhooks import judge_twiml, reply_messages, send_signed

_log = logging.getLogger("devtools.sandbox")


class Flows:
    """Runs lifecycles on daemon threads that end at their next step after close()."""

    def __init__(self, store: Store, *, account_sid: str, auth_token: str, step_delay: float, timeout: float) -> None:
        self.store = store
        self.account_sid = account_sid
        self._auth_token = auth_token
        self._step_delay = step_delay
        self._timeout = timeout
        self._stopping = threading.Event()
        self.shuffle_callbacks = False  # the fault mode: a lifecycle's callbacks at its end, shuffled and doubled
        self._held: dict[str, list[tuple[Kind, Resource, dict[str, str]]]] = {}

    def spawn(self, target: Callable[[str], None], sid: str) -> None:
        """Run target(sid) on a daemon thread (nothing once closed)."""
        if not self._stopping.is_set():
            threading.Thread(target=self._run, args=(target, sid), name=f"sandbox-{sid}", daemon=True).start()

    def _run(self, target: Callable[[str], None], sid: str) -> None:
        try:
            target(sid)
        except Exception:  # a sandbox bug: logged, never silent
            _log.exception("sandbox flow for %s failed", sid)

    def close(self) -> None:
        """End every lifecycle at its next step (a webhook request under way still finishes or times out)."""
        self._stopping.set()

    def _step(self) -> bool:
        """Wait one step; False once closing."""
        return not self._stopping.wait(self._step_delay)

    def _send(self, url: str, params: dict[str, str], method: str = "POST") -> dict[str, Any]:
        return send_signed(self._auth_token, url, params, method, self._timeout)

    def _status_callback(self, kind: Kind, resource: Resource, params: dict[str, str], held: bool = False) -> None:
        url = resource["sandbox"].get("status_callback")
        if url and self.shuffle_callbacks and not held:
            self._held.setdefault(resource["sid"], []).append((kind, resource, params))
        elif url:
            result = self._send(url, params)
            status = params.get("MessageStatus") or params.get("CallStatus")
            self.store.log("status_callback", resource=kind[:-1], sid=resource["sid"], resource_status=status, **result)

    def _release_callbacks(self, sid: str) -> None:
        """At a lifecycle's end, in the shuffle mode: every held callback twice, in random order (Twilio promises
        neither order nor exactly-once delivery)."""
        held = self._held.pop(sid, []) * 2
        random.shuffle(held)
        for kind, resource, params in held:
            self._status_callback(kind, resource, params, held=True)

    # -- outbound ------------------------------------------------------------------------------------------------
    def message_lifecycle(self, sid: str) -> None:
        """queued -> sent -> delivered, with a signed status callback at each step when one was given."""
        for status in ("queued", "sent", "delivered"):
            current = self.store.get("messages", sid) if self._step() else None
            if current is None:
                return
            changes = {"status": status, "from": current["from"] or ALWAYS_VALID_FROM}  # a service picks a sender
            if status == "sent":
                changes["date_sent"] = now_rfc2822()
            message = self.store.update("messages", sid, changes)
            if message is None:
                return
            params = {"MessageSid": sid, "SmsSid": sid, "AccountSid": self.account_sid, "From": message["from"],
                      "To": message["to"], "MessageStatus": status, "SmsStatus": status, "ApiVersion": API_VERSION}
            if message["messaging_service_sid"]:
                params["MessagingServiceSid"] = message["messaging_service_sid"]
            self._status_callback("messages", message, params)
        self._release_callbacks(sid)

    def call_flow(self, sid: str) -> None:
        """initiated -> ringing -> in-progress, the signed fetch of the call's Url, then completed or failed."""
        sequence = itertools.count()
        started = time.monotonic()
        call: Resource | None = None
        for status in ("initiated", "ringing", "in-progress"):
            if not self._step():
                return
            changes = {} if status == "initiated" else {"status": status}
            if status == "in-progress":
                started, changes["start_time"] = time.monotonic(), now_rfc2822()
            call = self.store.update("calls", sid, changes)
            if call is None:
                return
            self._status_callback("calls", call, _call_params(call, status, next(sequence)))
        assert call is not None
        error = self._fetch_twiml(call)
        if not self._step():
            return
        final, duration = ("failed" if error else "completed"), str(int(time.monotonic() - started))
        call = self.store.update("calls", sid, {"status": final, "end_time": now_rfc2822(), "duration": duration})
        if call is not None:
            params = {**_call_params(call, final, next(sequence)), "CallDuration": duration}
            self._status_callback("calls", call, params)
        self._release_callbacks(sid)

    def _fetch_twiml(self, call: Resource) -> dict[str, Any] | None:
        """Request the call's Url as Twilio does; record the TwiML or the Twilio error (returned)."""
        meta = call["sandbox"]
        params = _call_params(call, "in-progress")
        result = self._send(meta["url"], params, meta["method"])
        twiml, error = judge_twiml(result, allow_empty=False)
        outcome = {"twiml": twiml, "webhook_status": result["status"], "twilio_error": error}
        self.store.update("calls", call["sid"], {}, sandbox=outcome)
        self.store.log("call.webhook", call_sid=call["sid"], twiml=twiml, twilio_error=error, **result)
        return error

    # -- inbound -------------------------------------------------------------------------------------------------
    def inbound_sms(self, url: str, from_: str, to: str, body: str, *, media_urls: Sequence[str] = (),
                    method: str = "POST") -> dict[str, Any]:
        """Deliver an inbound SMS to the app's webhook; each <Message> answered is stored as an outbound reply."""
        sid = new_sid("MM" if media_urls else "SM")
        params = {"MessageSid": sid, "SmsSid": sid, "SmsMessageSid": sid, "AccountSid": self.account_sid,
                  "From": from_, "To": to, "Body": body, "NumMedia": str(len(media_urls)), "NumSegments": "1",
                  "SmsStatus": "received", "ApiVersion": API_VERSION}
        for index, media_url in enumerate(media_urls):
            params[f"MediaUrl{index}"] = media_url
            params[f"MediaContentType{index}"] = mimetypes.guess_type(media_url)[0] or "image/jpeg"
        result = self._send(url, params, method)
        twiml, error = judge_twiml(result, allow_empty=True)
        for reply_to, reply_from, text in reply_messages(twiml):
            self.store.add("messages", message_resource(self.account_sid, to=reply_to or from_, from_=reply_from or to,
                                                        body=text, status="sent", direction="outbound-reply"))
        self.store.log("inbound.sms", sid=sid, twiml=twiml, twilio_error=error, **result)
        return _outcome(sid, result, twiml, error)

    def inbound_call(self, url: str, from_: str, to: str, *, method: str = "POST") -> dict[str, Any]:
        """Ring the app's voice webhook with an inbound call; its TwiML or Twilio error."""
        sid = new_sid("CA")
        params = {"AccountSid": self.account_sid, "ApiVersion": API_VERSION, "CallSid": sid, "CallStatus": "ringing",
                  "Direction": "inbound", "From": from_, "To": to, "Caller": from_, "Called": to}
        result = self._send(url, params, method)
        twiml, error = judge_twiml(result, allow_empty=False)
        self.store.log("inbound.call", sid=sid, twiml=twiml, twilio_error=error, **result)
        return _outcome(sid, result, twiml, error)


def _call_params(call: Resource, status: str, sequence: int | None = None) -> dict[str, str]:
    """The parameters of every request Twilio makes about a call."""
    params = {"AccountSid": call["account_sid"], "ApiVersion": API_VERSION, "CallSid": call["sid"],
              "CallStatus": status, "Called": call["to"], "Caller": call["from"], "Direction": call["direction"],
              "From": call["from"], "To": call["to"]}
    if sequence is not None:
        params["SequenceNumber"] = str(sequence)
    return params


def _outcome(sid: str, result: dict[str, Any], twiml: str | None, error: dict[str, Any] | None) -> dict[str, Any]:
    """What a simulated inbound request returns: status, content_type, twiml, sid[, twilio_error]."""
    outcome = {"status": result["status"], "content_type": result["content_type"], "twiml": twiml, "sid": sid}
    return {**outcome, "twilio_error": error} if error else outcome
