#!/usr/bin/env bash
# Times `tokbench report` on a database of N results (default 100,000): runs the smoke
# suite once for real rows, then copies them into N results spread over many runs, hosts'
# hardware, models and days, as a year of nightly CI would leave them. Prints the figure
# `tokbench report` measures itself, and the wall time of the whole command.
#
#   scripts/bench-report.sh [N] [WORKDIR]
set -euo pipefail
N=${1:-100000}
WORK=${2:-$(mktemp -d)}
cd "$(dirname "$0")/.."
command -v sqlite3 >/dev/null || { apt-get update -qq && apt-get install -y -qq sqlite3 >/dev/null; }
cargo build --release -q
TB=target/release/tokbench
DB="$WORK/big.db"
rm -f "$DB" "$DB-wal" "$DB-shm"
"$TB" run bench-configs/smoke.toml --db "$DB" --plain >/dev/null 2>&1
PER_RUN=100
RUNS=$(( (N + PER_RUN - 1) / PER_RUN ))
sqlite3 "$DB" <<SQL
PRAGMA journal_mode = WAL;
BEGIN;
CREATE TEMP TABLE hw(i INTEGER PRIMARY KEY, name TEXT);
INSERT INTO hw(name) VALUES ('GeForce RTX 3090'), ('GeForce RTX 4090'), ('GeForce RTX 5090'),
  ('2x GeForce RTX 3090'), ('Radeon RX 7900 XTX'), ('Apple M4 Max'), ('Apple M2 Ultra'),
  ('H100 SXM'), ('H200 (SXM)'), ('L40S'), ('DGX Spark (GB10)'), ('Ryzen AI Max+ 395 (Strix Halo)');
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $RUNS)
INSERT INTO run (uuid, started_at, finished_at, suite_name, tokbench_version, trigger, status,
                 cells_total, host_id, hardware)
SELECT printf('bench-%06d', i), strftime('%Y-%m-%dT%H:%M:%SZ', '2026-01-01', printf('+%d hours', i)),
       NULL, 'bench', '0', 'nightly', 'ok', $PER_RUN, (SELECT MIN(id) FROM host),
       (SELECT name FROM hw WHERE hw.i = 1 + (n.i % (SELECT COUNT(*) FROM hw)))
FROM n;
WITH RECURSIVE k(j) AS (SELECT 0 UNION ALL SELECT j + 1 FROM k WHERE j < $PER_RUN / 4 - 1),
base AS (SELECT * FROM result WHERE run_id = (SELECT MIN(id) FROM run))
INSERT INTO result (run_id, cell_index, backend_build_id, model_id, model_name, workload_id,
  n_threads, n_batch, n_ubatch, n_gpu_layers, flash_attn, type_k, type_v, use_mmap, status,
  error, metric_source, repetitions_expected, prefill_tps, prefill_tps_sd, decode_tps,
  decode_tps_sd, ttft_ms, ttft_ms_sd, load_ms, rss_peak_bytes, started_at, duration_ms)
SELECT run.id, base.cell_index + 4 * k.j, base.backend_build_id, base.model_id,
  base.model_name || '-' || (k.j % 25), base.workload_id, base.n_threads, base.n_batch,
  base.n_ubatch, base.n_gpu_layers, base.flash_attn, base.type_k, base.type_v, base.use_mmap,
  'ok', NULL, 'engine', base.repetitions_expected,
  base.prefill_tps * (0.5 + (abs(random()) % 1000) / 1000.0), base.prefill_tps_sd,
  base.decode_tps * (0.5 + (abs(random()) % 1000) / 1000.0), base.decode_tps_sd,
  base.ttft_ms, base.ttft_ms_sd, base.load_ms, base.rss_peak_bytes, run.started_at, 1.0
FROM run JOIN base JOIN k WHERE run.uuid LIKE 'bench-%';
COMMIT;
SQL
COUNT=$(sqlite3 "$DB" "SELECT COUNT(*) FROM result WHERE status = 'ok'")
echo "database: $DB with $COUNT ok results in $(sqlite3 "$DB" "SELECT COUNT(*) FROM run") runs"
/usr/bin/time -f "wall %e s, max RSS %M KiB" "$TB" report --db "$DB" --out "$WORK/reports"
