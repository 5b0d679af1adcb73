"""The WSGI application (control endpoints, faults, REST API) and its werkzeug server on a background thread."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

from .control import PREFIX, handle_control
from .faults import SOCKET_KINDS, FaultRegistry
from .flows import Flows
from .idp import IdentityProvider
from .rest import RestApi
from .state import Store, new_sid

_log = logging.getLogger("devtools.sandbox")
SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie"})
JSON_TYPE = "application/json; charset=utf-8"


class ConnectionTaken(ConnectionAbortedError):
    """Raised once a fault has answered on the raw socket: werkzeug then writes nothing more."""


def _loggable(body: bytes) -> Any:
    """A response body for the activity log: parsed JSON when it is JSON, else text."""
    try:
        return json.loads(body)
    except ValueError:
        return body.decode("utf-8", "replace")


class SandboxApp:
    """Routes /_sandbox/ to the control endpoints and everything else, through the faults, to the REST API."""

    def __init__(self, store: Store, faults: FaultRegistry, flows: Flows, rest: RestApi,
                 idp: IdentityProvider) -> None:
        self._idp = idp
        self._store = store
        self._faults = faults
        self._flows = flows
        self._rest = rest

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        request = Request(environ)
        identity = self._identity(request)
        if identity is not None:
            response = identity
        elif request.path == PREFIX or request.path.startswith(PREFIX + "/"):
            route = request.path[len(PREFIX):].rstrip("/") or "/"
            status, payload = handle_control(self._store, self._faults, self._flows, request.method, route,
                                             request.get_data())
            response = Response(json.dumps(payload), status, content_type=JSON_TYPE)
        else:
            response = self._rest_call(request, environ["werkzeug.socket"])
        return response(environ, start_response)

    def _identity(self, request: Request) -> Response | None:
        """The development OpenID provider: discovery, JWKS, and POST /_sandbox/token {"sub": ...}."""
        if request.path == "/.well-known/openid-configuration":
            payload: Any = self._idp.discovery()
        elif request.path == "/.well-known/jwks.json":
            payload = self._idp.jwks()
        elif request.path == PREFIX + "/token" and request.method == "POST":
            sub = (request.get_json(silent=True) or {}).get("sub") or "alice"
            payload = {"access_token": self._idp.token(str(sub)), "token_type": "Bearer", "expires_in": 3600}
        else:
            return None
        return Response(json.dumps(payload), 200, content_type=JSON_TYPE)

    def _rest_call(self, request: Request, sock: Any) -> Response:
        """Record the request, apply the first matching fault, else answer with the REST API."""
        request_id = new_sid("RQ")
        query, form = request.args.to_dict(flat=False), request.form.to_dict(flat=False)
        headers = {name: "<redacted>" if name.lower() in SECRET_HEADERS else value
                   for name, value in request.headers.items()}
        self._store.log("rest.request", request_id=request_id, method=request.method, path=request.path,
                        query=query, form=form, headers=headers)
        fault = self._faults.take(request.method, request.path)
        if fault is not None and fault.kind in SOCKET_KINDS:
            self._store.log("rest.fault", request_id=request_id, kind=fault.kind, fault=fault.describe())
            self._faults.answer_on_socket(fault, sock)
            raise ConnectionTaken(fault.kind)
        fault_view = {"fault": fault.describe()} if fault is not None else {}
        start = None
        if fault is not None and fault.kind in ("status", "odd"):
            status, body = fault.status, fault.body_bytes()
            answer_headers = {"Content-Type": fault.content_type, **fault.headers}
        else:  # no fault, or "trickle": the real answer, sent slowly
            auth = request.authorization
            credentials = (auth.username or "", auth.password or "") if auth and auth.type == "basic" else None
            answer = self._rest.handle(request.method, request.path, request.form, credentials)
            status, body = answer.status, json.dumps(answer.body).encode()
            answer_headers, start = {"Content-Type": JSON_TYPE, **answer.headers}, answer.then
        answer_headers["Twilio-Request-Id"] = request_id
        self._store.log("rest.response", request_id=request_id, status=status, body=_loggable(body), **fault_view)
        if start is not None:  # a created resource's lifecycle begins once its creation is logged
            start()
        if fault is not None and fault.kind == "trickle":
            self._faults.trickle(fault, sock, status, answer_headers, body)
            raise ConnectionTaken(fault.kind)
        return Response(body, status, answer_headers)


class QuietHandler(WSGIRequestHandler):
    """werkzeug's handler, logging method, path (no query: no phone numbers) and status at DEBUG only."""

    timeout = 120  # a client that connects and sends nothing is dropped after this many seconds

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        _log.debug("%s %s -> %s", getattr(self, "command", "-"), urlsplit(getattr(self, "path", "")).path, code)

    def log(self, type: str, message: str, *args: Any) -> None:  # noqa: A002 (werkzeug's signature)
        _log.debug("http server %s: %s", type, message % args if args else message)


def serve(host: str, port: int, app: SandboxApp) -> BaseWSGIServer:
    """Bind (OSError when the port is taken) and serve app on a daemon thread until shutdown()."""
    try:
        server = make_server(host, port, app, threaded=True, request_handler=QuietHandler)
    except SystemExit as exc:  # werkzeug prints the bind error and exits; a library must raise instead
        raise OSError(f"cannot listen on {host}:{port}") from exc
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True).start()
    return server
