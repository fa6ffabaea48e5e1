#!/usr/bin/env bash
# Installs the client libraries that e2e/clients_test.go drives: a virtualenv
# (.venv) with requirements.txt, and node_modules from package-lock.json.
# Idempotent: each part is redone only when its pins changed since it was
# installed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
if ! cmp -s requirements.txt .venv/installed-requirements.txt; then
  .venv/bin/python -m pip install --disable-pip-version-check --no-input -q -r requirements.txt
  cp requirements.txt .venv/installed-requirements.txt
fi

# npm ci writes node_modules/.package-lock.json; it is newer than the lock
# file the tree was installed from.
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi
