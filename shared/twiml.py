"""TwiML documents built with twilio.twiml (escaping included) and the XML HttpResponse that carries them."""

from __future__ import annotations

import re

import azure.functions as func
from twilio.twiml import TwiML

VOICE_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
# Characters XML 1.0 cannot carry (and lone surrogates): text holding them would make the TwiML unparsable.
NOT_XML_CHARS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
LANGUAGE_PATTERN = re.compile(r"[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8}){0,2}")


def say(message: str, voice: str | None = None, language: str | None = None) -> TwiML:
    """<Response><Say voice=… language=…>message</Say></Response>."""
    from twilio.twiml.voice_response import VoiceResponse

    response = VoiceResponse()
    response.say(xml_safe(message), voice=voice, language=language)
    return response


def reject() -> TwiML:
    """<Response><Reject/></Response>: the caller hears busy and is not billed."""
    from twilio.twiml.voice_response import VoiceResponse

    response = VoiceResponse()
    response.reject()
    return response


def message(text: str) -> TwiML:
    """<Response><Message>text</Message></Response>."""
    from twilio.twiml.messaging_response import MessagingResponse

    response = MessagingResponse()
    response.message(xml_safe(text))
    return response


def empty() -> TwiML:
    """<Response/>: acknowledge and do nothing."""
    from twilio.twiml.messaging_response import MessagingResponse

    return MessagingResponse()


def xml_safe(text: str) -> str:
    """text without the characters XML cannot carry (escaping itself is twilio.twiml's job)."""
    return NOT_XML_CHARS.sub("", text)


def xml_response(document: TwiML) -> func.HttpResponse:
    """200 text/xml with the document, starting with the XML declaration."""
    return func.HttpResponse(document.to_xml(xml_declaration=True), status_code=200,
                             mimetype="text/xml", charset="utf-8")
