"""Translate werkzeug requests into ``func.HttpRequest``, call ``main`` and translate the result back."""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import secrets
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import azure.functions as func
from azure.functions import _abc as func_abc
from werkzeug.datastructures import Headers
from werkzeug.wrappers import Request, Response

from .config import LOGGER_NAME, FunctionSpec

__all__ = ["LoadedFunction", "build_http_request", "invoke", "prepare", "request_target", "to_response"]

log = logging.getLogger(LOGGER_NAME)
T = TypeVar("T")

# Headers the WSGI server manages itself; a function must not set them.
_HOP_BY_HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "upgrade", "content-length"})


class _Out(func.Out[T], Generic[T]):
    """Output binding value holder (``func.Out``)."""

    def __init__(self) -> None:
        self._value: T | None = None

    def set(self, val: T) -> None:
        self._value = val

    def get(self) -> T:
        return self._value  # type: ignore[return-value]


class _TraceContext(func_abc.TraceContext):
    def __init__(self, trace_parent: str, trace_state: str) -> None:
        self._parent, self._state = trace_parent, trace_state

    @property
    def trace_state(self) -> str:
        return self._state

    @property
    def trace_parent(self) -> str:
        return self._parent

    @property
    def attributes(self) -> dict[str, str]:
        return {}


class _RetryContext(func_abc.RetryContext):
    @property
    def retry_count(self) -> int:
        return 0

    @property
    def max_retry_count(self) -> int:
        return 0

    @property
    def exception(self) -> Any:
        return None


class _Context(func.Context):
    """Invocation context passed to a ``context`` parameter."""

    _local = threading.local()

    def __init__(self, spec: FunctionSpec, headers: Mapping[str, str]) -> None:
        self._invocation_id = str(uuid.uuid4())
        self._local.invocation_id = self._invocation_id  # as the worker does, for logging from threads
        self._spec = spec
        parent = headers.get("traceparent") or f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-01"
        self._trace = _TraceContext(parent, headers.get("tracestate", ""))

    @property
    def invocation_id(self) -> str:
        return self._invocation_id

    @property
    def thread_local_storage(self) -> Any:
        return self._local

    @property
    def function_name(self) -> str:
        return self._spec.name

    @property
    def function_directory(self) -> str:
        return os.fspath(self._spec.directory)

    @property
    def trace_context(self) -> func_abc.TraceContext:
        return self._trace

    @property
    def retry_context(self) -> func_abc.RetryContext:
        return _RetryContext()


@dataclass(frozen=True)
class LoadedFunction:
    """An imported entry point plus how to bind its parameters."""

    spec: FunctionSpec
    entry: Callable[..., Any]
    trigger_arg: str | None
    context_arg: str | None
    out_args: tuple[str, ...]
    none_args: tuple[str, ...]  # other input bindings: not emulated locally, passed None


def prepare(spec: FunctionSpec, entry: Callable[..., Any]) -> LoadedFunction:
    """Match ``entry``'s parameters to function.json bindings, as the worker does at load time."""
    bindings = {str(b.get("name")): b for b in spec.bindings}
    trigger_arg = context_arg = None
    out_args: list[str] = []
    none_args: list[str] = []
    for name, param in inspect.signature(entry).parameters.items():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        if name == spec.trigger_binding:
            trigger_arg = name
        elif name in bindings and str(bindings[name].get("direction", "")).lower() == "out":
            out_args.append(name)
        elif name in bindings:
            log.warning("%s: input binding %r (%s) is not emulated locally; it receives None",
                        spec.name, name, bindings[name].get("type"))
            none_args.append(name)
        elif name == "context":
            context_arg = name
        elif param.default is param.empty:
            raise TypeError(f"{spec.name}: parameter {name!r} of {spec.entry_point}() is not a binding "
                            f"declared in function.json")
    return LoadedFunction(spec, entry, trigger_arg, context_arg, tuple(out_args), tuple(none_args))


def request_target(environ: Mapping[str, Any]) -> tuple[str, str]:
    """Return the (percent-encoded path, raw query string) exactly as the client sent them."""
    raw = environ.get("RAW_URI") or environ.get("REQUEST_URI")
    if raw:
        path = raw.split("#", 1)[0].split("?", 1)[0]
        if not path.startswith("/"):  # absolute-form request target: "http://host/path"
            scheme_end = path.find("://")
            slash = path.find("/", scheme_end + 3 if scheme_end >= 0 else 0)
            path = path[slash:] if slash >= 0 else "/"
    else:
        decoded = (environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")).encode("latin-1")
        path = quote(decoded, safe="/!$&'()*+,;=:@~")
    return path or "/", environ.get("QUERY_STRING", "")


def build_http_request(request: Request, route_params: Mapping[str, str], body: bytes) -> func.HttpRequest:
    """Build the ``func.HttpRequest`` the worker would pass for this WSGI request."""
    environ = request.environ
    path, query = request_target(environ)
    host = environ.get("HTTP_HOST") or f"{environ.get('SERVER_NAME', 'localhost')}:{environ.get('SERVER_PORT', '80')}"
    url = f"{environ.get('wsgi.url_scheme', 'http')}://{host}{path}" + (f"?{query}" if query else "")
    headers = {key.lower(): value for key, value in request.headers.items()}
    params = {key: ",".join(values) for key, values in request.args.lists()}
    return func.HttpRequest(method=request.method, url=url, headers=headers, params=params,
                            route_params=dict(route_params), body=body)


def invoke(loaded: LoadedFunction, req: func.HttpRequest) -> object:
    """Call the entry point with its bindings and return the HTTP output value."""
    kwargs: dict[str, Any] = {name: None for name in loaded.none_args}
    outs = {name: _Out[Any]() for name in loaded.out_args}
    kwargs.update(outs)
    if loaded.trigger_arg:
        kwargs[loaded.trigger_arg] = req
    if loaded.context_arg:
        kwargs[loaded.context_arg] = _Context(loaded.spec, req.headers)
    result = loaded.entry(**kwargs)
    if inspect.isawaitable(result):
        result = asyncio.run(_await(result))
    http_out = loaded.spec.http_output
    if http_out and http_out != "$return" and http_out in outs:
        return outs[http_out].get()
    return result


async def _await(awaitable: Any) -> Any:
    return await awaitable


def to_response(result: object) -> Response:
    """Turn ``main``'s HTTP output (``func.HttpResponse`` or ``str``) into a werkzeug Response."""
    if isinstance(result, func_abc.HttpResponse):
        headers = Headers()
        for key, value in result.headers.items():
            if key.lower() not in _HOP_BY_HOP:
                headers.add(key, value)
        if "content-type" not in headers:
            mimetype = result.mimetype or "text/plain"
            charset = getattr(result, "charset", None) or "utf-8"
            headers["Content-Type"] = f"{mimetype}; charset={charset}" if mimetype.startswith("text/") else mimetype
        body = result.get_body() or b""
        return Response(body, status=int(result.status_code), headers=headers)
    if isinstance(result, str):
        return Response(result.encode("utf-8"), status=200, content_type="text/plain; charset=utf-8")
    raise TypeError(f"function returned {type(result).__name__}; expected func.HttpResponse or str")
