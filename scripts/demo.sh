#!/usr/bin/env bash
# Starts the local demo: Synapse, the loopback network and the bridge on 127.0.0.1.
# Installs what it needs into .venv first. Extra arguments go to the demo
# (e.g. --smoke-test to run the steps automatically and exit).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-venv.sh test
exec .venv/bin/python -m bridge.devtools.demo "$@"
