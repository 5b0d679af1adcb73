"""./run.sh and ./test.sh before Python runs: the interpreter check and the .venv repair of devtools/bootstrap.sh, in
temporary copies with tiny requirements and a stub app, so the shared .venv is never touched."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import ROOT


@pytest.fixture
def scripts(tmp_path: Path) -> Path:
    """run.sh, test.sh and bootstrap.sh with tiny requirements and a stub app that prints the venv it runs in."""
    for name in ("run.sh", "test.sh", "devtools/bootstrap.sh"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        shutil.copy2(ROOT / name, tmp_path / name)
    (tmp_path / "requirements.txt").write_text("")
    (tmp_path / "requirements-dev.txt").write_text("-r requirements.txt\n")
    (tmp_path / "devtools" / "__init__.py").write_text("")
    (tmp_path / "devtools" / "run.py").write_text("import sys\nprint('app ran in', sys.prefix)\n")
    return tmp_path


def bootstrap(scripts: Path, python: str = sys.executable, script: str = "run.sh") -> tuple[int, str]:
    done = subprocess.run([str(scripts / script)], env={**os.environ, "PYTHON": python}, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=120)
    return done.returncode, done.stdout.strip()


@pytest.mark.parametrize("script", ["run.sh", "test.sh"])
@pytest.mark.parametrize("interpreter", ["missing", "too_old"])
def test_bootstrap_missing_or_old_python_exits_with_one_line_naming_PYTHON(scripts, script, interpreter):
    python = scripts / "no-such-python"
    if interpreter == "too_old":
        python = scripts / "python3.9"
        python.write_text("#!/bin/sh\necho 3.9.18\n")
        python.chmod(0o755)
    code, output = bootstrap(scripts, str(python), script)
    assert code != 0
    assert len(output.splitlines()) == 1, output
    assert f"PYTHON={python}" in output and "3.11" in output
    assert ("3.9.18" in output) == (interpreter == "too_old")
    assert not (scripts / ".venv").exists()


@pytest.mark.slow
def test_bootstrap_venv_made_by_another_python_is_rebuilt_and_a_failed_install_is_retried_until_it_succeeds(scripts):
    venv = scripts / ".venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "pyvenv.cfg").write_text("home = /opt/python3.10/bin\nversion = 3.10.0\n")
    (venv / "bin" / "python").write_text("#!/bin/sh\necho 3.10.0 /opt/python3.10\n")
    (venv / "bin" / "python").chmod(0o755)
    (scripts / "requirements-dev.txt").write_text("./no-such-package-dir\n")  # pip fails at once, offline
    requirements = b"".join((scripts / name).read_bytes() for name in ("requirements.txt", "requirements-dev.txt"))
    (venv / f".requirements-{hashlib.sha256(requirements).hexdigest()[:16]}").touch()  # installed, as far as it knows
    code, output = bootstrap(scripts)
    assert code != 0 and "made by another Python" in output, output
    assert "pip install -r requirements-dev.txt failed" in output and "app ran" not in output, output
    assert not list(venv.glob(".requirements-*"))
    identity = "import os, sys; print(sys.version.split()[0], os.path.realpath(sys.base_prefix))"
    versions = {subprocess.run([python, "-c", identity], capture_output=True, text=True, timeout=30).stdout
                for python in (sys.executable, venv / "bin" / "python")}
    assert len(versions) == 1  # rebuilt with PYTHON
    (scripts / "requirements-dev.txt").write_text("-r requirements.txt\n")
    code, output = bootstrap(scripts)  # no stamp was written: the install runs again (with the new pip), and succeeds
    assert code == 0 and "installing requirements-dev.txt" in output and "creating .venv" not in output, output
    assert output.endswith(f"app ran in {venv}"), output
    assert list(venv.glob(".requirements-*"))
    assert bootstrap(scripts) == (0, f"app ran in {venv}")  # installed once: nothing more to do


def test_bootstrap_venv_without_pip_is_rebuilt_and_a_venv_that_cannot_be_made_is_removed(scripts):
    """A .venv without pip is what a failed `python -m venv` leaves, e.g. Debian's python3 without the
    python3-venv package: it makes the folder, then fails at ensurepip. Rebuilt with such a Python, it fails the
    same way, and bootstrap removes it and says what to install."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(scripts / ".venv")], check=True, timeout=60)
    debian_python = scripts / "python3"
    debian_python.write_text(f"""#!/bin/sh
if [ "$1 $2" = "-m venv" ]; then
  {sys.executable} -m venv --without-pip "$3"
  echo "The virtual environment was not created successfully because ensurepip is not available." >&2
  exit 1
fi
exec {sys.executable} "$@"
""")
    debian_python.chmod(0o755)
    code, output = bootstrap(scripts, str(debian_python))
    assert code != 0 and ".venv has no working pip: creating .venv" in output, output
    assert "ensurepip is not available" in output and "apt install python3-venv" in output, output
    assert not (scripts / ".venv").exists() and "app ran" not in output


def test_bootstrap_run_help_answers_before_any_venv_with_a_bare_python(tmp_path):
    shutil.copy2(ROOT / "run.sh", tmp_path / "run.sh")
    shutil.copytree(ROOT / "devtools", tmp_path / "devtools", ignore=shutil.ignore_patterns("__pycache__"))
    bare = os.path.realpath(getattr(sys, "_base_executable", sys.executable))  # no werkzeug, no azure.functions
    done = subprocess.run([str(tmp_path / "run.sh"), "--port", "0", "--help"], env={**os.environ, "PYTHON": bare},
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 0 and done.stdout.startswith("usage: ./run.sh"), done.stderr
    assert not (tmp_path / ".venv").exists()
