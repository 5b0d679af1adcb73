# Sourced by test.sh and run.sh from the repository root: make .venv with ${PYTHON:-python3} (3.11 or newer) and
# install the app + dev requirements, skipped while requirements*.txt are unchanged since the last successful install.
# A .venv made by another Python, or left without a working python/pip (an interrupted or failed `python -m venv`),
# is rebuilt; the install stamp is written only after pip succeeded, so a failed install is retried on the next run.
me=${0##*/}
python=${PYTHON:-python3}
version=$("$python" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])' 2>/dev/null) || version=""
if [[ ! "$version" =~ ^([0-9]+)\.([0-9]+)\. ]]; then
  echo "$me: no working Python: PYTHON=$python cannot be run; install Python 3.11+ or set PYTHON=/path/to/python3.11" >&2
  exit 1
elif (( BASH_REMATCH[1] < 3 || (BASH_REMATCH[1] == 3 && BASH_REMATCH[2] < 11) )); then
  echo "$me: Python 3.11+ required, but PYTHON=$python is Python $version; set PYTHON to a newer one, e.g. PYTHON=python3.12 ./$me" >&2
  exit 1
fi

# Which interpreter a venv belongs to: its version and the real path of its base installation.
identity='import os, sys; print(sys.version.split()[0], os.path.realpath(sys.base_prefix))'
wanted=$("$python" -c "$identity")
make_venv() {  # $1: why
  echo "$me: $1: creating .venv with $python (Python $version)" >&2
  rm -rf .venv
  if ! "$python" -m venv .venv; then
    rm -rf .venv  # never leave a half-built venv behind
    echo "$me: '$python -m venv .venv' failed (see above; on Debian/Ubuntu: apt install python3-venv)" >&2
    exit 1
  fi
}
if [ ! -e .venv ]; then
  make_venv "no .venv yet"
elif [ "$(.venv/bin/python -c "$identity" 2>/dev/null)" != "$wanted" ]; then
  make_venv ".venv has no working python or was made by another Python than PYTHON=$python"
fi

stamp=.venv/.requirements-$("$python" -c 'import hashlib
print(hashlib.sha256(open("requirements.txt", "rb").read() + open("requirements-dev.txt", "rb").read()).hexdigest()[:16])')
if [ ! -f "$stamp" ]; then
  .venv/bin/python -m pip --version >/dev/null 2>&1 || make_venv ".venv has no working pip"
  rm -f .venv/.requirements-*
  echo "$me: installing requirements-dev.txt into .venv…" >&2
  if ! .venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt; then
    echo "$me: pip install -r requirements-dev.txt failed (see above); fix the cause and rerun, it will retry" >&2
    exit 1
  fi
  touch "$stamp"
fi
