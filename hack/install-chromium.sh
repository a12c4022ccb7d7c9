#!/usr/bin/env bash
# Installs Debian's Chromium for the UI browser test (test/ui), once: quiet when it is there.
# The test drives the system browser with puppeteer-core; nothing downloads a browser.
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then
	exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
	echo "chromium is missing; install it as root: apt-get install -y chromium" >&2
	exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends chromium >/dev/null
echo "installed $(chromium --version)"
