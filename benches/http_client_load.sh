#!/usr/bin/env bash
# End-to-end load run of an HTTP client for BENCHMARKS.md ("HTTP client: all threads"): the
# reqwest client of `benches/examples/http_client_load.rs` in each tracing mode, calling the
# same program's hyper server over loopback as fast as it can, modes interleaved round by round.
# One call is a job's root span + the call's CLIENT span (see the example's docs).
#
#   bash benches/http_client_load.sh              # calls/s and the client's CPU per call, by thread
#   bash benches/http_client_load.sh callgrind    # instructions per call on every client thread
#   ROUNDS=5 SECS=10 MODES="plain tracewire" bash benches/http_client_load.sh
#   KEEP=/tmp/cg bash benches/http_client_load.sh callgrind   # keep the profiles
#
# The client (every thread: the tokio worker, fastrace's collector, the export worker, the
# OpenTelemetry batch thread) is pinned to SUBJECT_CPU (1), the server to PEER_CPU (0). The
# throughput run reads the calls completed (`/_count`) and each client thread's CPU (/proc) over
# SECS seconds after WARM; the callgrind run counts every thread's instructions over a window
# closed by `/_flush` (see `benches/load_lib.sh`, cg_windows). Needs curl, taskset (and
# valgrind for callgrind).
set -euo pipefail

MEASURE=${1:-throughput}
ROUNDS=${ROUNDS:-3}
MODES=${MODES:-"plain reqwest-middleware empty-middleware tracewire tracewire-execute tracewire-ratio10 tracewire-unsampled reqwest-tracing fastrace-reqwest"}
ADDR=${ADDR:-127.0.0.1:18091}
CONTROL=${CONTROL:-127.0.0.1:18092}
PEER_FIRST=1
. "$(dirname "$0")/load_lib.sh"
# the client's middleware and the job's span, on the request thread, before the engine's stages
CG_STAGES="\
tracewire: the job's root span (root rule)|request|tracewire_core::tracer::Tracer::start_root \[
tracewire-reqwest: CLIENT span start (URL, attributes, inject)|request|tracewire_reqwest::Tracing::start \[
tracewire-reqwest: response attributes|request|tracewire_http::client::ClientSpan::record_response \[
tracewire-reqwest: CLIENT span end|request|drop_in_place<tracewire_http::client::ClientSpan> \[
reqwest-tracing: span start (attributes)|request|reqwest_tracing::reqwest_otel_span_builder::ReqwestOtelSpanBackend>::on_request_start \[
reqwest-tracing: response attributes|request|reqwest_tracing::reqwest_otel_span_builder::ReqwestOtelSpanBackend>::on_request_end \[
tracing-opentelemetry: on_new_span|request|tracing_opentelemetry::layer::OpenTelemetryLayer<S,T> as tracing_subscriber::layer::Layer<S>>::on_new_span \[
tracing-opentelemetry: on_enter + on_exit (each poll)|request|tracing_opentelemetry::layer::OpenTelemetryLayer<S,T> as tracing_subscriber::layer::Layer<S>>::on_(enter|exit) \[
tracing-opentelemetry: on_close (span end)|request|tracing_opentelemetry::layer::OpenTelemetryLayer<S,T> as tracing_subscriber::layer::Layer<S>>::on_close \[
W3C extraction or injection through the global propagator|request|TraceContextPropagator as opentelemetry::propagation::text_map_propagator::TextMapPropagator>::(inject|extract)_(context|with_context) \[
fastrace-reqwest: traceparent_headers|request|fastrace_reqwest::traceparent_headers \[
$CG_STAGES_ENGINE"

subject_cmd() { echo "$BIN $1 http://$ADDR/hello/world $CONTROL"; }
peer_cmd() { echo "$BIN server $ADDR"; }

load_require curl taskset
load_setup http_client_load
WHERE="server on CPU $PEER_CPU; client: ${CONCURRENCY:-32} tasks calling"
case $MEASURE in
    throughput)
        SECS=${SECS:-8}
        echo "http_client_load: $ROUNDS round(s) x ${SECS}s per mode; client on CPU $SUBJECT_CPU, $WHERE; load average: $(loadavg)"
        load_window_rounds "$SECS" "${WARM:-1}"
        load_window_table
        ;;
    callgrind)
        SECS=${SECS:-4}
        echo "http_client_load callgrind: ${SECS}s window per mode; client under callgrind on CPU $SUBJECT_CPU, $WHERE; load average: $(loadavg)"
        cg_windows "$SECS" "${WARM:-2}"
        cg_tables
        ;;
    *) echo "usage: http_client_load.sh [throughput|callgrind]" >&2; exit 1 ;;
esac
