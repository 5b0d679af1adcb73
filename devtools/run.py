"""One command to run the app locally: the local Functions host, wired to the Twilio sandbox when no credentials are set."""

from __future__ import annotations

import argparse
import contextlib
import errno
import io
import json
import logging
import os
import re
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Sequence
from urllib.parse import urlencode, urlsplit

# Only the standard library at import time: ./run.sh --help answers before the venv is built.
from devtools.local_host.config import KEY_ENV, load_local_settings
from devtools.processes import stop_process_group

ROOT = Path(__file__).resolve().parent.parent
SETTINGS_FILE = "local.settings.json"
SANDBOX_NUMBER = "+15005550006"  # Twilio's magic "always succeeds" sender
DEMO_CALLER = "+14155550100"
DEMO_RECIPIENT = "+14155550123"
SANDBOX_API_KEY_SID = "SK" + "5a" * 16  # the sandbox's API key: REST Basic auth and voice_token's signing key
SANDBOX_TWIML_APP_SID = "AP" + "5a" * 16  # stands in for the TwiML App whose Voice URL is /api/voice_webhook
CONSOLE_PATH = "/_console"  # where the local host serves devtools/console/ (dev tooling, never deployed)
ACCOUNT_SID = re.compile(r"AC[0-9a-fA-F]{32}")
CREDENTIALS = ("TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "TWILIO_API_KEY_SID", "TWILIO_API_KEY_SECRET")


def credentials_problem(from_file: dict[str, str]) -> str | None:
    """Why the configured Twilio credentials cannot be real ones: unset, still the example's placeholders, or a
    malformed account SID. None when they look real."""
    env = {name: os.environ.get(name, "").strip() for name in CREDENTIALS}
    if not env["TWILIO_ACCOUNT_SID"]:
        return f"no Twilio credentials (TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN) in the environment or {SETTINGS_FILE}"
    try:
        example = json.loads((ROOT / "local.settings.example.json").read_text(encoding="utf-8"))["Values"]
    except (OSError, ValueError, KeyError):
        example = {}

    def where(name: str) -> str:
        return f"{name} in {SETTINGS_FILE if name in from_file else 'the environment'}"

    for name in CREDENTIALS:
        if env[name] and env[name] == example.get(name):
            return f"{where(name)} is still the example's placeholder"
    if not ACCOUNT_SID.fullmatch(env["TWILIO_ACCOUNT_SID"]):
        return f"{where('TWILIO_ACCOUNT_SID')} is not an account SID (AC + 32 hex characters)"
    if not (env["TWILIO_AUTH_TOKEN"] or (env["TWILIO_API_KEY_SID"] and env["TWILIO_API_KEY_SECRET"])):
        return f"{where('TWILIO_ACCOUNT_SID')} is set but TWILIO_AUTH_TOKEN (or an API key + secret) is not"
    return None


def has_public_origin() -> bool:
    """Whether the app hands Twilio a reachable origin: PUBLIC_BASE_URL, or a WEBSITE_HOSTNAME that is not local."""
    from shared.settings import LOCAL_HOSTNAMES

    hostname = urlsplit("//" + os.environ.get("WEBSITE_HOSTNAME", "").strip()).hostname
    return bool(os.environ.get("PUBLIC_BASE_URL", "").strip() or (hostname and hostname not in LOCAL_HOSTNAMES))


def port_problem(host: str, port: int, flag: str) -> str | None:
    """A one-line reason the server cannot listen on host:port (None when it can)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers do: TIME_WAIT is no obstacle
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return f"{flag} {port}: port {port} is already in use (another ./run.sh?); pick a free one with {flag}"
            return f"--host {host}: cannot listen on {host}:{port} ({exc.strerror or exc})"
    return None


def wire_sandbox(sandbox: Any, api_key_secret: str, app_url: str) -> None:
    """Point the app at the sandbox: its credentials and API key (as Twilio, it takes either), a TwiML App SID (so
    voice_token works), REST origin, public URL and magic sender number."""
    os.environ.update({
        "TWILIO_ACCOUNT_SID": sandbox.account_sid,
        "TWILIO_AUTH_TOKEN": sandbox.auth_token,
        "TWILIO_API_KEY_SID": SANDBOX_API_KEY_SID,
        "TWILIO_API_KEY_SECRET": api_key_secret,
        "TWILIO_TWIML_APP_SID": SANDBOX_TWIML_APP_SID,
        "TWILIO_API_BASE_URL": sandbox.base_url,
        "PUBLIC_BASE_URL": app_url,
        "TWILIO_PHONE_NUMBER": SANDBOX_NUMBER,
    })
    os.environ.pop("TWILIO_MESSAGING_SERVICE_SID", None)


DEMO_QUOTAS = {"QUOTA_SMS_PER_USER_PER_DAY": "20", "QUOTA_CALLS_PER_USER_PER_DAY": "10",
               "QUOTA_PER_DESTINATION_PER_HOUR": "10"}
LOCAL_STORAGE = "UseDevelopmentStorage=true"  # the example's value: Azurite on its default ports


def start_state() -> Any:
    """Azurite with its data in .azurite/, on a port it picks, as the app's AzureWebJobsStorage; None (after one line)
    when a real storage account is configured or Node.js is missing."""
    from devtools.azurite import Azurite, NodeMissing, npm_ci

    if (os.environ.get("AzureWebJobsStorage") or LOCAL_STORAGE) != LOCAL_STORAGE:
        print("State: the storage account in AzureWebJobsStorage")
        return None
    try:
        azurite = Azurite(npm_ci(), location=ROOT / ".azurite").start()
    except NodeMissing as exc:
        print(f"Notice: {exc}, so Azurite (local Table Storage) is not started and quotas stay off")
        return None
    os.environ["AzureWebJobsStorage"] = azurite.connection_string
    print(f"State: Azurite (Table Storage) at http://127.0.0.1:{azurite.port}, data in .azurite/")
    return azurite


def wire_identity(sandbox: Any, with_quotas: bool) -> bool:
    """Unless sign-in is configured already, make the sandbox the identity provider (and set small demo quotas
    when state is available); True when it is."""
    if os.environ.get("AUTH_ISSUER") or os.environ.get("AUTH_EASY_AUTH"):
        return False
    os.environ.update({"AUTH_ISSUER": sandbox.idp.issuer, "AUTH_AUDIENCE": sandbox.idp.audience})
    if not os.environ.get("BROADCAST_SENDERS"):
        os.environ["BROADCAST_SENDERS"] = "alice"  # the demo user may broadcast
    if with_quotas:
        for name, value in DEMO_QUOTAS.items():
            if not os.environ.get(name):  # an empty value, as the example's local.settings.json has, sets none
                os.environ[name] = value
    quotas = ", ".join(f"{name}={os.environ[name]}" for name in DEMO_QUOTAS if os.environ.get(name))
    print(f"Sign-in: the sandbox is the identity provider (AUTH_ISSUER={sandbox.idp.issuer})"
          + (f"; quotas {quotas}" if quotas else ""))
    return True


def setting_problems() -> list[str]:
    """One line per invalid app setting, named with what it allows (never its value), and per setting a flow needs."""
    from shared.settings import invalid_setting, load_settings

    settings = load_settings()
    lines = [f"Invalid setting: {invalid_setting(name)}; the functions that read it answer 503 not_configured"
             for name in settings.invalid]
    needed = ("INBOUND_CALL_FLOW", "VOICEMAIL_NOTIFY_SMS")  # read only when valid (an invalid one raises)
    if not set(needed) & set(settings.invalid) and settings.inbound_call_flow == "voicemail" \
            and not settings.voicemail_notify_sms:
        lines.append("Warning: INBOUND_CALL_FLOW=voicemail without VOICEMAIL_NOTIFY_SMS: recordings are announced "
                     "to nobody")
    return lines


def curl_examples(app_url: str, key: str | None, sandbox_url: str | None,
                  signed_in: bool = False) -> list[tuple[str, str]]:
    """(title, command) pairs a user can paste into a shell, in order (a token first, when signing in). The
    Idempotency-Key is new each run: Azurite keeps the last run's keys, which would replay its SMS."""
    auth = f" -H {shlex.quote('x-functions-key: ' + key)}" if key else ""
    examples = []
    if signed_in:
        auth += ' -H "Authorization: Bearer $TOKEN"'
        examples.append(("Sign in as alice (the sandbox issues the token; the app validates it)",
                         f"TOKEN=$(curl -s -X POST {sandbox_url}/_sandbox/token -H 'Content-Type: application/json' "
                         "-d '{\"sub\": \"alice\"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)"
                         "[\"access_token\"])')"))
    sms = f"curl -s -X POST {app_url}/api/send_sms{auth} -H 'Idempotency-Key: demo-sms-{secrets.token_hex(4)}' " \
          f"-H 'Content-Type: application/json' -d '{{\"to\": \"{DEMO_RECIPIENT}\", \"body\": \"Hello from Azure Functions\"}}'"
    call = f"curl -s -X POST {app_url}/api/make_call{auth} -H 'Content-Type: application/json' " \
           f"-d '{{\"to\": \"{DEMO_RECIPIENT}\", \"message\": \"Hello! This is your app calling.\"}}'"
    sid = ("| python3 -c 'import json,sys; answer = json.load(sys.stdin); print(json.dumps(answer), file=sys.stderr); "
           "print(answer[\"sid\"])'")  # shows the answer, keeps the SID
    examples += [
        ("Send an SMS with an Idempotency-Key (its SID goes into $SMS)", f"SMS=$({sms} {sid})"),
        ("Send it again with the same key: the first answer, replayed (Idempotent-Replayed: true), nothing sent",
         sms.replace("curl -s ", "curl -s -i ", 1)),
        ("Place a call that speaks a message (its SID goes into $CALL)", f"CALL=$({call} {sid})"),
        ("What became of them (a few seconds later: delivered, completed)",
         f"curl -s {app_url}/api/messages/$SMS{auth}; echo; curl -s {app_url}/api/calls/$CALL{auth}"),
    ]
    if signed_in:
        examples.append(("A Voice SDK access token for alice (in-app calling; no body)",
                         f"curl -s -X POST {app_url}/api/voice_token{auth}"))
    if sandbox_url:
        examples += [
            ("Simulate an inbound SMS (prints the app's TwiML reply)",
             f"curl -s -X POST {sandbox_url}/_sandbox/inbound/sms -H 'Content-Type: application/json' "
             f"-d '{{\"url\": \"{app_url}/api/sms_webhook\", \"from\": \"{DEMO_CALLER}\", "
             f"\"to\": \"{SANDBOX_NUMBER}\", \"body\": \"Hi there\"}}'"),
            ("Simulate an inbound call",
             f"curl -s -X POST {sandbox_url}/_sandbox/inbound/call -H 'Content-Type: application/json' "
             f"-d '{{\"url\": \"{app_url}/api/voice_webhook\", \"from\": \"{DEMO_CALLER}\", "
             f"\"to\": \"{SANDBOX_NUMBER}\"}}'"),
            ("See everything the sandbox did (JSON activity log)",
             f"curl -s {sandbox_url}/_sandbox/activity | python3 -m json.tool"),
        ]
    if signed_in:
        broadcast = (f"curl -s -X POST {app_url}/api/broadcasts{auth} -H 'Content-Type: application/json' "
                     f"-d '{{\"to\": [\"{DEMO_RECIPIENT}\", \"{DEMO_CALLER}\", \"not a number\"], "
                     "\"body\": \"Class cancelled tonight\"}'")
        examples += [
            ("Broadcast to several numbers, paced (the refused entry is listed; its id goes into $BR)",
             f"BR=$({broadcast} | python3 -c 'import json,sys; answer = json.load(sys.stdin); "
             "print(json.dumps(answer), file=sys.stderr); print(answer[\"id\"])')"),
            ("Where every recipient of the broadcast stands", f"curl -s {app_url}/api/broadcasts/$BR{auth}"),
        ]
    return examples


def console_url(app_url: str, sandbox_url: str, key: str | None) -> str:
    """The developer console's address: on the app's origin, told where the sandbox is, the number and the key."""
    query = {"sandbox": sandbox_url, "number": SANDBOX_NUMBER, **({"key": key} if key else {})}
    return f"{app_url}{CONSOLE_PATH}/index.html?{urlencode(query)}"


def describe(event: dict[str, Any]) -> str | None:
    """One console line for a sandbox activity event (None for events not worth a line)."""
    kind = event.get("type", "")
    if kind == "rest.request":
        return f"REST {event.get('method')} {event.get('path')}"
    if kind == "rest.response":
        body = event.get("body") or {}
        sid = body.get("sid") if isinstance(body, dict) else None
        return f"  -> {event.get('status')}" + (f" {sid} ({body.get('status')})" if sid else "")
    if kind == "call.webhook":
        twiml = event.get("twiml") or event.get("body") or ""
        error = event.get("twilio_error")
        return f"call fetched {event.get('url')} -> {event.get('status')}: " + (f"Twilio error {error}" if error else twiml)
    if kind == "status_callback":
        return f"status callback {event.get('url')} -> {event.get('status')}"
    if kind == "call.step":
        return f"call step {event.get('step')} {event.get('url')} -> {event.get('status')}: {event.get('twiml')}"
    if kind.startswith("inbound."):
        return f"{kind} -> {event.get('status')}: {event.get('twiml') or event.get('twilio_error')}"
    return None


def follow_activity(sandbox: Any, stop: threading.Event) -> None:
    """Print the sandbox's activity as it happens."""
    seen = 0
    while not stop.wait(0.2):
        events = sandbox.activity
        for event in events[seen:]:
            line = describe(event)
            if line:
                print(f"[sandbox] {line}", flush=True)
        seen = len(events)


def port_number(text: str) -> int:
    if not text.isdigit() or not 0 <= int(text) < 65536:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (0-65535; 0 picks a free one)")
    return int(text)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="./run.sh", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="interface to serve on (default 127.0.0.1)")
    parser.add_argument("--port", type=port_number, default=7071,
                        help="app port (default 7071, as func start; 0: a free one, printed)")
    parser.add_argument("--sandbox-port", type=port_number, default=8099,
                        help="Twilio sandbox port (default 8099; 0: a free one, printed)")
    parser.add_argument("--sandbox", choices=("auto", "always", "never"), default="auto",
                        help="auto: use the sandbox unless real-looking Twilio credentials are configured")
    parser.add_argument("--function-key", metavar="KEY",
                        help=f"require KEY on function-level endpoints (default: ${KEY_ENV}; '' = no key check)")
    parser.add_argument("--func", action="store_true", help="serve with Azure Functions Core Tools (func start)")
    return parser


def stop_requests() -> list[str]:
    """Make Ctrl-C, SIGTERM and SIGHUP request a clean stop; returns the list the received signal names go to.
    SIGINT is handled even when ignored on entry (bash starts background jobs that way); a SIGHUP ignored on entry
    (nohup) stays ignored."""
    received: list[str] = []
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        if sig != signal.SIGHUP or signal.getsignal(sig) != signal.SIG_IGN:
            signal.signal(sig, lambda signum, _frame: received.append(signal.Signals(signum).name))
    return received


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    fail = lambda message: parser.exit(2, f"{parser.prog}: error: {message}\n")  # noqa: E731 - one line, exit 2
    func_path = shutil.which("func") if args.func else None
    if args.func and not func_path:
        fail("--func needs Azure Functions Core Tools, but `func` is not on PATH (install it, or drop --func)")
    if args.func and not args.port:
        fail("--func needs a --port other than 0: func start does not pick a free port")
    try:
        from_file = load_local_settings(ROOT)
    except ValueError as exc:
        fail(f"{SETTINGS_FILE} is not valid JSON ({exc})")
    problem = credentials_problem(from_file)
    if args.sandbox == "never" and problem:
        fail(f"--sandbox never needs real Twilio credentials: {problem}")
    use_sandbox = args.sandbox == "always" or (args.sandbox == "auto" and problem is not None)
    for flag, port in (("--port", args.port), ("--sandbox-port", args.sandbox_port if use_sandbox else None)):
        if port and (reason := port_problem(args.host, port, flag)):
            fail(reason)
    flag_key = args.function_key is not None
    key = (args.function_key if flag_key else os.environ.get(KEY_ENV)) or None
    key_source = "--function-key" if flag_key else f"{KEY_ENV} in {SETTINGS_FILE}" if KEY_ENV in from_file \
        else f"{KEY_ENV} (environment)"
    received = stop_requests()
    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(line_buffering=True)
    logging.basicConfig(level=logging.INFO, format="[%(name)s] %(message)s")
    stop = threading.Event()
    sandbox = server = func = state = None
    signed_in = False
    from devtools.local_host import LocalHost

    try:
        with contextlib.redirect_stdout(io.StringIO()) as state_lines:  # shown after the console's URL, which is first
            state = start_state()
        if args.func:
            app_url = f"http://{'127.0.0.1' if args.host in ('0.0.0.0', '') else args.host}:{args.port}"
        else:
            # Listening before the sandbox learns the app's URL, so that --port 0 is a port by then. The app reads
            # its settings on each request, so the ones set below apply from the first.
            # function_key None lets the host read FUNCTIONS_HOST_KEY itself, so its own log names that source too.
            server = LocalHost(ROOT, host=args.host, port=args.port, function_key=None if key and not flag_key else key
                               or "", static={CONSOLE_PATH: ROOT / "devtools" / "console"}).start()
            app_url = server.base_url
        if use_sandbox:
            from devtools.sandbox import TwilioSandbox

            if args.sandbox == "auto" and os.environ.get("TWILIO_ACCOUNT_SID"):
                print(f"Notice: {problem}, so this runs on the Twilio sandbox, not real Twilio")
            api_key_secret = secrets.token_urlsafe(32)  # a new one each run, as long as a real one
            sandbox = TwilioSandbox(host=args.host, port=args.sandbox_port, step_delay=0.5,
                                    api_keys={SANDBOX_API_KEY_SID: api_key_secret}).start()
            if server is not None:
                print(f"Console: {console_url(app_url, sandbox.base_url, key)}")
            print(f"Twilio: SANDBOX at {sandbox.base_url}")
            wire_sandbox(sandbox, api_key_secret, app_url)
            signed_in = wire_identity(sandbox, with_quotas=state is not None)
            threading.Thread(target=follow_activity, args=(sandbox, stop), daemon=True).start()
        else:
            print(f"Twilio: REAL Twilio account {os.environ['TWILIO_ACCOUNT_SID'].strip()[:6]}…")
            print("Warning: the commands below send real SMS and place real calls, at this account's cost")
            if not has_public_origin():
                print(f"Warning: Twilio cannot reach {app_url} (this machine): set PUBLIC_BASE_URL to a public https "
                      "URL that forwards here (e.g. a tunnel), or calls cannot fetch their TwiML")
        print(state_lines.getvalue(), end="")
        if not key:
            print(f"Function keys: not enforced (no --function-key or {KEY_ENV}), as with func start")
        elif args.func:
            print(f"Function keys: key from {key_source}, but func start does not check keys locally")
        else:
            print(f"Function keys: enforced, key from {key_source} (x-functions-key header or ?code=)")
        if args.func:
            os.environ.setdefault("FUNCTIONS_WORKER_RUNTIME", "python")
            func = subprocess.Popen([func_path, "start", "--port", str(args.port)], cwd=ROOT,
                                    stdin=subprocess.DEVNULL, process_group=0)  # stopped as a group, by us
        else:
            print("Functions:")
            for name in sorted(server.functions):
                print(f"  {name}: {server.url_template(name)}")
        for line in setting_problems():
            print(line)
        print("\nTry it (copy-paste):")
        for title, command in curl_examples(app_url, key, sandbox.base_url if sandbox else None, signed_in):
            print(f"\n# {title}\n{command}")
        print("\nReady. Press Ctrl-C to stop.", flush=True)
        while not received and not (func and func.poll() is not None):
            time.sleep(0.2)
        print(f"\nStopping ({received[0]})…" if received else f"\nfunc exited with code {func.returncode}", flush=True)
    finally:
        stop.set()
        if func is not None:
            stop_process_group(func)
        if server is not None:
            server.stop()
        if sandbox is not None:
            sandbox.stop()
        if state is not None:
            state.stop()
    return func.returncode if func and not received else 0


if __name__ == "__main__":
    sys.exit(main())
