"""Local stand-in for ``func start``: serves a v1-model Python function app's HTTP triggers."""

from .config import KEY_ENV, LOGGER_NAME, FunctionSpec, load_local_settings
from .host import DEFAULT_PORT, LocalHost

__all__ = ["DEFAULT_PORT", "FunctionSpec", "KEY_ENV", "LOGGER_NAME", "LocalHost", "load_local_settings"]
