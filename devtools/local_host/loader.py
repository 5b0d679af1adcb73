"""Import function modules like the Python worker does, isolated per app root and unloadable."""

from __future__ import annotations

import importlib
import logging
import os
import sys
import sysconfig
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from types import ModuleType
from typing import Any

from .config import LOGGER_NAME, FunctionSpec

__all__ = ["ModuleLoader", "module_name_for"]

# The worker puts the app root on ``sys.path`` and imports each function folder as a
# top-level package, so ``from shared import x`` works.  Several apps loaded into one
# process (e.g. toy apps in tests) would then share ``sys.modules`` entries such as
# ``shared``.  A :class:`ModuleLoader` therefore, while it is active:
#
# * sets aside (and later restores) already-imported modules whose top-level name is
#   also a folder/module of its app root but that live elsewhere (another app's
#   ``shared``); modules from the standard library or site-packages are never touched;
# * records the modules its imports pulled in from its root (function packages, ``shared``...)
#   and removes them from ``sys.modules`` on :meth:`ModuleLoader.unload`, restoring what it
#   set aside.  Modules already imported from the same root before it started (e.g. the
#   real app's ``shared`` imported by unit tests) are reused and left alone.
#
# Limitation: hosts for two different roots with overlapping module names must not run at
# the same time in one process (one after the other is fine).

log = logging.getLogger(LOGGER_NAME)

_LOCK = threading.RLock()
_PATH_USERS: Counter[str] = Counter()
_PATH_INSERTED: set[str] = set()
_SYSTEM_DIRS = tuple(
    Path(p).resolve()
    for key in ("stdlib", "platstdlib", "purelib", "platlib")
    if (p := sysconfig.get_paths().get(key))
)


def module_name_for(spec: FunctionSpec, root: Path) -> str:
    """Dotted module name for a function's scriptFile relative to the app root."""
    try:
        rel = spec.script_file.relative_to(root)
    except ValueError:
        raise ImportError(f"scriptFile {spec.script_file} is outside the app root {root}") from None
    if rel.suffix != ".py":
        raise ImportError(f"scriptFile {rel} is not a .py file")
    parts = list(rel.with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    if not parts:
        raise ImportError(f"scriptFile {rel} is the app root's own __init__.py")
    return ".".join(parts)


def _module_dirs(module: ModuleType, *, resolve: bool = False) -> list[Path]:
    """Where a module lives: its file, or a namespace package's directories.

    Lexical (symlinks kept) by default, so function folders symlinked into the root count as inside it.
    """
    file = getattr(module, "__file__", None)
    raw = [file] if file else list(getattr(module, "__path__", None) or [])
    return [Path(p).resolve() if resolve else Path(os.path.abspath(p)) for p in raw]


def _under(paths: list[Path], base: Path) -> bool:
    return bool(paths) and all(p.is_relative_to(base) for p in paths)


def _is_system(module: ModuleType) -> bool:
    paths = _module_dirs(module, resolve=True)
    return not paths or any(_under(paths, d) for d in _SYSTEM_DIRS)


class ModuleLoader:
    """Loads function entry points from one app root and can unload them again."""

    def __init__(self, root: Path, function_names: Iterable[str] = ()) -> None:
        self.root = root.resolve()
        self._function_names = frozenset(function_names)
        self._active = False
        self._before: set[str] = set()
        self._owned: set[str] = set()
        self._stashed: dict[str, ModuleType] = {}

    def _top_level_names(self) -> set[str]:
        names: set[str] = set()
        for entry in self.root.iterdir():
            if entry.name.startswith(".") or entry.name == "__pycache__":
                continue
            if entry.is_dir():
                names.add(entry.name)
            elif entry.suffix == ".py":
                names.add(entry.stem)
        return names

    def _is_ours(self, name: str, tops: Iterable[str]) -> bool:
        module = sys.modules.get(name)
        return (module is not None and name.partition(".")[0] in tops
                and _under(_module_dirs(module), self.root))

    def _activate(self) -> None:
        if self._active:
            return
        top = self._top_level_names()
        for name in list(sys.modules):
            module = sys.modules.get(name)
            if module is None or name.partition(".")[0] not in top:
                continue
            if _under(_module_dirs(module), self.root):
                continue  # already imported from this very root (e.g. by tests): shared, not owned
            if _is_system(module):
                log.warning("%s in %s shadows an installed module that is already imported", name, self.root)
                continue
            self._stashed[name] = sys.modules.pop(name)
        if self._stashed:
            log.debug("set aside %d module(s) of another app: %s", len(self._stashed), sorted(self._stashed))
        root = str(self.root)
        if root not in sys.path:
            sys.path.insert(0, root)
            _PATH_INSERTED.add(root)
        _PATH_USERS[root] += 1
        importlib.invalidate_caches()
        self._before = set(sys.modules)
        self._active = True

    def load(self, spec: FunctionSpec) -> Callable[..., Any]:
        """Import ``spec``'s module and return its entry point (raises on failure)."""
        with _LOCK:
            self._activate()
            name = module_name_for(spec, self.root)
            top = self._top_level_names()
            before = set(sys.modules)
            try:
                module = importlib.import_module(name)
            finally:
                # Owned: what this import pulled in from the root (function package, shared, ...).
                self._owned.update(n for n in set(sys.modules) - before if self._is_ours(n, top))
            if not _under(_module_dirs(module), self.root):
                raise ImportError(f"module {name!r} resolved to {_module_dirs(module)}, not to the app "
                                  f"root {self.root} (name clash with an installed module?)")
        entry: object = getattr(module, spec.entry_point, None)
        if not callable(entry):
            raise ImportError(f"{name} has no callable entry point {spec.entry_point!r}")
        return entry

    def unload(self) -> None:
        """Remove modules imported from the root and restore the ones set aside."""
        with _LOCK:
            if not self._active:
                return
            # Plus submodules imported lazily at run time under a package this loader imported
            # (function packages, shared/...); packages it merely reused are left alone.
            tops = self._function_names | {n for n in self._owned if "." not in n}
            self._owned.update(n for n in list(sys.modules) if n not in self._before and self._is_ours(n, tops))
            for name in self._owned:
                sys.modules.pop(name, None)
            self._owned.clear()
            for name, module in self._stashed.items():
                sys.modules[name] = module
            self._stashed.clear()
            root = str(self.root)
            _PATH_USERS[root] -= 1
            if _PATH_USERS[root] <= 0:
                del _PATH_USERS[root]
                if root in _PATH_INSERTED and root in sys.path:
                    sys.path.remove(root)
                _PATH_INSERTED.discard(root)
            importlib.invalidate_caches()
            self._active = False
