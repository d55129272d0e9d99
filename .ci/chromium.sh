#!/usr/bin/env bash
# Debian's Chromium and its WebDriver for the dashboard's browser tests (tests/dashboard/test_dashboard_browser.py).
#
#   bash .ci/chromium.sh      # installs chromium + chromium-driver with apt when /usr/bin/chromium is missing
#
# Needs root and apt when the packages are missing; nothing downloads a browser build of its own.
set -euo pipefail

log() { echo "chromium.sh: $*" >&2; }

if [[ -x /usr/bin/chromium && -x /usr/bin/chromedriver ]]; then
    log "found $(/usr/bin/chromium --version 2>/dev/null || echo chromium)"
    exit 0
fi
[[ $(id -u) -eq 0 ]] || { log "Chromium is not installed and installing it needs root (apt-get install chromium chromium-driver)"; exit 1; }
log "installing Debian's chromium and chromium-driver packages"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >&2
apt-get install -y -qq --no-install-recommends chromium chromium-driver >&2
log "installed $(/usr/bin/chromium --version 2>/dev/null || echo chromium)"
