#!/usr/bin/env bash
# Installs Debian's chromium (and CJK fonts, so Chinese is legible in the screenshots) for the
# browser tests (tests/integration/test_web_channels.py), once. Playwright drives it as a system
# browser (no browser download). Without root or apt-get this prints what to do and succeeds:
# the browser tests then skip, naming the reason.
set -euo pipefail
browser="${KEFU_CHROMIUM:-/usr/bin/chromium}"
need=()
[ -x "$browser" ] || need+=(chromium)
if command -v dpkg >/dev/null && ! dpkg -s fonts-noto-cjk >/dev/null 2>&1; then
  need+=(fonts-noto-cjk)
fi
if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" != "0" ] || ! command -v apt-get >/dev/null; then
  echo "note: missing ${need[*]}; install them (apt-get install ${need[*]}) or set" \
       "KEFU_CHROMIUM; without a browser the browser tests are skipped" >&2
  exit 0
fi
echo "==> installing ${need[*]} for the browser tests"
export DEBIAN_FRONTEND=noninteractive
if ! apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null 2>&1; then
  apt-get update -q >/dev/null
  apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null
fi
"$browser" --version
