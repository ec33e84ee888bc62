#!/usr/bin/env bash
# Installs what the viewer's browser tests need: Debian's headless Chromium (+ chromedriver)
# and the `playwright-core` driver (npm, no browser download). Idempotent: skips what is present.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

if ! command -v chromium >/dev/null 2>&1; then
  SUDO=""
  if [ "$(id -u)" != "0" ] && command -v sudo >/dev/null 2>&1; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null
fi

drv="$here/crates/tracewire-cli/tests/browser"
if [ ! -d "$drv/node_modules/playwright-core" ]; then
  # playwright-core never downloads a browser; the tests use Debian's /usr/bin/chromium
  (cd "$drv" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --silent)
fi
echo "setup-browser: chromium $(chromium --version 2>/dev/null || echo missing), playwright-core ready"
