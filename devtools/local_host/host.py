"""``LocalHost``: discover an app's HTTP and queue functions, import them, serve and poll on background threads."""

from __future__ import annotations

import importlib
import logging
import os
import sys
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from types import MappingProxyType, ModuleType, TracebackType

from werkzeug.middleware.shared_data import SharedDataMiddleware
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from .app import FunctionsApp, url_map
from .config import KEY_ENV, LOGGER_NAME, FunctionSpec, discover_functions, load_cors, read_route_prefix
from .queues import QueueListener, QueueSpec, discover_queue_functions, read_queue_options

log = logging.getLogger(LOGGER_NAME)

DEFAULT_PORT = 7071


class _QuietHandler(WSGIRequestHandler):
    """werkzeug's request handler without its access log: the app logs one line per request itself."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


def _inside(module: ModuleType, root: Path) -> bool:
    """Whether the module is the app's own: from a file (or package folder) under ``root``, and not an installed
    package (a .venv or .python_packages inside the app root holds site-packages that must stay loaded)."""
    file = getattr(module, "__file__", None)
    paths = [Path(p).resolve() for p in ([file] if file else getattr(module, "__path__", None) or [])]
    return bool(paths) and all(p.is_relative_to(root) and "site-packages" not in p.parts for p in paths)


class LocalHost:
    """Serve a v1-model Python function app's HTTP triggers, and run its queue triggers, the way ``func start`` does.

    ``function_key=None`` reads ``$FUNCTIONS_HOST_KEY``; no key (or "") serves every function without a check.
    ``static`` serves folders of files at URL prefixes (the developer console), before the functions.
    """

    def __init__(self, root: str | os.PathLike[str] = ".", host: str = "127.0.0.1", port: int = DEFAULT_PORT,
                 function_key: str | None = None, static: Mapping[str, Path] | None = None) -> None:
        self.root = Path(root).resolve()
        self.host, self.port = host, port
        self.function_key = os.environ.get(KEY_ENV) if function_key is None else function_key
        self._key_source = KEY_ENV if function_key is None else "argument"
        self.route_prefix = read_route_prefix(self.root)
        self.functions: Mapping[str, FunctionSpec] = MappingProxyType(discover_functions(self.root))
        self.urls = url_map(self.functions.values(), self.route_prefix)
        self.queue_functions: Mapping[str, QueueSpec] = MappingProxyType(discover_queue_functions(self.root))
        self._listeners: list[QueueListener] = []
        self.cors = load_cors(self.root)
        self.static = dict(static or {})
        self._server: BaseWSGIServer | None = None
        self._imported: set[str] = set()  # modules start() imported from the root, unloaded by stop()
        self._added_path = False

    @property
    def base_url(self) -> str:
        """``http://host:port`` of the server (the port it bound when started with port 0)."""
        port = self._server.server_port if self._server else self.port
        if not port:
            raise RuntimeError("port 0 is chosen when the host starts: call start() first")
        host = "127.0.0.1" if self.host in ("", "0.0.0.0") else f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{port}"

    def url_template(self, name: str) -> str:
        """The function's URL with its ``{route}`` parameters left as placeholders, e.g. .../api/calls/{sid}."""
        return f"{self.base_url}/" + "/".join(filter(None, [self.route_prefix, self.functions[name].route]))

    def url_for(self, name: str, /, **route_params: object) -> str:
        """Full URL of function ``name``, its ``{route}`` parameters filled in (others become the query)."""
        if name not in self.functions:
            raise KeyError(f"no HTTP function named {name!r}; known: {sorted(self.functions)}")
        return self.base_url + self.urls.bind("localhost").build(name, route_params)

    def _import_functions(self) -> dict[str, Callable[..., object]]:
        """Import each scriptFile as the Python worker does: app root on sys.path, function folder = package."""
        root = str(self.root)
        self._added_path = root not in sys.path
        if self._added_path:
            sys.path.insert(0, root)
        importlib.invalidate_caches()
        before = set(sys.modules)
        try:
            entries: dict[str, Callable[..., object]] = {}
            for name, spec in [*self.functions.items(), *self.queue_functions.items()]:
                module = importlib.import_module(spec.module)
                if not _inside(module, self.root):
                    raise ImportError(f"{spec.module!r} resolves to {module!r}, outside {root} (name clash?)")
                entries[name] = getattr(module, spec.entry_point)
            return entries
        finally:  # what these imports pulled in from the app root (function packages, shared, ...)
            self._imported = {name for name in set(sys.modules) - before
                              if (mod := sys.modules.get(name)) is not None and _inside(mod, self.root)}

    def _unload(self) -> None:
        """Forget the modules start() imported from the app root, so another app may reuse their names."""
        for name in self._imported:
            sys.modules.pop(name, None)
        self._imported = set()
        if self._added_path:
            sys.path.remove(str(self.root))
            self._added_path = False

    def start(self) -> LocalHost:
        """Import the functions, bind the port and serve on a daemon thread; returns self."""
        if self._server is not None:
            return self
        try:
            entries = self._import_functions()
            app = FunctionsApp(self.functions, entries, self.urls, self.function_key, self.cors)
            if self.static:
                app = SharedDataMiddleware(app, {prefix: str(path) for prefix, path in self.static.items()})
            self._server = make_server(self.host, self.port, app, threaded=True, request_handler=_QuietHandler)
        except BaseException:
            self._unload()
            raise
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        self._listen(entries)
        if self.function_key:
            log.info("function key configured (%s): function/admin-level functions require it", self._key_source)
        else:
            log.warning("no function key (%s or --function-key): every function is served without a key check",
                        KEY_ENV)
        log.info("serving %d HTTP function(s) of %s at %s", len(self.functions), self.root, self.base_url)
        return self

    def _listen(self, entries: Mapping[str, Callable[..., object]]) -> None:
        """Run each queue-triggered function on its queue, as the Functions host does, when its connection setting
        is set (else, like the host, it cannot run: one line says so)."""
        options = read_queue_options(self.root)
        for name, spec in self.queue_functions.items():
            if not os.environ.get(spec.connection):
                log.warning("%s: %s is not set, so queue %s is not polled", name, spec.connection, spec.queue)
                continue
            self._listeners.append(QueueListener(spec, entries[name], options).start())
            log.info("polling queue %s for %s", spec.queue, name)

    def stop(self) -> None:
        """Stop serving and polling, close the port and unload the app's modules (idempotent)."""
        listeners, self._listeners = self._listeners, []
        for listener in listeners:
            listener.stop()
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        self._unload()

    def __enter__(self) -> LocalHost:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
