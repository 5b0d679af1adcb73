"""One command to run the app locally: the local Functions host, wired to the Twilio sandbox when no credentials are set."""

from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Sequence

ROOT = Path(__file__).resolve().parent.parent
SANDBOX_NUMBER = "+15005550006"  # Twilio's magic "always succeeds" sender
DEMO_CALLER = "+14155550100"
DEMO_RECIPIENT = "+14155550123"


def load_local_settings(root: Path) -> None:
    """Copy local.settings.json Values into the environment without overriding what is already set."""
    path = root / "local.settings.json"
    if path.is_file():
        for name, value in json.loads(path.read_text(encoding="utf-8")).get("Values", {}).items():
            if value != "":
                os.environ.setdefault(name, str(value))


def has_twilio_credentials() -> bool:
    """True when real Twilio REST credentials are configured (environment or local.settings.json)."""
    env = os.environ
    return bool(env.get("TWILIO_ACCOUNT_SID") and (env.get("TWILIO_AUTH_TOKEN") or (
        env.get("TWILIO_API_KEY_SID") and env.get("TWILIO_API_KEY_SECRET"))))


def wire_sandbox(sandbox: Any, app_url: str) -> None:
    """Point the app at the sandbox: its credentials, REST origin, public URL and magic sender number."""
    os.environ.update({
        "TWILIO_ACCOUNT_SID": sandbox.account_sid,
        "TWILIO_AUTH_TOKEN": sandbox.auth_token,
        "TWILIO_API_BASE_URL": sandbox.base_url,
        "PUBLIC_BASE_URL": app_url,
        "TWILIO_PHONE_NUMBER": SANDBOX_NUMBER,
    })
    for name in ("TWILIO_API_KEY_SID", "TWILIO_API_KEY_SECRET", "TWILIO_MESSAGING_SERVICE_SID"):
        os.environ.pop(name, None)


def curl_examples(app_url: str, key: str | None, sandbox_url: str | None) -> list[tuple[str, str]]:
    """(title, command) pairs a user can paste into a shell."""
    auth = f" -H {shlex.quote('x-functions-key: ' + key)}" if key else ""
    examples = [
        ("Send an SMS", f"curl -s -X POST {app_url}/api/send_sms{auth} -H 'Content-Type: application/json' "
                        f"-d '{{\"to\": \"{DEMO_RECIPIENT}\", \"body\": \"Hello from Azure Functions\"}}'"),
        ("Place a call that speaks a message",
         f"curl -s -X POST {app_url}/api/make_call{auth} -H 'Content-Type: application/json' "
         f"-d '{{\"to\": \"{DEMO_RECIPIENT}\", \"message\": \"Hello! This is your app calling.\"}}'"),
    ]
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
            ("See everything the sandbox did (JSON activity log)", f"curl -s {sandbox_url}/_sandbox/activity"),
        ]
    return examples


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


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="./run.sh", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="interface to serve on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=7071, help="app port (default 7071, as func start)")
    parser.add_argument("--sandbox-port", type=int, default=8099, help="Twilio sandbox port (default 8099)")
    parser.add_argument("--sandbox", choices=("auto", "always", "never"), default="auto",
                        help="auto: use the sandbox only when no Twilio credentials are configured")
    parser.add_argument("--func", action="store_true", help="serve with Azure Functions Core Tools (func start)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[%(name)s] %(message)s")
    load_local_settings(ROOT)
    use_sandbox = args.sandbox == "always" or (args.sandbox == "auto" and not has_twilio_credentials())
    app_url = f"http://{'127.0.0.1' if args.host in ('0.0.0.0', '') else args.host}:{args.port}"
    stop = threading.Event()
    sandbox = None
    if use_sandbox:
        from devtools.sandbox import TwilioSandbox

        sandbox = TwilioSandbox(host=args.host, port=args.sandbox_port, step_delay=0.5).start()
        wire_sandbox(sandbox, app_url)
        threading.Thread(target=follow_activity, args=(sandbox, stop), daemon=True).start()
    key = os.environ.get("FUNCTIONS_HOST_KEY") or None
    print(f"Twilio: {'SANDBOX at ' + sandbox.base_url if sandbox else 'REAL Twilio account ' + os.environ['TWILIO_ACCOUNT_SID'][:6] + '…'}")
    if args.func:
        if not shutil.which("func"):
            print("--func: Azure Functions Core Tools (func) is not installed", file=sys.stderr)
            return 2
        server: Any = subprocess.Popen(["func", "start", "--port", str(args.port)], cwd=ROOT)
    else:
        from devtools.local_host import LocalHost

        server = LocalHost(ROOT, host=args.host, port=args.port, function_key=key or "").start()
        print("Functions:")
        for name in sorted(server.functions):
            print(f"  {name}: {server.url_for(name)}")
    try:
        print("\nTry it (copy-paste):")
        for title, command in curl_examples(app_url, key, sandbox.base_url if sandbox else None):
            print(f"\n# {title}\n{command}")
        signal.signal(signal.SIGTERM, signal.default_int_handler)
        print("\nReady. Press Ctrl-C to stop.", flush=True)
        while not (args.func and server.poll() is not None):
            time.sleep(0.5)
    except KeyboardInterrupt:
        print("\nStopping…", flush=True)
    finally:
        stop.set()
        if args.func:
            server.terminate()
            server.wait(10)
        else:
            server.stop()
        if sandbox:
            sandbox.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
