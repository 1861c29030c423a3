#!/usr/bin/env bash
# Creates .venv with Python 3.11 or 3.12 (python-olm has wheels for those only) and installs
# the bridge with the extras given as arguments. Sourced by demo.sh and test.sh.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

pick_python() {
    for candidate in python3.12 python3.11 python3; do
        if command -v "$candidate" >/dev/null 2>&1 &&
            "$candidate" -c 'import sys; sys.exit(not ((3, 11) <= sys.version_info[:2] <= (3, 12)))'; then
            command -v "$candidate"
            return 0
        fi
    done
    echo "Python 3.11 or 3.12 is needed (python-olm has no wheels for other versions)." >&2
    return 1
}

if [ ! -x .venv/bin/python ]; then
    "$(pick_python)" -m venv .venv
    .venv/bin/python -m pip install --quiet --upgrade pip
fi
extras="${1:-test}"
.venv/bin/python -m pip install --quiet -e ".[${extras}]"
