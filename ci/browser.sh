#!/usr/bin/env bash
# The browser the dashboard's tests drive (tests/web/browser, through the `playwright`
# package of the test extra): Debian's Chromium at /usr/bin/chromium, installed with apt
# when it is missing (`playwright install` cannot download browsers here). Then checks it
# starts headless. Exits 1 if there is still no working Chromium: CI runs the tests with
# FASTJOBS_REQUIRE_BROWSER=1, where a missing browser fails them rather than skipping.
#
# Usage: bash ci/browser.sh      (FASTJOBS_CHROMIUM names another binary)
set -euo pipefail

chromium=${FASTJOBS_CHROMIUM:-/usr/bin/chromium}

if [ ! -x "$chromium" ]; then
  echo "browser: no Chromium at $chromium; installing Debian's chromium"
  sudo=""
  if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null 2>&1; then sudo="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -q
  $sudo apt-get install -y -q chromium
fi
[ -x "$chromium" ] || { echo "browser: still no Chromium at $chromium" >&2; exit 1; }

# One headless start: a broken install (missing libraries) fails here, with its message,
# rather than as eight test errors.
"$chromium" --headless --no-sandbox --disable-gpu --disable-background-networking --disable-component-update \
  --disable-sync --no-first-run --dump-dom about:blank >/dev/null 2>"${TMPDIR:-/tmp}/fastjobs-chromium.log" || {
  echo "browser: $chromium does not start headless:" >&2
  cat "${TMPDIR:-/tmp}/fastjobs-chromium.log" >&2
  exit 1
}
echo "browser: $("$chromium" --version 2>/dev/null | tail -1) at $chromium"
