#!/usr/bin/env bash
# The test command (README, .ci/run): installs what the tests need, then runs every test.
#
#   bash scripts/test.sh
#
# Interop peers (the OpenTelemetry Python SDK and friends) go into ./.venv via
# scripts/setup-python.sh; Debian's headless Chromium and playwright-core for the viewer's
# browser tests via scripts/setup-browser.sh; the brokers in BROKERS via scripts/services.sh
# (installed and started on 127.0.0.1); Jaeger via `scripts/services.sh install jaeger` (a Go
# build, cached outside the clone; its tests start their own on free ports). With CI=true,
# anything a test needs that is missing (the venv, the browser, a broker, Jaeger) is a failure,
# never a skip.
#
# Every test that skips itself (tracewire_test::skip::skip) appends a line to the file in
# TRACEWIRE_SKIP_LOG; the run ends with a banner listing them, and with CI=true a skip fails it.
set -euo pipefail
cd "$(dirname "$0")/.."

# The brokers the tests need (names as in scripts/services.sh: nats redis rabbitmq mqtt kafka).
BROKERS="nats redis rabbitmq mosquitto kafka"

ci=""
if [ "${CI:-}" = "true" ]; then ci=1; fi

target=${CARGO_TARGET_DIR:-target}
mkdir -p "$target"
export TRACEWIRE_SKIP_LOG
TRACEWIRE_SKIP_LOG="$(cd "$target" && pwd)/test-skips.log"
: >"$TRACEWIRE_SKIP_LOG"

banner() { # lines...
    local line
    echo >&2
    echo "################################################################################" >&2
    for line in "$@"; do echo "### $line" >&2; done
    echo "################################################################################" >&2
    echo >&2
}

stage="setup"
tests_done=""
summary() {
    local rc=$? n
    n=$(grep -c . "$TRACEWIRE_SKIP_LOG" 2>/dev/null) || n=0
    if [ "$n" -gt 0 ]; then
        local lines=("$n test(s) skipped:")
        mapfile -t -O 1 lines <"$TRACEWIRE_SKIP_LOG"
        banner "${lines[@]}"
        if [ -n "$ci" ] && [ "$rc" -eq 0 ]; then
            echo "test.sh: CI=true and $n test(s) skipped: failing" >&2
            rc=1
        fi
    elif [ -n "$tests_done" ]; then
        echo "test.sh: no test was skipped" >&2
    fi
    if [ -z "$tests_done" ]; then
        echo "test.sh: FAILED in $stage (exit $rc)" >&2
    fi
    exit "$rc"
}
trap summary EXIT

bash scripts/setup-python.sh
bash scripts/setup-browser.sh

# --- brokers ----------------------------------------------------------------------------------
stage="broker setup (BROKERS=\"$BROKERS\")"
# shellcheck disable=SC2086 # BROKERS is a list
if [ -n "$ci" ]; then
    bash scripts/services.sh install $BROKERS
    bash scripts/services.sh start $BROKERS
else
    for b in $BROKERS; do
        if bash scripts/services.sh installed "$b" >/dev/null; then
            bash scripts/services.sh start "$b" || banner \
                "broker '$b' is installed but did not start: its tests will be SKIPPED" \
                "see the messages above; then: bash scripts/services.sh start $b"
        else
            banner "broker '$b' is not installed: its tests will be SKIPPED" \
                "install and start it: sudo bash scripts/services.sh install $b && bash scripts/services.sh start $b"
        fi
    done
fi
if bash scripts/services.sh check nats >/dev/null 2>&1; then
    export TRACEWIRE_NATS_URL=nats://127.0.0.1:4222
fi
if bash scripts/services.sh check redis >/dev/null 2>&1; then
    export TRACEWIRE_REDIS_URL=redis://127.0.0.1:6379
fi
if bash scripts/services.sh check rabbitmq >/dev/null 2>&1; then
    export TRACEWIRE_RABBITMQ_URL=amqp://guest:guest@127.0.0.1:5672/%2f
fi
if bash scripts/services.sh check mosquitto >/dev/null 2>&1; then
    export TRACEWIRE_MQTT_URL=mqtt://127.0.0.1:1883
fi
if bash scripts/services.sh check kafka >/dev/null 2>&1; then
    export TRACEWIRE_KAFKA_URL=127.0.0.1:9092
fi

# --- Jaeger -----------------------------------------------------------------------------------
# Only installed here: crates/tracewire/tests/jaeger.rs and the demo's test start their own
# (tracewire_test::jaeger, free ports). The first build takes minutes; later ones reuse the cache.
stage="jaeger setup"
if [ -n "$ci" ]; then
    bash scripts/services.sh install jaeger
elif ! bash scripts/services.sh installed jaeger >/dev/null 2>&1; then
    banner "Jaeger is not installed: the tests that export into it will be SKIPPED" \
        "build it once (Go 1.24.6+, minutes): bash scripts/services.sh install jaeger"
fi

# --- tests ------------------------------------------------------------------------------------
stage="the tests"
if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --workspace --no-fail-fast
else
    echo "cargo-nextest not found: falling back to cargo test" >&2
    cargo test --workspace --no-fail-fast --lib --bins --tests --examples
fi
# nextest does not run doctests.
stage="the doctests"
cargo test --workspace --doc --exclude tracewire-benches
tests_done=1
