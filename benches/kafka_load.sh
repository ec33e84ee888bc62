#!/usr/bin/env bash
# End-to-end Kafka load for BENCHMARKS.md ("Messaging (Kafka)"):
# `benches/examples/kafka_load.rs` in each tracing mode, modes interleaved round by round so
# drift on the machine hits every mode alike.
#
# The load process (all its threads: the runtime with producer, consumer and handler,
# librdkafka's threads, fastrace's collector, tracewire's export worker, the OpenTelemetry batch
# thread) is pinned to one CPU, so whatever tracing costs in background threads is paid out of
# the same CPU as the records. The broker that `scripts/services.sh start kafka` runs has all its
# threads pinned to the other CPU for the duration, and unpinned at the end; with KAFKA_URL set,
# that broker is used as it is (unpinned).
#
#   bash benches/kafka_load.sh                                 # every mode, 3 rounds
#   ROUNDS=5 MODES="untraced tracewire" N=200000 bash benches/kafka_load.sh
#
# Needs Kafka (`bash scripts/services.sh install kafka && bash scripts/services.sh start kafka`),
# taskset (util-linux) and at least 2 CPUs. What every driver shares (building, pinning,
# rounds, tables) is `benches/load_lib.sh`.
set -euo pipefail

MODES=${MODES:-"untraced tracewire tracewire-unsampled otel otel-unsampled fastrace-floor"}
N=${N:-100000}
. "$(dirname "$0")/load_lib.sh"
LOAD_OTHER="other threads"

load_require taskset
load_setup kafka_load

if [ -z "${KAFKA_URL:-}" ]; then
    load_pin_service kafka Kafka 127.0.0.1:9092
else
    WHERE="Kafka at $KAFKA_URL (not pinned)"
fi

load_banner "kafka load: $ROUNDS round(s), $N records"
load_rounds "" "$N"
load_tables ""
