"""Child process of the throughput benchmark: serve an app root with devtools' LocalHost until stdin closes.

``python bench/host_runner.py APP_ROOT FUNCTION...`` prints {"urls": {FUNCTION: url}} once listening; the app
settings come from the environment. Run as its own process so the load generator does not share its GIL.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def main(argv: list[str]) -> None:
    root, *functions = argv
    sys.path.insert(0, str(REPO))  # devtools
    logging.getLogger().addHandler(logging.NullHandler())  # warnings counted by the client, not printed
    from devtools.local_host import LocalHost

    host = LocalHost(root, host="127.0.0.1", port=0, function_key="").start()
    try:
        print(json.dumps({"urls": {name: host.url_for(name) for name in functions}}), flush=True)
        sys.stdin.read()  # until the parent closes our stdin
    finally:
        host.stop()


if __name__ == "__main__":
    main(sys.argv[1:])
