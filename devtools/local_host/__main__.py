"""CLI: ``python -m devtools.local_host [--root .] [--host 127.0.0.1] [--port 7071] [--function-key KEY]``."""

from __future__ import annotations

import argparse
import logging
import signal
import time
from collections.abc import Sequence
from pathlib import Path

from .config import KEY_ENV, load_local_settings
from .host import DEFAULT_PORT, LocalHost


def main(argv: Sequence[str] | None = None) -> int:
    """Serve until Ctrl-C or SIGTERM; returns the exit code."""
    parser = argparse.ArgumentParser(prog="python -m devtools.local_host",
                                     description="Serve the function app's HTTP triggers locally, like `func start`.")
    parser.add_argument("--root", type=Path, default=Path("."), help="function app root (default: .)")
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default: {DEFAULT_PORT})")
    parser.add_argument("--function-key", help=f"key for function/admin-level functions (default: ${KEY_ENV})")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s] %(message)s")
    logging.getLogger("azure").setLevel(logging.WARNING)  # the Azure SDKs log every storage request at INFO
    load_local_settings(args.root)  # like func start: local.settings.json Values, never overriding the environment
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    with LocalHost(args.root, args.host, args.port, args.function_key) as host:
        print("\nFunctions:\n")
        for name, spec in host.functions.items():
            print(f"        {name}: [{','.join(spec.methods or ['ALL'])}] {host.url_template(name)}")
        print("\nPress Ctrl+C to stop.\n", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
