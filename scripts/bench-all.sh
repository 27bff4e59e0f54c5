#!/usr/bin/env bash
# Every performance figure of issue 20 in one table: the criterion benches (`cargo bench`,
# their own report under target/criterion), then, on seeded databases of each size N
# (scripts/gen-db.sh), the whole commands side by side with the sqlite3 shell on the same
# statement: `query` per format, `report` (its own read/render split), `merge` into an
# empty database, `import` of 100,000 llama-bench records, and the size a database takes
# with raw samples before and after `prune`.
#
#   scripts/bench-all.sh [WORKDIR] [N…]      default: a temporary dir, N = 100000 1000000
#   BENCH=0 scripts/bench-all.sh …           skip `cargo bench`
#
# Needs sqlite3 and GNU time (installed when missing). Times are wall seconds of one run,
# peak RSS in MB; run it on an idle machine.
set -euo pipefail
WORK=${1:-$(mktemp -d)}
shift || true
SIZES=("$@")
[[ ${#SIZES[@]} -gt 0 ]] || SIZES=(100000 1000000)
cd "$(dirname "$0")/.."
need() { command -v "$1" >/dev/null || { apt-get update -qq && apt-get install -y -qq "$2" >/dev/null; }; }
need sqlite3 sqlite3
[[ -x /usr/bin/time ]] || { apt-get update -qq && apt-get install -y -qq time >/dev/null; }
mkdir -p "$WORK"
cargo build --release -q -p tokbench
TB=target/release/tokbench
if [[ ${BENCH:-1} != 0 ]]; then
    cargo bench --workspace 2>&1 | grep -E '^[a-z_/0-9 ]+ +time:|thrpt:' || true
fi

ROWS=()
# measure LABEL CMD…: one run, its wall time and peak RSS, stdout discarded.
measure() {
    local label=$1
    shift
    local t f
    f=$(mktemp)
    /usr/bin/time -o "$f" -f '%e %M' "$@" >/dev/null 2>&1 || true
    t=$(tail -1 "$f")
    rm -f "$f"
    ROWS+=("$(printf '| %-44s | %8s s | %7.0f MB |' "$label" "${t% *}" "$(awk -v k="${t#* }" 'BEGIN { print k / 1024 }')")")
}
Q='SELECT * FROM v_results'
for N in "${SIZES[@]}"; do
    DB="$WORK/gen-$N.db"
    [[ -f $DB ]] || scripts/gen-db.sh "$N" "$DB" 1 >/dev/null
    "$TB" migrate --db "$DB" >/dev/null 2>&1
    for f in csv jsonl json md table; do
        measure "$N: tokbench query --format $f" "$TB" query "$Q" --db "$DB" --format "$f"
    done
    measure "$N: sqlite3 -csv" sqlite3 -csv -header "$DB" "$Q"
    measure "$N: sqlite3 -json" sqlite3 -json "$DB" "$Q"
    measure "$N: tokbench report" "$TB" report --db "$DB" --out "$WORK/report-$N"
    "$TB" report --db "$DB" --out "$WORK/report-$N" 2>&1 | grep '^report:' | sed "s/^/  $N: /"
    rm -f "$WORK/merged.db"*
    measure "$N: tokbench merge into an empty db" "$TB" merge "$DB" --into "$WORK/merged.db"
done
# import: FILES llama-bench JSON files of 10,000 records each (seeded, from a real record's
# shape), into an empty database.
IMP="$WORK/import"
if [[ ! -f $IMP/imp9.json ]]; then
    mkdir -p "$IMP"
    python3 - "$IMP" crates/core/tests/fixtures/llama-bench/r1.json <<'PY'
import copy, json, random, sys
out, fixture = sys.argv[1], sys.argv[2]
base = json.load(open(fixture))[0]
rng = random.Random(1)
for f in range(10):
    records = []
    for i in range(10_000):
        r = copy.deepcopy(base)
        r["n_prompt"], r["n_gen"] = (512, 0) if i % 2 == 0 else (0, 128)
        r["n_threads"] = 1 + i % 16
        r["build_number"] = 6000 + f
        r["test_time"] = f"2026-11-{1 + f:02}T{i // 3600 % 24:02}:{i // 60 % 60:02}:{i % 60:02}Z"
        samples = [rng.uniform(50, 500) for _ in range(5)]
        r["samples_ts"] = samples
        r["samples_ns"] = [int(1e9 * 128 / s) for s in samples]
        r["avg_ts"] = sum(samples) / 5
        r["stddev_ts"] = (sum((s - r["avg_ts"]) ** 2 for s in samples) / 4) ** 0.5
        records.append(r)
    json.dump(records, open(f"{out}/imp{f}.json", "w"))
PY
fi
rm -f "$WORK/imported.db"*
measure "100000 llama-bench records: tokbench import" "$TB" import "$IMP"/imp?.json --db "$WORK/imported.db"
# Size with raw samples (200 per result), and after prune.
S="$WORK/samples.db"
scripts/gen-db.sh 10000 "$S" 1 100 >/dev/null
before=$(stat -c %s "$S")
measure "10000 with samples: tokbench prune --vacuum" "$TB" prune --older-than 0 --vacuum --db "$S"
after=$(stat -c %s "$S")
printf '| %-44s | %10s | %10s |\n|%s|%s|%s|\n' command time 'peak RSS' "$(printf -- '-%.0s' {1..46})" ------------ ------------
printf '%s\n' "${ROWS[@]}"
echo "database size per 1,000 results with 200 samples each: $((before / 10000)) KB before prune, $((after / 10000)) KB after"
