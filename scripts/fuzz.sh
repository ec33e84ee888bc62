#!/usr/bin/env bash
# Runs every fuzz target in fuzz/ for N seconds each (default 60). For humans and optional CI;
# the CI gate for the parsers is the property tests (crates/tracewire-core/tests/properties.rs).
#
#   bash scripts/fuzz.sh            # 60 s per target
#   bash scripts/fuzz.sh 300        # 5 minutes per target
#   bash scripts/fuzz.sh 30 b3_multi viewer_zipkin   # only these targets
#
# Works from a clean clone, from any directory: cargo-fuzz is given the fuzz crate with
# --fuzz-dir (it does not go looking for a Cargo.toml above fuzz/), and the corpus grows
# outside the clone, in $TRACEWIRE_FUZZ_CORPUS (default: ${XDG_CACHE_HOME:-~/.cache}/tracewire/
# fuzz-corpus), one directory per target, seeded from the repository's test data on first use.
# Findings are written to fuzz/artifacts/<target>/ (git-ignored), where cargo-fuzz reproduces
# them from.
#
# Needs cargo-fuzz (`cargo install cargo-fuzz`). On a stable toolchain the script sets
# RUSTC_BOOTSTRAP=1 (cargo-fuzz passes nightly-only flags) and, unless FUZZ_SANITIZER is set,
# builds without a sanitizer: the fuzzed crates have no unsafe code (`unsafe_code = "deny"`),
# so AddressSanitizer adds little; with nightly, try FUZZ_SANITIZER=address.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
fuzz_dir="$repo/fuzz"
corpus_root="${TRACEWIRE_FUZZ_CORPUS:-${XDG_CACHE_HOME:-$HOME/.cache}/tracewire/fuzz-corpus}"

secs=${1:-60}
shift || true
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "cargo-fuzz is not installed: cargo install cargo-fuzz" >&2
    exit 1
fi
if ! rustc --version | grep -q nightly; then
    export RUSTC_BOOTSTRAP=1
fi
sanitizer=${FUZZ_SANITIZER:-none}
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(cargo fuzz list --fuzz-dir "$fuzz_dir")
fi

cargo fuzz build --fuzz-dir "$fuzz_dir" --sanitizer "$sanitizer"

# First use: seed the corpus of the viewer's decoders from the repository's test data.
seed() {
    local t=$1 dir=$2
    [ -n "$(ls -A "$dir" 2>/dev/null)" ] && return 0
    case "$t" in
    viewer_otlp_json)
        cp "$repo/crates/tracewire-viewer/tests/data/otlp-trace.json" "$dir/spec-sample.json"
        ;;
    viewer_zipkin)
        cat >"$dir/two-spans.json" <<'EOF'
[{"traceId":"463ac35c9f6413ad48485a3953bb6124","id":"a2fb4a1d1a96d312","name":"get /api","timestamp":1767225600000000,"duration":20000,"kind":"SERVER","localEndpoint":{"serviceName":"gateway","ipv4":"10.0.0.1"},"tags":{"http.method":"GET"}},
 {"traceId":"463ac35c9f6413ad48485a3953bb6124","id":"b3fb4a1d1a96d313","parentId":"a2fb4a1d1a96d312","name":"select","kind":"CLIENT","localEndpoint":{"serviceName":"gateway"},"remoteEndpoint":{"serviceName":"postgres","ipv4":"10.0.0.9","port":5432},"annotations":[{"timestamp":1767225600006000,"value":"ws"}],"tags":{"error":"timeout"}}]
EOF
        ;;
    esac
}

status=0
for t in "${targets[@]}"; do
    corpus="$corpus_root/$t"
    mkdir -p "$corpus"
    seed "$t" "$corpus"
    echo "=== $t: ${secs}s (corpus $corpus) ===" >&2
    log=$(mktemp)
    start=$(date +%s)
    if cargo fuzz run --fuzz-dir "$fuzz_dir" --sanitizer "$sanitizer" "$t" "$corpus" -- \
        -max_total_time="$secs" -max_len=4096 -print_final_stats=1 >"$log" 2>&1; then
        grep -E "stat::number_of_executed_units|stat::average_exec_per_sec|stat::new_units_added" "$log" >&2 || true
        echo "$t: no findings ($(($(date +%s) - start)) s)" >&2
    else
        tail -n 40 "$log" >&2
        echo "$t: FINDING (see fuzz/artifacts/$t/)" >&2
        status=1
    fi
    rm -f "$log"
done
exit $status
