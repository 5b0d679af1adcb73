"""Command line: run the sandbox, simulate inbound SMS/calls, inspect activity, inject faults."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Sequence
from typing import Any

from .core import DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN, TwilioSandbox

DEFAULT_SANDBOX_URL = "http://127.0.0.1:8099"


class CliError(Exception):
    """A user-facing failure (printed to stderr, exit status 2)."""


def _control(sandbox_url: str, method: str, route: str, payload: dict[str, Any] | None = None) -> Any:
    data = json.dumps(payload).encode("utf-8") if payload is not None else None
    request = urllib.request.Request(
        sandbox_url.rstrip("/") + "/_sandbox" + route,
        data=data,
        method=method,
        headers={"Content-Type": "application/json"} if data is not None else {},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read().decode("utf-8"))
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode("utf-8", "replace")
        raise CliError(f"sandbox answered HTTP {exc.code}: {detail}") from exc
    except (urllib.error.URLError, OSError) as exc:
        raise CliError(f"cannot reach sandbox at {sandbox_url}: {exc}") from exc


def _print_inbound(result: dict[str, Any], as_json: bool) -> int:
    if as_json:
        print(json.dumps(result, indent=2))
    elif result.get("twiml") is not None:
        print(result["twiml"])
    error = result.get("twilio_error")
    if error:
        detail = f" ({error['detail']})" if error.get("detail") else ""
        print(f"Twilio error {error['code']}: {error['message']}{detail}", file=sys.stderr)
        return 1
    return 0


def _serve(args: argparse.Namespace) -> int:
    api_keys: dict[str, str] = {}
    for item in args.api_key:
        sid, sep, secret = item.partition(":")
        if not sep or not sid or not secret:
            raise CliError("--api-key must look like SKxxxx:secret")
        api_keys[sid] = secret
    sandbox = TwilioSandbox(
        account_sid=args.account_sid,
        auth_token=args.auth_token,
        api_keys=api_keys,
        host=args.host,
        port=args.port,
        step_delay=args.step_delay,
    )
    done = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        done.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    sandbox.start()
    print(sandbox.base_url, flush=True)
    print(
        f"Twilio sandbox for account {sandbox.account_sid} at {sandbox.base_url} "
        "(control: /_sandbox/...). Ctrl-C to stop.",
        file=sys.stderr,
        flush=True,
    )
    try:
        while not done.wait(0.5):
            pass
    finally:
        sandbox.stop()
    return 0


def _fault(args: argparse.Namespace) -> int:
    payload: dict[str, Any] = {"kind": args.kind, "status": args.status}
    if args.times is not None:
        payload["times"] = None if args.times == 0 else args.times
    for name in ("path_contains", "method", "body", "content_type"):
        if getattr(args, name) is not None:
            payload[name] = getattr(args, name)
    if args.header:
        payload["headers"] = dict(item.split(":", 1) for item in args.header)
    print(json.dumps(_control(args.sandbox, "POST", "/faults", payload), indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser for all subcommands."""
    parser = argparse.ArgumentParser(prog="python -m devtools.sandbox", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sandbox_default = os.environ.get("TWILIO_SANDBOX_URL", DEFAULT_SANDBOX_URL)

    serve = sub.add_parser("serve", help="run the sandbox until Ctrl-C; prints its base URL")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8099)
    serve.add_argument("--account-sid", default=os.environ.get("TWILIO_ACCOUNT_SID", DEFAULT_ACCOUNT_SID))
    serve.add_argument("--auth-token", default=os.environ.get("TWILIO_AUTH_TOKEN", DEFAULT_AUTH_TOKEN))
    serve.add_argument("--api-key", action="append", default=[], metavar="SID:SECRET")
    serve.add_argument("--step-delay", type=float, default=0.5, help="seconds between status steps")

    def with_sandbox(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("--sandbox", default=sandbox_default, help=f"sandbox base URL (default {sandbox_default})")
        return p

    sms = with_sandbox(sub.add_parser("sms", help="simulate an inbound SMS; prints the TwiML reply"))
    sms.add_argument("--url", required=True, help="the app's SMS webhook URL")
    sms.add_argument("--from", dest="from_", required=True)
    sms.add_argument("--to", required=True)
    sms.add_argument("--body", default="")
    sms.add_argument("--media-url", action="append", default=[])
    sms.add_argument("--json", action="store_true", help="print the full result as JSON")

    call = with_sandbox(sub.add_parser("call", help="simulate an inbound call; prints the TwiML reply"))
    call.add_argument("--url", required=True, help="the app's voice webhook URL")
    call.add_argument("--from", dest="from_", required=True)
    call.add_argument("--to", required=True)
    call.add_argument("--json", action="store_true", help="print the full result as JSON")

    for name, help_text in (
        ("activity", "print the activity log as JSON"),
        ("messages", "print message resources as JSON"),
        ("calls", "print call resources as JSON"),
    ):
        with_sandbox(sub.add_parser(name, help=help_text))

    fault = with_sandbox(sub.add_parser("fault", help="inject a fault into REST responses"))
    fault.add_argument("kind", choices=("status", "hang", "reset"))
    fault.add_argument("--status", type=int, default=500)
    fault.add_argument("--times", type=int, default=None, help="0 = forever (default 1)")
    fault.add_argument("--path-contains")
    fault.add_argument("--method")
    fault.add_argument("--body")
    fault.add_argument("--content-type")
    fault.add_argument("--header", action="append", default=[], metavar="NAME:VALUE")

    with_sandbox(sub.add_parser("clear-faults", help="disarm all faults"))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the process exit status."""
    args = build_parser().parse_args(argv)
    try:
        if args.command == "serve":
            return _serve(args)
        if args.command == "sms":
            payload = {
                "url": args.url,
                "from": args.from_,
                "to": args.to,
                "body": args.body,
                "media_urls": args.media_url,
            }
            return _print_inbound(_control(args.sandbox, "POST", "/inbound/sms", payload), args.json)
        if args.command == "call":
            payload = {"url": args.url, "from": args.from_, "to": args.to}
            return _print_inbound(_control(args.sandbox, "POST", "/inbound/call", payload), args.json)
        if args.command in ("activity", "messages", "calls"):
            print(json.dumps(_control(args.sandbox, "GET", f"/{args.command}"), indent=2))
            return 0
        if args.command == "fault":
            return _fault(args)
        if args.command == "clear-faults":
            _control(args.sandbox, "DELETE", "/faults")
            return 0
    except (CliError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 2
