#!/usr/bin/env bash
# Runs the performance benchmark (docs/performance.md): starts Synapse, the loopback network
# and the bridge, measures stages (a)-(f) and prints one JSON object on stdout.
# Installs what it needs into .venv first. Extra arguments go to the benchmark
# (e.g. -n 200 for a quicker run, --postgres none to skip PostgreSQL, --help).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-venv.sh bench >&2
exec .venv/bin/python -m bench "$@"
