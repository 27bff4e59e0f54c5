#!/usr/bin/env bash
# Fuzzes every tokbench parser of outside input (fuzz/fuzz_targets/) with cargo-fuzz
# (libFuzzer): each target for a bounded time, one job, memory and per-input time capped.
# Seeds are the repo's real test fixtures (read in place, see fixtures_of) and, where a
# target needs inputs shaped for it, fuzz/seeds/<target>/ (tracked); what the fuzzer learns accumulates in
# fuzz/corpus/<target>/ and whatever fails lands in fuzz/artifacts/<target>/ (both ignored).
# Prints a table of executions, speed, corpus size and crashes; exits 1 if any target
# crashed, ran out of memory or hung during this run.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]     (default 60 s, every target)
#
# Reproduce a failure: fuzz/target/<triple>/release/<target> fuzz/artifacts/<target>/<file>
set -euo pipefail
cd "$(dirname "$0")/.."

SECS=60
if [[ $# -gt 0 && $1 =~ ^[0-9]+$ ]]; then
    SECS=$1
    shift
fi
RSS_LIMIT_MB=${FUZZ_RSS_LIMIT_MB:-1024}
TIMEOUT_S=${FUZZ_TIMEOUT_S:-10}

rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
cargo +nightly fuzz --version >/dev/null 2>&1 || cargo install cargo-fuzz --locked

ALL=$(cd fuzz && cargo +nightly fuzz list)
if [[ $# -gt 0 ]]; then
    TARGETS=("$@")
    for t in "${TARGETS[@]}"; do
        grep -qx "$t" <<<"$ALL" || { echo "unknown target '$t' (known: $(echo $ALL))" >&2; exit 2; }
    done
else
    mapfile -t TARGETS <<<"$ALL"
fi

# One build for all targets: release, debug assertions and overflow checks on, ASan.
(cd fuzz && cargo +nightly fuzz build)
TRIPLE=$(rustc +nightly -vV | sed -n 's/^host: //p')
BIN_DIR=fuzz/target/$TRIPLE/release
LOG_DIR=fuzz/target/fuzz-logs
mkdir -p "$LOG_DIR"

# The test fixtures each target reads as seeds, where they are (not copied).
fixtures_of() {
    case "$1" in
        llama_bench) echo crates/core/tests/fixtures/llama-bench ;;
        powermetrics) echo crates/telemetry/tests/fixtures/powermetrics ;;
        smi) echo crates/telemetry/tests/fixtures/amd-smi crates/telemetry/tests/fixtures/rocm-smi ;;
        suite_toml) echo bench-configs ;;
    esac
}

declare -A EXECS RATE RSS CORPUS CRASHES
total_crashes=0
for t in "${TARGETS[@]}"; do
    mkdir -p "fuzz/corpus/$t" "fuzz/artifacts/$t"
    before=$(mktemp)
    ls -1 "fuzz/artifacts/$t" | sort >"$before"
    log=$LOG_DIR/$t.log
    echo "== $t: ${SECS}s" >&2
    start=$(date +%s)
    # One process (no -jobs/-workers, which fork). New inputs go to the first directory (the
    # working corpus); the seeds are read only.
    set +e
    seeds=()
    [[ -d fuzz/seeds/$t ]] && seeds+=("fuzz/seeds/$t")
    # shellcheck disable=SC2207
    seeds+=($(fixtures_of "$t"))
    "$BIN_DIR/$t" "fuzz/corpus/$t" "${seeds[@]}" \
        -max_total_time="$SECS" -rss_limit_mb="$RSS_LIMIT_MB" -timeout="$TIMEOUT_S" \
        -print_final_stats=1 \
        -artifact_prefix="fuzz/artifacts/$t/" >"$log" 2>&1
    rc=$?
    set -e
    elapsed=$(( $(date +%s) - start ))
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    EXECS[$t]=${execs:-0}
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    RATE[$t]=${rate:-$(( ${execs:-0} / (elapsed > 0 ? elapsed : 1) ))}
    rss=$(sed -n 's/^stat::peak_rss_mb: *//p' "$log" | tail -1)
    RSS[$t]=${rss:--}
    corp=$(grep -o 'corp: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*' || true)
    CORPUS[$t]=${corp:-$(ls -1 "fuzz/corpus/$t" | wc -l)}
    new=$(comm -13 "$before" <(ls -1 "fuzz/artifacts/$t" | sort) | grep -cE '^(crash|oom|timeout|leak|slow-unit)-' || true)
    rm -f "$before"
    CRASHES[$t]=$new
    total_crashes=$(( total_crashes + new ))
    if [[ $new -gt 0 || ( $rc -ne 0 && -z $execs ) ]]; then
        echo "   $t: exit $rc, $new new artifact(s); log: $log" >&2
        grep -E '^(==[0-9]+==ERROR|SUMMARY|thread .* panicked)' "$log" | head -5 >&2 || true
        [[ $new -gt 0 ]] || { CRASHES[$t]="error"; total_crashes=$(( total_crashes + 1 )); }
    fi
done

printf '\n%-14s %12s %9s %8s %8s %8s\n' target execs exec/s corpus crashes rss_mb
for t in "${TARGETS[@]}"; do
    printf '%-14s %12s %9s %8s %8s %8s\n' "$t" "${EXECS[$t]}" "${RATE[$t]}" "${CORPUS[$t]}" \
        "${CRASHES[$t]}" "${RSS[$t]}"
done
if [[ $total_crashes -gt 0 ]]; then
    echo "crashes found: see fuzz/artifacts/<target>/ and $LOG_DIR/" >&2
    exit 1
fi
