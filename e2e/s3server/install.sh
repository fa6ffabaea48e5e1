#!/usr/bin/env bash
# Installs the e2e suite's S3-compatible server, moto in server mode (PyPI,
# version pinned in requirements.txt), into a virtualenv at
# e2e/s3server/.venv. Idempotent: it does nothing when the virtualenv already
# holds what requirements.txt asks for, and reinstalls when that file changed
# or an earlier install was cut short.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

venv=.venv
stamp=$venv/.installed
# The stamp names the requirements and the virtualenv's own path: its
# scripts start with that path, so a moved virtualenv is made anew.
want="$(sha256sum requirements.txt | cut -d' ' -f1) $PWD/$venv"
if [ -x "$venv/bin/moto_server" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
  echo "s3server: moto already installed in e2e/s3server/$venv"
  exit 0
fi

python=${PYTHON:-python3}
if ! "$python" -c 'import venv, ensurepip' 2>/dev/null; then
  echo "s3server: $python cannot make a virtualenv (on Debian: apt-get install python3-venv)" >&2
  exit 1
fi
rm -rf "$venv"
"$python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input -r requirements.txt
"$venv/bin/moto_server" --help >/dev/null
# Written last: a cut-short install has no stamp and is redone next time.
echo "$want" >"$stamp"
echo "s3server: installed $("$venv/bin/python" -m pip show moto | sed -n 's/^Version: /moto /p') in e2e/s3server/$venv"
