#!/usr/bin/env bash
# End-to-end load run for BENCHMARKS.md ("HTTP servers"): the hello-world axum server of
# `benches/examples/http_load.rs` in each tracing mode, loaded by wrk over loopback, modes
# interleaved round by round so drift on the machine hits every mode alike.
#
# The server (all its threads: the tokio worker, fastrace's collector, the export worker) is
# pinned to one CPU and wrk to another, so whatever tracing costs in the background threads is
# paid out of the server's CPU, as it would be on a busy host.
#
#   bash benches/load.sh                      # every mode, 3 rounds of 8 s
#   ROUNDS=5 SECS=10 MODES="plain tracewire" bash benches/load.sh
#   BEFORE=/tmp/http_load.old MODES="plain tracewire-unsampled@before tracewire-unsampled" \
#       bash benches/load.sh                  # A/B: a mode written MODE@before runs the older
#                                             # build BEFORE of this example, in the same rounds
#
# Needs wrk and curl (Debian: `apt-get install wrk curl`) and at least 2 CPUs. Building, the
# medians and ratios are `benches/load_lib.sh`, shared with the messaging drivers.
set -euo pipefail

ROUNDS=${ROUNDS:-3}
SECS=${SECS:-8}
CONNS=${CONNS:-32}
MODES=${MODES:-"plain tracewire tracewire-ratio10 tracewire-discard tracewire-unsampled fastrace-axum otel-instrumentation-tower empty-layer fastrace-floor"}
SERVER_CPU=${SERVER_CPU:-1}
CLIENT_CPU=${CLIENT_CPU:-0}
ADDR=127.0.0.1:18081
. "$(dirname "$0")/load_lib.sh"

for tool in wrk curl taskset; do
    if ! command -v "$tool" >/dev/null; then
        echo "$tool is not installed (Debian: apt-get install wrk curl util-linux)" >&2
        exit 1
    fi
done
load_setup http_load

echo "load: $ROUNDS round(s) x ${SECS}s per mode, $CONNS connections; server on CPU $SERVER_CPU, wrk on CPU $CLIENT_CPU; load average: $(loadavg)"
for round in $(seq 1 "$ROUNDS"); do
    for mode in $MODES; do
        case $mode in
            *@before) bin=${BEFORE:?"$mode needs BEFORE=<an older build of http_load>"} ;;
            *) bin=$BIN ;;
        esac
        taskset -c "$SERVER_CPU" "$bin" "${mode%@before}" "$ADDR" >"$OUT/server.log" 2>&1 &
        server=$!
        for _ in $(seq 1 50); do
            curl -sf "http://$ADDR/hello/world" >/dev/null 2>&1 && break
            sleep 0.1
        done
        taskset -c "$CLIENT_CPU" wrk -t1 -c"$CONNS" -d1s "http://$ADDR/hello/world" >/dev/null
        rps=$(taskset -c "$CLIENT_CPU" wrk -t1 -c"$CONNS" -d"${SECS}s" "http://$ADDR/hello/world" |
            awk '/Requests\/sec/ {print $2}')
        kill -TERM "$server"
        wait "$server" || true
        spans=$(awk '/spans exported/ {print $3}' "$OUT/server.log")
        echo "round $round  $mode  ${rps} req/s${spans:+  ($spans spans exported)}"
        echo "$mode $rps" >>"$OUT/results"
    done
done

echo
echo "| mode | median req/s | ratio to plain |"
echo "|---|---:|---:|"
plain=$(awk '$1 == "plain" {print $2}' "$OUT/results" | median)
for mode in $MODES; do
    rps=$(awk -v m="$mode" '$1 == m {print $2}' "$OUT/results" | median)
    echo "| $mode | $rps | $(ratio "$rps" "$plain") |"
done
