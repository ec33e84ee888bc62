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

# ---------------------------------------------------------------------------------------------
# Windows of a long-running load process, measured through its control routes
# (`tracewire_benches::control`: `GET /_count`, `GET /_flush`). Used by `grpc_load.sh` (the
# subject is the gRPC server, the peer its load client) and `http_client_load.sh` (the subject
# is the HTTP client, the peer the server it calls); `callgrind_load.sh` can adopt the callgrind
# part (cg_*). The driver defines two functions and a few knobs:
#
#   subject_cmd <mode>   # prints the measured program's command line for a mode
#   peer_cmd             # prints the other program's (the load generator, or the server called)
#   CONTROL              # host:port of the subject's control listener
#   SUBJECT_CPU, PEER_CPU  # where each runs (default 1 and 0)
#   PEER_FIRST=1         # start the peer before the subject (a server the subject calls)
#   THREAD_ROLES         # "<comm prefix>=<role> ...": how /proc names the subject's threads
#
#   load_pair_start <mode> [wrapper...]   # both up, the subject's control answering
#   load_pair_stop                        # both stopped (the subject's output in $OUT/subject.log)
#   load_window_rounds <secs> <warm>      # ROUNDS x MODES interleaved: calls/s and CPU per call
#                                         # of each thread role of the subject ($OUT/windows)
#   load_window_table                     # the medians, ratios to `plain`, CPU split
#   cg_windows <secs> <warm>              # each mode under callgrind: instructions per call per
#   cg_tables                             # thread role, and per stage (CG_STAGES)

SUBJECT_CPU=${SUBJECT_CPU:-1}
PEER_CPU=${PEER_CPU:-0}
SUBJECT_PID=
PEER_PID=
THREAD_ROLES=${THREAD_ROLES:-"tokio-rt=request fastrace=collector tracewire-expor=export OpenTelemetry=otel"}
# Roles in table order, with their column titles.
ROLES="request collector export otel main other"
role_title() {
    case $1 in
        request) echo "request thread (tokio worker)" ;;
        collector) echo "fastrace collector" ;;
        export) echo "tracewire export worker" ;;
        otel) echo "OTel batch thread" ;;
        main) echo "main" ;;
        *) echo "other" ;;
    esac
}

load_get() { curl -sf "http://$CONTROL$1"; }

load_pair_start() {
    local mode=$1 _
    shift
    if [ -n "${PEER_FIRST:-}" ]; then
        # shellcheck disable=SC2046 # the command line is words
        taskset -c "$PEER_CPU" $(peer_cmd) >"$OUT/peer.log" 2>&1 &
        PEER_PID=$!
        sleep 0.3
    fi
    # shellcheck disable=SC2046
    taskset -c "$SUBJECT_CPU" "$@" $(subject_cmd "$mode") >"$OUT/subject.log" 2>"$OUT/subject.err" &
    SUBJECT_PID=$!
    for _ in $(seq 1 300); do load_get /_count >/dev/null && break; sleep 0.2; done
    if [ -z "${PEER_FIRST:-}" ]; then
        # shellcheck disable=SC2046
        taskset -c "$PEER_CPU" $(peer_cmd) >"$OUT/peer.log" 2>&1 &
        PEER_PID=$!
    fi
}

load_pair_stop() {
    kill -TERM "$SUBJECT_PID" "$PEER_PID" 2>/dev/null || true
    wait "$SUBJECT_PID" 2>/dev/null || true
    wait "$PEER_PID" 2>/dev/null || true
    SUBJECT_PID= PEER_PID=
}

# CPU ns of each thread of <pid> by role (THREAD_ROLES; the main thread "main", else "other").
load_thread_cpu() {
    local pid=$1 t comm ns role pair
    for t in /proc/"$pid"/task/*; do
        comm=$(cat "$t/comm" 2>/dev/null) || continue
        ns=$(cut -d' ' -f1 "$t/schedstat" 2>/dev/null) || continue
        role=other
        [ "${t##*/}" = "$pid" ] && role=main
        for pair in $THREAD_ROLES; do
            case $comm in "${pair%%=*}"*) role=${pair#*=} ;; esac
        done
        echo "$role $ns"
    done
}

# load_window_rounds <secs> <warm>: per round, per mode: both started, <warm> s of load, then a
# window of <secs> s between two `/_count`s; the subject's CPU per call by thread role from
# /proc (no flush in the window: the collector and export threads keep pace, their lag at both
# ends cancels). A line per run; "$mode $calls_per_s $total_us ${role_us...}" to $OUT/windows.
load_window_rounds() {
    local secs=$1 warm=$2 round mode n0 n1 t0 t1 p0 p1 peer rate line role
    for round in $(seq 1 "$ROUNDS"); do
        for mode in $MODES; do
            load_pair_start "$mode"
            sleep "$warm"
            load_thread_cpu "$SUBJECT_PID" >"$OUT/cpu0"
            p0=$(load_thread_cpu "$PEER_PID" | awk '{s += $2} END {print s}')
            n0=$(load_get /_count) t0=$(date +%s%N)
            sleep "$secs"
            n1=$(load_get /_count) t1=$(date +%s%N)
            p1=$(load_thread_cpu "$PEER_PID" | awk '{s += $2} END {print s}')
            load_thread_cpu "$SUBJECT_PID" >"$OUT/cpu1"
            load_pair_stop
            rate=$(awk -v n=$((n1 - n0)) -v ns=$((t1 - t0)) 'BEGIN {printf "%.0f", n * 1e9 / ns}')
            peer=$(awk -v a="$p0" -v b="$p1" -v ns=$((t1 - t0)) 'BEGIN {printf "%.2f", (b - a) / ns}')
            echo "$mode $peer" >>"$OUT/peer_use"
            line="$mode $rate"
            for role in total $ROLES; do
                line="$line $(awk -v r="$role" -v n=$((n1 - n0)) 'NR == FNR {if (r == "total" || $1 == r) a -= $2; next}
                    {if (r == "total" || $1 == r) a += $2} END {printf "%.2f", a / 1e3 / n}' "$OUT/cpu0" "$OUT/cpu1")"
            done
            echo "$line" >>"$OUT/windows"
            echo "round $round  $mode  $rate calls/s  $(echo "$line" | awk '{print $3}') µs CPU/call  (CPU use of the other program: $peer; $(grep -h 'spans exported' "$OUT/subject.log" || true))"
        done
    done
}

# The medians of load_window_rounds: calls/s, ratio to `plain`, the subject's and the other
# program's CPU use (of one CPU: the subject below 1 means it was not the bottleneck), CPU µs
# per call (all threads, over plain, and by role; roles no mode used are left out).
load_window_table() {
    local mode base basecpu rate cpu col i used=() header sep row role
    echo "load average after: $(loadavg)"
    echo
    i=4
    for role in $ROLES; do
        [ "$(awk -v c=$i '$c > 0' "$OUT/windows" | wc -l)" -gt 0 ] && used+=("$i:$role")
        i=$((i + 1))
    done
    header="| mode | median calls/s | ratio to plain | CPU use | other program's CPU use | CPU µs/call, all threads | over plain |"
    sep="|---|---:|---:|---:|---:|---:|---:|"
    for col in "${used[@]}"; do header="$header $(role_title "${col#*:}") |"; sep="$sep---:|"; done
    echo "$header"
    echo "$sep"
    med() { awk -v m="$1" -v c="$2" '$1 == m {print $c}' "$OUT/windows" | median; }
    base=$(med plain 2) basecpu=$(med plain 3)
    for mode in $MODES; do
        rate=$(med "$mode" 2) cpu=$(med "$mode" 3)
        row="| $mode | $rate | $(ratio "$rate" "$base") | $(awk -v r="$rate" -v c="$cpu" 'BEGIN {printf "%.2f", r * c / 1e6}') | $(awk -v m="$mode" '$1 == m {print $2}' "$OUT/peer_use" | median) | $cpu | $(awk -v a="$cpu" -v b="${basecpu:-0}" 'BEGIN {printf "%+.2f", a - b}') |"
        for col in "${used[@]}"; do row="$row $(med "$mode" "${col%%:*}") |"; done
        echo "$row"
    done
}

# ----- callgrind: instructions per call on every thread of the subject -----------------------
#
# CG_STAGES: "label|role|regex" lines (regex on callgrind_annotate's inclusive listing; the
# first match on a thread of that role counts). CG_STAGES_ENGINE are the stages every fastrace-
# based subject shares (fastrace's commands and guards, the collector's reporter, the export
# worker); a driver puts its layer's stages before them.
CG_STAGES_ENGINE="\
fastrace: commands sent (span submission, parent guards)|request|fastrace::collector::global_collector::send_command \[
fastrace: local parent guard drops|request|fastrace::span::LocalParentGuard as core::ops::drop::Drop>::drop \[
fastrace collector: reporter (tracewire: into the queue)|collector|as fastrace::collector::global_collector::Reporter>::report \[
export worker: mapping|export|tracewire_export::map::Mapper::map \[
export worker: encoding (incl. sizing)|export|tracewire_export::encode::encode_request \[
export worker: mapping and encoding, straight from the spans|export|tracewire_export::encode::DirectEncoder::encode \[
export worker: splitting by size|export|tracewire_export::pipeline::Worker::split \[
OTel batch thread: export (group, convert, encode)|otel|opentelemetry_sdk::trace::span_processor::BatchSpanProcessor::export_batch_sync \[
"

# The role of one thread's profile: what it runs.
cg_role() {
    if grep -q 'tracewire_export::pipeline::Worker::run' "$1"; then echo export
    elif grep -q 'GlobalCollector::handle_commands' "$1"; then echo collector
    elif grep -q 'multi_thread::worker::run' "$1"; then echo request
    elif grep -q 'opentelemetry_sdk::trace::span_processor' "$1"; then echo otel
    elif grep -q 'CachedParkThread' "$1"; then echo main
    else echo other
    fi
}

# cg_by_code <profile>: a thread's exclusive instructions (read from the profile itself: each
# function's own cost lines, not those of the calls it makes) by whose code ran them:
# "tracewire", "fastrace", "otel" (opentelemetry*, tracing-opentelemetry, tracing-subscriber,
# the peers built on them), "tracing" (the `tracing` facade: the peers' spans, and the spans and
# events of h2, hyper, tonic and tower themselves),
# "alloc" (malloc/free and Rust's alloc), "mem" (memcpy/memmove/memset/memcmp), "rest" (the
# runtime, the protocol stack, the client or server library, the program). A function is its
# outermost crate's (`<tokio::X<tracewire_y::Z>>::poll` is tokio's; `drop_in_place<T>` is T's;
# the Echo service's generated code, `tracewire_tonic_testproto`, is the program's).
# Prints "group instructions" lines.
cg_by_code() {
    awk 'function def(s,   id) {
            if (match(s, /^\([0-9]+\)/)) {
                id = substr(s, 1, RLENGTH)
                if (length(s) > RLENGTH) names[id] = substr(s, RLENGTH + 2)
                return names[id]
            }
            return s
        }
        /^fn=/ { cur = def(substr($0, 4)); next }
        /^cfn=/ { def(substr($0, 5)); next }
        /^calls=/ { skip = 1; next }
        /^[0-9+*-]/ { if (skip) { skip = 0; next } cost[cur] += $2; next }
        END {
            for (fn in cost) {
                f = fn; sub(/^core::ptr::drop_in_place</, "", f); sub(/^<+/, "", f)
                crate = f; sub(/(::|<| ).*/, "", crate)
                if (crate ~ /^tracewire/ && crate != "tracewire_tonic_testproto") g = "tracewire"
                else if (crate ~ /^fastrace/) g = "fastrace"
                else if (crate == "tracing" || crate == "tracing_core") g = "tracing"
                else if (crate ~ /^(opentelemetry|tracing_|reqwest_tracing|tonic_tracing_opentelemetry)/) g = "otel"
                else if (crate == "alloc" || f ~ /^(_int_)?(malloc|free|cfree|realloc|calloc|memalign|posix_memalign|tcache|malloc_consolidate|unlink_chunk)/) g = "alloc"
                else if (f ~ /^(__)?mem(cpy|move|set|cmp)/) g = "mem"
                else g = "rest"
                s[g] += cost[fn]
            }
            for (g in s) print g, s[g]
        }' "$1"
}

# cg_account <mode> <calls> <profile...>: each thread's instructions by role and its stages,
# per call: a line "mode n role... all" to $OUT/cg.results, the stages to $OUT/$mode.stages.
cg_account() {
    local mode=$1 n=$2 f r total ir label thread fn line role
    shift 2
    : >"$OUT/$mode.roles"
    : >"$OUT/$mode.stages"
    : >"$OUT/$mode.code"
    for f in "$@"; do
        r=$(cg_role "$f")
        total=$(awk '/^totals:/ {print $2}' "$f")
        echo "$r ${total:-0}" >>"$OUT/$mode.roles"
        callgrind_annotate --inclusive=yes "$f" 2>/dev/null >"$f.annotated"
        [ "$r" = request ] && cg_by_code "$f" >>"$OUT/$mode.code"
        while IFS='|' read -r label thread fn; do
            [ -n "$label" ] && [ "$thread" = "$r" ] || continue
            ir=$(grep -m1 -E "$fn" "$f.annotated" | awk '{gsub(",", "", $1); print $1}' || true)
            echo "$label|${ir:-0}" >>"$OUT/$mode.stages"
        done <<<"$CG_STAGES"
        if [ -n "${KEEP:-}" ]; then
            mkdir -p "$KEEP"
            cp "$f" "$KEEP/$mode.$r.${f##*-}"
        fi
    done
    line="$mode $n"
    for role in $ROLES; do
        line="$line $(awk -v n="$n" -v r="$role" '$1 == r {s += $2} END {printf "%.0f", s / n}' "$OUT/$mode.roles")"
    done
    line="$line $(awk -v n="$n" '{s += $2} END {printf "%.0f", s / n}' "$OUT/$mode.roles")"
    echo "$line" >>"$OUT/cg.results"
    echo "$mode: $n calls; instructions per call by role ($ROLES, all): ${line#* * }"
}

# cg_windows <secs> <warm>: each mode of MODES with the subject under
# `valgrind --tool=callgrind --separate-threads=yes`: <warm> s of load, `/_flush`, counters
# zeroed, <secs> s of load, `/_flush` (every span of the window exported inside it), counters
# dumped; the calls are the difference of two `/_count`s.
cg_windows() {
    local secs=$1 warm=$2 mode before after pid
    load_require valgrind callgrind_control callgrind_annotate
    for mode in $MODES; do
        load_pair_start "$mode" valgrind --tool=callgrind --separate-threads=yes \
            --callgrind-out-file="$OUT/$mode.%p"
        pid=$SUBJECT_PID
        sleep "$warm"
        load_get /_flush >/dev/null
        before=$(load_get /_count)
        callgrind_control -z "$pid" >/dev/null 2>&1
        sleep "$secs"
        load_get /_flush >/dev/null
        after=$(load_get /_count)
        callgrind_control -d "$pid" >/dev/null 2>&1
        load_pair_stop
        cg_account "$mode" $((after - before)) "$OUT/$mode.$pid".1-*
    done
}

# The tables of cg_windows: instructions per call by thread role (roles no mode used are left
# out) and over plain; then the stages.
cg_tables() {
    local i col used=() header sep row role plain mode n rest all
    echo "load average after: $(loadavg)"
    echo
    i=3
    for role in $ROLES; do
        [ "$(awk -v c=$i '$c > 0' "$OUT/cg.results" | wc -l)" -gt 0 ] && used+=("$i:$role")
        i=$((i + 1))
    done
    header="| mode | calls |"
    sep="|---|---:|"
    for col in "${used[@]}"; do header="$header $(role_title "${col#*:}") |"; sep="$sep---:|"; done
    echo "$header all threads | over plain |"
    echo "$sep---:|---:|"
    plain=$(awk '$1 == "plain" {print $NF}' "$OUT/cg.results")
    while read -r mode n rest; do
        row="| $mode | $n |"
        for col in "${used[@]}"; do row="$row $(echo "$mode $n $rest" | awk -v c="${col%%:*}" '{print $c}') |"; done
        all=${rest##* }
        echo "$row $all | $([ -n "$plain" ] && printf '%+d' $((all - plain))) |"
    done <"$OUT/cg.results"
    echo
    echo "The request thread's instructions per call by whose code ran them (exclusive; see cg_by_code):"
    echo
    echo "| mode | tracewire | fastrace | OpenTelemetry SDK, tracing-opentelemetry, subscriber | \`tracing\` facade | allocator | memcpy & co | the rest (runtime, protocol, library, program) | request thread |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
    for mode in $MODES; do
        [ -f "$OUT/$mode.code" ] || continue
        n=$(awk -v m="$mode" '$1 == m {print $2}' "$OUT/cg.results")
        awk -v n="$n" -v m="$mode" '{s[$1] += $2; t += $2}
            END {printf "| %s | %.0f | %.0f | %.0f | %.0f | %.0f | %.0f | %.0f | %.0f |\n", m, s["tracewire"] / n, s["fastrace"] / n,
                s["otel"] / n, s["tracing"] / n, s["alloc"] / n, s["mem"] / n, s["rest"] / n, t / n}' "$OUT/$mode.code"
    done
    echo
    echo "Stages (instructions per call, inclusive, on the thread named):"
    echo
    echo "| mode | stage | instructions |"
    echo "|---|---|---:|"
    for mode in $MODES; do
        [ -s "$OUT/$mode.stages" ] || continue
        n=$(awk -v m="$mode" '$1 == m {print $2}' "$OUT/cg.results")
        awk -F'|' -v n="$n" -v m="$mode" '{s[$1] += $2; if (!($1 in o)) o[$1] = NR}
            END {for (k in s) if (s[k] > 0) printf "%d\t| %s | %s | %.0f |\n", o[k], m, k, s[k] / n}' "$OUT/$mode.stages" |
            sort -n | cut -f2-
    done
}
