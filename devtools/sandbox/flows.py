"""Twilio's side: signed requests to the app, its TwiML judged, message and call lifecycles, inbound SMS and calls."""

from __future__ import annotations

import mimetypes
import queue
import random
import threading
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Sequence
from typing import Any
from urllib.parse import urlencode, urljoin, urlsplit

import requests
from twilio.request_validator import RequestValidator

from .state import (ALWAYS_VALID_FROM, API_VERSION, Kind, Resource, Store, message_resource, new_sid, now_rfc2822,
                    webhook_error)

DIAL_OUTCOMES = ("completed", "no-answer", "busy", "failed", "canceled")  # a <Dial>'s DialCallStatus
LIVE_WAIT = 300.0  # seconds a live call waits for the developer's answer before taking the default
CLIENT_APPLICATION_SID = "AP" + "0" * 32  # the TwiML App a Voice SDK (client:...) call comes through


class Flows:
    """Requests to the app as Twilio makes them; lifecycles on daemon threads, ending at their next step once closed."""

    def __init__(self, store: Store, stopping: threading.Event, *, account_sid: str, auth_token: str, step_delay: float,
                 timeout: float) -> None:
        self.store = store
        self._stopping = stopping  # set when the sandbox stops: every lifecycle ends at its next step
        self.account_sid = account_sid
        self._auth_token = auth_token
        self._step_delay = step_delay
        self._timeout = timeout
        self.shuffle_callbacks = False  # the fault mode: a lifecycle's callbacks at its end, shuffled and doubled
        self._held: dict[str, list[tuple[Kind, Resource, dict[str, str]]]] = {}
        self.base_url = ""  # the sandbox's origin (set once serving): recordings' URLs start with it
        self._live: dict[str, _InboundCall] = {}  # live inbound calls, by SID, while they run

    def spawn(self, sid: str) -> None:
        """Run a new message's (SM...) or call's (CA...) lifecycle on a daemon thread (a crash is reported by
        threading.excepthook, never silent)."""
        lifecycle = self.message_lifecycle if sid.startswith("SM") else self.call_flow
        threading.Thread(target=lifecycle, args=(sid,), name=f"sandbox-{sid}", daemon=True).start()

    def _step(self) -> bool:
        """Wait one step; False once closing."""
        return not self._stopping.wait(self._step_delay)

    def send(self, url: str, params: dict[str, str], method: str = "POST") -> dict[str, Any]:
        """POST (form) or GET (query) params to url with X-Twilio-Signature; the outcome, never raising."""
        method = "GET" if method.upper() == "GET" else "POST"
        result: dict[str, Any] = {"url": url, "method": method, "params": dict(params), "status": None,
                                  "content_type": None, "body": "", "error": None}
        form, query = (params, "") if method == "POST" else ({}, urlencode(params))
        target = f"{url}{'&' if urlsplit(url).query else '?'}{query}" if query else url
        signature = RequestValidator(self._auth_token).compute_signature(target, form)
        headers = {"X-Twilio-Signature": signature, "I-Twilio-Idempotency-Token": str(uuid.uuid4()),
                   "User-Agent": "TwilioProxy/1.1", "Accept": "*/*"}
        result["signature"], started = signature, time.perf_counter()
        try:
            reply = requests.request(method, target, data=form or None, headers=headers, timeout=self._timeout,
                                     allow_redirects=False)
        except requests.RequestException as exc:
            return {**result, "error": f"{type(exc).__name__}: {exc}", "ms": _ms_since(started)}
        return {**result, "status": reply.status_code, "content_type": reply.headers.get("Content-Type"),
                "body": reply.content.decode("utf-8", "replace"), "ms": _ms_since(started)}

    def _status_callback(self, kind: Kind, resource: Resource, params: dict[str, str], held: bool = False) -> None:
        url = resource["sandbox"].get("status_callback")
        if url and self.shuffle_callbacks and not held:
            self._held.setdefault(resource["sid"], []).append((kind, resource, params))
        elif url:
            result = self.send(url, params)
            status = params.get("MessageStatus") or params.get("CallStatus")
            self.store.log("status_callback", resource=kind[:-1], sid=resource["sid"], resource_status=status, **result)

    def _release_callbacks(self, sid: str) -> None:
        """In the shuffle mode, at a lifecycle's end: every held callback twice, in random order (as Twilio may)."""
        held = self._held.pop(sid, []) * 2
        random.shuffle(held)
        for kind, resource, params in held:
            self._status_callback(kind, resource, params, held=True)

    def message_lifecycle(self, sid: str) -> None:
        """queued -> sent -> delivered, with a signed status callback at each step when one was given."""
        sender = (self.store.get("messages", sid) or {}).get("from") or ALWAYS_VALID_FROM  # a service picks one
        for status in ("queued", "sent", "delivered"):
            changes = {"status": status, "from": sender}
            if status == "sent":
                changes["date_sent"] = now_rfc2822()
            message = self.store.update("messages", sid, changes) if self._step() else None
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
        started = time.monotonic()
        for sequence, status in enumerate(("initiated", "ringing", "in-progress")):
            # Twilio's start_time is empty only until the call is dialed
            changes = {"start_time": now_rfc2822()} if status == "initiated" else {"status": status}
            if status == "in-progress":
                started = time.monotonic()
            call = self.store.update("calls", sid, changes) if self._step() else None
            if call is None:
                return
            self._status_callback("calls", call, {**_call_params(call, status), "SequenceNumber": str(sequence)})
        result = self.send(call["sandbox"]["url"], _call_params(call, "in-progress"), call["sandbox"]["method"])
        twiml, error = judge_twiml(result, allow_empty=False)
        outcome = {"twiml": twiml, "webhook_status": result["status"], "twilio_error": error}
        self.store.update("calls", sid, {"sandbox": {**call["sandbox"], **outcome}})
        self.store.log("call.webhook", call_sid=sid, twiml=twiml, twilio_error=error, **result)
        if not self._step():
            return
        final, duration = ("failed" if error else "completed"), str(int(time.monotonic() - started))
        call = self.store.update("calls", sid, {"status": final, "end_time": now_rfc2822(), "duration": duration})
        if call is not None:
            params = {**_call_params(call, final), "SequenceNumber": str(sequence + 1), "CallDuration": duration}
            self._status_callback("calls", call, params)
        self._release_callbacks(sid)

    def inbound_sms(self, url: str, from_: str, to: str, body: str = "", *, media_urls: Sequence[str] = (),
                    method: str = "POST") -> dict[str, Any]:
        """Deliver an inbound SMS to the app's webhook; each <Message> answered is stored as an outbound reply."""
        if not isinstance(body, str) or isinstance(media_urls, str) or not all(isinstance(u, str) for u in media_urls):
            raise ValueError("body must be a string and media_urls a list of strings")
        sid = new_sid("MM" if media_urls else "SM")
        params = {"MessageSid": sid, "SmsSid": sid, "SmsMessageSid": sid, "AccountSid": self.account_sid,
                  "From": from_, "To": to, "Body": body, "NumMedia": str(len(media_urls)), "NumSegments": "1",
                  "SmsStatus": "received", "ApiVersion": API_VERSION}
        for index, media_url in enumerate(media_urls):
            params[f"MediaUrl{index}"] = media_url
            params[f"MediaContentType{index}"] = mimetypes.guess_type(media_url)[0] or "image/jpeg"
        result = self.send(url, params, method)
        twiml, error = judge_twiml(result, allow_empty=True)
        for reply in (ET.fromstring(twiml.strip()).findall("Message") if twiml else []):
            text = reply.findtext("Body", reply.text) or ""  # <Message><Body>text</Body></Message> or <Message>text
            self.store.add("messages", message_resource(self.account_sid, to=reply.get("to") or from_,
                                                        from_=reply.get("from") or to, body=text.strip(),
                                                        status="sent", direction="outbound-reply"))
        self.store.log("inbound.sms", sid=sid, twiml=twiml, twilio_error=error, **result)
        return _outcome(sid, result, twiml, error)

    def inbound_call(self, url: str, from_: str, to: str, *, method: str = "POST", digits: Sequence[str] = (),
                     dial_outcomes: Sequence[str] = (), record: bool = True, max_steps: int = 20) -> dict[str, Any]:
        """Ring the app's voice webhook and play the caller's side as Twilio would (README, "Twilio sandbox"): each
        <Gather> takes the next of `digits`, each <Dial> the next of `dial_outcomes`, a <Record> gets a message when
        `record`; at most max_steps requests. Returns {status, content_type, twiml (the first document), sid
        [, twilio_error], steps: [{url, method, params, status, twiml, twilio_error, verbs}], dialed, said, ended}."""
        if type(max_steps) is not int or max_steps < 1 or not set(dial_outcomes) <= set(DIAL_OUTCOMES):
            raise ValueError(f"max_steps must be at least 1 and dial outcomes among {', '.join(DIAL_OUTCOMES)}")
        if isinstance(digits, str) or not all(isinstance(keys, str) for keys in digits) or not isinstance(record, bool):
            raise ValueError("digits must be a list of strings and record a boolean")
        return self._run(_InboundCall(self, from_, to, digits, dial_outcomes, record, max_steps), url, method)

    def live_call(self, url: str, from_: str, to: str, *, method: str = "POST") -> dict[str, Any]:
        """Start an inbound call that asks the developer at each <Gather> (digits), <Dial> (its outcome) and <Record>
        (leave a message or not), logging a call.waiting event each time, until answer(); returns {sid}."""
        call = _InboundCall(self, from_, to, (), (), True, 20, live=True)
        self._live[call.sid] = call
        threading.Thread(target=self._run, args=(call, url, method), name=f"sandbox-{call.sid}", daemon=True).start()
        return {"sid": call.sid}

    def answer(self, sid: str, value: Any) -> dict[str, Any]:
        """Answer a live call's question: digits (a string), dial (one of DIAL_OUTCOMES), record (a boolean)."""
        call = self._live.get(sid)
        if call is None or call.waiting is None:
            raise ValueError(f"call {sid} is not waiting for an answer")
        valid = {"digits": isinstance(value, str), "dial": value in DIAL_OUTCOMES, "record": isinstance(value, bool)}
        if not valid[call.waiting]:
            raise ValueError(f"the call waits for {call.waiting}: digits a string, dial one of "
                             f"{', '.join(DIAL_OUTCOMES)}, record a boolean")
        call.answers.put(value)
        return {"sid": sid, "answered": call.waiting}

    def _run(self, call: _InboundCall, url: str, method: str) -> dict[str, Any]:
        request: tuple[str, str, dict[str, str]] = (url, method, {})
        try:
            while True:  # request a document, play it: the next request, until the call ends
                request = call.play(call.request(*request), document=request[0])
        except _Ended as end:
            ended = str(end)
        self._live.pop(call.sid, None)
        twiml, error = call.steps[0]["twiml"], call.steps[-1]["twilio_error"]
        self.store.log("inbound.call", sid=call.sid, twiml=twiml, twilio_error=error, ended=ended,
                       steps=len(call.steps), said=call.said, dialed=call.dialed, **call.first)
        return {**_outcome(call.sid, call.first, twiml, error), "steps": call.steps, "dialed": call.dialed,
                "said": call.said, "ended": ended}


class _Ended(Exception):
    """Raised when a simulated inbound call ends; its argument says how: hangup, reject, end, step limit or error."""


class _InboundCall:
    """One inbound call from the caller's side: the keys pressed, how each <Dial> ends, whether a message is left."""

    def __init__(self, flows: Flows, from_: str, to: str, digits: Sequence[str], dial_outcomes: Sequence[str],
                 record: bool, max_steps: int, live: bool = False) -> None:
        self.flows = flows
        self.answers: queue.Queue[Any] | None = queue.Queue() if live else None  # a live call's answers
        self.waiting: str | None = None  # what a live call waits for: digits, dial or record
        self.digits, self.dial_outcomes = iter(digits), iter(dial_outcomes)
        self.record = record
        self.max_steps = max_steps
        self.sid = new_sid("CA")
        self.params = _call_params({"account_sid": flows.account_sid, "sid": self.sid, "from": from_, "to": to,
                                    "direction": "inbound"}, "ringing")
        if from_.startswith("client:"):
            self.params["ApplicationSid"] = CLIENT_APPLICATION_SID
        self.first: dict[str, Any] = {}  # the first request's outcome
        self.steps: list[dict[str, Any]] = []
        self.said: list[str] = []
        self.dialed: list[list[str]] = []

    def request(self, url: str, method: str, own: dict[str, str], twiml: bool = True) -> str:
        """One step: request url with the call's parameters and the step's own; the TwiML answered, else _Ended."""
        if len(self.steps) >= self.max_steps:
            self.steps[-1]["verbs"].append("step limit")
            raise _Ended("step limit")
        # a request that expects no TwiML (a recording status callback) has only AccountSid and CallSid of the call's
        base = self.params if twiml else {"AccountSid": self.flows.account_sid, "CallSid": self.sid}
        result = self.flows.send(url, {**base, **own}, method)
        document, error = judge_twiml(result, allow_empty=False) if twiml else (None, None)
        self.first = self.first or result
        self.steps.append({"url": url, "method": result["method"], "params": own, "status": result["status"],
                           "twiml": document, "twilio_error": error, "verbs": []})
        self.flows.store.log("call.step", sid=self.sid, step=len(self.steps), twiml=document, twilio_error=error,
                             **result)
        self.params["CallStatus"] = "in-progress"
        if error:
            raise _Ended("error")
        return document or ""

    def play(self, twiml: str, document: str) -> tuple[str, str, dict[str, str]]:
        """Perform the verbs until one requests the next document (returned) or the call ends (_Ended)."""
        notes = self.steps[-1]["verbs"]  # the step's verbs, as performed
        for verb in ET.fromstring(twiml.strip()):
            action, how = urljoin(document, verb.get("action", "")), verb.get("method", "POST")
            if verb.tag in ("Say", "Play", "Pause"):
                self.note(verb)
            elif verb.tag == "Gather":
                for child in verb:
                    self.note(child)
                pressed = self.ask("digits", self.digits, "")
                if (finish := verb.get("finishOnKey", "#")) and finish in pressed:
                    pressed = pressed[:pressed.index(finish)]
                if (limit := verb.get("numDigits", "")).isdigit():
                    pressed = pressed[:int(limit)]
                notes.append(f"Gather: {pressed or 'no input'}")
                if pressed or verb.get("actionOnEmptyResult") == "true":
                    return action, how, {"Digits": pressed}
            elif verb.tag == "Dial":
                targets = [("client:" if noun.tag == "Client" else "") + _text(noun) for noun in verb] or [_text(verb)]
                outcome = self.ask("dial", self.dial_outcomes, "completed")
                self.dialed.append(targets)
                notes.append(f"Dial {', '.join(targets)}: {outcome}")
                answered = {"DialCallDuration": "12", "DialCallSid": new_sid("CA")} if outcome == "completed" else {}
                if verb.get("action"):
                    return action, how, {"DialCallStatus": outcome, "DialCallDuration": "0", **answered}
            elif verb.tag == "Record" and self.ask("record", iter([self.record]), True):
                notes.append("Record: a 7 s message, then the caller hangs up")
                sid = new_sid("RE")
                recording = {"RecordingSid": sid, "RecordingUrl": f"{self.flows.base_url}/{API_VERSION}/Accounts/"
                             f"{self.flows.account_sid}/Recordings/{sid}", "RecordingDuration": "7"}
                if callback := verb.get("recordingStatusCallback"):
                    status = {"RecordingStatus": "completed", "RecordingChannels": "1", "RecordingSource": "RecordVerb",
                              "RecordingStartTime": now_rfc2822(), "ErrorCode": "0"}
                    self.request(urljoin(document, callback), verb.get("recordingStatusCallbackMethod", "POST"),
                                 {**recording, **status}, twiml=False)
                self.request(action, how, {**recording, "Digits": "hangup"})
                raise _Ended("hangup")
            elif verb.tag == "Record":  # an empty recording: Twilio skips the action and runs the next verb
                notes.append("Record: no audio")
            elif verb.tag == "Redirect":
                notes.append(f"Redirect: {_text(verb)}")
                return urljoin(document, _text(verb)), how, {}
            elif verb.tag in ("Hangup", "Reject"):
                notes.append(verb.tag)
                raise _Ended(verb.tag.lower())
            else:
                notes.append(f"<{verb.tag}> not simulated: skipped")
        raise _Ended("end")

    def ask(self, what: str, scripted: Iterator[Any], default: Any) -> Any:
        """The script's next answer; on a live call, the developer's (a call.waiting event asks), else the default."""
        if self.answers is None:
            return next(scripted, default)
        self.waiting = what
        self.flows.store.log("call.waiting", sid=self.sid, waiting=what, step=len(self.steps))
        deadline = time.monotonic() + LIVE_WAIT
        try:
            while not self.flows._stopping.is_set() and time.monotonic() < deadline:
                try:
                    return self.answers.get(timeout=0.2)
                except queue.Empty:
                    continue
            return default
        finally:
            self.waiting = None

    def note(self, verb: ET.Element) -> None:
        if verb.tag == "Say":
            self.said.append(_text(verb))
        length = f"{verb.get('length', '1')} s" if verb.tag == "Pause" else _text(verb)
        self.steps[-1]["verbs"].append(f"{verb.tag}: {length}")


def judge_twiml(result: dict[str, Any], *, allow_empty: bool) -> tuple[str | None, dict[str, Any] | None]:
    """(TwiML, None) or (None, Twilio error): 11200 no 2xx answer, 12300 not an XML type, 12100 not <Response>."""
    if not 200 <= (result["status"] or 0) < 300:  # no answer (result["error"] says why), or not a 2xx one
        return None, webhook_error(11200, result["error"] or f"HTTP {result['status']} from {result['url']}")
    if allow_empty and not result["body"].strip():
        return "", None
    media_type = (result["content_type"] or "").split(";", 1)[0].strip().lower()
    if media_type not in ("text/xml", "application/xml", "text/html") and not media_type.endswith("+xml"):
        return None, webhook_error(12300, f"Content-Type {media_type or '(none)'} is not a TwiML type")
    try:
        root = ET.fromstring(result["body"].strip())
    except ET.ParseError as exc:
        return None, webhook_error(12100, f"XML parse error: {exc}")
    if root.tag != "Response":
        return None, webhook_error(12100, f"root element is <{root.tag}>, expected <Response>")
    return result["body"], None


def _ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)


def _text(element: ET.Element) -> str:
    return "".join(element.itertext()).strip()


def _call_params(call: Resource, status: str) -> dict[str, str]:
    """The parameters of every request Twilio makes about a call."""
    return {"AccountSid": call["account_sid"], "ApiVersion": API_VERSION, "CallSid": call["sid"], "CallStatus": status,
            "Called": call["to"], "Caller": call["from"], "Direction": call["direction"], "From": call["from"],
            "To": call["to"]}


def _outcome(sid: str, result: dict[str, Any], twiml: str | None, error: dict[str, Any] | None) -> dict[str, Any]:
    """What a simulated inbound request returns: status, content_type, twiml, sid[, twilio_error]."""
    outcome = {"status": result["status"], "content_type": result["content_type"], "twiml": twiml, "sid": sid}
    return {**outcome, "twilio_error": error} if error else outcome
