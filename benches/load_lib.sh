# Shared by the end-to-end load drivers (`benches/*_load.sh`, `benches/load.sh`): sourced, not
# run. A driver sets its knobs, then:
#
#   load_setup <example>            # cd to the workspace, build the example (SKIP_BUILD=1: use
#                                   # it as built), BIN, OUT (a temp dir) and the EXIT trap
#   load_private_server <port> <cmd...>   # a private broker pinned to SERVER_CPU, port open
#   load_pin_service <service> <name> <address>   # the `scripts/services.sh` broker pinned
#                                   # to SERVER_CPU for the run, unpinned at exit
#   load_banner <what>              # "<what>; load process on CPU …, $WHERE; load average: …"
#   load_rounds <transport> <n>     # ROUNDS rounds of every mode in MODES, interleaved
#   load_tables <transport>...      # the median table of each transport
#
# The program (`examples/<broker>_load.rs`) prints a line
# `RESULT mode transport n secs msgs/s cpu_us/msg util spans dropped main_us/msg bg_us/msg`
# (`tracewire_benches::load`). An empty transport ("") stands for a broker of one transport:
# the program then takes no transport argument and the lines and tables name none.
#
# Knobs (environment; a driver may set its own defaults before sourcing): ROUNDS (3), MODES,
# LOAD_CPU (1: the load process), SERVER_CPU (0: the broker). LOAD_OTHER is what the lines and
# tables call the threads but the main one ("background threads" unless the driver says).

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    echo "load_lib.sh is sourced by the *_load.sh drivers, not run" >&2
    exit 1
fi

ROUNDS=${ROUNDS:-3}
LOAD_CPU=${LOAD_CPU:-1}
SERVER_CPU=${SERVER_CPU:-0}
LOAD_OTHER="background threads"
WHERE=
LOAD_SERVER=
LOAD_PINNED=

# The load average now: its first three fields.
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }

# The median of the numbers on stdin, one a line.
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# a / b with three decimals, "n/a" when b is not positive.
ratio() { awk -v a="$1" -v b="${2:-0}" 'BEGIN { if (b > 0) printf "%.3f", a / b; else print "n/a" }'; }

# Fails unless every tool named is installed.
load_require() {
    local tool
    for tool in "$@"; do
        command -v "$tool" >/dev/null || { echo "$tool is not installed" >&2; exit 1; }
    done
}

load_cleanup() {
    if [ -n "$LOAD_SERVER" ]; then
        kill -TERM "$LOAD_SERVER" 2>/dev/null || true
        wait "$LOAD_SERVER" 2>/dev/null || true
    fi
    if [ -n "$LOAD_PINNED" ]; then
        taskset -a -cp "0-$(($(nproc) - 1))" "$LOAD_PINNED" >/dev/null 2>&1 || true
    fi
    rm -rf "$OUT"
}

# load_setup <example>: the workspace as the working directory, the example built in release
# (SKIP_BUILD=1: use the binary as built, when the workspace is mid-edit), BIN its path, OUT a
# temp dir removed at exit with whatever the driver started or pinned.
load_setup() {
    cd "$(dirname "${BASH_SOURCE[0]}")/.."
    [ -n "${SKIP_BUILD:-}" ] || cargo build --release -q -p tracewire-benches --example "$1"
    BIN="${CARGO_TARGET_DIR:-target}/release/examples/$1"
    OUT=$(mktemp -d)
    trap load_cleanup EXIT
}

# Waits (up to 5 s) until 127.0.0.1:<port> takes connections.
load_wait_port() {
    local _
    for _ in $(seq 1 50); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.1
    done
}

# load_private_server <port> <command...>: the command started pinned to SERVER_CPU (output in
# $OUT/server.log), stopped at exit; returns when its port is open.
load_private_server() {
    local port=$1
    shift
    taskset -c "$SERVER_CPU" "$@" >"$OUT/server.log" 2>&1 &
    LOAD_SERVER=$!
    load_wait_port "$port"
}

# load_pin_service <service> <name> <address>: every thread of the broker that
# `scripts/services.sh` runs is pinned to SERVER_CPU until exit (starting a private one per run
# would take longer than the runs); WHERE says where the broker is.
load_pin_service() {
    local service=$1 name=$2 pidfile pid
    bash scripts/services.sh check "$service" >/dev/null || {
        echo "$name is not running: bash scripts/services.sh start $service" >&2
        exit 1
    }
    pidfile="${TRACEWIRE_SERVICES_DIR:-${TMPDIR:-/tmp}/tracewire-services-$(id -u)}/$service/$service.pid"
    pid=$(tr -dc '0-9' <"$pidfile" 2>/dev/null || true)
    if [ -n "$pid" ] && [ -d "/proc/$pid" ]; then
        taskset -a -cp "$SERVER_CPU" "$pid" >/dev/null
        LOAD_PINNED=$pid
        WHERE="$name $(bash scripts/services.sh check "$service" | awk '{print $3}') (pid $pid) pinned to CPU $SERVER_CPU"
    else
        WHERE="$name on $3 (not started by services.sh: not pinned)"
    fi
}

# load_banner <what>: the first line of a run.
load_banner() {
    echo "$1; load process on CPU $LOAD_CPU, $WHERE; load average: $(loadavg)"
}

# load_rounds <transport> <n>: ROUNDS rounds, each running every mode of MODES once (the
# program pinned to LOAD_CPU), a line per run; the results go to $OUT/results.
load_rounds() {
    local transport=$1 n=$2 round mode line secs rate cpu util spans dropped main bg
    for round in $(seq 1 "$ROUNDS"); do
        for mode in $MODES; do
            line=$(taskset -c "$LOAD_CPU" "$BIN" "$mode" ${transport:+"$transport"} "$n" | grep '^RESULT')
            # RESULT mode transport n secs msgs/s cpu_us/msg util spans dropped main_us/msg bg_us/msg
            read -r _ _ _ _ secs rate cpu util spans dropped main bg <<<"$line"
            echo "${transport:+$transport }round $round  $mode  $rate msg/s  ${cpu} µs CPU/msg (main thread $main, $LOAD_OTHER $bg)  (CPU use ${util}; spans exported $spans, dropped $dropped)"
            echo "${transport:--} $mode $rate $cpu $main $bg" >>"$OUT/results"
        done
    done
}

# load_tables <transport>...: per transport, a markdown table of each mode's medians and its
# throughput over `untraced`'s.
load_tables() {
    local transport t mode base rate
    echo "load average after: $(loadavg)"
    for transport in "$@"; do
        t=${transport:--}
        echo
        [ -z "$transport" ] || echo "$transport"
        echo "| mode | median msg/s | ratio to untraced | CPU µs/msg, whole process | of which main thread | of which $LOAD_OTHER |"
        echo "|---|---:|---:|---:|---:|---:|"
        base=$(awk -v t="$t" '$1 == t && $2 == "untraced" {print $3}' "$OUT/results" | median)
        for mode in $MODES; do
            col() { awk -v t="$t" -v m="$mode" -v c="$1" '$1 == t && $2 == m {print $c}' "$OUT/results" | median; }
            rate=$(col 3)
            echo "| $mode | $rate | $(ratio "$rate" "$base") | $(col 4) | $(col 5) | $(col 6) |"
        done
    done
}
