#!/usr/bin/env bash
# The test command (README, .ci/run): installs what the tests need, then runs every test.
#
#   bash scripts/test.sh
#
# Interop peers (the OpenTelemetry Python SDK and friends) go into ./.venv via
# scripts/setup-python.sh; Debian's headless Chromium and playwright-core for the viewer's
# browser tests via scripts/setup-browser.sh. With CI=true, anything a test needs that is
# missing (the venv, the browser, a broker) is a failure, never a skip.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup-python.sh
bash scripts/setup-browser.sh

if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --workspace --no-fail-fast
else
    echo "cargo-nextest not found: falling back to cargo test" >&2
    cargo test --workspace --no-fail-fast --lib --bins --tests --examples
fi
# nextest does not run doctests.
cargo test --workspace --doc --exclude tracewire-benches
