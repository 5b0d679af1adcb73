#!/usr/bin/env bash
# The single test command (README, CI): makes .venv with ${PYTHON:-python3} (3.11+), installs the app and dev
# requirements, runs every test on TEST_WORKERS (default 4) parallel workers. Extra arguments go to pytest,
# e.g. ./test.sh tests/test_send_sms.py -q
set -euo pipefail
cd "$(dirname "$0")"
. devtools/bootstrap.sh
# Bytecode caches (gitignored __pycache__/) are written even where PYTHONDONTWRITEBYTECODE is set: without them every
# test process recompiles its imports and pytest re-rewrites its plugins' asserts, about 3 s per process.
unset PYTHONDONTWRITEBYTECODE
# worksteal: see tests/slow_first.py.
exec .venv/bin/python -m pytest -n "${TEST_WORKERS:-4}" --dist worksteal "$@"
