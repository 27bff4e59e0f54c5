#!/usr/bin/env bash
# A results database of N results shaped like a fleet's nightly history, for scale tests:
# runs the smoke suite once for real rows (every column a real run fills), then copies them
# into nightly runs on 12 hosts (one per hardware class, each its own host row), 25 models,
# a llama.cpp build that changes every 14 days, one run per host per night. A series' rate
# is the measured rate times a factor fixed per hardware and model, times ±3% of noise
# per night, so the history has the structure `check` and the report's trend plots expect.
# Every derived value comes from SEED through a fixed hash, so the same N and SEED give the
# same rows. With SAMPLES > 0 each result also gets SAMPLES raw telemetry samples (power and
# RSS over the cell's phases), for measuring what samples cost in size and what `prune` saves.
#
#   scripts/gen-db.sh N DB [SEED] [SAMPLES]
#
# Needs: sqlite3 (installed when missing), a built tokbench ($TOKBENCH, default
# target/release/tokbench).
set -euo pipefail
N=${1:?usage: scripts/gen-db.sh N DB [SEED] [SAMPLES]}
DB=${2:?usage: scripts/gen-db.sh N DB [SEED] [SAMPLES]}
SEED=${3:-1}
SAMPLES=${4:-0}
cd "$(dirname "$0")/.."
command -v sqlite3 >/dev/null || { apt-get update -qq && apt-get install -y -qq sqlite3 >/dev/null; }
TB=${TOKBENCH:-target/release/tokbench}
[[ -x $TB ]] || { echo "$0: no tokbench at $TB: cargo build --release first" >&2; exit 1; }
[[ $N =~ ^[0-9]+$ && $SEED =~ ^[0-9]+$ && $SAMPLES =~ ^[0-9]+$ ]] ||
    { echo "$0: N, SEED and SAMPLES are whole numbers (got '$N' '$SEED' '$SAMPLES')" >&2; exit 2; }
rm -f "$DB" "$DB-wal" "$DB-shm"
"$TB" run bench-configs/smoke.toml --db "$DB" --plain >/dev/null 2>&1
BASE=$(sqlite3 "$DB" "SELECT COUNT(*) FROM result WHERE status = 'ok'")
MODELS=25
PER_RUN=$((BASE * MODELS))
RUNS=$(((N + PER_RUN - 1) / PER_RUN))
# h(a, b): a hash of two non-negative integers and the seed into 0..999 (multiplicative,
# kept inside 64 bits; SQLite has no seedable random()).
h() { echo "((((($1) * 69069 + ($2) * 40503 + $SEED * 97 + 12345) % 1000003) * 7919 % 1000003) % 1000)"; }
sqlite3 "$DB" <<SQL
PRAGMA journal_mode = WAL;
PRAGMA foreign_keys = ON;
BEGIN;
CREATE TEMP TABLE hw(i INTEGER PRIMARY KEY, name TEXT, speed REAL);
INSERT INTO hw(i, name, speed) VALUES (0, 'GeForce RTX 3090', 1.0), (1, 'GeForce RTX 4090', 1.3),
  (2, 'GeForce RTX 5090', 1.8), (3, '2x GeForce RTX 3090', 1.1), (4, 'Radeon RX 7900 XTX', 0.9),
  (5, 'Apple M4 Max', 0.6), (6, 'Apple M2 Ultra', 0.8), (7, 'H100 SXM', 2.1), (8, 'H200 (SXM)', 2.5),
  (9, 'L40S', 1.2), (10, 'DGX Spark (GB10)', 0.4), (11, 'Ryzen AI Max+ 395 (Strix Halo)', 0.35);
INSERT INTO host (identity, hostname, cpu_model, cpu_cores_logical, cpu_cores_physical,
                  memory_total_bytes, os, kernel, arch, gpus_json, first_seen_at)
SELECT 'gen-' || hw.i, 'bench-' || hw.i, h.cpu_model, h.cpu_cores_logical, h.cpu_cores_physical,
       h.memory_total_bytes, h.os, h.kernel, h.arch, h.gpus_json, '2025-12-31T00:00:00Z'
FROM hw JOIN (SELECT * FROM host ORDER BY id LIMIT 1) h;
CREATE TEMP TABLE builds(i INTEGER PRIMARY KEY, id INTEGER);
INSERT INTO backend_build (name, version, commit_sha, accel, flags)
SELECT b.name, 'b' || (6000 + 50 * k.i), printf('%07x', $(h k.i 7) * 7919), b.accel, b.flags
FROM (SELECT * FROM backend_build ORDER BY id LIMIT 1) b
JOIN (WITH RECURSIVE k(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM k WHERE i < 59) SELECT i FROM k) k;
INSERT INTO builds(i, id) SELECT ROW_NUMBER() OVER (ORDER BY id) - 1, id FROM backend_build
  WHERE version LIKE 'b%' AND id > (SELECT MIN(id) FROM backend_build);
CREATE TEMP TABLE models(j INTEGER PRIMARY KEY, quant TEXT, id INTEGER, speed REAL);
INSERT INTO model (name, architecture, quant, n_params, file_bytes, file_sha256, shape_json, origin)
SELECT m.name || '-' || k.j, m.architecture, m.quant, m.n_params, m.file_bytes,
       m.file_sha256 || '-' || k.j, m.shape_json, m.origin
FROM model m JOIN (WITH RECURSIVE k(j) AS (SELECT 0 UNION ALL SELECT j + 1 FROM k WHERE j < $MODELS - 1) SELECT j FROM k) k;
WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < $RUNS - 1)
INSERT INTO run (uuid, started_at, finished_at, suite_name, tokbench_version, trigger, status,
                 cells_total, host_id, hardware, telemetry_unavailable_json)
SELECT printf('gen-%08d', n.i),
       strftime('%Y-%m-%dT%H:%M:%SZ', '2026-01-01', printf('+%d days', n.i / 12), printf('+%d minutes', 2 * (n.i % 12))),
       NULL, 'nightly', '0', 'nightly', 'ok', $PER_RUN,
       (SELECT id FROM host WHERE identity = 'gen-' || (n.i % 12)),
       (SELECT name FROM hw WHERE hw.i = n.i % 12),
       (SELECT telemetry_unavailable_json FROM run ORDER BY id LIMIT 1)
FROM n;
WITH base AS (SELECT r.*, ROW_NUMBER() OVER (ORDER BY r.id) - 1 AS b FROM result r
              WHERE r.run_id = (SELECT MIN(id) FROM run) AND r.status = 'ok'),
     k(j) AS (SELECT 0 UNION ALL SELECT j + 1 FROM k WHERE j < $MODELS - 1),
     gr AS (SELECT run.id, run.started_at, CAST(substr(run.uuid, 5) AS INTEGER) AS i,
                   (SELECT speed FROM hw WHERE hw.i = CAST(substr(run.uuid, 5) AS INTEGER) % 12) AS hw_speed
            FROM run WHERE run.uuid LIKE 'gen-%')
INSERT INTO result (run_id, cell_index, backend_build_id, model_id, model_name, workload_id,
  n_threads, n_batch, n_ubatch, n_gpu_layers, flash_attn, type_k, type_v, use_mmap, status,
  error, metric_source, repetitions_expected, prefill_tps, prefill_tps_sd, decode_tps,
  decode_tps_sd, ttft_ms, ttft_ms_sd, load_ms, rss_peak_bytes, log_tail, started_at, duration_ms,
  model_buffer_bytes, repack_buffer_bytes, kv_buffer_bytes, compute_buffer_bytes,
  output_buffer_bytes, energy_method, telemetry_json, backend_json, noisy, throttled, cpu_governor)
SELECT gr.id, base.b + $BASE * k.j,
  (SELECT id FROM builds WHERE builds.i = (gr.i / 12 / 14) % 60),
  (SELECT id FROM model WHERE model.file_sha256 = m.file_sha256 || '-' || k.j),
  m.name || '-' || k.j, base.workload_id, base.n_threads, base.n_batch, base.n_ubatch,
  base.n_gpu_layers, base.flash_attn, base.type_k, base.type_v, base.use_mmap, 'ok', NULL,
  base.metric_source, base.repetitions_expected,
  base.prefill_tps * gr.hw_speed * (0.5 + $(h k.j 1) / 1000.0) * (0.97 + $(h gr.i "k.j * 31 + base.b") * 0.00006),
  base.prefill_tps_sd,
  base.decode_tps * gr.hw_speed * (0.5 + $(h k.j 2) / 1000.0) * (0.97 + $(h gr.i "k.j * 37 + base.b") * 0.00006),
  base.decode_tps_sd, base.ttft_ms, base.ttft_ms_sd, base.load_ms, base.rss_peak_bytes,
  base.log_tail, gr.started_at, base.duration_ms, base.model_buffer_bytes,
  base.repack_buffer_bytes, base.kv_buffer_bytes, base.compute_buffer_bytes,
  base.output_buffer_bytes, base.energy_method, base.telemetry_json, base.backend_json, base.noisy,
  base.throttled, base.cpu_governor
FROM gr JOIN base JOIN k JOIN model m ON m.id = base.model_id
WHERE base.b + $BASE * k.j + gr.i * $PER_RUN < $N;
WITH RECURSIVE s(t) AS (SELECT 0 UNION ALL SELECT t + 1 FROM s WHERE t < $SAMPLES - 1)
INSERT INTO telemetry_sample (result_id, t_ms, phase, metric, value, source)
SELECT r.id, 100.0 * s.t,
       CASE WHEN s.t < $SAMPLES / 4 THEN 'load' WHEN s.t < $SAMPLES / 2 THEN 'prefill' ELSE 'decode' END,
       m.metric, CASE m.metric WHEN 'power_w' THEN 50 + $(h r.id s.t) / 10.0 ELSE 1e8 + $(h s.t r.id) * 1e5 END,
       CASE m.metric WHEN 'power_w' THEN 'nvml' ELSE 'procfs' END
FROM result r JOIN run ON run.id = r.run_id AND run.uuid LIKE 'gen-%'
JOIN s JOIN (SELECT 'power_w' AS metric UNION ALL SELECT 'rss_bytes') m
WHERE $SAMPLES > 0;
COMMIT;
SQL
COUNT=$(sqlite3 "$DB" "SELECT COUNT(*) FROM result")
echo "$DB: $COUNT results in $(sqlite3 "$DB" "SELECT COUNT(*) FROM run") runs, $(sqlite3 "$DB" "SELECT COUNT(*) FROM telemetry_sample") telemetry samples, $(du -k "$DB" | cut -f1) KiB (seed $SEED)"
