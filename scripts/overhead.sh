#!/usr/bin/env bash
# What tokbench adds to what it measures: the same model and tests through
#   tokbench run -m MODEL -p 512 -n 128 -r 5 -t T     and
#   llama-bench  -m MODEL -p 512 -n 128 -r 5 -t T
# (llama-bench built from the same vendored llama.cpp by `tokbench backends build`), run
# alternately ROUNDS times. Prints each wall time, the medians, their ratio (tokbench's
# overhead), tokbench's wall time over the sum of its timed repetitions, and both tools'
# figures side by side.
#
#   scripts/overhead.sh [ROUNDS] [THREADS]
#
# Needs: a built tokbench ($TOKBENCH, default target/release/tokbench, else
# target/debug/tokbench), python3. Builds llama-bench and synthesizes the tiny model once.
set -euo pipefail
ROUNDS=${1:-5}
THREADS=${2:-2}
cd "$(dirname "$0")/.."
TB=${TOKBENCH:-}
if [[ -z $TB ]]; then
    for c in target/release/tokbench target/debug/tokbench; do
        [[ -x $c ]] && { TB=$c; break; }
    done
fi
[[ -n $TB ]] || { echo "$0: no tokbench binary: cargo build --release first" >&2; exit 1; }
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

BIN_DIR=$("$TB" backends build 2>/dev/null | tail -1)
LB="$BIN_DIR/llama-bench"
[[ -x $LB ]] || { echo "$0: llama-bench not found in $BIN_DIR" >&2; exit 1; }
MODEL=$("$TB" model synth --arch tiny --quant Q8_0 2>/dev/null | tail -1 | cut -f3)
[[ -f $MODEL ]] || { echo "$0: no model synthesized" >&2; exit 1; }

now() { date +%s.%N; }
tb_times=()
lb_times=()
for i in $(seq 1 "$ROUNDS"); do
    rm -f "$WORK"/tb.db*
    t0=$(now)
    "$TB" run -m "$MODEL" -p 512 -n 128 -r 5 -t "$THREADS" --db "$WORK/tb.db" --plain \
        >/dev/null 2>&1
    t1=$(now)
    "$LB" -m "$MODEL" -p 512 -n 128 -r 5 -t "$THREADS" -o json >"$WORK/lb.json" 2>/dev/null
    t2=$(now)
    tb_times+=("$(python3 -c "print($t1 - $t0)")")
    lb_times+=("$(python3 -c "print($t2 - $t1)")")
    printf 'round %d: tokbench %.2f s, llama-bench %.2f s\n' "$i" "${tb_times[-1]}" "${lb_times[-1]}"
done

python3 - "$WORK" "${tb_times[*]}" "${lb_times[*]}" <<'PY'
import json, sqlite3, statistics, sys
work, tb, lb = sys.argv[1], [float(x) for x in sys.argv[2].split()], [float(x) for x in sys.argv[3].split()]
mt, ml = statistics.median(tb), statistics.median(lb)
print(f"median wall time: tokbench {mt:.2f} s, llama-bench {ml:.2f} s; ratio {mt / ml:.2f}")
con = sqlite3.connect(f"{work}/tb.db")
(timed,) = con.execute("SELECT SUM(COALESCE(prompt_ms, 0) + COALESCE(gen_ms, 0)) / 1000.0 FROM repetition").fetchone()
print(f"tokbench's last round: {tb[-1]:.2f} s wall for {timed:.2f} s of timed repetitions; ratio {tb[-1] / timed:.2f}"
      " (the rest: start, model load, warm-ups, storing)")
ours = {t: (m, s) for t, m, s in con.execute(
    "SELECT test, COALESCE(decode_tps, prefill_tps), COALESCE(decode_tps_sd, prefill_tps_sd) FROM v_results")}
print("test    tokbench t/s        llama-bench t/s   (last round)")
for r in json.load(open(f"{work}/lb.json")):
    test = f"pp{r['n_prompt']}" if r["n_gen"] == 0 else f"tg{r['n_gen']}"
    m, s = ours.get(test, (float("nan"), float("nan")))
    print(f"{test:<7} {m:8.2f} ± {s:<7.2f}  {r['avg_ts']:8.2f} ± {r['stddev_ts']:.2f}")
PY
