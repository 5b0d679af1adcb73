"""TwiML documents built with twilio.twiml (escaping included), as the XML responses that carry them."""

from __future__ import annotations

import re
from typing import Iterable

import azure.functions as func

# Characters XML 1.0 cannot carry (and lone surrogates): text holding them would make the TwiML unparsable.
NOT_XML_CHARS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def say(message: str, voice: str | None = None, language: str | None = None) -> str:
    """<Response><Say voice=… language=…>message</Say></Response>."""
    from twilio.twiml.voice_response import VoiceResponse

    response = VoiceResponse()
    response.say(xml_safe(message), voice=voice, language=language)
    return response.to_xml(xml_declaration=True)


def reject() -> str:
    """<Response><Reject/></Response>: the caller hears busy and is not billed."""
    from twilio.twiml.voice_response import VoiceResponse

    response = VoiceResponse()
    response.reject()
    return response.to_xml(xml_declaration=True)


def refuse(text: str) -> str:
    """<Say>text</Say><Hangup/>: a short reason, and the call ends (never a <Dial>)."""
    from twilio.twiml.voice_response import VoiceResponse

    response = VoiceResponse()
    response.say(xml_safe(text))
    response.hangup()
    return response.to_xml(xml_declaration=True)


def hangup() -> str:
    """<Response><Hangup/></Response>."""
    from twilio.twiml.voice_response import VoiceResponse

    response = VoiceResponse()
    response.hangup()
    return response.to_xml(xml_declaration=True)


def dial(targets: Iterable[str], *, time_limit: int, caller_id: str | None = None, timeout: int | None = None,
         action: str | None = None) -> str:
    """<Dial timeLimit> ringing every target at once: E.164 numbers as <Number>, client:<name> as <Client>. The
    limit is required: without it Twilio lets the call run 4 hours."""
    from twilio.twiml.voice_response import VoiceResponse

    response = VoiceResponse()
    verb = response.dial(caller_id=caller_id, timeout=timeout, time_limit=time_limit, action=action,
                         method="POST" if action else None)
    for target in targets:
        if target.startswith("client:"):
            verb.client(target[len("client:"):])
        else:
            verb.number(target)
    return response.to_xml(xml_declaration=True)


def gather(prompt: str, action: str, before: str | None = None) -> str:
    """[<Say>before</Say>] <Gather numDigits=1 action actionOnEmptyResult><Say>prompt</Say></Gather>."""
    from twilio.twiml.voice_response import VoiceResponse

    response = VoiceResponse()
    if before:
        response.say(xml_safe(before))
    response.gather(num_digits=1, action=action, method="POST", action_on_empty_result=True).say(xml_safe(prompt))
    return response.to_xml(xml_declaration=True)


def record(greeting: str, max_length: int, action: str, status_callback: str) -> str:
    """<Say>greeting</Say><Record maxLength playBeep action recordingStatusCallback/>, and a goodbye when nothing
    was recorded (Twilio then goes on to the next verb)."""
    from twilio.twiml.voice_response import VoiceResponse

    response = VoiceResponse()
    response.say(xml_safe(greeting))
    response.record(max_length=max_length, play_beep=True, action=action, method="POST",
                    recording_status_callback=status_callback, recording_status_callback_method="POST")
    response.say("No message was recorded. Goodbye.")
    response.hangup()
    return response.to_xml(xml_declaration=True)


def message(text: str) -> str:
    """<Response><Message>text</Message></Response>."""
    from twilio.twiml.messaging_response import MessagingResponse

    response = MessagingResponse()
    response.message(xml_safe(text))
    return response.to_xml(xml_declaration=True)


def empty() -> str:
    """<Response/>: acknowledge and do nothing."""
    from twilio.twiml.messaging_response import MessagingResponse

    return MessagingResponse().to_xml(xml_declaration=True)


def xml_safe(text: str) -> str:
    """text without the characters XML cannot carry (escaping itself is twilio.twiml's job)."""
    return NOT_XML_CHARS.sub("", text)


def xml_response(document: str) -> func.HttpResponse:
    """200 text/xml with the rendered document (it starts with the XML declaration)."""
    return func.HttpResponse(document, status_code=200, mimetype="text/xml", charset="utf-8")
