"""What voice_webhook answers for each call: an outbound call's message, a Voice SDK client call, each step of the
inbound call flows (greeting, forward, menu, voicemail) through `?step=` URLs that carry the app's MAC."""

from __future__ import annotations

import logging
import re
from typing import Callable

from shared import quota, step_mac, twiml
from shared.call_menu import Forward, Menu, Say
from shared.channels import CALL
from shared.errors import AppError
from shared.fields import LANGUAGE_PATTERN, VOICE_PATTERN
from shared.identity import VoiceIdentity
from shared.logtext import shown
from shared.phone import is_blocked, mask, require_allowed_destination, to_e164
from shared.settings import Settings, SettingsError

logger = logging.getLogger("shared.call_flows")

Param = Callable[[str], str]  # one of Twilio's own request parameters by name ('' when absent)
Ours = dict[str, str]  # the parameters the app put in the URL, their MAC verified
CLIENT_NAME = re.compile(r"[A-Za-z0-9_]{1,121}")
MENU_PROMPTS = 3  # the first prompt and two repeats
DIAL_FAILED = ("no-answer", "busy", "failed")
REFUSALS = {  # what a Voice SDK caller hears when the app will not connect the call
    "invalid_phone_number": "That number is not valid.",
    "destination_not_allowed": "That number cannot be called from this app.",
    "quota_exceeded": "You have reached your calling limit for today.",
}


def answer(param: Param, query: str, settings: Settings) -> str:
    """The TwiML for one voice request: a step of a flow, an outbound call, a client call or an inbound call.
    param reads Twilio's inputs; what the app chose (the step and its parameters, an outbound call's Message) is
    read only from the raw query, and only when its MAC verifies: Twilio signs any URL it is given."""
    ours = step_mac.app_params(query, settings.webhook_token())
    if ours is None:
        return _refused("a URL without a valid MAC")
    outbound = param("Direction").startswith("outbound")
    caller = "" if outbound else param("From")
    if "step" in ours:
        if caller.startswith("client:"):  # a Voice SDK call never reaches a step the app issued
            return _refused("a step on a client call")
        return STEPS.get(ours["step"], _unknown_step)(param, ours, settings)
    if is_blocked(caller, settings.blocked_numbers, settings.default_region):
        return twiml.reject()
    if outbound:
        return _greeting(ours, settings)
    if caller.startswith("client:"):
        return _client_call(VoiceIdentity(caller[len("client:"):]), param("To"), settings)
    if settings.inbound_call_flow == "greeting":
        return _greeting({}, settings)
    if settings.inbound_call_flow == "forward":
        settings.require("FORWARD_TO")
        return _dial(settings, settings.forward_to)
    if settings.inbound_call_flow == "menu":
        if settings.call_menu is None:
            raise SettingsError(missing=("CALL_MENU",))
        return _menu(settings, settings.call_menu, 1)
    return _voicemail(settings, caller)


def step_url(settings: Settings, step: str, **query: object) -> str:
    """A voice_webhook URL for the next step, with its MAC (relative: Twilio resolves it, then signs the full URL)."""
    return step_mac.signed_url({"step": step, **query}, settings.webhook_token())


def _greeting(ours: Ours, settings: Settings) -> str:
    """<Say> the call's Message (make_call's, in its URL), else VOICE_GREETING."""
    voice, language = ours.get("Voice", ""), ours.get("Language", "")
    return twiml.say(ours.get("Message") or settings.voice_greeting,
                     voice=voice if VOICE_PATTERN.fullmatch(voice) else settings.voice_name,
                     language=language if LANGUAGE_PATTERN.fullmatch(language) else settings.voice_language)


def _client_call(identity: str, to: str, settings: Settings) -> str:
    """A call from the app (Voice SDK): to another client, or to a number after make_call's checks and quota."""
    if to.startswith("client:"):
        name = to[len("client:"):]
        if not CLIENT_NAME.fullmatch(name):
            return twiml.refuse("That person cannot be called.")
        return twiml.dial([to], time_limit=settings.call_time_limit)
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
    return twiml.dial([number], time_limit=settings.call_time_limit, caller_id=settings.phone_number)


def _dial(settings: Settings, targets: tuple[str, ...]) -> str:
    """Ring every target at once; the `forwarded` step falls back to voicemail when nobody answers."""
    return twiml.dial(targets, time_limit=settings.call_time_limit, timeout=settings.forward_timeout,
                      action=step_url(settings, "forwarded"))


def _menu(settings: Settings, menu: Menu, attempt: int, before: str | None = None) -> str:
    """<Gather> one digit for CALL_MENU's prompt; no input reaches the `menu` step too (actionOnEmptyResult)."""
    return twiml.gather(menu.prompt, step_url(settings, "menu", attempt=attempt), before=before)


def _voicemail(settings: Settings, caller: str) -> str:
    """VOICEMAIL_GREETING, then <Record>; the recording's status callback sends the SMS notice."""
    settings.voicemail_notify_sms  # noqa: B018 - if invalid: 503 now, not a message recorded that nobody hears of
    return twiml.record(settings.voicemail_greeting, settings.voicemail_max_seconds,
                        action=step_url(settings, "recorded"),
                        status_callback=step_url(settings, "recording", caller=caller))


def _forwarded(param: Param, ours: Ours, settings: Settings) -> str:
    if param("DialCallStatus") in DIAL_FAILED:
        return _voicemail(settings, param("From"))
    return twiml.hangup()


def _menu_choice(param: Param, ours: Ours, settings: Settings) -> str:
    attempt, menu = ours.get("attempt", ""), settings.call_menu
    if menu is None or attempt not in {str(n) for n in range(1, MENU_PROMPTS + 1)}:
        return _unknown_step(param, ours, settings)
    option = menu.options.get(param("Digits")) if param("Digits") else None
    if option is None and int(attempt) >= MENU_PROMPTS:
        return twiml.refuse("Sorry, we did not get a valid choice.")
    if option is None:
        before = "Sorry, that is not an option." if param("Digits") else "Sorry, nothing was pressed."
        return _menu(settings, menu, int(attempt) + 1, before=before)
    if isinstance(option, Say):
        return twiml.refuse(option.text)
    if isinstance(option, Forward):
        return _dial(settings, (option.number,))
    return _voicemail(settings, param("From"))


def _recorded(param: Param, ours: Ours, settings: Settings) -> str:
    return twiml.refuse("Thank you for your message.")


def _recording(param: Param, ours: Ours, settings: Settings) -> str:
    """Twilio's recording status callback: a completed voicemail is announced by SMS to VOICEMAIL_NOTIFY_SMS."""
    if param("RecordingStatus") == "completed" and settings.voicemail_notify_sms:
        from shared.messaging import SmsRequest, send_sms  # the same send path as send_sms

        caller = ours.get("caller") or "an unknown caller"
        notice = SmsRequest(to=settings.voicemail_notify_sms, from_=None, body=f"New voicemail from {caller}: "
                            f"{param('RecordingUrl')}", media_urls=(), status_callback=None)
        try:
            send_sms(notice, settings, identity="voicemail")
        except AppError as exc:  # logged; Twilio gets its 200 (a callback answered 5xx changes nothing)
            logger.warning("Voicemail notice for %s not sent: %s", mask(caller), exc.code)
    return twiml.empty()


def _unknown_step(param: Param, ours: Ours, settings: Settings) -> str:
    return _refused(f"the step {shown(ours['step'])}")


def _refused(what: str) -> str:
    logger.warning("voice_webhook refused %s", what)
    return twiml.refuse("Sorry, this call cannot continue.")


STEPS: dict[str, Callable[[Param, Ours, Settings], str]] = {
    "forwarded": _forwarded, "menu": _menu_choice, "recorded": _recorded, "recording": _recording,
}
