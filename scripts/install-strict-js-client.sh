#!/usr/bin/env bash
# Install matrix-js-sdk (with its Rust crypto as WebAssembly) for the strict-client tests
# (tests/support/strict_js/), from the npm registry, into .tools/strict-js/.
# Idempotent: a second run only checks. Prints where the SDK is.
set -euo pipefail

MATRIX_JS_SDK_VERSION="${MATRIX_JS_SDK_VERSION:-36.2.0}"  # the last release for Node 20
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PREFIX="$ROOT/.tools/strict-js"
MANIFEST="$PREFIX/node_modules/matrix-js-sdk/package.json"

installed_version() {
    [ -f "$MANIFEST" ] && node -e 'console.log(require(process.argv[1]).version)' "$MANIFEST" || true
}

if [ "$(installed_version)" != "$MATRIX_JS_SDK_VERSION" ]; then
    command -v npm >/dev/null || { echo "npm is needed to install matrix-js-sdk" >&2; exit 1; }
    mkdir -p "$PREFIX"
    npm install --prefix "$PREFIX" --no-audit --no-fund --loglevel=error \
        "matrix-js-sdk@$MATRIX_JS_SDK_VERSION"
fi
echo "matrix-js-sdk $(installed_version) in $PREFIX"
