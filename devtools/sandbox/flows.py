"""Twilio's side of the story: message statuses, the outbound call flow and simulated inbound SMS and calls (the
caller's side of a multi-step voice flow included)."""

from __future__ import annotations

import itertools
import logging
import mimetypes
import random
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin

from .errors import ALWAYS_VALID_FROM, API_VERSION
from .state import Kind, Resource, Store, message_resource, new_sid, now_rfc2822
from .webhooks import judge_twiml, reply_messages, send_signed

_log = logging.getLogger("devtools.sandbox")
DIAL_OUTCOMES = ("completed", "no-answer", "busy", "failed", "canceled")  # a <Dial>'s DialCallStatus
CLIENT_APPLICATION_SID = "AP" + "0" * 32  # the TwiML App a Voice SDK (client:...) call comes through
_Request = tuple[str, str, dict[str, str], bool]  # url, method, the step's own params, TwiML expected


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
        self.base_url = ""  # the sandbox's origin (set once serving): recordings' URLs start with it

    def spawn(self, sid: str) -> None:
        """Run a new message's (SM...) or call's (CA...) lifecycle on a daemon thread (nothing once closed)."""
        target = self.message_lifecycle if sid.startswith("SM") else self.call_flow
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

    def inbound_call(self, url: str, from_: str, to: str, *, method: str = "POST", digits: Sequence[str] = (),
                     dial_outcomes: Sequence[str] = (), record: bool = True, max_steps: int = 20) -> dict[str, Any]:
        """Ring the app's voice webhook and play the caller's side, following the TwiML answered as Twilio does.

        Every request is signed and carries the call's parameters (CallStatus ringing, then in-progress; a
        client:... caller adds ApplicationSid). <Say>, <Play>, <Pause> are noted. <Gather> takes the next of
        `digits`: keys request its action (default: the document's URL) with Digits; no input ("" or none left)
        runs the next verb, unless actionOnEmptyResult="true" (then Digits=""). <Dial> takes the next of
        `dial_outcomes` ("completed" by default) and requests its action with DialCallStatus and DialCallDuration;
        without an action the next verb runs. <Record>, when `record`: recordingStatusCallback (if any), then the
        action with Digits=hangup (the caller hung up after the message), which ends the call. Without `record`
        the recording is empty, and as Twilio documents ("if Twilio receives an empty recording, it will not make
        a request to the 'action' URL. The current call flow will continue with the next verb in the current TwiML
        document", https://www.twilio.com/docs/voice/twiml/record) the next verb runs. <Redirect> requests its URL;
        <Hangup/>, <Reject/> or the document's end end the call; relative URLs resolve against the document's URL.
        A non-2xx answer or bad TwiML ends it with the Twilio error; more than max_steps requests, as "step limit".

        Returns {status, content_type, twiml (the first document), sid[, twilio_error], steps: [{url, method,
        params (the step's own: Digits, DialCallStatus, Recording...), status, twiml, twilio_error, verbs}],
        dialed: [[target, ...] per <Dial>], said: [every <Say>'s text], ended: hangup|reject|end|step limit|error}.
        """
        if max_steps < 1 or any(outcome not in DIAL_OUTCOMES for outcome in dial_outcomes):
            raise ValueError(f"max_steps must be at least 1 and dial outcomes among {', '.join(DIAL_OUTCOMES)}")
        sid = new_sid("CA")
        call = _call_params({"account_sid": self.account_sid, "sid": sid, "from": from_, "to": to,
                             "direction": "inbound"}, "ringing")
        if from_.startswith("client:"):
            call["ApplicationSid"] = CLIENT_APPLICATION_SID
        caller = _Caller(iter(digits), iter(dial_outcomes), record,
                         f"{self.base_url}/{API_VERSION}/Accounts/{self.account_sid}/Recordings/")
        pending: list[_Request] = [(url, method, {}, True)]
        steps: list[dict[str, Any]] = []
        verbs: list[ET.Element] = []
        document, ending, error = url, None, None
        first: tuple[dict[str, Any], str | None] | None = None  # the first request's outcome and TwiML
        while True:
            if pending and len(steps) >= max_steps:
                ended = "step limit"
                steps[-1]["verbs"].append("step limit")
                break
            if pending:
                target, how, own, expects_twiml = pending.pop(0)
                params = {**call, **own} if expects_twiml else {"AccountSid": self.account_sid, "CallSid": sid, **own}
                result = self._send(target, params, how)
                twiml, error = judge_twiml(result, allow_empty=False) if expects_twiml else (None, None)
                first = first or (result, twiml)
                step = {"url": target, "method": result["method"], "params": own, "status": result["status"],
                        "twiml": twiml, "twilio_error": error, "verbs": []}
                steps.append(step)
                self.store.log("call.step", sid=sid, step=len(steps), twiml=twiml, twilio_error=error, **result)
                call["CallStatus"] = "in-progress"
                if error:
                    ended = "error"
                    break
                if twiml is not None:
                    verbs, document, caller.notes = list(ET.fromstring(twiml.strip())), target, step["verbs"]
            elif ending or not verbs:
                ended = ending or "end"
                break
            else:
                pending, ending = caller.act(verbs.pop(0), document)
        assert first is not None
        self.store.log("inbound.call", sid=sid, twiml=first[1], twilio_error=error, ended=ended, steps=len(steps),
                       **first[0])
        return {**_outcome(sid, first[0], first[1], error), "steps": steps, "dialed": caller.dialed,
                "said": caller.said, "ended": ended}


@dataclass
class _Caller:
    """The caller's side of an inbound call: the keys pressed, how each <Dial> ends, whether a message is left."""

    digits: Iterator[str]
    dial_outcomes: Iterator[str]
    record: bool
    recordings_url: str
    said: list[str] = field(default_factory=list)
    dialed: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # the current step's verbs, as performed

    def act(self, verb: ET.Element, document: str) -> tuple[list[_Request], str | None]:
        """Perform one verb: the requests it makes, and how the call ends after them (None: it goes on)."""
        action, how = urljoin(document, verb.get("action", "")), verb.get("method", "POST")
        if verb.tag in ("Say", "Play", "Pause"):
            self._note(verb)
        elif verb.tag == "Gather":
            for child in verb:
                self._note(child)
            pressed = next(self.digits, "")
            if (finish := verb.get("finishOnKey", "#")) and finish in pressed:
                pressed = pressed[:pressed.index(finish)]
            if (limit := verb.get("numDigits", "")).isdigit():
                pressed = pressed[:int(limit)]
            self.notes.append(f"Gather: {pressed or 'no input'}")
            if pressed or verb.get("actionOnEmptyResult") == "true":
                return [(action, how, {"Digits": pressed}, True)], None
        elif verb.tag == "Dial":
            targets = [("client:" if noun.tag == "Client" else "") + _text(noun) for noun in verb] or [_text(verb)]
            outcome = next(self.dial_outcomes, "completed")
            self.dialed.append(targets)
            self.notes.append(f"Dial {', '.join(targets)}: {outcome}")
            params = {"DialCallStatus": outcome, "DialCallDuration": "0"}
            if outcome == "completed":
                params.update(DialCallDuration="12", DialCallSid=new_sid("CA"))
            if verb.get("action"):
                return [(action, how, params, True)], None
        elif verb.tag == "Record" and not self.record:
            self.notes.append("Record: no audio")
        elif verb.tag == "Record":
            self.notes.append("Record: a 7 s message, then the caller hangs up")
            recording_sid = new_sid("RE")
            recording = {"RecordingSid": recording_sid, "RecordingUrl": self.recordings_url + recording_sid,
                         "RecordingDuration": "7"}
            requests = [(action, how, {**recording, "Digits": "hangup"}, True)]
            if callback := verb.get("recordingStatusCallback"):
                status = {"RecordingStatus": "completed", "RecordingChannels": "1", "RecordingSource": "RecordVerb",
                          "RecordingStartTime": now_rfc2822(), "ErrorCode": "0"}
                requests.insert(0, (urljoin(document, callback), verb.get("recordingStatusCallbackMethod", "POST"),
                                    {**recording, **status}, False))
            return requests, "hangup"
        elif verb.tag == "Redirect":
            self.notes.append(f"Redirect: {_text(verb)}")
            return [(urljoin(document, _text(verb)), how, {}, True)], None
        elif verb.tag in ("Hangup", "Reject"):
            self.notes.append(verb.tag)
            return [], verb.tag.lower()
        else:
            self.notes.append(f"<{verb.tag}> not simulated: skipped")
        return [], None

    def _note(self, verb: ET.Element) -> None:
        if verb.tag == "Say":
            self.said.append(_text(verb))
        self.notes.append(f"{verb.tag}: {verb.get('length', '1') + ' s' if verb.tag == 'Pause' else _text(verb)}")


def _text(element: ET.Element) -> str:
    return "".join(element.itertext()).strip()


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
