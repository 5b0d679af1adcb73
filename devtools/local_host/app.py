"""The WSGI app: route, check the key, read the body, call ``main(req)``, answer; one log line per request."""

from __future__ import annotations


import hmac
import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import quote

import azure.functions as func
from werkzeug.exceptions import HTTPException
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from .config import LOGGER_NAME, Cors, FunctionSpec

log = logging.getLogger(LOGGER_NAME)

# The app refuses larger bodies with 413 itself (shared/body.py MAX_BODY_BYTES). The host refuses them first,
# and a chunked body as soon as it passes the limit, so a huge upload is never buffered whole; it answers with the
# app's own 413, which is what a client gets from Azure (whose host passes bodies up to 100 MB to the app).
MAX_BODY_BYTES = 64 * 1024
TOO_LARGE = {"error": {"code": "body_too_large", "message": f"The request body is larger than {MAX_BODY_BYTES} bytes."}}
KEY_HEADER, KEY_QUERY = "x-functions-key", "code"  # as Azure's Functions host reads the function key
_DROPPED_HEADERS = {"content-length", "transfer-encoding", "connection"}  # the server writes these itself


class _Request(Request):
    # werkzeug refuses a declared Content-Length above this (413) and stops reading a chunked body at this many
    # bytes (without an error): one byte more than allowed tells _handle that the body is too large.
    max_content_length = MAX_BODY_BYTES + 1


def url_map(specs: Iterable[FunctionSpec], route_prefix: str) -> Map:
    """One werkzeug rule per function: ``/<prefix>/<route>``, limited to the function's methods; a route ending in
    an optional parameter (``broadcasts/{id?}``) also matches without that segment."""
    rules = [Rule("/" + "/".join(filter(None, [route_prefix, rule])), endpoint=spec.name, methods=spec.methods)
             for spec in specs
             for rule in ([spec.rule] + ([spec.rule.rsplit("/", 1)[0]] if spec.route.endswith("?}") else []))]
    return Map(rules, strict_slashes=False, merge_slashes=False)


def too_large() -> Response:
    """The app's 413 (as in Azure), answered before the whole body is read."""
    return Response(json.dumps(TOO_LARGE), 413, content_type="application/json; charset=utf-8")


def host_answer(status: int) -> Response:
    """An answer of the Functions host itself: a status code, no body and no Content-Type."""
    response = Response(status=status)
    del response.headers["Content-Type"]
    return response


def to_http_request(request: Request, route_params: Mapping[str, str], body: bytes) -> func.HttpRequest:
    """The ``func.HttpRequest`` the Python worker would pass for this request."""
    url = f"{request.scheme}://{request.host}{request.environ.get('RAW_URI') or request.full_path}"
    return func.HttpRequest(method=request.method, url=url, headers=dict(request.headers.items()),
                            params={key: ",".join(values) for key, values in request.args.lists()},
                            route_params=dict(route_params), body=body)


def to_response(result: object) -> Response:
    """Turn ``main``'s ``func.HttpResponse`` (or ``str``) into the HTTP answer, as the Python worker does."""
    if isinstance(result, str):
        return Response(result, content_type="text/plain; charset=utf-8")
    if not isinstance(result, func.HttpResponse):
        raise TypeError(f"main() returned {type(result).__name__}, not func.HttpResponse or str")
    headers = [(key, value) for key, value in result.headers.items() if key.lower() not in _DROPPED_HEADERS]
    response = Response(result.get_body(), status=result.status_code, headers=headers)
    if "content-type" not in result.headers:
        mimetype = result.mimetype
        response.content_type = f"{mimetype}; charset={result.charset}" if mimetype.startswith("text/") else mimetype
    return response


def _printable(text: str) -> str:
    return quote(text, safe="/:@!$&'()*+,;=~")


class FunctionsApp:
    """WSGI callable serving the HTTP functions whose entry points it is given."""

    def __init__(self, specs: Mapping[str, FunctionSpec], entries: Mapping[str, Callable[..., object]],
                 urls: Map, function_key: str | None, cors: Cors = Cors()) -> None:
        self.specs, self.entries, self.urls, self.function_key = specs, entries, urls, function_key
        self.cors = cors

    def _authorized(self, spec: FunctionSpec, request: Request) -> bool:
        if spec.auth_level == "anonymous" or not self.function_key:
            return True
        # Like Azure: the header when it is present (even empty), else the query parameter.
        supplied = request.headers.get(KEY_HEADER) if KEY_HEADER in request.headers else request.args.get(KEY_QUERY)
        return bool(supplied) and hmac.compare_digest(supplied.encode(), self.function_key.encode())

    def _handle(self, request: Request) -> Response:
        try:
            name, route_params = self.urls.bind("localhost").match(request.path, method=request.method)
        except HTTPException:  # no route, or a method the function does not list: Azure answers 404 to both
            return host_answer(404)
        spec = self.specs[name]
        if request.method == "HEAD" and spec.methods and "HEAD" not in spec.methods:
            return host_answer(404)  # werkzeug lets HEAD through to GET rules; Azure's routing does not
        if not self._authorized(spec, request):
            return host_answer(401)
        try:
            body = request.get_data()
        except HTTPException as exc:  # 413 over the limit, 400 when the client hangs up mid-body
            return too_large() if exc.code == 413 else host_answer(exc.code or 400)
        if len(body) > MAX_BODY_BYTES:
            return too_large()
        try:
            req = to_http_request(request, route_params, body)
            return to_response(self.entries[name](**{spec.trigger_name: req}))
        except Exception:  # noqa: BLE001 - Azure answers an unhandled function error with an empty 500
            log.exception("Executed 'Functions.%s' (Failed)", name)
            return host_answer(500)

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        started = time.perf_counter()
        request = _Request(environ)
        allowed = self.cors.allow_origin(request.headers.get("Origin"))
        preflight = request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers
        response = host_answer(204) if allowed and preflight else self._handle(request)
        if allowed:  # as ASP.NET Core's CORS middleware in func start: any method and header, nothing exposed
            response.headers["Access-Control-Allow-Origin"] = allowed
            response.vary.add("Origin")
            if self.cors.credentials:
                response.headers["Access-Control-Allow-Credentials"] = "true"
            if preflight:
                response.headers["Access-Control-Allow-Methods"] = request.headers["Access-Control-Request-Method"]
                if asked := request.headers.get("Access-Control-Request-Headers"):
                    response.headers["Access-Control-Allow-Headers"] = asked
        log.info("%s %s %d %.1fms", _printable(request.method), _printable(request.path), response.status_code,
                 (time.perf_counter() - started) * 1000)
        return response(environ, start_response)
