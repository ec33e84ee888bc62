#!/usr/bin/env bash
# End-to-end MQTT load for BENCHMARKS.md ("Messaging (MQTT)"): `benches/examples/mqtt_load.rs`
# in each tracing mode, QoS 0 and QoS 1, modes interleaved round by round so drift on the
# machine hits every mode alike.
#
# The load process (all its threads: the runtime with both clients' event loops and the
# handler, fastrace's collector, tracewire's export worker, the OpenTelemetry batch thread) is
# pinned to one CPU, so whatever tracing costs in background threads is paid out of the same CPU
# as the messages. A private Mosquitto (anonymous, no persistence, its own port) is started
# pinned to the other CPU; with MQTT_PORT set, the broker on that port of 127.0.0.1 is used
# instead (unpinned).
#
#   bash benches/mqtt_load.sh                                # every mode, 3 rounds
#   ROUNDS=5 MODES="untraced tracewire" TRANSPORTS=qos1 bash benches/mqtt_load.sh
#
# Needs mosquitto (Debian: `apt-get install mosquitto`, or `scripts/services.sh install
# mosquitto`), taskset (util-linux) and at least 2 CPUs.
set -euo pipefail

ROUNDS=${ROUNDS:-3}
MODES=${MODES:-"untraced tracewire tracewire-unsampled otel fastrace-floor"}
TRANSPORTS=${TRANSPORTS:-"qos0 qos1"}
QOS0_N=${QOS0_N:-200000}
QOS1_N=${QOS1_N:-50000}
LOAD_CPU=${LOAD_CPU:-1}
SERVER_CPU=${SERVER_CPU:-0}
PRIVATE_PORT=${PRIVATE_PORT:-11883}

command -v taskset >/dev/null || { echo "taskset is not installed" >&2; exit 1; }
cd "$(dirname "$0")/.."
# SKIP_BUILD=1: use the binary as built (when the workspace is mid-edit).
[ -n "${SKIP_BUILD:-}" ] || cargo build --release -q -p tracewire-benches --example mqtt_load
BIN="${CARGO_TARGET_DIR:-target}/release/examples/mqtt_load"
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

if [ -z "${MQTT_PORT:-}" ]; then
    mosq=$(command -v mosquitto || echo /usr/sbin/mosquitto)
    [ -x "$mosq" ] || { echo "mosquitto is not installed" >&2; exit 1; }
    {
        echo "listener $PRIVATE_PORT 127.0.0.1"
        echo "allow_anonymous true"
        echo "persistence false"
        echo "log_dest none"
        if [ "$(id -u)" = 0 ]; then echo "user root"; fi
    } >"$OUT/mosquitto.conf"
    taskset -c "$SERVER_CPU" "$mosq" -c "$OUT/mosquitto.conf" >"$OUT/server.log" 2>&1 &
    server=$!
    for _ in $(seq 1 50); do
        (exec 3<>"/dev/tcp/127.0.0.1/$PRIVATE_PORT") 2>/dev/null && break
        sleep 0.1
    done
    export MQTT_PORT=$PRIVATE_PORT
    # `mosquitto -h` exits non-zero after printing its version.
    version=$("$mosq" -h 2>/dev/null | sed -n 's/^mosquitto version \([^ ]*\).*/\1/p' | head -n1) || true
    where="private mosquitto ${version:-?} on CPU $SERVER_CPU"
else
    where="the broker on 127.0.0.1:$MQTT_PORT (not pinned)"
fi

echo "mqtt load: $ROUNDS round(s), QoS 0 $QOS0_N / QoS 1 $QOS1_N messages; load process on CPU $LOAD_CPU, $where; load average: $(cut -d' ' -f1-3 /proc/loadavg)"
for transport in $TRANSPORTS; do
    n=$QOS0_N
    [ "$transport" = qos1 ] && n=$QOS1_N
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
