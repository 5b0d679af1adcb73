"""The WSGI application: route → method check → key check → invoke → response, one log line each."""

from __future__ import annotations

import hmac
import json
import logging
import threading
import time
from collections.abc import Iterable
from typing import Any

from werkzeug.wrappers import Request, Response

from .config import LOGGER_NAME, FunctionSpec
from .invoke import LoadedFunction, build_http_request, invoke, prepare, request_target, to_response
from .loader import ModuleLoader
from .routes import RouteTemplate, split_path

__all__ = ["FunctionsApp"]

log = logging.getLogger(LOGGER_NAME)

_REASONS = {401: "Unauthorized", 404: "Not Found", 405: "Method Not Allowed", 500: "Internal Server Error"}


def _error(status: int, message: str | None = None, headers: dict[str, str] | None = None) -> Response:
    payload: dict[str, Any] = {"error": _REASONS[status]}
    if message:
        payload["message"] = message
    return Response(json.dumps(payload), status=status, headers=headers, mimetype="application/json")


def _printable(text: str) -> str:
    return "".join(ch if ch.isprintable() and ch != " " else f"\\x{ord(ch):02x}" for ch in text)


class FunctionsApp:
    """WSGI callable serving the HTTP-triggered functions of one app (usable without a socket)."""

    def __init__(self, routes: Iterable[tuple[RouteTemplate, FunctionSpec]], loader: ModuleLoader,
                 function_key: str | None) -> None:
        # Most specific template first (ASP.NET precedence); ties keep folder order.
        self.routes = sorted(routes, key=lambda item: item[0].precedence)
        self.function_key = function_key
        self._loader = loader
        self._loaded: dict[str, LoadedFunction | BaseException] = {}
        self._lock = threading.Lock()

    def load_all(self) -> dict[str, BaseException]:
        """Import every HTTP function now; return (and log) the ones that failed."""
        failures: dict[str, BaseException] = {}
        for _, spec in self.routes:
            outcome = self._load(spec)
            if isinstance(outcome, BaseException):
                failures[spec.name] = outcome
        return failures

    def reset(self) -> None:
        """Forget loaded entry points (after the loader unloaded their modules)."""
        with self._lock:
            self._loaded.clear()

    def _load(self, spec: FunctionSpec) -> LoadedFunction | BaseException:
        loaded = self._loaded.get(spec.name)
        if loaded is not None:
            return loaded
        with self._lock:
            if spec.name not in self._loaded:
                try:
                    self._loaded[spec.name] = prepare(spec, self._loader.load(spec))
                except Exception as exc:  # noqa: BLE001 - reported like the host's load errors
                    log.error("%s: function failed to load", spec.name, exc_info=exc)
                    self._loaded[spec.name] = exc
            return self._loaded[spec.name]

    def _authorized(self, spec: FunctionSpec, request: Request) -> bool:
        if spec.auth_level == "anonymous" or not self.function_key:
            return True
        expected = self.function_key.encode("utf-8")
        for supplied in (request.headers.get("x-functions-key"), request.args.get("code")):
            if supplied is not None and hmac.compare_digest(supplied.encode("utf-8"), expected):
                return True
        return False

    def _handle(self, request: Request, path: str) -> Response:
        segments = split_path(path)
        matches = [(spec, params) for template, spec in self.routes
                   if (params := template.match(segments)) is not None]
        if not matches:
            return _error(404)
        method = request.method.upper()
        allowed = [(spec, params) for spec, params in matches if spec.methods is None or method in spec.methods]
        if not allowed:
            methods = dict.fromkeys(m for spec, _ in matches for m in spec.methods or ())
            return _error(405, headers={"Allow": ", ".join(methods)})
        spec, route_params = allowed[0]
        if not self._authorized(spec, request):
            return _error(401, "A valid function key is required (x-functions-key header or code query parameter).")
        loaded = self._load(spec)
        if isinstance(loaded, BaseException):
            log.error("%s: cannot run, it failed to load (%s)", spec.name, loaded)
            return _error(500)
        req = build_http_request(request, route_params, request.get_data())
        try:
            return to_response(invoke(loaded, req))
        except Exception:  # noqa: BLE001 - the host turns any failure into a 500
            log.exception("Executed 'Functions.%s' (Failed)", spec.name)
            return _error(500)

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        started = time.perf_counter()
        request = Request(environ)
        path, _ = request_target(environ)
        try:
            response = self._handle(request, path)
        except Exception:  # noqa: BLE001 - never let the server print a werkzeug debug page
            log.exception("local host failed while handling %s %s", request.method, _printable(path))
            response = _error(500)
        elapsed_ms = (time.perf_counter() - started) * 1000
        log.info("%s %s %d %.1fms", _printable(request.method), _printable(path), response.status_code, elapsed_ms)
        return response(environ, start_response)
