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


@pytest.mark.slow
def test_bench_broadcasts_quick_runs_and_reports_every_figure(tmp_path) -> None:
    import subprocess
    import sys

    from tests.support import ROOT

    report = tmp_path / "latest.md"
    done = subprocess.run([sys.executable, "-m", "bench", "--quick", "--only", "broadcasts", "--output", str(report)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    text = report.read_text()
    for figure in ("wall time", "1-second window", "admission of 500 recipients", "per broadcast message"):
        assert figure in text
