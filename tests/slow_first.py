"""Collection order for ./test.sh's `--dist worksteal`: each worker's part starts with its share of the slow tests.

A pytest plugin (tests/conftest.py `pytest_plugins`).
"""

from __future__ import annotations

import os

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """worksteal gives each worker an equal, contiguous part of the collection and lets an idle worker steal from
    the end of the busiest one's: each part starts with its share of the `slow` tests, so that the workers finish
    together (without a worker, the slow tests simply run first)."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    slow = [item for item in items if item.get_closest_marker("slow")]
    fast = [item for item in items if not item.get_closest_marker("slow")]
    share = -(-len(fast) // workers)
    items[:] = [item for part in range(workers) for item in slow[part::workers] + fast[part * share:][:share]]
