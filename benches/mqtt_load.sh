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
# mosquitto`), taskset (util-linux) and at least 2 CPUs. What every driver shares (building,
# pinning, rounds, tables) is `benches/load_lib.sh`.
set -euo pipefail

MODES=${MODES:-"untraced tracewire tracewire-unsampled otel fastrace-floor"}
TRANSPORTS=${TRANSPORTS:-"qos0 qos1"}
QOS0_N=${QOS0_N:-200000}
QOS1_N=${QOS1_N:-50000}
PRIVATE_PORT=${PRIVATE_PORT:-11883}
. "$(dirname "$0")/load_lib.sh"

load_require taskset
load_setup mqtt_load

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
    load_private_server "$PRIVATE_PORT" "$mosq" -c "$OUT/mosquitto.conf"
    export MQTT_PORT=$PRIVATE_PORT
    # `mosquitto -h` exits non-zero after printing its version.
    version=$("$mosq" -h 2>/dev/null | sed -n 's/^mosquitto version \([^ ]*\).*/\1/p' | head -n1) || true
    WHERE="private mosquitto ${version:-?} on CPU $SERVER_CPU"
else
    WHERE="the broker on 127.0.0.1:$MQTT_PORT (not pinned)"
fi

load_banner "mqtt load: $ROUNDS round(s), QoS 0 $QOS0_N / QoS 1 $QOS1_N messages"
for transport in $TRANSPORTS; do
    n=$QOS0_N
    [ "$transport" = qos1 ] && n=$QOS1_N
    load_rounds "$transport" "$n"
done
# shellcheck disable=SC2086 # one word per transport
load_tables $TRANSPORTS
