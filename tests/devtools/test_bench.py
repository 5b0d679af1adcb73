"""bench/: what the benchmarks measure with."""

from __future__ import annotations

import pytest

from bench.common import child_env
from shared.settings import SETTING_NAMES


def test_bench_child_env_keeps_none_of_the_developers_app_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in SETTING_NAMES:  # AUTH_ISSUER among them: a developer's own turned every figure into a 401
        monkeypatch.setenv(name, "the-developer's")
    assert not set(SETTING_NAMES) & set(child_env({}))
    assert child_env({"AUTH_ISSUER": "the-benchmark's"})["AUTH_ISSUER"] == "the-benchmark's"
