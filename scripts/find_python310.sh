#!/usr/bin/env bash
# Prints the path of a Python 3.10 interpreter (Rasa 3.6 supports 3.8-3.10), or fails saying what is missing.
set -euo pipefail
candidates=("${KEFU_PYTHON:-}")
for p in "$HOME"/.pyenv/versions/3.10*/bin/python /root/.pyenv/versions/3.10*/bin/python; do
  candidates+=("$p")
done
for name in python3.10 python3 python; do
  candidates+=("$(command -v "$name" 2>/dev/null || true)")
done
for py in "${candidates[@]}"; do
  [ -n "$py" ] && [ -x "$py" ] || continue
  if "$py" -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 10) else 1)' 2>/dev/null; then
    echo "$py"
    exit 0
  fi
done
echo "error: Python 3.10 not found (Rasa 3.6 needs 3.8-3.10). Install it (e.g. 'pyenv install 3.10.13'" \
     "or 'apt-get install python3.10 python3.10-venv') or set KEFU_PYTHON=/path/to/python3.10." >&2
exit 1
