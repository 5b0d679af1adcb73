"""``LocalHost``: discovery + WSGI app + a threaded werkzeug server on a background thread."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType, TracebackType

from .app import FunctionsApp
from .config import LOGGER_NAME, FunctionSpec, discover_functions, load_local_settings, read_host_config
from .loader import ModuleLoader
from .routes import RouteSyntaxError, RouteTemplate
from .server import LocalServer, make_local_server

__all__ = ["DEFAULT_PORT", "KEY_ENV", "LocalHost"]

log = logging.getLogger(LOGGER_NAME)

DEFAULT_PORT = 7071
KEY_ENV = "FUNCTIONS_HOST_KEY"


def _url_host(host: str) -> str:
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


class LocalHost:
    """Serve an Azure Functions (v1 model) app's HTTP triggers the way ``func start`` does.

    ``function_key=None`` reads ``FUNCTIONS_HOST_KEY``; ``""`` disables key checks explicitly.
    ``load_settings=True`` copies local.settings.json ``Values`` into ``os.environ`` (never
    overriding) before anything else, like ``func start``.
    """

    def __init__(self, app_root: str | os.PathLike[str] = ".", host: str = "127.0.0.1",
                 port: int = DEFAULT_PORT, function_key: str | None = None, *,
                 load_settings: bool = False) -> None:
        self.root = Path(app_root).resolve()
        if not self.root.is_dir():
            raise FileNotFoundError(f"app root {self.root} is not a directory")
        self.host = host
        self.port = port
        self.settings_loaded: dict[str, str] = load_local_settings(self.root) if load_settings else {}
        if function_key is None:
            function_key = os.environ.get(KEY_ENV)
            self.key_source = KEY_ENV if function_key else None
        else:
            self.key_source = "argument" if function_key else None
        self.host_config = read_host_config(self.root)
        routes: list[tuple[RouteTemplate, FunctionSpec]] = []
        specs: dict[str, FunctionSpec] = {}
        for spec in discover_functions(self.root, self.host_config):
            if spec.route is not None:
                try:
                    routes.append((RouteTemplate(f"{self.route_prefix}/{spec.route}"), spec))
                except RouteSyntaxError as exc:
                    log.error("%s: %s; skipped", spec.name, exc)
                    continue
            specs[spec.name] = spec
        self._functions: Mapping[str, FunctionSpec] = MappingProxyType(specs)
        self._templates = {spec.name: template for template, spec in routes}
        self._loader = ModuleLoader(self.root, specs)
        self.wsgi_app = FunctionsApp(routes, self._loader, function_key or None)
        self._server: LocalServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def function_key(self) -> str | None:
        """The key function/admin-level functions demand; None means no key check (like func start)."""
        return self.wsgi_app.function_key

    # -- discovery ---------------------------------------------------------------
    @property
    def route_prefix(self) -> str:
        """``extensions.http.routePrefix`` from host.json ("api" by default, may be "")."""
        return self.host_config.route_prefix

    @property
    def functions(self) -> Mapping[str, FunctionSpec]:
        """Discovered functions by name (``.route``, ``.methods``, ``.auth_level``, ``.trigger``)."""
        return self._functions

    @property
    def base_url(self) -> str:
        """``http://<host>:<port>`` of the running server (or of the configured fixed port)."""
        if self._server is not None:
            port = self._server.server_port
        elif self.port:
            port = self.port
        else:
            raise RuntimeError("port 0 is only chosen at start(); start the host first")
        return f"http://{_url_host(self.host)}:{port}"

    def url_for(self, name: str, /, **route_params: object) -> str:
        """Full URL of an HTTP function, filling route parameters (``url_for("item", id=3)``)."""
        if name not in self._functions:
            raise KeyError(f"no function named {name!r} (known: {sorted(self._functions)})")
        template = self._templates.get(name)
        if template is None:
            raise ValueError(f"{name!r} is a {self._functions[name].trigger} function, not HTTP")
        return self.base_url + template.build(route_params)

    # -- lifecycle ---------------------------------------------------------------
    def load(self) -> LocalHost:
        """Import every HTTP function now (start() does this; failures are logged and return 500)."""
        self.wsgi_app.load_all()
        return self

    def start(self) -> LocalHost:
        """Import the functions, bind the socket and serve on a daemon thread; returns self."""
        if self._server is not None:
            return self
        self._announce_key_mode()
        self.load()
        try:
            server = make_local_server(self.host, self.port, self.wsgi_app)
        except BaseException:
            self._unload()
            raise
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02},
                                        name=f"local-host:{server.server_port}", daemon=True)
        self._thread.start()
        log.info("local host listening on %s (app root %s)", self.base_url, self.root)
        return self

    def wait(self) -> None:
        """Block until the server thread ends (Ctrl-C raises KeyboardInterrupt here)."""
        while self._thread is not None and self._thread.is_alive():
            self._thread.join(0.5)

    def stop(self) -> None:
        """Stop serving, close the socket and unload the app's modules (idempotent)."""
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is not None:
            server.shutdown()
            server.server_close()
            server.close_connections()
        if thread is not None:
            thread.join(5)
        self._unload()

    def _unload(self) -> None:
        self._loader.unload()
        self.wsgi_app.reset()

    def _announce_key_mode(self) -> None:
        protected = sorted(n for n, s in self._functions.items() if s.is_http and s.auth_level != "anonymous")
        if self.function_key:
            log.info("function key configured (%s): %d key-protected function(s) require it as the "
                     "x-functions-key header or the code query parameter", self.key_source, len(protected))
        else:
            log.warning("no function key configured (%s or --function-key): function/admin-level "
                        "functions are served WITHOUT a key check, like `func start` (%s)",
                        KEY_ENV, ", ".join(protected) or "none in this app")

    def __enter__(self) -> LocalHost:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = self.base_url if self._server is not None else "stopped"
        return f"<LocalHost {self.root} {state} functions={list(self._functions)}>"
