-- What llama.cpp itself reports allocating (its "… buffer size = X MiB" log lines), summed
-- over devices: the weights (and a CPU repacked copy), this test's KV cache, compute (graph scratch) and output
-- buffers. NULL where the backend does not report them. `tokbench fit --db` sets them
-- beside its prediction; peak RSS alone also counts the program and its libraries.
ALTER TABLE result ADD COLUMN model_buffer_bytes INTEGER;
-- The CPU backend's repacked second copy of Q4_0/Q4_K/IQ4_NL weight matrices (CPU_REPACK).
ALTER TABLE result ADD COLUMN repack_buffer_bytes INTEGER;
ALTER TABLE result ADD COLUMN kv_buffer_bytes INTEGER;
ALTER TABLE result ADD COLUMN compute_buffer_bytes INTEGER;
ALTER TABLE result ADD COLUMN output_buffer_bytes INTEGER;

-- The hardware a run measured, as the catalog names it ("2× GeForce RTX 3090"): the suite's
-- `hardware` key, else the host's detected device matched to the catalog at run time;
-- NULL when nothing matched (the reports then show the detected device name).
ALTER TABLE run ADD COLUMN hardware TEXT;

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
