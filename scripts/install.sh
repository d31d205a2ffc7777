#!/usr/bin/env bash
# Creates the Python 3.10 virtual environment and installs the pinned requirements.
# Installing twice does nothing the second time: the Makefile only calls this when a
# requirements file is newer than the stamp, and pip skips what is already satisfied.
set -euo pipefail
venv="${1:-.venv}"
cd "$(dirname "$0")/.."
if [ ! -x "$venv/bin/python" ]; then
  py=$(scripts/find_python310.sh)
  echo "==> creating $venv with $py"
  "$py" -m venv "$venv"
fi
"$venv/bin/python" -c 'import sys; assert sys.version_info[:2] == (3, 10), sys.version' || {
  echo "error: $venv is not a Python 3.10 environment; remove it and rerun 'make install'" >&2; exit 1; }
echo "==> installing pinned requirements into $venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade "pip==26.3" "wheel==0.45.1"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
  -r requirements-dev.txt -c requirements.lock
touch "$venv/.kefu-installed"
echo "==> $venv is ready"
