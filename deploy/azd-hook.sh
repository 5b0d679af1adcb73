#!/bin/sh
# azd's postprovision hook (azure.yaml): wire Twilio to the new app with the project's .venv (./test.sh makes it),
# else python3 with requirements.txt installed. azd passes its environment's values and outputs as variables.
set -eu
cd "$(dirname "$0")/.."
python=.venv/bin/python
[ -x "$python" ] || python=python3
exec "$python" deploy/wire_twilio.py --azd
