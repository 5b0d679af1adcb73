#!/usr/bin/env bash
# The single test command (README, CI): makes .venv, installs the app and dev requirements, runs every test.
# Extra arguments go to pytest, e.g. ./test.sh tests/test_send_sms.py -q
set -euo pipefail
cd "$(dirname "$0")"
python=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$python" -m venv .venv
stamp=.venv/.requirements-$(cat requirements.txt requirements-dev.txt | sha256sum | cut -c1-16)
if [ ! -f "$stamp" ]; then
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
  touch "$stamp"
fi
exec .venv/bin/python -m pytest "$@"
