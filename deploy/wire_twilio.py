"""Points the Twilio number and the in-app calling TwiML App at the deployed app's webhooks (azd hook, or alone).

    python deploy/wire_twilio.py [--base-url https://func-x.azurewebsites.net] [--dry-run] [--azd]

Reads TWILIO_ACCOUNT_SID with TWILIO_API_KEY_SID/TWILIO_API_KEY_SECRET or TWILIO_AUTH_TOKEN, TWILIO_PHONE_NUMBER,
TWILIO_TWIML_APP_SID (if known), AZURE_ENV_NAME (the TwiML App's name) and the app's public origin: --base-url, else
PUBLIC_BASE_URL, else SERVICE_API_BASE_URL (azd's output). TWILIO_API_BASE_URL sends the requests elsewhere (the
local sandbox). Idempotent: everything is read first, then only what differs is written; a second run changes nothing.
With --azd a new TwiML App's SID is stored with `azd env set TWILIO_TWIML_APP_SID`. Never prints a secret.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script from anywhere: shared/ is beside

HOOKED = {"voice_url": "voice_webhook", "sms_url": "sms_webhook"}  # a number's URL -> the function it must call


class StepFailed(Exception):
    """A step failed; its message names the step and, for a Twilio error, the code (never a secret)."""


@dataclass
class Plan:
    """What must change: the writes still to do, each (description, write), and what is already right."""

    writes: list[tuple[str, Callable[[], Any]]] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    twiml_app_sid: str | None = None


def webhook_urls(base_url: str) -> dict[str, str]:
    """The Twilio-facing fields and the URLs of the app's functions they must hold."""
    origin = base_url.rstrip("/")
    return {name: f"{origin}/api/{function}" for name, function in HOOKED.items()}


def step(name: str, action: Callable[[], Any]) -> Any:
    """Run one step; a Twilio error or a lost connection becomes StepFailed naming the step and Twilio's code."""
    import requests
    from twilio.base.exceptions import TwilioException, TwilioRestException

    try:
        return action()
    except TwilioRestException as exc:
        raise StepFailed(f"{name}: Twilio error {exc.code} (HTTP {exc.status}): {exc.msg}") from None
    except TwilioException as exc:  # a list page that was not 200: the SDK keeps the response as its second arg
        response = exc.args[1] if len(exc.args) > 1 else None
        if response is None:
            raise StepFailed(f"{name}: {exc.args[0] if exc.args else type(exc).__name__}") from None
        raise StepFailed(f"{name}: Twilio error {_code(response.text)} (HTTP {response.status_code})") from None
    except requests.RequestException as exc:
        raise StepFailed(f"{name}: {type(exc).__name__}") from None


def _code(body: str) -> Any:
    """Twilio's error code in an error body, or "unknown" when the body is not Twilio's JSON."""
    try:
        return json.loads(body).get("code") or "unknown"
    except (ValueError, AttributeError):
        return "unknown"


def plan(client: Any, env: Mapping[str, str], base_url: str) -> Plan:
    """Read the number and the TwiML App, and list the writes that would wire them (nothing is written)."""
    number, app_name = env["TWILIO_PHONE_NUMBER"], env.get("AZURE_ENV_NAME") or "twilio-voice-sms"
    urls, result = webhook_urls(base_url), Plan()
    found = step(f"find the number {number}", lambda: client.incoming_phone_numbers.list(phone_number=number))
    if len(found) != 1:
        raise StepFailed(f"find the number {number}: the account has {len(found)} numbers {number}, not one")
    routed = [f"{name}={getattr(found[0], name)}" for name in ("voice_application_sid", "sms_application_sid",
                                                                 "trunk_sid") if getattr(found[0], name)]
    if routed:  # each overrides the number's URLs; clearing it is the owner's call, not a deploy's
        raise StepFailed(f"check the number {number}: {', '.join(routed)} overrides its Voice/SMS URL; "
                         "clear that in the Twilio Console first")
    wanted = {"voice_url": urls["voice_url"], "voice_method": "POST", "sms_url": urls["sms_url"], "sms_method": "POST"}
    _want(result, f"number {number}", found[0], wanted,
          lambda changes: step(f"update the number {number}", lambda: found[0].update(**changes)))

    app_sid = env.get("TWILIO_TWIML_APP_SID")
    if app_sid:
        apps = [step(f"fetch the TwiML App {app_sid}", lambda: client.applications(app_sid).fetch())]
    else:
        apps = step(f"find the TwiML App '{app_name}'", lambda: client.applications.list(friendly_name=app_name))
    if len(apps) > 1:
        raise StepFailed(f"find the TwiML App '{app_name}': {len(apps)} apps have that name; set TWILIO_TWIML_APP_SID")
    app_wanted = {"voice_url": urls["voice_url"], "voice_method": "POST"}
    if apps:
        result.twiml_app_sid = apps[0].sid
        _want(result, f"TwiML App {apps[0].sid}", apps[0], app_wanted,
              lambda changes: step(f"update the TwiML App {apps[0].sid}", lambda: apps[0].update(**changes)))
    else:
        result.writes.append((f"create the TwiML App '{app_name}': voice_url={urls['voice_url']}, voice_method=POST",
                              lambda: step(f"create the TwiML App '{app_name}'", lambda: client.applications.create(
                                  friendly_name=app_name, **app_wanted))))
    return result


def _want(result: Plan, what: str, resource: Any, wanted: dict[str, str], write: Callable[[dict], Any]) -> None:
    changes = {name: value for name, value in wanted.items() if (getattr(resource, name) or "") != value}
    if changes:
        shown = ", ".join(f"{name}={value or '(none)'}" for name, value in changes.items())
        result.writes.append((f"update {what}: {shown}", lambda: write(changes)))
    else:
        result.unchanged.append(what)


def twilio_client(env: Mapping[str, str]) -> Any:
    """The Twilio SDK's client for the account, through the app's own transport (TWILIO_API_BASE_URL honoured)."""
    from twilio.rest import Client

    from shared.settings import parse_settings
    from shared.transport import Transport

    settings = parse_settings(env)
    username, password, account_sid = settings.rest_credentials()
    return Client(username, password, account_sid,
                  http_client=Transport(settings.http_timeout, settings.api_base_url))


def wire(env: Mapping[str, str], base_url: str, *, dry_run: bool, azd: bool, out: Callable[[str], None]) -> None:
    """Plan, then (unless dry_run) write what differs and store a new TwiML App's SID; StepFailed on an error."""
    client = twilio_client(env)
    todo = plan(client, env, base_url)
    for what in todo.unchanged:
        out(f"unchanged: {what} already points at {base_url}")
    if not todo.writes:
        out("Nothing to change.")
        return
    for description, write in todo.writes:
        if dry_run:
            out(f"would {description}")
            continue
        done = write()
        out(f"done: {description}")
        if todo.twiml_app_sid is None and getattr(done, "sid", "").startswith("AP"):
            todo.twiml_app_sid = done.sid
    if dry_run:
        out("Dry run: nothing was changed.")
    elif todo.twiml_app_sid != env.get("TWILIO_TWIML_APP_SID"):
        _store_sid(todo.twiml_app_sid, azd=azd, out=out)


def _store_sid(sid: str | None, *, azd: bool, out: Callable[[str], None]) -> None:
    if azd:
        subprocess.run(["azd", "env", "set", "TWILIO_TWIML_APP_SID", sid], check=True, capture_output=True)
        out(f"stored TWILIO_TWIML_APP_SID={sid} in the azd environment: run `azd provision` once more to hand it "
            "to the app (in-app calling needs it)")
    else:
        out(f"set the app setting TWILIO_TWIML_APP_SID={sid} (in-app calling needs it)")


def main(argv: list[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    from shared.settings import SettingsError

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--base-url", help="the app's public origin, e.g. https://func-x.azurewebsites.net")
    parser.add_argument("--dry-run", action="store_true", help="print what would change, change nothing")
    parser.add_argument("--azd", action="store_true", help="store a new TwiML App's SID in the azd environment")
    args = parser.parse_args(argv)
    env = os.environ if env is None else env
    base_url = args.base_url or env.get("PUBLIC_BASE_URL") or env.get("SERVICE_API_BASE_URL")
    missing = [name for name, value in (("TWILIO_PHONE_NUMBER", env.get("TWILIO_PHONE_NUMBER")),
                                        ("--base-url or SERVICE_API_BASE_URL", base_url)) if not value]
    try:
        if missing:
            raise StepFailed("read the settings: missing " + ", ".join(missing))
        wire(env, base_url, dry_run=args.dry_run, azd=args.azd, out=print)
    except StepFailed as exc:
        print(f"wire_twilio: failed to {exc}", file=sys.stderr)
        return 1
    except SettingsError as exc:  # the Twilio credentials: names only, never values
        print(f"wire_twilio: failed to read the settings: {exc.message}", file=sys.stderr)
        return 1
    except (subprocess.CalledProcessError, FileNotFoundError) as exc:  # azd refused, or is not installed
        print(f"wire_twilio: failed to store TWILIO_TWIML_APP_SID with azd: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
