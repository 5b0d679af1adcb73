"""CLI: ``python -m devtools.local_host [--root .] [--host 127.0.0.1] [--port 7071] [--function-key KEY]``."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from .config import LOGGER_NAME, local_http_port
from .host import DEFAULT_PORT, KEY_ENV, LocalHost


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m devtools.local_host",
        description="Serve the function app's HTTP triggers locally, like `func start`.")
    parser.add_argument("--root", default=".", help="function app root (default: .)")
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=None,
                        help=f"port (default: local.settings.json Host.LocalHttpPort, else {DEFAULT_PORT})")
    parser.add_argument("--function-key", default=None,
                        help=f"key for function/admin-level functions (default: ${KEY_ENV}; unset = no check)")
    parser.add_argument("--no-local-settings", action="store_true",
                        help="do not load local.settings.json Values into the environment")
    parser.add_argument("--log-level", default="INFO", help="logging level (default: INFO)")
    return parser


def _interrupt(signum: int, frame: object) -> None:
    """First Ctrl-C/SIGTERM stops the server; further ones are ignored while it shuts down."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the process exit code."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="[%(asctime)s] %(message)s", stream=sys.stderr)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    root = Path(args.root)
    port = args.port if args.port is not None else (local_http_port(root) or DEFAULT_PORT)
    try:
        host = LocalHost(root, host=args.host, port=port, function_key=args.function_key,
                         load_settings=not args.no_local_settings)
    except (OSError, ValueError) as exc:
        print(f"cannot load the app at {root}: {exc}", file=sys.stderr)
        return 2
    if host.settings_loaded:
        logging.getLogger(LOGGER_NAME).info("loaded %d value(s) from local.settings.json",
                                            len(host.settings_loaded))
    try:
        host.start()
    except OSError as exc:
        print(f"cannot listen on {args.host}:{port}: {exc}", file=sys.stderr)
        return 1
    print("\nFunctions:\n")
    for name, spec in host.functions.items():
        if spec.is_http:
            methods = ",".join(spec.methods) if spec.methods else "ALL"
            print(f"        {name}: [{methods}] {host.base_url}/{'/'.join(filter(None, [host.route_prefix, spec.route]))}"
                  f"  (authLevel: {spec.auth_level})")
        else:
            print(f"        {name}: {spec.trigger} (not served locally)")
    if not host.functions:
        print("        (none found: no folder with a function.json under the app root)")
    print("\nPress Ctrl+C to stop.\n", flush=True)
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        host.wait()
    except KeyboardInterrupt:
        pass
    finally:
        host.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
