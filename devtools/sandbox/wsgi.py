"""The werkzeug server the sandbox's WSGI app runs on, on a background thread, logging quietly."""

from __future__ import annotations

import logging
import threading
from typing import Any
from urllib.parse import urlsplit

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

_log = logging.getLogger("devtools.sandbox")


class QuietHandler(WSGIRequestHandler):
    """werkzeug's handler, logging method, path (no query: no phone numbers) and status at DEBUG only."""

    timeout = 120  # a client that connects and sends nothing is dropped after this many seconds

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        _log.debug("%s %s -> %s", getattr(self, "command", "-"), urlsplit(getattr(self, "path", "")).path, code)

    def log(self, type: str, message: str, *args: Any) -> None:  # noqa: A002 (werkzeug's signature)
        _log.debug("http server %s: %s", type, message % args if args else message)


def serve(host: str, port: int, app: Any) -> BaseWSGIServer:
    """Bind (OSError when the port is taken) and serve the WSGI app on a daemon thread until shutdown()."""
    try:
        server = make_server(host, port, app, threaded=True, request_handler=QuietHandler)
    except SystemExit as exc:  # werkzeug prints the bind error and exits; a library must raise instead
        raise OSError(f"cannot listen on {host}:{port}") from exc
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True).start()
    return server
