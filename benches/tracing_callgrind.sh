#!/usr/bin/env bash
# Instructions per request and per `#[instrument]` span of the `tracing` bench's rows
# (`benches/benches/tracing.rs`), counted on **every thread** by callgrind: the repeatable side
# of its process-CPU table (BENCHMARKS.md, "`tracing` layer"). Instruction counts do not depend
# on the machine's load.
#
#   bash benches/tracing_callgrind.sh                      # every row
#   ROWS="tracewire/sampled/0 tracewire/sampled/3" bash benches/tracing_callgrind.sh
#
# Each row runs twice under `valgrind --tool=callgrind --separate-threads=yes`, with N1 and N2
# requests (the bench binary's own child mode, `TRACING_BENCH_ROW=<row>:<n>`: warm-up, the
# requests, a drain of the stack's queues every 500 requests, flush and shutdown at the end).
# (I(N2) - I(N1)) / (N2 - N1) is what one request costs, start-up and warm-up cancelled out,
# per thread role: `request` (the thread that runs the requests), `collector` (fastrace's
# collector, including the threads `fastrace::flush` starts), `export` (tracewire's export
# worker: mapping, OTLP encoding), `sdk` (the OpenTelemetry SDK's batch span processor:
# conversion, OTLP encoding), `other`. Per `#[instrument]` span = (row/3 - row/0) / 3.
#
# "Stages" are inclusive counts of the functions listed in STAGES, on their thread role, per
# request (same difference), printed under each row where they ran: which callback of which
# layer, and which part of the background work, a span's instructions go to.
#
# Needs valgrind (callgrind_annotate). SKIP_BUILD=1 uses the binary as built.
set -euo pipefail
cd "$(dirname "$0")/.."

N1=${N1:-2000}
N2=${N2:-6000}
OUT=${OUT:-target/tracing-callgrind}
CALIBRATION='fastant::tsc_now::___init___ctor::___init___ctor \['
# label|role|function (regex on callgrind_annotate's inclusive listing; the first match counts)
STAGES=${STAGES:-"\
subscriber: new span (registry + layer)|request|(Layered<L,S>|Registry) as tracing_core::subscriber::Subscriber>::new_span \[
subscriber: enter|request|(Layered<L,S>|Registry) as tracing_core::subscriber::Subscriber>::enter \[
subscriber: exit|request|(Layered<L,S>|Registry) as tracing_core::subscriber::Subscriber>::exit \[
subscriber: close|request|(Layered<L,S>|Registry) as tracing_core::subscriber::Subscriber>::try_close \[
  of which tracewire's layer: new span|request|TracewireLayer as tracing_subscriber::layer::Layer<S>>::on_new_span \[
  of which tracewire's layer: enter|request|TracewireLayer as tracing_subscriber::layer::Layer<S>>::on_enter \[
  of which tracewire's layer: exit (its entered-span stack)|request|tracewire_tracing::stack::exit \[
  of which fastrace: commands sent to its collector|request|fastrace::collector::global_collector::send_command \[
  of which tracing-opentelemetry: close (SDK span built, ended, queued)|request|OpenTelemetryLayer<S,T> as tracing_subscriber::layer::Layer<S>>::on_close \[
fastrace collector: commands handled|collector|GlobalCollector::handle_commands \[
  of which the reporter (tracewire: into the export queue)|collector|as fastrace::collector::global_collector::Reporter>::report \[
SDK batch thread: conversion to OTLP|sdk|group_spans_by_resource_and_scope \[
SDK batch thread: encoding|sdk|prost::message::Message::encode_to_vec \[
"}

command -v valgrind >/dev/null || { echo "needs valgrind" >&2; exit 1; }
if [ -z "${SKIP_BUILD:-}" ]; then
    cargo bench -p tracewire-benches --bench tracing --no-run >&2
fi
bin=$(ls -t target/release/deps/tracing-* | grep -v '\.d$' | head -n1)
ROWS=${ROWS:-$("$bin" --list)}
mkdir -p "$OUT"

# The role of one thread's profile.
role() {
    if [ "$(sed -n 's/^thread: //p' "$1")" = 1 ]; then echo request
    elif grep -q 'tracewire_export::pipeline::Worker' "$1"; then echo export
    elif grep -q 'GlobalCollector::handle_commands' "$1"; then echo collector
    elif grep -q 'opentelemetry_sdk::trace::span_processor' "$1"; then echo sdk
    else echo other
    fi
}

# Runs one row with n requests; prints "role instructions" lines, one per role.
measure() {
    local row=$1 n=$2 dir
    dir="$OUT/$(echo "$row" | tr '/' '_')-$n"
    rm -rf "$dir" && mkdir -p "$dir"
    TRACING_BENCH_ROW="$row:$n" valgrind --tool=callgrind --separate-threads=yes \
        --callgrind-out-file="$dir/cg.%p" "$bin" >"$dir/stdout" 2>"$dir/stderr"
    grep -q '^RESULT ' "$dir/stdout" || { cat "$dir/stdout" "$dir/stderr" >&2; exit 1; }
    for f in "$dir"/cg.*-*; do
        callgrind_annotate --inclusive=yes --threshold=100 "$f" >"$f.txt" 2>/dev/null
        role "$f" >"$f.role"
        # Minus fastant's TSC calibration at start-up (fastrace's clock), which
        # spins for a while and so counts a different number of instructions each run.
        calibration=$( (grep -m1 -E "$CALIBRATION" "$f.txt" || true) | awk '{ gsub(",", "", $1); print $1 }')
        echo "$(cat "$f.role") $(( $(sed -n 's/^totals: //p' "$f") - ${calibration:-0} ))"
    done | awk '{ s[$1] += $2 } END { for (r in s) print r, s[r] }'
}

# The inclusive count of stage $2 (label|role|regex) in the profiles of directory $1.
stage() {
    local dir=$1 role=${2#*|} re total=0 f v
    re=${role#*|}
    role=${role%%|*}
    for f in "$dir"/cg.*-*.txt; do
        [ "$(cat "${f%.txt}.role")" = "$role" ] || continue
        v=$( (grep -m1 -E "$re" "$f" || true) | awk '{ gsub(",", "", $1); print $1 }')
        total=$(( total + ${v:-0} ))
    done
    echo "$total"
}

declare -A per_request
printf '%-34s %12s   %s\n' row instr/request "by thread role"
for row in $ROWS; do
    declare -A a=() b=()
    while read -r r v; do a[$r]=$v; done < <(measure "$row" "$N1")
    while read -r r v; do b[$r]=$v; done < <(measure "$row" "$N2")
    total=0 parts=""
    for r in request collector export sdk other; do
        d=$(( (${b[$r]:-0} - ${a[$r]:-0}) / (N2 - N1) ))
        total=$(( total + d ))
        [ "$d" -ne 0 ] && parts="$parts $r=$d"
    done
    per_request[$row]=$total
    printf '%-34s %12d  %s\n' "$row" "$total" "$parts"
    unset a b
    d1="$OUT/$(echo "$row" | tr '/' '_')-$N1"
    d2="$OUT/$(echo "$row" | tr '/' '_')-$N2"
    while IFS= read -r st; do
        [ -n "$st" ] || continue
        v=$(( ($(stage "$d2" "$st") - $(stage "$d1" "$st")) / (N2 - N1) ))
        [ "$v" -gt 0 ] && printf '    %-62s %8d\n' "${st%%|*}" "$v"
    done <<<"$STAGES"
done

echo
echo "per #[instrument] span = (row/3 - row/0) / 3:"
for row in $ROWS; do
    case $row in */3)
        base=${row%/3}/0
        if [ -n "${per_request[$base]:-}" ]; then
            printf '  %-30s %8d instructions\n' "${row%/3}" \
                $(( (per_request[$row] - per_request[$base]) / 3 ))
        fi
    esac
done
