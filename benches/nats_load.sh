#!/usr/bin/env bash
# End-to-end NATS load for BENCHMARKS.md ("Messaging (NATS)"): `benches/examples/nats_load.rs`
# in each tracing mode, core NATS and JetStream, modes interleaved round by round so drift on
# the machine hits every mode alike.
#
# The load process (all its threads: the runtime with both clients and the handler,
# fastrace's collector, tracewire's export worker, the OpenTelemetry batch thread) is pinned
# to one CPU, so whatever tracing costs in background threads is paid out of the same CPU as
# the messages. By default a private nats-server (JetStream, state in a temp dir) is started
# pinned to the other CPU; with NATS_URL set, that server is used instead (unpinned).
#
#   bash benches/nats_load.sh                                # every mode, 3 rounds
#   ROUNDS=5 MODES="untraced tracewire" TRANSPORTS=core bash benches/nats_load.sh
#
# Needs nats-server (Debian: `apt-get install nats-server`, or `scripts/services.sh install
# nats`), taskset (util-linux) and at least 2 CPUs. What every driver shares (building,
# pinning, rounds, tables) is `benches/load_lib.sh`.
set -euo pipefail

MODES=${MODES:-"untraced tracewire tracewire-unsampled otel fastrace-floor"}
TRANSPORTS=${TRANSPORTS:-"core js"}
CORE_N=${CORE_N:-200000}
JS_N=${JS_N:-50000}
PORT=${PORT:-14222}
. "$(dirname "$0")/load_lib.sh"

load_require taskset
load_setup nats_load

if [ -z "${NATS_URL:-}" ]; then
    load_require nats-server
    mkdir -p "$OUT/js"
    load_private_server "$PORT" nats-server -a 127.0.0.1 -p "$PORT" -js -sd "$OUT/js"
    export NATS_URL="nats://127.0.0.1:$PORT"
    WHERE="private nats-server $(nats-server --version | awk '{print $NF}') on CPU $SERVER_CPU"
else
    WHERE="nats-server at $NATS_URL (not pinned)"
fi

load_banner "nats load: $ROUNDS round(s), core $CORE_N / JetStream $JS_N messages"
for transport in $TRANSPORTS; do
    n=$CORE_N
    [ "$transport" = js ] && n=$JS_N
    load_rounds "$transport" "$n"
done
# shellcheck disable=SC2086 # one word per transport
load_tables $TRANSPORTS
