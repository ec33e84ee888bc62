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
# rabbitmq`), taskset (util-linux) and at least 2 CPUs. What every driver shares (building,
# pinning, rounds, tables) is `benches/load_lib.sh`.
set -euo pipefail

MODES=${MODES:-"untraced tracewire tracewire-unsampled otel otel-unsampled fastrace-floor"}
N=${N:-100000}
. "$(dirname "$0")/load_lib.sh"
LOAD_OTHER="other threads"

load_require taskset
load_setup rabbitmq_load

if [ -z "${AMQP_URL:-}" ]; then
    load_pin_service rabbitmq RabbitMQ 127.0.0.1:5672
else
    WHERE="RabbitMQ at $AMQP_URL (not pinned)"
fi

load_banner "rabbitmq load: $ROUNDS round(s), $N messages"
load_rounds "" "$N"
load_tables ""
