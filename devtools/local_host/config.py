"""Read host.json, each function.json and local.settings.json into typed specs."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "AUTH_LEVELS",
    "FunctionSpec",
    "HostConfig",
    "LOGGER_NAME",
    "discover_functions",
    "load_local_settings",
    "local_http_port",
    "read_host_config",
]

LOGGER_NAME = "devtools.local_host"
AUTH_LEVELS = ("anonymous", "function", "admin")
DEFAULT_ROUTE_PREFIX = "api"

log = logging.getLogger(LOGGER_NAME)


@dataclass(frozen=True)
class HostConfig:
    """The parts of host.json this host honours."""

    route_prefix: str = DEFAULT_ROUTE_PREFIX
    function_filter: tuple[str, ...] | None = None  # host.json "functions": [...]


@dataclass(frozen=True)
class FunctionSpec:
    """One discovered function folder (public: name, trigger, route, methods, auth_level)."""

    name: str
    trigger: str  # trigger binding type, e.g. "httpTrigger" or "timerTrigger"
    route: str | None  # route template without the prefix; None for non-HTTP triggers
    methods: tuple[str, ...] | None  # upper-case; None means every method
    auth_level: str  # "anonymous" | "function" | "admin" ("" for non-HTTP triggers)
    directory: Path
    script_file: Path
    entry_point: str
    trigger_binding: str  # parameter name of the trigger binding, e.g. "req"
    http_output: str | None  # "$return", the name of an http out binding, or None
    bindings: tuple[Mapping[str, Any], ...]

    @property
    def is_http(self) -> bool:
        """True when the function has an httpTrigger."""
        return self.route is not None


def _read_json(path: Path) -> Any:
    with path.open(encoding="utf-8-sig") as fh:
        return json.load(fh)


def _truthy(value: object) -> bool:
    return value is True or (isinstance(value, str) and value.strip().lower() in {"true", "1"})


def read_host_config(root: Path) -> HostConfig:
    """Parse ``host.json`` (missing file → defaults)."""
    path = root / "host.json"
    if not path.is_file():
        log.warning("no host.json in %s; using defaults (routePrefix %r)", root, DEFAULT_ROUTE_PREFIX)
        return HostConfig()
    data = _read_json(path)
    http = ((data.get("extensions") or {}).get("http") or {}) if isinstance(data, dict) else {}
    prefix = http.get("routePrefix")
    prefix = DEFAULT_ROUTE_PREFIX if prefix is None else str(prefix).strip().strip("/")
    functions = data.get("functions") if isinstance(data, dict) else None
    filt = tuple(str(f) for f in functions) if isinstance(functions, list) else None
    return HostConfig(route_prefix=prefix, function_filter=filt)


def _parse_function(directory: Path, data: Mapping[str, Any]) -> FunctionSpec:
    name = directory.name
    bindings = tuple(b for b in (data.get("bindings") or []) if isinstance(b, Mapping))
    trigger = next((b for b in bindings if str(b.get("type", "")).lower().endswith("trigger")), None)
    if trigger is None:
        raise ValueError("no trigger binding in function.json")
    ttype = str(trigger.get("type"))
    # Lexically normalised, not resolved: a symlinked function folder still counts as inside the root.
    script = Path(os.path.normpath(directory / str(data.get("scriptFile") or "__init__.py")))
    entry_point = str(data.get("entryPoint") or "main")
    trigger_name = str(trigger.get("name") or "req")
    if ttype.lower() != "httptrigger":
        return FunctionSpec(name, ttype, None, None, "", directory, script, entry_point,
                            trigger_name, None, bindings)
    route = str(trigger.get("route") or name).strip().strip("/")
    raw_methods = trigger.get("methods") or []
    methods = tuple(dict.fromkeys(str(m).upper() for m in raw_methods)) or None
    auth = str(trigger.get("authLevel") or "function").lower()
    if auth not in AUTH_LEVELS:
        log.warning("%s: unknown authLevel %r; treating it as 'function'", name, auth)
        auth = "function"
    http_out = next(
        (str(b.get("name")) for b in bindings
         if str(b.get("type", "")).lower() == "http" and str(b.get("direction", "")).lower() == "out"),
        None,
    )
    return FunctionSpec(name, ttype, route, methods, auth, directory, script, entry_point,
                        trigger_name, http_out, bindings)


def discover_functions(root: Path, host_config: HostConfig,
                       environ: Mapping[str, str] = os.environ) -> list[FunctionSpec]:
    """Return a spec for every enabled folder directly under ``root`` with a function.json."""
    specs: list[FunctionSpec] = []
    wanted = {n.lower() for n in host_config.function_filter} if host_config.function_filter else None
    for entry in sorted(root.iterdir(), key=lambda p: p.name):
        manifest = entry / "function.json"
        if entry.name.startswith(".") or not manifest.is_file():
            continue
        if wanted is not None and entry.name.lower() not in wanted:
            log.info("%s: not listed in host.json \"functions\"; skipped", entry.name)
            continue
        try:
            data = _read_json(manifest)
            if _truthy(data.get("disabled")) or _truthy(environ.get(f"AzureWebJobs.{entry.name}.Disabled")):
                log.info("%s: disabled; skipped", entry.name)
                continue
            specs.append(_parse_function(entry, data))
        except (OSError, ValueError, AttributeError) as exc:
            log.error("%s: invalid function.json (%s); skipped", entry.name, exc)
    return specs


def load_local_settings(root: Path, environ: MutableMapping[str, str] = os.environ) -> dict[str, str]:
    """Copy local.settings.json ``Values`` into ``environ`` without overriding; return what was set."""
    path = root / "local.settings.json"
    if not path.is_file():
        return {}
    data = _read_json(path)
    if not isinstance(data, dict):
        return {}
    if _truthy(data.get("IsEncrypted")):
        log.warning("local.settings.json is encrypted; its Values were not loaded")
        return {}
    applied: dict[str, str] = {}
    for key, value in (data.get("Values") or {}).items():
        if value is None or key in environ:
            continue
        text = value if isinstance(value, str) else json.dumps(value)
        environ[key] = text
        applied[key] = text
    return applied


def local_http_port(root: Path) -> int | None:
    """Return ``Host.LocalHttpPort`` from local.settings.json, if set."""
    path = root / "local.settings.json"
    if not path.is_file():
        return None
    try:
        port = (_read_json(path).get("Host") or {}).get("LocalHttpPort")
        return int(port) if port not in (None, "") else None
    except (ValueError, AttributeError, TypeError):
        return None
