#!/usr/bin/env bash
# The brokers tracewire's integration tests talk to, on 127.0.0.1 only, from Debian's packages
# (Apache Kafka: its jars from Maven Central, run on the machine's JDK; Jaeger: built from the Go
# module proxy with the machine's Go). Nothing runs them for us (no systemd, no broker
# preinstalled): this script installs them, starts them in the background with their state under
# a temp dir, and stops what it started.
#
#   bash scripts/services.sh check     [names...]  # which answer on 127.0.0.1 (exit 1 if any does not)
#   bash scripts/services.sh installed [names...]  # which have their server installed (exit 1 if any has not)
#   bash scripts/services.sh install   [names...]  # apt-get install what is missing (root); Kafka: fetch;
#                                                  # Jaeger: go build
#   bash scripts/services.sh start     [names...]  # start those not answering, wait until they answer
#   bash scripts/services.sh stop      [names...]  # stop what this script started (pid files)
#   bash scripts/services.sh path      [names...]  # the installed server binary (Kafka: its home)
#
# Names (no name = the five brokers; jaeger only when named, and by `stop`):
#   nats       nats-server, 127.0.0.1:4222, JetStream on (-js), monitoring on 127.0.0.1:8222
#   redis      redis-server, 127.0.0.1:6379, no persistence
#   rabbitmq   rabbitmq-server, 127.0.0.1:5672 (AMQP 0-9-1); Erlang distribution on 127.0.0.1:25672,
#              epmd on 127.0.0.1:4369 (alias: amqp)
#   mosquitto  mosquitto, 127.0.0.1:1883 (MQTT, anonymous) (alias: mqtt)
#   kafka      Apache Kafka 4.4.0, one node in KRaft mode (broker and controller), 127.0.0.1:9092,
#              controller on 127.0.0.1:9093 (TRACEWIRE_KAFKA_PORT, TRACEWIRE_KAFKA_CONTROLLER_PORT).
#              `install` fetches org.apache.kafka:kafka_2.13 and its dependencies with Maven
#              (no root; needs java 17+ and mvn, apt-get installed when missing) into
#              ${XDG_CACHE_HOME:-~/.cache}/tracewire/kafka-4.4.0 (TRACEWIRE_KAFKA_HOME), once;
#              `start` formats the log dir on first use and runs it with a 512 MiB heap.
#   jaeger     Jaeger v2.13.0 (Go module github.com/jaegertracing/jaeger v1.76.0, program cmd/jaeger),
#              in-memory storage, with scripts/jaeger/config.yaml: query APIs (v1 JSON /api/...,
#              v3 /api/v3/...) on 127.0.0.1:16686, OTLP/gRPC :4317, OTLP/HTTP :4318, Zipkin :9411,
#              query gRPC :16685, health :13133, its own metrics :8888 (ports: the
#              TRACEWIRE_JAEGER_*_PORT variables that config file names). `install` builds it
#              (no root; needs go 1.24.6+) into ${XDG_CACHE_HOME:-~/.cache}/tracewire/jaeger-2.13.0
#              (TRACEWIRE_JAEGER_HOME), its modules and build cache (about 3 GB) in
#              .../tracewire/go (TRACEWIRE_GO_CACHE), once: about 8 minutes cold on 2 cores,
#              seconds warm. The Go module has no UI assets, so :16686/ is Jaeger's placeholder
#              page; the APIs (what Grafana's Jaeger data source reads) are all there. The tests
#              start their own Jaeger on free ports from that binary (tracewire_test::jaeger);
#              `start jaeger` runs one for you to send to and query. Not started without its
#              name: it takes the ports `tracewire view` and the demo's viewer default to.
#
# "Answers" means the broker speaks its protocol, not just that the port is open: NATS sends its
# INFO and replies to a JetStream API request ($JS.API.INFO), Redis answers INFO, RabbitMQ sends
# Connection.Start, Mosquitto accepts an MQTT CONNECT, Kafka answers an ApiVersions request with
# its API list and a Metadata request with itself as a broker. State (pid files, logs, the
# JetStream store, RabbitMQ's data, Mosquitto's config, Kafka's log dir) lives in
# $TRACEWIRE_SERVICES_DIR, default
# ${TMPDIR:-/tmp}/tracewire-services-<uid>; nothing is written to /etc.
# Start timeouts (seconds): TRACEWIRE_START_TIMEOUT (default 30; RabbitMQ gets 4x that, Kafka 2x).
#
# A private instance (the demo starts one where no broker answers on the standard port): set its
# port variable and a state dir of its own, and use the same two for `start`, `check` and `stop`:
#   TRACEWIRE_SERVICES_DIR=/tmp/mine TRACEWIRE_REDIS_PORT=16379 bash scripts/services.sh start redis
# Ports: TRACEWIRE_NATS_PORT (4222; TRACEWIRE_NATS_MONITOR_PORT 8222, 0: no monitoring),
# TRACEWIRE_REDIS_PORT (6379), TRACEWIRE_RABBITMQ_PORT (5672; TRACEWIRE_RABBITMQ_DIST_PORT 25672;
# on another AMQP port the Erlang node is named tracewire-PORT@localhost), TRACEWIRE_MOSQUITTO_PORT
# (1883), TRACEWIRE_KAFKA_PORT and TRACEWIRE_KAFKA_CONTROLLER_PORT (9092, 9093).
# shellcheck disable=SC2016
set -euo pipefail

HOST=127.0.0.1
STATE=${TRACEWIRE_SERVICES_DIR:-${TMPDIR:-/tmp}/tracewire-services-$(id -u)}
TIMEOUT=${TRACEWIRE_START_TIMEOUT:-30}
# Without names: the brokers (Jaeger takes the viewer's default ports, so only when named).
ALL=(nats redis rabbitmq mosquitto kafka)
KNOWN=("${ALL[@]}" jaeger)
NATS_PORT=${TRACEWIRE_NATS_PORT:-4222}
NATS_MONITOR_PORT=${TRACEWIRE_NATS_MONITOR_PORT:-8222}
REDIS_PORT=${TRACEWIRE_REDIS_PORT:-6379}
RABBITMQ_PORT=${TRACEWIRE_RABBITMQ_PORT:-5672}
RABBITMQ_DIST_PORT=${TRACEWIRE_RABBITMQ_DIST_PORT:-25672}
MOSQUITTO_PORT=${TRACEWIRE_MOSQUITTO_PORT:-1883}
KAFKA_VERSION=4.4.0
KAFKA_PORT=${TRACEWIRE_KAFKA_PORT:-9092}
KAFKA_CONTROLLER_PORT=${TRACEWIRE_KAFKA_CONTROLLER_PORT:-9093}
# Outside the clone: fetched once per machine, kept between runs.
KAFKA_HOME=${TRACEWIRE_KAFKA_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/tracewire/kafka-$KAFKA_VERSION}
# Jaeger v2 releases are the v1.x tags of its Go module (v1.76.0 is v2.13.0, commit 63b27e1).
# tracewire-test's jaeger.rs names the same version (a test there holds the two together).
JAEGER_VERSION=2.13.0
JAEGER_MODULE=github.com/jaegertracing/jaeger
JAEGER_MODULE_VERSION=v1.76.0
JAEGER_COMMIT=63b27e1810a710ac54dc4522da0538e540bdc545
JAEGER_DATE=2025-12-03T16:07:08Z # the release commit's date: the build is reproducible
JAEGER_HOME=${TRACEWIRE_JAEGER_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/tracewire/jaeger-$JAEGER_VERSION}
# GOMODCACHE and GOCACHE of that build: outside the clone, so a rebuild is warm.
GO_CACHE=${TRACEWIRE_GO_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tracewire/go}
JAEGER_CONFIG=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/jaeger/config.yaml
export TRACEWIRE_JAEGER_OTLP_GRPC_PORT=${TRACEWIRE_JAEGER_OTLP_GRPC_PORT:-4317}
export TRACEWIRE_JAEGER_OTLP_HTTP_PORT=${TRACEWIRE_JAEGER_OTLP_HTTP_PORT:-4318}
export TRACEWIRE_JAEGER_ZIPKIN_PORT=${TRACEWIRE_JAEGER_ZIPKIN_PORT:-9411}
export TRACEWIRE_JAEGER_QUERY_PORT=${TRACEWIRE_JAEGER_QUERY_PORT:-16686}
export TRACEWIRE_JAEGER_QUERY_GRPC_PORT=${TRACEWIRE_JAEGER_QUERY_GRPC_PORT:-16685}
export TRACEWIRE_JAEGER_HEALTH_PORT=${TRACEWIRE_JAEGER_HEALTH_PORT:-13133}
export TRACEWIRE_JAEGER_METRICS_PORT=${TRACEWIRE_JAEGER_METRICS_PORT:-8888}
# One Erlang node name per AMQP port: a private RabbitMQ registers with the same epmd.
RABBIT_NODE=tracewire@localhost
if [ "$RABBITMQ_PORT" != 5672 ]; then RABBIT_NODE=tracewire-$RABBITMQ_PORT@localhost; fi
LAUNCHED_PID=""

# ---------------------------------------------------------------------------------------------
# What each broker is
# ---------------------------------------------------------------------------------------------

canon() {
    case "$1" in
        nats | nats-server) echo nats ;;
        redis | redis-server) echo redis ;;
        rabbitmq | rabbitmq-server | rabbit | amqp) echo rabbitmq ;;
        mosquitto | mqtt) echo mosquitto ;;
        kafka | apache-kafka) echo kafka ;;
        jaeger) echo jaeger ;;
        *)
            echo "services.sh: unknown service '$1' (known: ${KNOWN[*]}; aliases: mqtt, amqp)" >&2
            return 2
            ;;
    esac
}
pkg_of() { case "$1" in nats) echo nats-server ;; redis) echo redis-server ;; rabbitmq) echo rabbitmq-server ;; mosquitto) echo mosquitto ;; kafka) echo kafka ;; jaeger) echo jaeger ;; esac; }
port_of() { case "$1" in nats) echo "$NATS_PORT" ;; redis) echo "$REDIS_PORT" ;; rabbitmq) echo "$RABBITMQ_PORT" ;; mosquitto) echo "$MOSQUITTO_PORT" ;; kafka) echo "$KAFKA_PORT" ;; jaeger) echo "$TRACEWIRE_JAEGER_QUERY_PORT" ;; esac; }
# The process name (/proc/PID/comm) of the server, to never signal a recycled pid.
comm_of() { case "$1" in nats) echo nats-server ;; redis) echo redis-server ;; rabbitmq) echo beam.smp ;; mosquitto) echo mosquitto ;; kafka) echo java ;; jaeger) echo jaeger ;; esac; }

# The server binary, or nothing (sbin is not on every PATH). Kafka: its fetched jars. Jaeger:
# the binary it built.
bin_of() {
    local b
    if [ "$1" = kafka ]; then
        [ -f "$KAFKA_HOME/.complete" ] && command -v java >/dev/null || return 1
        echo "$KAFKA_HOME"
        return 0
    fi
    if [ "$1" = jaeger ]; then
        [ -x "$JAEGER_HOME/jaeger" ] || return 1
        echo "$JAEGER_HOME/jaeger"
        return 0
    fi
    b=$(pkg_of "$1")
    [ "$1" = rabbitmq ] && b=rabbitmq-server
    command -v "$b" 2>/dev/null && return 0
    local d
    for d in /usr/sbin /usr/bin /usr/local/sbin /usr/local/bin; do
        if [ -x "$d/$b" ]; then
            echo "$d/$b"
            return 0
        fi
    done
    return 1
}

# Installed package version (Debian revision stripped), or "?".
pkg_version() {
    local v
    if [ "$1" = kafka ]; then
        echo "$KAFKA_VERSION"
        return 0
    fi
    if [ "$1" = jaeger ]; then
        echo "$JAEGER_VERSION"
        return 0
    fi
    v=$(dpkg-query -W -f '${Version}' "$(pkg_of "$1")" 2>/dev/null) || v=""
    v=${v#*:}
    v=${v%%-*}
    echo "${v:-?}"
}

# ---------------------------------------------------------------------------------------------
# Protocol probes: print what the broker said (a version) and succeed, or fail. Bounded in time.
# Each runs `timeout N bash -c '...' HOST PORT` (so a silent peer cannot hang us): the single
# quotes are meant, $0/$1 expand in the inner shell (hence SC2016 off at the top).
# ---------------------------------------------------------------------------------------------

# The NATS INFO line.
nats_info() {
    timeout 2 bash -c 'exec 3<>"/dev/tcp/$0/$1" && IFS= read -r l <&3 && printf "%s\n" "$l"' "$HOST" "$NATS_PORT" 2>/dev/null
}

# A real JetStream request: $JS.API.INFO must answer with an account_info_response.
nats_jetstream_info() {
    timeout 3 bash -c '
        exec 3<>"/dev/tcp/$0/$1" || exit 1
        IFS= read -r info <&3 || exit 1
        printf "CONNECT {\"verbose\":false,\"pedantic\":false,\"name\":\"tracewire-services\"}\r\nSUB _INBOX.tracewire.services 1\r\nPUB \$JS.API.INFO _INBOX.tracewire.services 0\r\n\r\nPING\r\n" >&3
        while IFS= read -r line <&3; do
            case "$line" in
                MSG*) IFS= read -r payload <&3; printf "%s\n" "$payload" | tr -d "\r"; exit 0 ;;
                -ERR*) printf "%s\n" "$line" >&2; exit 1 ;;
            esac
        done
        exit 1' "$HOST" "$NATS_PORT" 2>/dev/null
}

probe_nats() {
    local info js
    info=$(nats_info) || return 1
    case "$info" in INFO*) ;; *) return 1 ;; esac
    js=$(nats_jetstream_info) || js=""
    case "$js" in
        *account_info_response*) ;;
        *) js="" ;;
    esac
    case "$js" in *'"error"'*) js="" ;; esac
    local v
    v=$(sed -n 's/.*"version":"\([^"]*\)".*/\1/p' <<<"$info")
    if [ -n "$js" ]; then echo "${v:-?} (JetStream)"; else echo "${v:-?} (NO JetStream)"; fi
}

probe_redis() {
    timeout 2 bash -c '
        exec 3<>"/dev/tcp/$0/$1" || exit 1
        printf "INFO server\r\n" >&3
        while IFS= read -r l <&3; do
            l=$(printf "%s" "$l" | tr -d "\r")
            case "$l" in
                redis_version:*) printf "%s\n" "${l#redis_version:}"; exit 0 ;;
                -*) printf "? (%s)\n" "$l"; exit 0 ;;
            esac
        done
        exit 1' "$HOST" "$REDIS_PORT" 2>/dev/null
}

probe_rabbitmq() {
    local out
    out=$(timeout 3 bash -c '
        exec 3<>"/dev/tcp/$0/$1" || exit 1
        printf "AMQP\x00\x00\x09\x01" >&3
        dd bs=8192 count=1 status=none <&3 | tr -c "[:print:]" "\n"' "$HOST" "$RABBITMQ_PORT" 2>/dev/null) || return 1
    grep -q RabbitMQ <<<"$out" || return 1
    local v
    # Connection.Start's server-properties: the "version" key, type S, 4 length bytes, value.
    v=$(awk '$0 == "versionS" { n = 6; next } n > 0 && /^[0-9]+\.[0-9]+/ { print; exit } { n-- }' <<<"$out")
    echo "${v:-?}"
}

probe_mosquitto() {
    local ack
    # MQTT 3.1.1 CONNECT (clean session, keepalive 60, empty client id); expect CONNACK accepted.
    ack=$(timeout 2 bash -c '
        exec 3<>"/dev/tcp/$0/$1" || exit 1
        printf "\x10\x0c\x00\x04MQTT\x04\x02\x00\x3c\x00\x00" >&3
        dd bs=4 count=1 status=none <&3 | od -An -tx1 | tr -d " \n"
        printf "\xe0\x00" >&3' "$HOST" "$MOSQUITTO_PORT" 2>/dev/null) || return 1
    [ "$ack" = 20020000 ] || return 1
    local bin v="?"
    if bin=$(bin_of mosquitto); then
        v=$("$bin" -h 2>/dev/null | sed -n 's/^mosquitto version \([^ ]*\).*/\1/p' | head -n1) || true
    fi
    echo "${v:-?}"
}

# One Kafka request (header v1, client id "tracewire"; printf escapes) to 127.0.0.1:$KAFKA_PORT;
# prints the response as hex (its first read, enough for the fields checked).
kafka_request() {
    timeout 3 bash -c '
        exec 3<>"/dev/tcp/$0/$1" || exit 1
        printf "$2" >&3
        dd bs=4096 count=1 status=none <&3 | od -An -tx1 -v | tr -d " \n"' "$HOST" "$KAFKA_PORT" "$1" 2>/dev/null
}

probe_kafka() {
    local r n i produce="" brokers
    # ApiVersions v0 (key 18): size, correlation id 1, error 0, then [key min max] per API; a
    # broker (not only a controller) lists Produce (key 0).
    r=$(kafka_request '\x00\x00\x00\x13\x00\x12\x00\x00\x00\x00\x00\x01\x00\x09tracewire') || return 1
    [ "${r:8:8}" = 00000001 ] && [ "${r:16:4}" = 0000 ] || return 1
    n=$((16#${r:20:8}))
    for ((i = 0; i < n && 28 + i * 12 + 4 <= ${#r}; i++)); do
        if [ "${r:28+i*12:4}" = 0000 ]; then produce=1; fi
    done
    [ -n "$produce" ] || return 1
    # Metadata v0 (key 3), all topics: size, correlation id 2, then the brokers; at least this one.
    r=$(kafka_request '\x00\x00\x00\x17\x00\x03\x00\x00\x00\x00\x00\x02\x00\x09tracewire\x00\x00\x00\x00') || return 1
    [ "${r:8:8}" = 00000002 ] || return 1
    brokers=$((16#${r:16:8}))
    [ "$brokers" -ge 1 ] || return 1
    local v="?"
    if our_pid kafka >/dev/null; then v=$KAFKA_VERSION; fi
    echo "$v ($n APIs, $brokers broker)"
}

# Jaeger's query service lists the services it has spans of (v1 JSON API: {"data":[...]}) and
# its health check says the collector is ready.
http_get() { # port path -> the body of a 200 answer to GET http://127.0.0.1:port/path
    timeout 3 bash -c '
        exec 3<>"/dev/tcp/$0/$1" || exit 1
        printf "GET %s HTTP/1.0\r\nHost: %s:%s\r\n\r\n" "$2" "$0" "$1" >&3
        cat <&3' "$HOST" "$1" "$2" 2>/dev/null |
        tr -d '\r' | awk 'NR == 1 { if ($2 != 200) exit 1; next } b { print; next } $0 == "" { b = 1 }'
}

probe_jaeger() {
    local body
    body=$(http_get "$TRACEWIRE_JAEGER_HEALTH_PORT" /status) || return 1
    case "$body" in *'"healthy":true'* | *'StatusOK'* | *'"status":"'*) ;; *) return 1 ;; esac
    body=$(http_get "$TRACEWIRE_JAEGER_QUERY_PORT" /api/services) || return 1
    case "$body" in *'"data":'*) ;; *) return 1 ;; esac
    local v="?"
    if our_pid jaeger >/dev/null; then v=$JAEGER_VERSION; fi
    echo "$v (query APIs http://$HOST:$TRACEWIRE_JAEGER_QUERY_PORT/api/, OTLP $TRACEWIRE_JAEGER_OTLP_GRPC_PORT/$TRACEWIRE_JAEGER_OTLP_HTTP_PORT, Zipkin $TRACEWIRE_JAEGER_ZIPKIN_PORT)"
}

probe() { "probe_$1"; }

# Fully up: answers, and for NATS with JetStream.
answers() {
    local out
    out=$(probe "$1") || return 1
    case "$out" in *"NO JetStream"*) return 1 ;; esac
    echo "$out"
}

port_open() { timeout 1 bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$HOST" "$1" 2>/dev/null; }

# ---------------------------------------------------------------------------------------------
# Pid files
# ---------------------------------------------------------------------------------------------

pidfile() { echo "$STATE/$1/$1.pid"; }

# The pid this script started for $1, if that process still runs as the expected program.
our_pid() {
    local f pid comm
    f=$(pidfile "$1")
    [ -s "$f" ] || return 1
    pid=$(tr -dc '0-9' <"$f")
    [ -n "$pid" ] && [ -r "/proc/$pid/comm" ] || return 1
    comm=$(cat "/proc/$pid/comm" 2>/dev/null) || return 1
    [ "$comm" = "$(comm_of "$1")" ] || return 1
    echo "$pid"
}

describe() { # name "2.9.10 (JetStream)" -> "nats-server 2.9.10 on 127.0.0.1:4222 (JetStream)"
    local v=${2%% *} rest=""
    [ "$v" = "$2" ] || rest=" ${2#* }"
    echo "$(pkg_of "$1") $v on $HOST:$(port_of "$1")$rest"
}

owner() {
    local pid
    if pid=$(our_pid "$1"); then echo "pid $pid, started by services.sh"; else echo "not started by services.sh"; fi
}

lock() {
    mkdir -p "$STATE"
    exec 9>"$STATE/.lock"
    flock -w 300 9 || {
        echo "services.sh: another services.sh holds $STATE/.lock" >&2
        exit 1
    }
}

# ---------------------------------------------------------------------------------------------
# Commands
# ---------------------------------------------------------------------------------------------

cmd_check() {
    local n v bin rc=0
    for n in "$@"; do
        if v=$(answers "$n"); then
            echo "up       $(describe "$n" "$v") [$(owner "$n")]"
        elif v=$(probe "$n" 2>/dev/null); then
            echo "BROKEN   $(describe "$n" "$v"): answers without JetStream; stop it and run: bash scripts/services.sh start $n"
            rc=1
        elif port_open "$(port_of "$n")"; then
            echo "BROKEN   $(pkg_of "$n"): something holds $HOST:$(port_of "$n") but does not speak its protocol"
            rc=1
        elif bin=$(bin_of "$n"); then
            echo "down     $(pkg_of "$n") $(pkg_version "$n") ($bin): bash scripts/services.sh start $n"
            rc=1
        else
            echo "missing  $(pkg_of "$n") is not installed: bash scripts/services.sh install $n"
            rc=1
        fi
    done
    return $rc
}

cmd_installed() {
    local n bin rc=0
    for n in "$@"; do
        if bin=$(bin_of "$n"); then
            echo "installed $(pkg_of "$n") $(pkg_version "$n") ($bin)"
        else
            echo "missing   $(pkg_of "$n") is not installed: bash scripts/services.sh install $n"
            rc=1
        fi
    done
    return $rc
}

cmd_path() {
    local n bin rc=0
    for n in "$@"; do
        if bin=$(bin_of "$n"); then
            echo "$bin"
        else
            echo "services.sh path: $(pkg_of "$n") is not installed: bash scripts/services.sh install $n" >&2
            rc=1
        fi
    done
    return $rc
}

cmd_install() {
    local n missing=() pkgs=() kafka="" jaeger=""
    for n in "$@"; do
        if [ "$n" = jaeger ]; then
            jaeger=1
        elif [ "$n" = kafka ]; then
            kafka=1
            # Kafka's own prerequisites come from apt; the broker itself from Maven below.
            command -v java >/dev/null || pkgs+=(openjdk-17-jre-headless)
            command -v mvn >/dev/null || pkgs+=(maven)
        elif bin_of "$n" >/dev/null; then
            echo "present  $(pkg_of "$n") $(pkg_version "$n")"
        else
            missing+=("$n")
            pkgs+=("$(pkg_of "$n")")
        fi
    done
    if [ ${#pkgs[@]} -eq 0 ]; then
        if [ -n "$kafka" ]; then install_kafka; fi
        if [ -n "$jaeger" ]; then install_jaeger; fi
        return 0
    fi
    if [ "$(id -u)" != 0 ]; then
        echo "services.sh install: installing ${pkgs[*]} needs root (apt-get install); run as root:" >&2
        echo "    sudo bash scripts/services.sh install ${missing[*]}" >&2
        return 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    # Never let a package's maintainer scripts start the daemon (on 0.0.0.0, outside our pid
    # files): containers usually have a policy-rc.d saying so; add a temporary one if not.
    local policy=/usr/sbin/policy-rc.d added_policy=""
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\n# temporary, from tracewire scripts/services.sh install\nexit 101\n' >"$policy"
        chmod 755 "$policy"
        added_policy=1
        # shellcheck disable=SC2064
        trap "rm -f '$policy'" EXIT
    fi
    local t0=$SECONDS p log=$STATE/apt.log
    mkdir -p "$STATE"
    # Wait for a concurrent apt/dpkg (another session installing) instead of failing at once.
    local apt=(apt-get install -y -qq --no-install-recommends -o Dpkg::Use-Pty=0
        -o DPkg::Lock::Timeout=300 "${pkgs[@]}")
    # Try the package lists we have first (fast); refresh them only if that fails or they do
    # not know a package (a fresh machine, or lists older than the mirror).
    local need_update=""
    for p in "${pkgs[@]}"; do
        case "$(apt-cache policy "$p" 2>/dev/null)" in
            *"Candidate: "[0-9]*) ;;
            *) need_update=1 ;;
        esac
    done
    : >"$log"
    if [ -z "$need_update" ] && "${apt[@]}" >>"$log" 2>&1; then
        :
    else
        echo "services.sh: apt-get update (package lists missing or stale for ${pkgs[*]})"
        apt-get update -qq -o DPkg::Lock::Timeout=300 >>"$log" 2>&1 || {
            tail -n 30 "$log" >&2
            echo "services.sh install: apt-get update failed (log: $log)" >&2
            return 1
        }
        if ! "${apt[@]}" >>"$log" 2>&1; then
            tail -n 30 "$log" >&2
            echo "services.sh install: apt-get install ${pkgs[*]} failed (log: $log)" >&2
            return 1
        fi
    fi
    if [ -n "$added_policy" ]; then
        rm -f "$policy"
        trap - EXIT
    fi
    local dt=$((SECONDS - t0))
    for n in "${missing[@]}"; do
        if bin_of "$n" >/dev/null; then
            echo "installed $(pkg_of "$n") $(pkg_version "$n") (apt-get, ${dt}s for ${pkgs[*]})"
        else
            echo "services.sh install: $(pkg_of "$n") installed but its server binary is not found" >&2
            return 1
        fi
    done
    if [ -n "$kafka" ]; then install_kafka; fi
    if [ -n "$jaeger" ]; then install_jaeger; fi
}

# Apache Kafka from Maven Central: kafka_2.13 and its runtime dependencies (and slf4j-simple,
# so the broker logs somewhere), copied into $KAFKA_HOME/libs. Skipped when present.
install_kafka() {
    if [ -f "$KAFKA_HOME/.complete" ]; then
        echo "present  kafka $KAFKA_VERSION ($KAFKA_HOME)"
        return 0
    fi
    local tool
    for tool in java mvn; do
        command -v "$tool" >/dev/null || {
            echo "services.sh install: kafka needs $tool (run as root to apt-get install it)" >&2
            return 1
        }
    done
    local major
    major=$(java -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -n1)
    if [ "${major:-0}" -lt 17 ]; then
        echo "services.sh install: Kafka $KAFKA_VERSION needs java 17 or later; java is ${major:-unknown}" >&2
        return 1
    fi
    local t0=$SECONDS tmp log=$STATE/kafka-fetch.log
    mkdir -p "$(dirname "$KAFKA_HOME")" "$STATE"
    tmp=$(mktemp -d "$KAFKA_HOME.tmp.XXXXXX")
    cat >"$tmp/pom.xml" <<EOF
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <!-- written by tracewire scripts/services.sh: the jars of one Kafka broker -->
  <modelVersion>4.0.0</modelVersion>
  <groupId>tracewire</groupId>
  <artifactId>kafka-broker</artifactId>
  <version>$KAFKA_VERSION</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId><version>$KAFKA_VERSION</version></dependency>
    <!-- the binding of the slf4j-api 1.7 that Kafka brings: logs to the file start gives it -->
    <dependency><groupId>org.slf4j</groupId><artifactId>slf4j-simple</artifactId><version>1.7.36</version></dependency>
  </dependencies>
</project>
EOF
    if ! mvn -q -B -f "$tmp/pom.xml" dependency:copy-dependencies -DoutputDirectory="$tmp/libs" \
        >"$log" 2>&1 || [ ! -f "$tmp/libs/kafka_2.13-$KAFKA_VERSION.jar" ]; then
        tail -n 30 "$log" >&2
        rm -rf "$tmp"
        echo "services.sh install: fetching Kafka $KAFKA_VERSION with Maven failed (log: $log)" >&2
        return 1
    fi
    touch "$tmp/.complete"
    # Another install may have finished meanwhile: keep the first.
    if ! mv -T "$tmp" "$KAFKA_HOME" 2>/dev/null; then rm -rf "$tmp"; fi
    echo "installed kafka $KAFKA_VERSION (Maven Central, $(find "$KAFKA_HOME/libs" -name '*.jar' | wc -l) jars," \
        "$(du -sh "$KAFKA_HOME" | cut -f1), $((SECONDS - t0))s) in $KAFKA_HOME"
}

# Jaeger v2 from the Go module proxy: the module's source at the pinned version, `go build` of
# cmd/jaeger (with the version stamped the way Jaeger's Makefile does) into $JAEGER_HOME; the
# module and build caches in $GO_CACHE, so a rebuild (a new pin, a wiped $JAEGER_HOME) is warm.
install_jaeger() {
    if bin_of jaeger >/dev/null; then
        echo "present  jaeger $JAEGER_VERSION ($JAEGER_HOME/jaeger)"
        return 0
    fi
    # Go's own installer puts it in /usr/local/go, which not every PATH has.
    if ! command -v go >/dev/null && [ -x /usr/local/go/bin/go ]; then
        PATH=$PATH:/usr/local/go/bin
    fi
    command -v go >/dev/null || {
        echo "services.sh install: jaeger is built with Go (1.24.6 or later), and there is no 'go'" \
            "on PATH: install it from https://go.dev/dl/ (Debian 12's golang-go is too old)" >&2
        return 1
    }
    local t0=$SECONDS tmp dir log=$STATE/jaeger-build.log
    mkdir -p "$(dirname "$JAEGER_HOME")" "$GO_CACHE" "$STATE"
    tmp=$(mktemp -d "$JAEGER_HOME.tmp.XXXXXX")
    echo "services.sh: building jaeger $JAEGER_VERSION ($JAEGER_MODULE@$JAEGER_MODULE_VERSION) with" \
        "$(go env GOVERSION) (minutes while $GO_CACHE is cold; log: $log)"
    # -modcacherw: the module cache stays deletable by its owner (rm -rf) without chmod.
    export GOMODCACHE=$GO_CACHE/mod GOCACHE=$GO_CACHE/build GOFLAGS=-modcacherw CGO_ENABLED=0
    : >"$log"
    if ! dir=$(go mod download -json "$JAEGER_MODULE@$JAEGER_MODULE_VERSION" 2>>"$log" |
        sed -n 's/^[[:space:]]*"Dir": "\(.*\)",*$/\1/p') || [ ! -f "$dir/go.mod" ]; then
        tail -n 30 "$log" >&2
        rm -rf "$tmp"
        echo "services.sh install: downloading $JAEGER_MODULE@$JAEGER_MODULE_VERSION failed (log: $log)" >&2
        return 1
    fi
    local x=$JAEGER_MODULE/internal/version
    if ! (cd "$dir" && go build -trimpath -o "$tmp/jaeger" \
        -ldflags "-s -w -X $x.commitSHA=$JAEGER_COMMIT -X $x.latestVersion=v$JAEGER_VERSION -X $x.date=$JAEGER_DATE" \
        ./cmd/jaeger) >>"$log" 2>&1; then
        tail -n 30 "$log" >&2
        rm -rf "$tmp"
        echo "services.sh install: go build of jaeger $JAEGER_VERSION failed (log: $log)" >&2
        return 1
    fi
    chmod 755 "$tmp" # mktemp made it 700
    # Another install may have finished meanwhile: keep the first.
    if ! mv -T "$tmp" "$JAEGER_HOME" 2>/dev/null; then rm -rf "$tmp"; fi
    echo "installed jaeger $JAEGER_VERSION (go build, $((SECONDS - t0))s, $(du -sh "$JAEGER_HOME/jaeger" | cut -f1)) in $JAEGER_HOME"
}

# --- starting, one function per broker; each runs the daemon detached, fds closed ------------

launch_nats() {
    local d=$1 bin=$2
    # JetStream keeps its files in $d/jetstream. -a also binds the monitoring port (-m) to 127.0.0.1.
    # The monitoring port is a convenience (the JetStream check uses the client port): without
    # it rather than not at all when something else holds it.
    local monitor=(-m "$NATS_MONITOR_PORT")
    if [ "$NATS_MONITOR_PORT" = 0 ]; then
        monitor=()
    elif port_open "$NATS_MONITOR_PORT"; then
        echo "services.sh: $HOST:$NATS_MONITOR_PORT is taken: nats-server starts without monitoring" >&2
        monitor=()
    fi
    setsid "$bin" -a "$HOST" -p "$NATS_PORT" "${monitor[@]}" -n tracewire -js -sd "$d" \
        -P "$d/nats.pid" -l "$d/nats.log" </dev/null >>"$d/nats.out" 2>&1 9>&- &
    LAUNCHED_PID=$!
}

launch_redis() {
    local d=$1 bin=$2
    "$bin" --daemonize yes --bind "$HOST" --port "$REDIS_PORT" --protected-mode yes --save '' \
        --appendonly no --dir "$d" --pidfile "$d/redis.pid" --logfile "$d/redis.log" \
        </dev/null >>"$d/redis.out" 2>&1 9>&-
}

rabbit_env() {
    local d=$1
    export RABBITMQ_NODENAME=$RABBIT_NODE
    export RABBITMQ_NODE_IP_ADDRESS=$HOST RABBITMQ_NODE_PORT=$RABBITMQ_PORT RABBITMQ_DIST_PORT=$RABBITMQ_DIST_PORT
    export ERL_EPMD_ADDRESS=$HOST
    export RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
    export RABBITMQ_CTL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
    export RABBITMQ_MNESIA_BASE=$d/mnesia RABBITMQ_LOG_BASE=$d/log RABBITMQ_LOGS=$d/rabbitmq.log
    export RABBITMQ_PID_FILE=$d/rabbitmq.pid RABBITMQ_ENABLED_PLUGINS_FILE=$d/enabled_plugins
    export RABBITMQ_CONFIG_FILE=$d/rabbitmq RABBITMQ_ADVANCED_CONFIG_FILE=$d/advanced.config
    export RABBITMQ_ENABLED_PLUGINS=""
}

launch_rabbitmq() {
    local d=$1
    mkdir -p "$d/mnesia" "$d/log"
    : >"$d/rabbitmq.conf"
    [ -f "$d/enabled_plugins" ] || echo "[]." >"$d/enabled_plugins"
    [ -f "$d/advanced.config" ] || echo "[]." >"$d/advanced.config"
    # Run the server script itself, as the calling user (the /usr/sbin wrapper would `su
    # rabbitmq` and write to /var/log/rabbitmq); the Erlang cookie is then this user's.
    (
        rabbit_env "$d"
        setsid /usr/lib/rabbitmq/bin/rabbitmq-server -detached </dev/null >>"$d/rabbitmq.out" 2>&1 9>&-
    )
}

launch_mosquitto() {
    local d=$1 bin=$2
    # Mosquitto 2 listens on nothing but localhost without a listener line; spell it out. When
    # started as root it drops to the mosquitto user unless told otherwise: keep root so it can
    # write here (a test broker, loopback only).
    cat >"$d/mosquitto.conf" <<EOF
# written by tracewire scripts/services.sh
listener $MOSQUITTO_PORT $HOST
allow_anonymous true
persistence false
pid_file $d/mosquitto.pid
log_dest file $d/mosquitto.log
log_type error
log_type warning
log_type notice
log_type information
EOF
    if [ "$(id -u)" = 0 ]; then echo "user root" >>"$d/mosquitto.conf"; fi
    "$bin" -d -c "$d/mosquitto.conf" </dev/null >>"$d/mosquitto.out" 2>&1 9>&-
}

launch_kafka() {
    local d=$1 home=$2
    mkdir -p "$d/data"
    cat >"$d/server.properties" <<EOF
# written by tracewire scripts/services.sh: one node, broker and controller (KRaft), loopback only
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@$HOST:$KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://$HOST:$KAFKA_PORT,CONTROLLER://$HOST:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://$HOST:$KAFKA_PORT
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$d/data
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
num.partitions=1
auto.create.topics.enable=true
EOF
    local java=(java -Xms256m -Xmx512m -XX:+UseSerialGC -Djava.awt.headless=true
        -Dorg.slf4j.simpleLogger.logFile="$d/kafka.log" -Dorg.slf4j.simpleLogger.showDateTime=true
        -cp "$home/libs/*")
    if [ ! -f "$d/data/meta.properties" ]; then
        # A cluster id is 16 random bytes, base64url without padding (what random-uuid prints),
        # never starting with '-' (the tool would read it as an option; Kafka's own
        # Uuid.randomUuid draws again then too).
        local id=-
        while [ "${id#-}" != "$id" ]; do
            id=$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')
        done
        "${java[@]}" kafka.tools.StorageTool format -t "$id" -c "$d/server.properties" \
            </dev/null >>"$d/kafka.out" 2>&1 9>&- || return 1
    fi
    setsid "${java[@]}" kafka.Kafka "$d/server.properties" </dev/null >>"$d/kafka.out" 2>&1 9>&- &
    LAUNCHED_PID=$!
    echo "$LAUNCHED_PID" >"$(pidfile kafka)"
}

launch_jaeger() {
    local d=$1 bin=$2 port
    # start_one checked the query port; Jaeger binds six more.
    for port in "$TRACEWIRE_JAEGER_OTLP_GRPC_PORT" "$TRACEWIRE_JAEGER_OTLP_HTTP_PORT" \
        "$TRACEWIRE_JAEGER_ZIPKIN_PORT" "$TRACEWIRE_JAEGER_QUERY_GRPC_PORT" \
        "$TRACEWIRE_JAEGER_HEALTH_PORT" "$TRACEWIRE_JAEGER_METRICS_PORT"; do
        if port_open "$port"; then
            echo "services.sh start: $HOST:$port is taken (Jaeger needs it; see the" \
                "TRACEWIRE_JAEGER_*_PORT variables in $JAEGER_CONFIG)" >&2
            return 1
        fi
    done
    # Its own SDK must not pick up an exporter configured in this shell.
    local unset=() v
    for v in $(compgen -e | grep '^OTEL_' || true); do unset+=(-u "$v"); done
    setsid env "${unset[@]}" "$bin" --config "$JAEGER_CONFIG" </dev/null >>"$d/jaeger.log" 2>&1 9>&- &
    LAUNCHED_PID=$!
    echo "$LAUNCHED_PID" >"$(pidfile jaeger)"
}

logfile_of() {
    local d=$STATE/$1
    case "$1" in
        nats) echo "$d/nats.log" ;;
        redis) echo "$d/redis.log" ;;
        rabbitmq) echo "$d/rabbitmq.log" ;;
        mosquitto) echo "$d/mosquitto.log" ;;
        kafka) echo "$d/kafka.log" ;;
        jaeger) echo "$d/jaeger.log" ;;
    esac
}

show_logs() {
    local n=$1 f
    for f in "$(logfile_of "$n")" "$STATE/$n/$n.out"; do
        if [ -s "$f" ]; then
            echo "---- tail of $f" >&2
            tail -n 25 "$f" >&2
        fi
    done
}

start_one() {
    local n=$1 v bin d t0 limit port
    port=$(port_of "$n")
    if v=$(answers "$n"); then
        echo "up       $(describe "$n" "$v") [already running, $(owner "$n")]"
        return 0
    fi
    if v=$(probe "$n" 2>/dev/null); then
        echo "services.sh start: $(describe "$n" "$v") answers WITHOUT JetStream [$(owner "$n")];" \
            "stop it (bash scripts/services.sh stop $n, or kill it) and start again" >&2
        return 1
    fi
    if port_open "$port"; then
        echo "services.sh start: $HOST:$port is taken by something that is not $(pkg_of "$n")" >&2
        return 1
    fi
    if ! bin=$(bin_of "$n"); then
        echo "services.sh start: $(pkg_of "$n") is not installed: bash scripts/services.sh install $n" >&2
        return 1
    fi
    d=$STATE/$n
    mkdir -p "$d"
    rm -f "$(pidfile "$n")"
    local f
    for f in "$(logfile_of "$n")" "$d/$n.out"; do
        if [ -f "$f" ]; then mv -f "$f" "$f.prev"; fi
    done
    t0=$(date +%s%N)
    LAUNCHED_PID=""
    if ! "launch_$n" "$d" "$bin"; then
        echo "services.sh start: launching $(pkg_of "$n") failed" >&2
        show_logs "$n"
        return 1
    fi
    limit=$TIMEOUT
    [ "$n" = rabbitmq ] && limit=$((TIMEOUT * 4))
    [ "$n" = kafka ] && limit=$((TIMEOUT * 2))
    local deadline=$(($(date +%s) + limit)) pid
    until v=$(answers "$n"); do
        pid=""
        if [ -s "$(pidfile "$n")" ]; then pid=$(tr -dc '0-9' <"$(pidfile "$n")"); fi
        if { [ -n "$LAUNCHED_PID" ] && [ ! -d "/proc/$LAUNCHED_PID" ]; } ||
            { [ -n "$pid" ] && [ ! -d "/proc/$pid" ]; }; then
            echo "services.sh start: $(pkg_of "$n") exited before answering on $HOST:$port" >&2
            show_logs "$n"
            return 1
        fi
        if [ "$(date +%s)" -ge "$deadline" ]; then
            echo "services.sh start: $(pkg_of "$n") did not answer on $HOST:$port within ${limit}s" \
                "(if it is still starting, 'bash scripts/services.sh stop $n' ends it)" >&2
            show_logs "$n"
            return 1
        fi
        sleep 0.2
    done
    local ms=$((($(date +%s%N) - t0) / 1000000))
    local extra=""
    if [ "$n" = nats ] && [ "$NATS_MONITOR_PORT" != 0 ] && grep -q "monitor.*$NATS_MONITOR_PORT" "$(logfile_of nats)" 2>/dev/null; then
        extra=", monitoring http://$HOST:$NATS_MONITOR_PORT/jsz"
    fi
    printf 'started  %s in %d.%02ds [%s%s]\n' "$(describe "$n" "$v")" $((ms / 1000)) $((ms % 1000 / 10)) \
        "$(owner "$n")" "$extra"
}

cmd_start() {
    lock
    local n rc=0
    for n in "$@"; do
        start_one "$n" || rc=1
    done
    return $rc
}

stop_one() {
    local n=$1 pid
    if ! pid=$(our_pid "$n"); then
        rm -f "$(pidfile "$n")"
        if port_open "$(port_of "$n")"; then
            echo "left     $(pkg_of "$n") on $HOST:$(port_of "$n"): not started by services.sh (no live pid file), not touching it"
        else
            echo "stopped  $(pkg_of "$n") (was not running)"
        fi
        return 0
    fi
    kill -TERM "$pid" 2>/dev/null || true
    local _
    for _ in $(seq 1 150); do
        [ -d "/proc/$pid" ] || break
        sleep 0.2
    done
    if [ -d "/proc/$pid" ]; then
        echo "services.sh stop: $(pkg_of "$n") (pid $pid) ignored SIGTERM for 30s: SIGKILL" >&2
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$(pidfile "$n")"
    if [ "$n" = rabbitmq ] && command -v epmd >/dev/null; then
        # The node started epmd (on 127.0.0.1); end it when no other Erlang node uses it.
        local names
        names=$(ERL_EPMD_ADDRESS=$HOST epmd -names 2>/dev/null) || names=""
        if ! grep -q '^name ' <<<"$names"; then
            ERL_EPMD_ADDRESS=$HOST epmd -kill >/dev/null 2>&1 || true
        fi
    fi
    echo "stopped  $(pkg_of "$n") (pid $pid)"
}

cmd_stop() {
    lock
    local n
    for n in "$@"; do stop_one "$n"; done
}

usage() {
    awk 'NR == 1 { next } /^# shellcheck/ || !/^#/ { exit } { sub(/^# ?/, ""); print }' "$0" >&2
    exit 2
}

main() {
    local cmd=${1:-check}
    shift || true
    local names=() n c
    if [ $# -eq 0 ]; then
        names=("${ALL[@]}")
        # `stop` with no name stops Jaeger too when this script started it.
        if [ "$cmd" = stop ] && our_pid jaeger >/dev/null; then names+=(jaeger); fi
    fi
    for n in "$@"; do
        c=$(canon "$n") || exit 2
        names+=("$c")
    done
    case "$cmd" in
        check) cmd_check "${names[@]}" ;;
        installed) cmd_installed "${names[@]}" ;;
        install) cmd_install "${names[@]}" ;;
        start) cmd_start "${names[@]}" ;;
        stop) cmd_stop "${names[@]}" ;;
        path) cmd_path "${names[@]}" ;;
        -h | --help | help) usage ;;
        *)
            echo "services.sh: unknown command '$cmd'" >&2
            usage
            ;;
    esac
}

main "$@"
