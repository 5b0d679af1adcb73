"""Read host.json, each function.json and local.settings.json."""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LOGGER_NAME = "devtools.local_host"
KEY_ENV = "FUNCTIONS_HOST_KEY"  # the function key of function/admin-level functions, as the Functions host reads it
log = logging.getLogger(LOGGER_NAME)

_PARAM = re.compile(r"\{([A-Za-z_]\w*)\??\}")  # {name}, or {name?} optional (only as the last segment)


@dataclass(frozen=True)
class FunctionSpec:
    """One HTTP-triggered function folder."""

    name: str
    route: str  # template without the prefix, e.g. "messages/{sid}"
    rule: str  # the same as a werkzeug rule, e.g. "messages/<sid>"
    methods: tuple[str, ...] | None  # upper-case; None means every method
    auth_level: str  # "anonymous" | "function" | "admin"
    module: str  # dotted module of scriptFile, e.g. "send_sms"
    entry_point: str
    trigger_name: str  # the trigger binding's name = main()'s parameter name


def _to_rule(name: str, route: str) -> str:
    rule = _PARAM.sub(r"<\1>", route)
    if any(ch in rule for ch in "{}") or "?}" in route[:-2]:
        raise ValueError(f"{name}: only plain {{name}} route parameters are supported, not {route!r}")
    return rule


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8-sig"))


def read_route_prefix(root: Path) -> str:
    """host.json ``extensions.http.routePrefix``: "api" when absent, may be ""."""
    path = root / "host.json"
    data = _read_json(path) if path.is_file() else {}
    prefix = ((data.get("extensions") or {}).get("http") or {}).get("routePrefix")
    return "api" if prefix is None else str(prefix).strip("/")


def _module_name(directory: Path, script_file: str) -> str:
    parts = list(Path(directory.name, script_file).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def discover_functions(root: Path) -> dict[str, FunctionSpec]:
    """Every top-level folder of ``root`` whose function.json has an httpTrigger binding, by name."""
    specs: dict[str, FunctionSpec] = {}
    for manifest in sorted(root.glob("*/function.json")):
        directory, data = manifest.parent, _read_json(manifest)
        trigger = next((b for b in data.get("bindings", []) if b.get("type", "").lower() == "httptrigger"), None)
        if trigger is None:
            log.debug("%s: not an HTTP trigger; not served here", directory.name)
            continue
        name, route = directory.name, str(trigger.get("route") or directory.name).strip("/")
        specs[name] = FunctionSpec(
            name=name, route=route, rule=_to_rule(name, route),
            methods=tuple(m.upper() for m in trigger.get("methods") or ()) or None,
            auth_level=str(trigger.get("authLevel", "function")).lower(),
            module=_module_name(directory, data.get("scriptFile") or "__init__.py"),
            entry_point=data.get("entryPoint") or "main", trigger_name=trigger.get("name") or "req")
    return specs


def load_local_settings(root: Path, environ: MutableMapping[str, str] = os.environ) -> dict[str, str]:
    """Copy local.settings.json ``Values`` into ``environ`` as ``func start`` does (Core Tools' StartHostAction
    UpdateEnvironmentVariables): a name the environment gives a non-empty value keeps it, a null value is skipped,
    any other is set, an empty one too; returns what was set."""
    path = Path(root) / "local.settings.json"
    values = (_read_json(path).get("Values") or {}) if path.is_file() else {}
    applied = {key: str(value) for key, value in values.items() if value is not None and not environ.get(key)}
    environ.update(applied)
    return applied


@dataclass(frozen=True)
class Cors:
    """``Host.CORS`` of local.settings.json, as ``func start`` applies it: the origins allowed (comma-separated, "*":
    any) with any method and header; ``Host.CORSCredentials`` true lets them send credentials."""

    origins: tuple[str, ...] = ()
    credentials: bool = False

    def allow_origin(self, origin: str | None) -> str | None:
        """The Access-Control-Allow-Origin answer for a request's Origin (None: no CORS headers at all)."""
        if not origin or not (set(self.origins) & {"*", origin}):
            return None
        return "*" if "*" in self.origins and not self.credentials else origin


def load_cors(root: Path) -> Cors:
    """Host.CORS and Host.CORSCredentials of local.settings.json (no file, or no CORS: none allowed)."""
    path = Path(root) / "local.settings.json"
    host = (_read_json(path).get("Host") or {}) if path.is_file() else {}
    origins = tuple(origin.strip() for origin in str(host.get("CORS") or "").split(",") if origin.strip())
    return Cors(origins, host.get("CORSCredentials") is True)
