#!/usr/bin/env bash
# End-to-end RabbitMQ load for BENCHMARKS.md ("Messaging (RabbitMQ)"):
# `benches/examples/rabbitmq_load.rs` in each tracing mode, modes interleaved round by round so
# drift on the machine hits every mode alike.
#
# The load process (all its threads: the runtime with publisher, consumer and handler, lapin's
# I/O threads, fastrace's collector, tracewire's export worker, the OpenTelemetry batch thread)
# is pinned to one CPU, so whatever tracing costs in background threads is paid out of the
# same CPU as the messages. The broker that `scripts/services.sh start rabbitmq` runs (starting
# a private Erlang node per run would take longer than the runs) has all its threads pinned to
# the other CPU for the duration, and unpinned at the end; with AMQP_URL set, that broker is
# used as it is (unpinned).
#
#   bash benches/rabbitmq_load.sh                                 # every mode, 3 rounds
#   ROUNDS=5 MODES="untraced tracewire" N=50000 bash benches/rabbitmq_load.sh
#
# Needs RabbitMQ (`bash scripts/services.sh install rabbitmq && bash scripts/services.sh start
# rabbitmq`), taskset (util-linux) and at least 2 CPUs.
set -euo pipefail

ROUNDS=${ROUNDS:-3}
MODES=${MODES:-"untraced tracewire tracewire-unsampled otel otel-unsampled fastrace-floor"}
N=${N:-100000}
LOAD_CPU=${LOAD_CPU:-1}
SERVER_CPU=${SERVER_CPU:-0}

command -v taskset >/dev/null || { echo "taskset is not installed" >&2; exit 1; }
cd "$(dirname "$0")/.."
# SKIP_BUILD=1: use the binary as built (when the workspace is mid-edit).
[ -n "${SKIP_BUILD:-}" ] || cargo build --release -q -p tracewire-benches --example rabbitmq_load
BIN="${CARGO_TARGET_DIR:-target}/release/examples/rabbitmq_load"
OUT=$(mktemp -d)
broker=
cleanup() {
    if [ -n "$broker" ]; then
        taskset -a -cp "0-$(($(nproc) - 1))" "$broker" >/dev/null 2>&1 || true
    fi
    rm -rf "$OUT"
}
trap cleanup EXIT

if [ -z "${AMQP_URL:-}" ]; then
    bash scripts/services.sh check rabbitmq >/dev/null || {
        echo "RabbitMQ is not running: bash scripts/services.sh start rabbitmq" >&2
        exit 1
    }
    pidfile="${TRACEWIRE_SERVICES_DIR:-${TMPDIR:-/tmp}/tracewire-services-$(id -u)}/rabbitmq/rabbitmq.pid"
    broker=$(tr -dc '0-9' <"$pidfile" 2>/dev/null || true)
    if [ -n "$broker" ] && [ -d "/proc/$broker" ]; then
        taskset -a -cp "$SERVER_CPU" "$broker" >/dev/null
        where="RabbitMQ $(bash scripts/services.sh check rabbitmq | awk '{print $3}') (pid $broker) pinned to CPU $SERVER_CPU"
    else
        broker=
        where="RabbitMQ on 127.0.0.1:5672 (not started by services.sh: not pinned)"
    fi
else
    where="RabbitMQ at $AMQP_URL (not pinned)"
fi

echo "rabbitmq load: $ROUNDS round(s), $N messages; load process on CPU $LOAD_CPU, $where; load average: $(cut -d' ' -f1-3 /proc/loadavg)"
for round in $(seq 1 "$ROUNDS"); do
    for mode in $MODES; do
        line=$(taskset -c "$LOAD_CPU" "$BIN" "$mode" "$N" | grep '^RESULT')
        # RESULT mode transport n secs msgs/s cpu_us/msg util spans dropped main_us/msg bg_us/msg
        read -r _ _ _ _ secs rate cpu util spans dropped main bg <<<"$line"
        echo "round $round  $mode  $rate msg/s  ${cpu} µs CPU/msg (main thread $main, other threads $bg)  (CPU use ${util}; spans exported $spans, dropped $dropped)"
        echo "$mode $rate $cpu $main $bg" >>"$OUT/results"
    done
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
echo
echo "| mode | median msg/s | ratio to untraced | CPU µs/msg, whole process | of which main thread | of which other threads |"
echo "|---|---:|---:|---:|---:|---:|"
base=$(awk '$1 == "untraced" {print $2}' "$OUT/results" | median)
for mode in $MODES; do
    col() { awk -v m="$mode" -v c="$1" '$1 == m {print $c}' "$OUT/results" | median; }
    rate=$(col 2)
    ratio=$(awk -v a="$rate" -v b="${base:-0}" 'BEGIN { if (b > 0) printf "%.3f", a / b; else print "n/a" }')
    echo "| $mode | $rate | $ratio | $(col 3) | $(col 4) | $(col 5) |"
done
