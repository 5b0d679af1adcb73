"""Node servers (Azurite, Prism) shared by every process of one test run: started once, stopped at its end.

A pytest plugin (tests/conftest.py `pytest_plugins`). Each Node server takes about 2 s of CPU to start, so one of
each serves every xdist worker; the run's controller (or the one process of a run without xdist) owns a folder
where the first process to need a server describes it, and stops what the folder describes when the run ends.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable

import pytest

from devtools.processes import stop_process_group

SERVERS = pytest.StashKey[Path]()


def pytest_configure(config: pytest.Config) -> None:
    if not hasattr(config, "workerinput"):  # the controller, or a run without xdist
        config.stash[SERVERS] = Path(tempfile.mkdtemp(prefix="pytest-servers-"))


@pytest.hookimpl(optionalhook=True)  # an xdist hook: a run without xdist has no workers to tell
def pytest_configure_node(node: Any) -> None:
    """xdist: every worker finds the run's servers in the controller's folder."""
    node.workerinput["servers"] = str(node.config.stash[SERVERS])


def pytest_unconfigure(config: pytest.Config) -> None:
    """The run is over: stop the servers its processes started."""
    if SERVERS in config.stash:
        for description in config.stash[SERVERS].glob("*.server.json"):
            for pid in json.loads(description.read_text())["pids"]:
                stop_process_group(pid)
        shutil.rmtree(config.stash[SERVERS], ignore_errors=True)


def shared_server(config: pytest.Config, name: str, start: Callable[[Path], dict[str, Any]]) -> dict[str, Any]:
    """The run's one `name` server. The first test process that needs it calls `start(folder)`, which starts it in a
    process group of its own (or several) and returns how to reach it, with the groups' `pids`; pytest_unconfigure
    stops them."""
    folder = Path(config.workerinput["servers"]) if hasattr(config, "workerinput") else config.stash[SERVERS]
    with open(folder / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        description = folder / f"{name}.server.json"
        if not description.exists():
            description.write_text(json.dumps(start(folder)))
        return json.loads(description.read_text())


def node() -> str:
    """node's path after `npm ci` of the pinned packages; skips without node (fails when CI is set)."""
    from devtools.azurite import NodeMissing, npm_ci

    try:
        return npm_ci()
    except NodeMissing as exc:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"{exc}; CI is set, so this fails instead of skipping", pytrace=False)
        pytest.skip(f"{exc}: needed by the tests that use Azurite or Prism (see package.json)")
