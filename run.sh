#!/usr/bin/env bash
# Run the app locally in one command: makes .venv with ${PYTHON:-python3} (3.11+), installs what it needs, then serves
# on http://127.0.0.1:7071 — against the embedded Twilio sandbox unless real Twilio credentials are configured.
# ./run.sh --help for options.
set -euo pipefail
cd "$(dirname "$0")"
for arg in "$@"; do  # --help answers at once: the option parser needs only the standard library, not the venv
  case $arg in -h|--help) exec "${PYTHON:-python3}" -m devtools.run --help ;; esac
done
. devtools/bootstrap.sh
exec .venv/bin/python -m devtools.run "$@"
