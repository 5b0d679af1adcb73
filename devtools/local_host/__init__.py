"""Local stand-in for ``func start``: serves a v1-model Python function app's HTTP triggers."""

from .config import KEY_ENV, LOGGER_NAME, FunctionSpec, load_local_settings

__all__ = ["DEFAULT_PORT", "FunctionSpec", "KEY_ENV", "LOGGER_NAME", "LocalHost", "load_local_settings"]


def __getattr__(name: str) -> object:  # the server (werkzeug, azure.functions) only when used: config is stdlib only
    if name in ("DEFAULT_PORT", "LocalHost"):
        from . import host

        return getattr(host, name)
    raise AttributeError(name)
