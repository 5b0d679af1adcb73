"""Command line: run the sandbox, simulate inbound SMS and calls, print its state, inject and clear faults."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import signal
import sys
import threading
from collections.abc import Sequence
from typing import Any

import requests

from .core import DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN, TwilioSandbox
from .faults import KINDS, Fault
from .flows import DIAL_OUTCOMES

DEFAULT_SANDBOX_URL = "http://127.0.0.1:8099"
# The control endpoint of each client command (any other: GET /_sandbox/<command>); its options are the JSON body.
ENDPOINTS = {"sms": ("POST", "/inbound/sms"), "call": ("POST", "/inbound/call"), "fault": ("POST", "/faults"),
             "clear-faults": ("DELETE", "/faults")}
# `fault` options: every Fault field but kind, id and headers (see faults.py), typed like its default.
FAULT_OPTIONS = {field.name: type(field.default) if field.default is not None else str
                 for field in dataclasses.fields(Fault) if field.name not in ("kind", "id", "headers")}


def _print_inbound(result: dict[str, Any], as_json: bool) -> int:
    """Print the app's TwiML, a call's steps (or the whole result); 1 when Twilio would have reported an error."""
    if as_json:
        print(json.dumps(result, indent=2))
    elif "steps" in result:
        for number, step in enumerate(result["steps"], 1):
            sent = "".join(f" {name}={value}" for name, value in step["params"].items())
            print(f"[{number}] {step['method']} {step['url']}{sent} -> {step['status']}")
            if step["twiml"]:
                print(step["twiml"])
            for verb in step["verbs"]:
                print(f"    {verb}")
        print(f"call ended: {result['ended']}")
    elif result.get("twiml") is not None:
        print(result["twiml"])
    error = result.get("twilio_error")
    if error:
        print(f"Twilio error {error['code']}: {error['message']} ({error['detail']})", file=sys.stderr)
    return 1 if error else 0


def _serve(args: dict[str, Any]) -> int:
    """Run until SIGINT or SIGTERM; the base URL is the first line on stdout."""
    api_keys: dict[str, str] = {}
    for sid, _, secret in (item.partition(":") for item in args.pop("api_keys")):
        if not sid or not secret:
            raise ValueError("--api-key must look like SKxxxx:secret")
        api_keys[sid] = secret
    done = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: done.set())
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    with TwilioSandbox(api_keys=api_keys, **args) as sandbox:  # the options are named as its parameters
        print(sandbox.base_url, flush=True)
        token = sandbox.auth_token if sandbox.auth_token == DEFAULT_AUTH_TOKEN else "(as given, not shown)"
        print(f"Twilio sandbox at {sandbox.base_url}: account SID {sandbox.account_sid}, auth token {token}. "
              f"Control endpoints under /_sandbox/. Ctrl-C stops it.", file=sys.stderr, flush=True)
        while not done.wait(0.5):
            pass
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The parser for every subcommand; a client command's option names are its control endpoint's JSON fields."""
    parser = argparse.ArgumentParser(prog="python -m devtools.sandbox", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sandbox_url = os.environ.get("TWILIO_SANDBOX_URL", DEFAULT_SANDBOX_URL)

    serve = sub.add_parser("serve", help="run the sandbox until Ctrl-C; prints its base URL")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8099)
    serve.add_argument("--account-sid", default=os.environ.get("TWILIO_ACCOUNT_SID", DEFAULT_ACCOUNT_SID))
    serve.add_argument("--auth-token", default=os.environ.get("TWILIO_AUTH_TOKEN", DEFAULT_AUTH_TOKEN))
    serve.add_argument("--api-key", dest="api_keys", action="append", default=[], metavar="SID:SECRET")
    serve.add_argument("--step-delay", type=float, default=0.5, help="seconds between status steps")

    def client(name: str, help_text: str) -> argparse.ArgumentParser:
        command = sub.add_parser(name, help=help_text)
        command.add_argument("--sandbox", default=sandbox_url, help=f"sandbox base URL (default {sandbox_url})")
        return command

    for name, webhook in (("sms", "SMS"), ("call", "voice")):
        inbound = client(name, f"simulate an inbound {name}; prints the app's TwiML")
        inbound.add_argument("--url", required=True, help=f"the app's {webhook} webhook URL")
        inbound.add_argument("--from", dest="from", required=True)
        inbound.add_argument("--to", required=True)
        inbound.add_argument("--json", action="store_true", help="print the whole result as JSON")
        if name == "sms":
            inbound.add_argument("--body", default="")
            inbound.add_argument("--media-url", dest="media_urls", action="append", default=[])
        else:  # the caller's side of the call, step by step
            inbound.add_argument("--digits", action="append", default=[],
                                 help="keys pressed at each <Gather> in turn ('' for no input); repeatable")
            inbound.add_argument("--dial-outcome", dest="dial_outcomes", action="append", choices=DIAL_OUTCOMES,
                                 default=[], help="how each <Dial> in turn ends (default completed); repeatable")
            inbound.add_argument("--no-record", dest="record", action="store_false",
                                 help="leave no message at a <Record> (the verb after it runs)")
            inbound.add_argument("--max-steps", type=int, default=20, help="most requests to the app (default 20)")
    for name in ("activity", "messages", "calls"):
        client(name, f"print the sandbox's {name} as JSON")
    fault = client("fault", "arm a fault for REST requests (--times 0: forever; odd needs --preset)")
    fault.add_argument("kind", choices=KINDS)
    for name, kind in FAULT_OPTIONS.items():
        fault.add_argument(f"--{name.replace('_', '-')}", type=kind)
    fault.add_argument("--header", dest="headers", action="append", default=[], metavar="NAME:VALUE")
    client("clear-faults", "disarm every fault")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; the process exit status (2 for a usage error or an unreachable sandbox)."""
    args = vars(build_parser().parse_args(argv))
    command, sandbox_url, as_json = args.pop("command"), args.pop("sandbox", ""), args.pop("json", False)
    try:
        if command == "serve":
            return _serve(args)
        payload = {name: value for name, value in args.items() if value is not None}
        if command == "fault":
            payload["headers"] = dict(item.split(":", 1) for item in payload["headers"])
            if payload.get("times") == 0:  # forever
                payload["times"] = None
        method, route = ENDPOINTS.get(command, ("GET", f"/{command}"))
        response = requests.request(method, f"{sandbox_url.rstrip('/')}/_sandbox{route}", json=payload, timeout=30)
        if not response.ok:
            raise ValueError(f"sandbox answered HTTP {response.status_code}: {response.text}")
        result = response.json()
    except requests.RequestException as exc:
        print(f"error: cannot reach the sandbox at {sandbox_url}: {exc}", file=sys.stderr)
        return 2
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if command in ("sms", "call"):
        return _print_inbound(result, as_json)
    if command != "clear-faults":
        print(json.dumps(result, indent=2))
    return 0
