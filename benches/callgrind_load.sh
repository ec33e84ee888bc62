#!/usr/bin/env bash
# Instructions per request of the load run's server (`benches/examples/http_load.rs`), counted
# on **every thread** by callgrind, per mode: what a traced request costs in all, and where —
# the request thread (tokio worker), fastrace's collector, tracewire's export worker, the
# OpenTelemetry SDK's batch thread. Instruction counts do not depend on the machine's load, so
# this is the repeatable side of `benches/load.sh` (BENCHMARKS.md, "HTTP servers").
#
#   bash benches/callgrind_load.sh                       # every mode
#   MODES="plain tracewire" SECS=6 bash benches/callgrind_load.sh
#   KEEP=/tmp/cg bash benches/callgrind_load.sh          # keep the profiles (callgrind_annotate)
#
# Per mode: the server starts under `valgrind --tool=callgrind --separate-threads=yes`, wrk
# warms it up, `/_flush` hands every span made so far to its sink, the counters are zeroed
# (`callgrind_control -z`), wrk loads it for SECS seconds, `/_flush` again (so every span of
# the window is mapped, encoded and exported inside it), the counters are dumped. The figure
# is each thread's instructions over the window / the requests served in it (`/_count` before
# and after). Threads are told apart by what they run (tokio's worker loop, fastrace's
# `handle_commands`, the export worker, the SDK batch processor); "stages" are inclusive counts
# of the functions listed in STAGES, on their thread.
#
# Needs valgrind (callgrind_control, callgrind_annotate), wrk, curl, taskset. Building and the
# helpers are `benches/load_lib.sh`'s (SKIP_BUILD=1: use the binary as built).
set -euo pipefail

MODES=${MODES:-"plain tracewire tracewire-ratio10 tracewire-discard tracewire-unsampled fastrace-axum otel-instrumentation-tower empty-layer fastrace-floor"}
SECS=${SECS:-4}
WARM=${WARM:-2}
CONNS=${CONNS:-32}
SERVER_CPU=${SERVER_CPU:-1}
CLIENT_CPU=${CLIENT_CPU:-0}
PORT=${PORT:-18082}
ADDR=127.0.0.1:$PORT
# label|thread|function (regex on callgrind_annotate's inclusive listing; the first match counts)
STAGES=${STAGES:-"\
core: root rule (extraction, sampler, ids, fastrace root span and its first properties)|request|tracewire_core::tracer::Tracer::start_root_lazy \[
core: of which extraction (no inbound headers)|request|tracewire_core::propagation::Propagators::extract \[
http: request head (method, URI, headers, peer, route)|request|start_with::\{\{closure\}\} \[
http: request attributes|request|tracewire_http::attributes::request_attributes \[
http: response attributes|request|tracewire_http::server::ServerSpan::record_response \[
http: end (attributes handed to fastrace, span submitted)|request|tracewire_http::server::ServerSpan::complete \[
fastrace: commands sent (span submission, parent guards)|request|fastrace::collector::global_collector::send_command \[
fastrace: local parent guard drops|request|fastrace::span::LocalParentGuard as core::ops::drop::Drop>::drop \[
fastrace collector: the reporter (tracewire: into its queue; fastrace-axum: fastrace-opentelemetry mapping + encoding)|collector|as fastrace::collector::global_collector::Reporter>::report \[
export worker: mapping and encoding, straight from the spans|export|tracewire_export::encode::DirectEncoder::encode \[
export worker: mapping into OTLP structs|export|tracewire_export::map::Mapper::map \[
export worker: encoding the structs (incl. sizing)|export|tracewire_export::encode::encode_request \[
export worker: splitting the structs by size|export|tracewire_export::pipeline::Worker::split \[
"}
. "$(dirname "$0")/load_lib.sh"

load_require valgrind callgrind_control callgrind_annotate wrk curl taskset
load_setup http_load

# The role of one thread's profile.
role() {
    if grep -q 'tracewire_export::pipeline::Worker::run' "$1"; then echo export
    elif grep -q 'GlobalCollector::handle_commands' "$1"; then echo collector
    elif grep -q 'multi_thread::worker::run' "$1"; then echo request
    elif grep -q 'opentelemetry_sdk::trace::span_processor' "$1"; then echo otel
    elif grep -q 'CachedParkThread' "$1"; then echo main
    else echo other
    fi
}

get() { curl -sf "http://$ADDR$1"; }

echo "callgrind_load: modes: $MODES; ${SECS}s of wrk -c$CONNS per mode; load average: $(loadavg)"
for mode in $MODES; do
    taskset -c "$SERVER_CPU" valgrind --tool=callgrind --separate-threads=yes \
        --callgrind-out-file="$OUT/$mode.%p" "$BIN" "$mode" "$ADDR" >"$OUT/server.log" 2>"$OUT/valgrind.log" &
    server=$!
    for _ in $(seq 1 100); do get /_count >/dev/null && break; sleep 0.2; done
    taskset -c "$CLIENT_CPU" wrk -t1 -c"$CONNS" -d"${WARM}s" "http://$ADDR/hello/world" >/dev/null
    get /_flush >/dev/null
    before=$(get /_count)
    callgrind_control -z "$server" >/dev/null 2>&1
    taskset -c "$CLIENT_CPU" wrk -t1 -c"$CONNS" -d"${SECS}s" "http://$ADDR/hello/world" >/dev/null
    get /_flush >/dev/null
    after=$(get /_count)
    callgrind_control -d "$server" >/dev/null 2>&1
    kill -TERM "$server"
    wait "$server" || true
    n=$((after - before))
    : >"$OUT/$mode.roles"
    for f in "$OUT/$mode.$server".1-*; do
        r=$(role "$f")
        total=$(awk '/^totals:/ {print $2}' "$f")
        echo "$r $total" >>"$OUT/$mode.roles"
        callgrind_annotate --inclusive=yes "$f" 2>/dev/null >"$f.annotated"
        while IFS='|' read -r label thread fn; do
            [ -n "$label" ] && [ "$thread" = "$r" ] || continue
            ir=$(grep -m1 -E "$fn" "$f.annotated" | awk '{gsub(",", "", $1); print $1}' || true)
            echo "$label|${ir:-0}" >>"$OUT/$mode.stages"
        done <<<"$STAGES"
    done
    echo "$mode $n" >>"$OUT/requests"
    if [ -n "${KEEP:-}" ]; then
        mkdir -p "$KEEP"
        for f in "$OUT/$mode.$server".1-*; do
            case $f in *.annotated) ;; *) cp "$f" "$KEEP/$mode.$(role "$f").${f##*-}" ;; esac
        done
    fi
    per() { awk -v n="$n" -v r="$1" '$1 == r {s += $2} END {printf "%.0f", s / n}' "$OUT/$mode.roles"; }
    all=$(awk -v n="$n" '{s += $2} END {printf "%.0f", s / n}' "$OUT/$mode.roles")
    echo "$mode $n $(per request) $(per main) $(per collector) $(per export) $(per otel) $(per other) $all" >>"$OUT/results"
    echo "$mode: $n requests; instructions per request: request thread $(per request), collector $(per collector), export worker $(per export), otel batch $(per otel), main $(per main), other $(per other); all threads $all"
done

echo
echo "load average after: $(loadavg)"
echo
echo "| mode | requests | request thread | fastrace collector | export worker | OTel batch thread | accept loop + other | all threads | over plain |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
plain=$(awk '$1 == "plain" {print $9}' "$OUT/results")
while read -r mode n req main coll exp otel other all; do
    over=$([ -n "$plain" ] && echo "+$((all - plain))" || echo "")
    echo "| $mode | $n | $req | $coll | $exp | $otel | $((main + other)) | $all | $over |"
done <"$OUT/results"
echo
echo "Stages (instructions per request, inclusive):"
echo
echo "| mode | stage | instructions |"
echo "|---|---|---:|"
for mode in $MODES; do
    [ -f "$OUT/$mode.stages" ] || continue
    n=$(awk -v m="$mode" '$1 == m {print $2}' "$OUT/requests")
    awk -F'|' -v n="$n" -v m="$mode" '{s[$1] += $2; if (!($1 in o)) o[$1] = NR} END {for (k in s) if (s[k] > 0) printf "%d\t| %s | %s | %.0f |\n", o[k], m, k, s[k] / n}' "$OUT/$mode.stages" |
        sort -n | cut -f2-
done
