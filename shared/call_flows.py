"""What voice_webhook answers for each call: an outbound call's message, a Voice SDK client call, each step of the
inbound call flows (greeting, forward, menu, voicemail) through signed `?step=` URLs."""

from __future__ import annotations

import logging
import re
from typing import Callable
from urllib.parse import urlencode

from shared import quota, twiml
from shared.call_menu import Forward, Menu, Say
from shared.channels import CALL
from shared.errors import AppError
from shared.fields import LANGUAGE_PATTERN, VOICE_PATTERN
from shared.identity import VoiceIdentity
from shared.logtext import shown
from shared.phone import is_blocked, mask, require_allowed_destination, to_e164
from shared.settings import Settings, SettingsError
from shared.urls import VOICE_WEBHOOK_PATH

logger = logging.getLogger("shared.call_flows")

Param = Callable[[str], str]  # a Twilio request parameter by name ('' when absent)
CLIENT_NAME = re.compile(r"[A-Za-z0-9_]{1,121}")
MENU_PROMPTS = 3  # the first prompt and two repeats
DIAL_FAILED = ("no-answer", "busy", "failed")
REFUSALS = {  # what a Voice SDK caller hears when the app will not connect the call
    "invalid_phone_number": "That number is not valid.",
    "destination_not_allowed": "That number cannot be called from this app.",
    "quota_exceeded": "You have reached your calling limit for today.",
}


def answer(param: Param, settings: Settings) -> str:
    """The TwiML for one voice request: a step of a flow, an outbound call, a client call or an inbound call."""
    step = param("step")
    if step:
        return STEPS.get(step, _unknown_step)(param, settings)
    outbound = param("Direction").startswith("outbound")
    caller = "" if outbound else param("From")
    if is_blocked(caller, settings.blocked_numbers, settings.default_region):
        return twiml.reject()
    if outbound:
        return _greeting(param, settings)
    if caller.startswith("client:"):
        return _client_call(VoiceIdentity(caller[len("client:"):]), param("To"), settings)
    if settings.inbound_call_flow == "greeting":
        return _greeting(param, settings)
    if settings.inbound_call_flow == "forward":
        settings.require("FORWARD_TO")
        return _dial(settings, settings.forward_to)
    if settings.inbound_call_flow == "menu":
        if settings.call_menu is None:
            raise SettingsError(missing=("CALL_MENU",))
        return _menu(settings.call_menu, 1)
    return _voicemail(settings, caller)


def step_url(step: str, **query: object) -> str:
    """A voice_webhook URL for the next step (relative: Twilio resolves it, then signs the full URL)."""
    return f"{VOICE_WEBHOOK_PATH}?{urlencode({'step': step, **query})}"


def _greeting(param: Param, settings: Settings) -> str:
    """<Say> the call's Message (make_call), else VOICE_GREETING."""
    voice, language = param("Voice"), param("Language")
    return twiml.say(param("Message") or settings.voice_greeting,
                     voice=voice if VOICE_PATTERN.fullmatch(voice) else settings.voice_name,
                     language=language if LANGUAGE_PATTERN.fullmatch(language) else settings.voice_language)


def _client_call(identity: str, to: str, settings: Settings) -> str:
    """A call from the app (Voice SDK): to another client, or to a number after make_call's checks and quota."""
    if to.startswith("client:"):
        name = to[len("client:"):]
        if not CLIENT_NAME.fullmatch(name):
            return twiml.refuse("That person cannot be called.")
        return twiml.dial([to])
    settings.require("TWILIO_PHONE_NUMBER")
    try:
        number = to_e164(to, "To", settings.default_region)
        require_allowed_destination(number, settings.allowed_destination_prefixes,
                                    settings.allowed_destination_countries, field="To")
        with quota.charged(settings, CALL, identity, number):
            pass  # Twilio dials after this answer: the slot is taken now, the same bucket as make_call's
    except AppError as exc:
        logger.info("Client call from %s refused: %s", shown(identity), exc.code)
        return twiml.refuse(REFUSALS.get(exc.code, "This call cannot be placed right now."))
    return twiml.dial([number], caller_id=settings.phone_number)


def _dial(settings: Settings, targets: tuple[str, ...]) -> str:
    """Ring every target at once; the `forwarded` step falls back to voicemail when nobody answers."""
    return twiml.dial(targets, timeout=settings.forward_timeout, action=step_url("forwarded"))


def _menu(menu: Menu, attempt: int, before: str | None = None) -> str:
    """<Gather> one digit for CALL_MENU's prompt; no input reaches the `menu` step too (actionOnEmptyResult)."""
    return twiml.gather(menu.prompt, step_url("menu", attempt=attempt), before=before)


def _voicemail(settings: Settings, caller: str) -> str:
    """VOICEMAIL_GREETING, then <Record>; the recording's status callback sends the SMS notice."""
    settings.voicemail_notify_sms  # noqa: B018 - if invalid: 503 now, not a message recorded that nobody hears of
    return twiml.record(settings.voicemail_greeting, settings.voicemail_max_seconds, action=step_url("recorded"),
                        status_callback=step_url("recording", caller=caller))


def _forwarded(param: Param, settings: Settings) -> str:
    if param("DialCallStatus") in DIAL_FAILED:
        return _voicemail(settings, param("From"))
    return twiml.hangup()


def _menu_choice(param: Param, settings: Settings) -> str:
    attempt, menu = param("attempt"), settings.call_menu
    if menu is None or attempt not in {str(n) for n in range(1, MENU_PROMPTS + 1)}:
        return _unknown_step(param, settings)
    option = menu.options.get(param("Digits")) if param("Digits") else None
    if option is None and int(attempt) >= MENU_PROMPTS:
        return twiml.refuse("Sorry, we did not get a valid choice.")
    if option is None:
        return _menu(menu, int(attempt) + 1, before="Sorry, that is not an option.")
    if isinstance(option, Say):
        return twiml.refuse(option.text)
    if isinstance(option, Forward):
        return _dial(settings, (option.number,))
    return _voicemail(settings, param("From"))


def _recorded(param: Param, settings: Settings) -> str:
    return twiml.refuse("Thank you for your message.")


def _recording(param: Param, settings: Settings) -> str:
    """Twilio's recording status callback: a completed voicemail is announced by SMS to VOICEMAIL_NOTIFY_SMS."""
    if param("RecordingStatus") == "completed" and settings.voicemail_notify_sms:
        from shared.messaging import SmsRequest, send_sms  # the same send path as send_sms

        caller = param("caller") or "an unknown caller"
        notice = SmsRequest(to=settings.voicemail_notify_sms, from_=None, body=f"New voicemail from {caller}: "
                            f"{param('RecordingUrl')}", media_urls=(), status_callback=None)
        try:
            send_sms(notice, settings, identity="voicemail")
        except AppError as exc:  # logged; Twilio gets its 200 (a callback answered 5xx changes nothing)
            logger.warning("Voicemail notice for %s not sent: %s", mask(caller), exc.code)
    return twiml.empty()


def _unknown_step(param: Param, settings: Settings) -> str:
    logger.warning("voice_webhook step %s refused", shown(param("step")))
    return twiml.refuse("Sorry, this call cannot continue.")


STEPS: dict[str, Callable[[Param, Settings], str]] = {
    "forwarded": _forwarded, "menu": _menu_choice, "recorded": _recorded, "recording": _recording,
}
