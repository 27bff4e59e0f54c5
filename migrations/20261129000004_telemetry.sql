-- Telemetry per result: device and process memory peaks, and for prefill and decode the
-- average and peak power, energy and tokens per joule (NULL where the machine cannot
-- measure it; the reasons and every phase's figures, flags included, are in
-- telemetry_json). The run keeps the environment telemetry saw (driver, power limit, clocks).
ALTER TABLE result ADD COLUMN vram_peak_bytes INTEGER;
ALTER TABLE result ADD COLUMN vram_proc_peak_bytes INTEGER;
ALTER TABLE result ADD COLUMN prefill_power_avg_w REAL;
ALTER TABLE result ADD COLUMN prefill_power_peak_w REAL;
ALTER TABLE result ADD COLUMN prefill_energy_j REAL;
ALTER TABLE result ADD COLUMN prefill_tokens_per_joule REAL;
ALTER TABLE result ADD COLUMN decode_power_avg_w REAL;
ALTER TABLE result ADD COLUMN decode_power_peak_w REAL;
ALTER TABLE result ADD COLUMN decode_energy_j REAL;
ALTER TABLE result ADD COLUMN decode_tokens_per_joule REAL;
ALTER TABLE result ADD COLUMN energy_method TEXT;
ALTER TABLE result ADD COLUMN telemetry_json TEXT;
ALTER TABLE run ADD COLUMN environment_json TEXT;

DROP VIEW v_results;
CREATE VIEW v_results AS
SELECT
    run.uuid                AS run_uuid,
    run.started_at          AS started_at,
    host.hostname           AS host,
    run.hardware            AS hardware,
    bb.name                 AS backend,
    bb.version              AS backend_version,
    bb.commit_sha           AS backend_commit,
    bb.accel                AS accel,
    r.model_name            AS model,
    m.quant                 AS quant,
    m.n_params              AS model_params,
    m.file_bytes            AS model_bytes,
    w.label                 AS test,
    w.n_prompt              AS n_prompt,
    w.n_gen                 AS n_gen,
    w.n_depth               AS n_depth,
    r.n_threads             AS n_threads,
    r.n_batch               AS n_batch,
    r.n_ubatch              AS n_ubatch,
    r.n_gpu_layers          AS n_gpu_layers,
    r.flash_attn            AS flash_attn,
    r.type_k                AS type_k,
    r.type_v                AS type_v,
    r.status                AS status,
    r.error                 AS error,
    r.prefill_tps           AS prefill_tps,
    r.prefill_tps_sd        AS prefill_tps_sd,
    r.decode_tps            AS decode_tps,
    r.decode_tps_sd         AS decode_tps_sd,
    r.ttft_ms               AS ttft_ms,
    r.ttft_ms_sd            AS ttft_ms_sd,
    r.load_ms               AS load_ms,
    r.rss_peak_bytes        AS rss_peak_bytes,
    r.model_buffer_bytes    AS model_buffer_bytes,
    r.repack_buffer_bytes   AS repack_buffer_bytes,
    r.kv_buffer_bytes       AS kv_buffer_bytes,
    r.compute_buffer_bytes  AS compute_buffer_bytes,
    r.output_buffer_bytes   AS output_buffer_bytes,
    r.vram_peak_bytes       AS vram_peak_bytes,
    r.vram_proc_peak_bytes  AS vram_proc_peak_bytes,
    r.prefill_power_avg_w   AS prefill_power_avg_w,
    r.prefill_power_peak_w  AS prefill_power_peak_w,
    r.prefill_energy_j      AS prefill_energy_j,
    r.prefill_tokens_per_joule AS prefill_tokens_per_joule,
    r.decode_power_avg_w    AS decode_power_avg_w,
    r.decode_power_peak_w   AS decode_power_peak_w,
    r.decode_energy_j       AS decode_energy_j,
    r.decode_tokens_per_joule AS decode_tokens_per_joule,
    r.energy_method         AS energy_method,
    r.metric_source         AS metric_source,
    (SELECT COUNT(*) FROM repetition rep WHERE rep.result_id = r.id) AS n_reps,
    r.repetitions_expected  AS n_reps_expected,
    run.source              AS source,
    r.id                    AS result_id
FROM result r
JOIN run                 ON run.id = r.run_id
JOIN host                ON host.id = run.host_id
JOIN backend_build bb    ON bb.id = r.backend_build_id
JOIN workload w          ON w.id = r.workload_id
LEFT JOIN model m        ON m.id = r.model_id;
