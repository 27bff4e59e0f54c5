#!/usr/bin/env bash
# Issue 8's figures, measured and printed as one table:
#   - faults injected per backend and kind, and survived   (crates/cli/tests/fault_matrix.rs,
#     storage_faults.rs: a failing write, a full disk when root, a read-only database)
#   - SIGKILLs of tokbench survived, with integrity failures and results lost, duplicated or
#     half written, for an engine suite and a llama-bench + llama-server suite (kill_resume.rs)
#   - concurrent writers and the rows they stored            (concurrent_writers.rs)
#   - fuzz executions per target and crashes found           (scripts/fuzz.sh)
#   - how many times in a row the reliability tests passed   (--repeat)
#
# Usage: scripts/reliability.sh [--rounds N] [--repeat R] [--fuzz-seconds S]
#   --rounds N        kill rounds per kill test in the measured pass (default 80)
#   --repeat R        run the reliability tests R times in all (default 10); every run
#                     after the first uses the tests' default rounds
#   --fuzz-seconds S  per fuzz target (default 60; 0 skips fuzzing)
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=80
REPEAT=10
FUZZ=60
while [ $# -gt 0 ]; do
    case "$1" in
        --rounds) ROUNDS="$2"; shift 2 ;;
        --repeat) REPEAT="$2"; shift 2 ;;
        --fuzz-seconds) FUZZ="$2"; shift 2 ;;
        *) echo "usage: $0 [--rounds N] [--repeat R] [--fuzz-seconds S]" >&2; exit 2 ;;
    esac
done

OUT="$(mktemp -d)"
trap 'rm -rf "$OUT"' EXIT
TESTS=(--test fault_matrix --test storage_faults --test kill_resume --test concurrent_writers
       --test interrupt_resume)
IGNORED=()
# The full-disk test mounts a tmpfs in a private mount namespace: root only.
if [ "$(id -u)" = 0 ] && command -v unshare >/dev/null 2>&1; then
    IGNORED=(--include-ignored)
fi

echo "building the tests…" >&2
cargo test -q -p tokbench "${TESTS[@]}" --test backends --no-run >&2

passes=0
streak=0
first_failure=""
for i in $(seq 1 "$REPEAT"); do
    log="$OUT/pass-$i.log"
    if [ "$i" = 1 ]; then
        rounds="$ROUNDS"
        export TOKBENCH_FAULT_REPORT="$OUT/faults.jsonl"
        # Every fault at every phase of the real engine, not CI's sample.
        export TOKBENCH_FAULT_MATRIX=full
    else
        rounds=10
        unset TOKBENCH_FAULT_REPORT TOKBENCH_FAULT_MATRIX
    fi
    start=$(date +%s)
    if TOKBENCH_KILL_ROUNDS="$rounds" cargo test -q -p tokbench "${TESTS[@]}" -- \
        "${IGNORED[@]}" --nocapture >"$log" 2>&1 &&
        cargo test -q -p tokbench --test backends sigterm -- --nocapture >>"$log" 2>&1; then
        passes=$((passes + 1))
        streak=$((streak + 1))
        echo "pass $i of $REPEAT: ok ($(( $(date +%s) - start )) s)" >&2
    else
        streak=0
        [ -z "$first_failure" ] && first_failure="$log" && cp "$log" "$OUT/../reliability-failure.log"
        echo "pass $i of $REPEAT: FAILED ($(( $(date +%s) - start )) s); log: $(dirname "$OUT")/reliability-failure.log" >&2
        grep -E "panicked|assert" "$log" | head -5 >&2 || true
    fi
done

fuzz_table=""
fuzz_rc=0
if [ "$FUZZ" != 0 ] && [ -x scripts/fuzz.sh ]; then
    echo "fuzzing, $FUZZ s per target…" >&2
    fuzz_table="$(scripts/fuzz.sh "$FUZZ" 2>"$OUT/fuzz.log")" || fuzz_rc=$?
fi

python3 - "$OUT" "$REPEAT" "$passes" "$streak" <<'PY'
import json, os, re, sys
out, repeat, passes, streak = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
log = open(os.path.join(out, "pass-1.log"), errors="replace").read()
print("## Faults injected (real tokbench runs, real SQLite files; each survived = failing cell stored")
print("## with status and reason, next cell ran, no process left, integrity ok)\n")
print(f"| backend | fault | phases | status stored | injected | survived |")
print(f"|---|---|---|---|---|---|")
rows = {}
path = os.path.join(out, "faults.jsonl")
if os.path.exists(path):
    for line in open(path):
        f = json.loads(line)
        k = (f["backend"], f["fault"])
        r = rows.setdefault(k, {"phases": [], "status": set(), "n": 0, "ok": 0})
        r["phases"].append(f["phase"]); r["status"].add(f["status"]); r["n"] += 1
        r["ok"] += 1 if f["survived"] else 0
total = sum(r["n"] for r in rows.values())
for (b, fault), r in sorted(rows.items()):
    print(f"| {b} | {fault} | {', '.join(r['phases'])} | {', '.join(sorted(r['status']))} | {r['n']} | {r['ok']} |")
print(f"| **all** | | | | **{total}** | **{sum(r['ok'] for r in rows.values())}** |\n")
print("\n## tokbench killed with SIGKILL at random moments, resumed each time\n")
# Tests run in parallel and their lines may interleave: find the figures anywhere.
for m in re.findall(r"kill test \(\w+\): .*?half written \d+", log):
    print("- " + m)
print("\n## Concurrent writers\n")
for m in re.findall(r"concurrent writers: .*?integrity ok", log):
    print("- " + m)
res = re.findall(r"test result: (\w+)\. (\d+) passed; (\d+) failed; (\d+) ignored", log)
print("\n## Repeats\n")
print(f"- reliability tests passed {passes} of {repeat} times; last streak {streak} in a row")
print(f"- first pass: {sum(int(r[1]) for r in res)} tests passed, {sum(int(r[2]) for r in res)} failed, {sum(int(r[3]) for r in res)} ignored")
PY
if [ -n "$fuzz_table" ]; then
    echo
    echo "## Fuzzing (cargo-fuzz / libFuzzer, $FUZZ s per target)"
    echo
    echo "$fuzz_table"
fi
[ "$passes" = "$REPEAT" ] && [ "$fuzz_rc" = 0 ]
