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
# nats`), taskset (util-linux) and at least 2 CPUs.
set -euo pipefail

ROUNDS=${ROUNDS:-3}
MODES=${MODES:-"untraced tracewire tracewire-unsampled otel fastrace-floor"}
TRANSPORTS=${TRANSPORTS:-"core js"}
CORE_N=${CORE_N:-200000}
JS_N=${JS_N:-50000}
LOAD_CPU=${LOAD_CPU:-1}
SERVER_CPU=${SERVER_CPU:-0}
PORT=${PORT:-14222}

for tool in taskset; do
    command -v "$tool" >/dev/null || { echo "$tool is not installed" >&2; exit 1; }
done
cd "$(dirname "$0")/.."
# SKIP_BUILD=1: use the binary as built (when the workspace is mid-edit).
[ -n "${SKIP_BUILD:-}" ] || cargo build --release -q -p tracewire-benches --example nats_load
BIN="${CARGO_TARGET_DIR:-target}/release/examples/nats_load"
OUT=$(mktemp -d)
server=
cleanup() {
    if [ -n "$server" ]; then
        kill -TERM "$server" 2>/dev/null || true
        wait "$server" 2>/dev/null || true
    fi
    rm -rf "$OUT"
}
trap cleanup EXIT

if [ -z "${NATS_URL:-}" ]; then
    command -v nats-server >/dev/null || { echo "nats-server is not installed" >&2; exit 1; }
    mkdir -p "$OUT/js"
    taskset -c "$SERVER_CPU" nats-server -a 127.0.0.1 -p "$PORT" -js -sd "$OUT/js" \
        >"$OUT/server.log" 2>&1 &
    server=$!
    for _ in $(seq 1 50); do
        (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break
        sleep 0.1
    done
    export NATS_URL="nats://127.0.0.1:$PORT"
    where="private nats-server $(nats-server --version | awk '{print $NF}') on CPU $SERVER_CPU"
else
    where="nats-server at $NATS_URL (not pinned)"
fi

echo "nats load: $ROUNDS round(s), core $CORE_N / JetStream $JS_N messages; load process on CPU $LOAD_CPU, $where; load average: $(cut -d' ' -f1-3 /proc/loadavg)"
for transport in $TRANSPORTS; do
    n=$CORE_N
    [ "$transport" = js ] && n=$JS_N
    for round in $(seq 1 "$ROUNDS"); do
        for mode in $MODES; do
            line=$(taskset -c "$LOAD_CPU" "$BIN" "$mode" "$transport" "$n" | grep '^RESULT')
            # RESULT mode transport n secs msgs/s cpu_us/msg util spans dropped main_us/msg bg_us/msg
            read -r _ _ _ _ secs rate cpu util spans dropped main bg <<<"$line"
            echo "$transport round $round  $mode  $rate msg/s  ${cpu} µs CPU/msg (main thread $main, background threads $bg)  (CPU use ${util}; spans exported $spans, dropped $dropped)"
            echo "$transport $mode $rate $cpu $main $bg" >>"$OUT/results"
        done
    done
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
for transport in $TRANSPORTS; do
    echo
    echo "$transport"
    echo "| mode | median msg/s | ratio to untraced | CPU µs/msg, whole process | of which main thread | of which background threads |"
    echo "|---|---:|---:|---:|---:|---:|"
    base=$(awk -v t="$transport" '$1 == t && $2 == "untraced" {print $3}' "$OUT/results" | median)
    for mode in $MODES; do
        rate=$(awk -v t="$transport" -v m="$mode" '$1 == t && $2 == m {print $3}' "$OUT/results" | median)
        col() { awk -v t="$transport" -v m="$mode" -v c="$1" '$1 == t && $2 == m {print $c}' "$OUT/results" | median; }
        ratio=$(awk -v a="$rate" -v b="${base:-0}" 'BEGIN { if (b > 0) printf "%.3f", a / b; else print "n/a" }')
        echo "| $mode | $rate | $ratio | $(col 4) | $(col 5) | $(col 6) |"
    done
done
