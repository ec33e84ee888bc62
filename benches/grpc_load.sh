#!/usr/bin/env bash
# End-to-end load run of a tonic gRPC server for BENCHMARKS.md ("gRPC server: all threads"):
# the unary echo server of `benches/examples/grpc_load.rs` in each tracing mode, loaded by the
# same program's HTTP/2 gRPC client over loopback, modes interleaved round by round.
#
#   bash benches/grpc_load.sh                 # calls/s and the server's CPU per call, by thread
#   bash benches/grpc_load.sh callgrind       # instructions per call on every server thread
#   ROUNDS=5 SECS=10 MODES="plain tracewire" bash benches/grpc_load.sh
#   KEEP=/tmp/cg bash benches/grpc_load.sh callgrind   # keep the profiles (callgrind_annotate)
#
# The server (every thread: the tokio worker, fastrace's collector, the export worker, the
# OpenTelemetry batch thread) is pinned to SUBJECT_CPU (1) and the client to PEER_CPU (0), so
# what tracing costs in background threads is paid out of the server's CPU. The calls carry no
# trace context (each starts a trace). The throughput run reads the calls answered
# (`/_count`) and each server thread's CPU (/proc) over SECS seconds after WARM; the callgrind
# run counts every thread's instructions over a window closed by `/_flush` (see
# `benches/load_lib.sh`, cg_windows). Needs curl, taskset (and valgrind for callgrind).
set -euo pipefail

MEASURE=${1:-throughput}
ROUNDS=${ROUNDS:-3}
MODES=${MODES:-"plain tracewire tracewire-ratio10 tracewire-unsampled fastrace-tonic tonic-tracing-opentelemetry fastrace-floor"}
ADDR=${ADDR:-127.0.0.1:50061}
CONTROL=${CONTROL:-127.0.0.1:50062}
CONNECTIONS=${CONNECTIONS:-4}
IN_FLIGHT=${IN_FLIGHT:-32}
. "$(dirname "$0")/load_lib.sh"
# the server's layer, on the request thread, before the engine's stages
CG_STAGES="\
tracewire layer: call (root rule, span start, attributes; with the routed service's call)|request|tracewire_tonic::server::service::GrpcServerService<S> as tower_service::Service<.*>>::call \[
tracewire layer: response body frames (with tonic's encoding of the reply)|request|tracewire_tonic::body::ResponseBody<B> as http_body::Body>::poll_frame \[
tracewire layer: span end (status, hand-over to fastrace)|request|tracewire_tonic::record::RpcSpan::finish \[
fastrace-tonic layer: call|request|fastrace_tonic::FastraceServerService<S> as tower_service::Service<.*>>::call \[
tonic-tracing-opentelemetry layer: call|request|tonic_tracing_opentelemetry::middleware::server::OtelGrpcService<S> as tower_service::Service<.*>>::call \[
tracing-opentelemetry: on_new_span|request|tracing_opentelemetry::layer::OpenTelemetryLayer<S,T> as tracing_subscriber::layer::Layer<S>>::on_new_span \[
tracing-opentelemetry: on_enter + on_exit (each poll)|request|tracing_opentelemetry::layer::OpenTelemetryLayer<S,T> as tracing_subscriber::layer::Layer<S>>::on_(enter|exit) \[
tracing-opentelemetry: on_close (span end)|request|tracing_opentelemetry::layer::OpenTelemetryLayer<S,T> as tracing_subscriber::layer::Layer<S>>::on_close \[
W3C extraction or injection through the global propagator|request|TraceContextPropagator as opentelemetry::propagation::text_map_propagator::TextMapPropagator>::(inject|extract)_(context|with_context) \[
$CG_STAGES_ENGINE"

subject_cmd() { echo "$BIN server $1 $ADDR $CONTROL"; }
peer_cmd() { echo "$BIN client $ADDR $CONNECTIONS $IN_FLIGHT"; }

load_require curl taskset
load_setup grpc_load
WHERE="client on CPU $PEER_CPU ($CONNECTIONS connections x $IN_FLIGHT calls in flight)"
case $MEASURE in
    throughput)
        SECS=${SECS:-8}
        echo "grpc_load: $ROUNDS round(s) x ${SECS}s per mode; server on CPU $SUBJECT_CPU, $WHERE; load average: $(loadavg)"
        load_window_rounds "$SECS" "${WARM:-1}"
        load_window_table
        ;;
    callgrind)
        SECS=${SECS:-4}
        echo "grpc_load callgrind: ${SECS}s window per mode; server under callgrind on CPU $SUBJECT_CPU, $WHERE; load average: $(loadavg)"
        cg_windows "$SECS" "${WARM:-2}"
        cg_tables
        ;;
    *) echo "usage: grpc_load.sh [throughput|callgrind]" >&2; exit 1 ;;
esac
