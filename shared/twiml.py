"""TwiML documents built with twilio.twiml (escaping included) and the XML response carrying them."""

from __future__ import annotations

import azure.functions as func

from shared.fields import NOT_XML_CHARS


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
