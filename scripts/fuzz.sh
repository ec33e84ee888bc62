#!/usr/bin/env bash
# Runs every fuzz target in fuzz/ for N seconds each (default 60). For humans and optional CI;
# the CI gate for the parsers is the property tests (crates/tracewire-core/tests/properties.rs).
#
#   bash scripts/fuzz.sh            # 60 s per target
#   bash scripts/fuzz.sh 300        # 5 minutes per target
#   bash scripts/fuzz.sh 30 b3_multi jaeger   # only these targets
#
# Needs cargo-fuzz (`cargo install cargo-fuzz`). On a stable toolchain the script sets
# RUSTC_BOOTSTRAP=1 (cargo-fuzz passes nightly-only flags) and, unless FUZZ_SANITIZER is set,
# builds without a sanitizer: tracewire-core has no unsafe code (`unsafe_code = "deny"`), so
# AddressSanitizer adds little; with nightly, try FUZZ_SANITIZER=address.
# Findings are written to fuzz/artifacts/<target>/; the corpus grows in fuzz/corpus/<target>/.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

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
    mapfile -t targets < <(cargo fuzz list)
fi

cargo fuzz build --sanitizer "$sanitizer"

status=0
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t"
    echo "=== $t: ${secs}s ===" >&2
    log=$(mktemp)
    if cargo fuzz run --sanitizer "$sanitizer" "$t" "corpus/$t" -- \
        -max_total_time="$secs" -max_len=4096 -print_final_stats=1 >"$log" 2>&1; then
        grep -E "stat::number_of_executed_units|stat::average_exec_per_sec|stat::new_units_added" "$log" >&2 || true
        echo "$t: no findings" >&2
    else
        tail -n 40 "$log" >&2
        echo "$t: FINDING (see fuzz/artifacts/$t/)" >&2
        status=1
    fi
    rm -f "$log"
done
exit $status
