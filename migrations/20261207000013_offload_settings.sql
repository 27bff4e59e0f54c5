-- How a model is spread over devices beyond `n_gpu_layers` (llama-bench's `-ncmoe`, `-sm`,
-- `-mg`, `-ts`, `-ot`): the expert weights of the first `n_cpu_moe` layers kept on the CPU;
-- `split_mode` none/row/tensor; `main_gpu`; `tensor_split` as llama-bench prints it
-- (`3.00/1.00`); `tensor_buft_overrides`, `PATTERN=BUFFER` pairs joined by `;`. Each is part
-- of a result's series. llama.cpp's default of each (0, layer, 0, an even split by free
-- memory, none) is stored as NULL, so the results stored before these columns existed,
-- all at those defaults, stay in their series.
ALTER TABLE result ADD COLUMN n_cpu_moe INTEGER;
ALTER TABLE result ADD COLUMN split_mode TEXT;
ALTER TABLE result ADD COLUMN main_gpu INTEGER;
ALTER TABLE result ADD COLUMN tensor_split TEXT;
ALTER TABLE result ADD COLUMN tensor_buft_overrides TEXT;

-- The report and `check` group by series: the covering index gains the new key columns
-- (see 20261205000008_report_index.sql).
DROP INDEX result_report;
CREATE INDEX result_report ON result (
    run_id, status, backend_build_id, model_id, model_name, workload_id, metric_source,
    cell_index, n_threads, n_batch, n_ubatch, n_gpu_layers, flash_attn, type_k, type_v,
    use_mmap, concurrency, request_rate, prefill_tps, prefill_tps_sd, decode_tps,
    decode_tps_sd, ttft_ms, rss_peak_bytes, noisy, throttled, decode_power_avg_w,
    vram_peak_bytes, n_cpu_moe, split_mode, main_gpu, tensor_split, tensor_buft_overrides
);

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
    w.kind                  AS workload_kind,
    w.n_prompt              AS n_prompt,
    w.n_gen                 AS n_gen,
    w.n_depth               AS n_depth,
    r.n_threads             AS n_threads,
    r.n_batch               AS n_batch,
    r.n_ubatch              AS n_ubatch,
    r.n_gpu_layers          AS n_gpu_layers,
    r.n_cpu_moe             AS n_cpu_moe,
    r.split_mode            AS split_mode,
    r.main_gpu              AS main_gpu,
    r.flash_attn            AS flash_attn,
    r.type_k                AS type_k,
    r.type_v                AS type_v,
    r.tensor_split          AS tensor_split,
    r.tensor_buft_overrides AS tensor_buft_overrides,
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
    r.concurrency           AS concurrency,
    r.request_rate          AS request_rate,
    r.n_requests            AS n_requests,
    r.n_requests_failed     AS n_requests_failed,
    r.ttft_p50_ms           AS ttft_p50_ms,
    r.ttft_p90_ms           AS ttft_p90_ms,
    r.ttft_p99_ms           AS ttft_p99_ms,
    r.tpot_ms               AS tpot_ms,
    r.tpot_p50_ms           AS tpot_p50_ms,
    r.tpot_p90_ms           AS tpot_p90_ms,
    r.tpot_p99_ms           AS tpot_p99_ms,
    r.itl_ms                AS itl_ms,
    r.itl_p50_ms            AS itl_p50_ms,
    r.itl_p90_ms            AS itl_p90_ms,
    r.itl_p99_ms            AS itl_p99_ms,
    r.e2e_ms                AS e2e_ms,
    r.e2e_p50_ms            AS e2e_p50_ms,
    r.e2e_p90_ms            AS e2e_p90_ms,
    r.e2e_p99_ms            AS e2e_p99_ms,
    r.request_throughput    AS request_throughput,
    r.output_tps            AS output_tps,
    (SELECT COUNT(*) FROM repetition rep WHERE rep.result_id = r.id) AS n_reps,
    r.repetitions_expected  AS n_reps_expected,
    r.noisy                 AS noisy,
    r.throttled             AS throttled,
    r.throttle_reason       AS throttle_reason,
    r.cpu_governor          AS cpu_governor,
    run.source              AS source,
    r.params_auto           AS params_auto,
    r.n_layers_offloaded    AS n_layers_offloaded,
    r.n_layers_total        AS n_layers_total,
    r.placement_json        AS placement_json,
    r.id                    AS result_id
FROM result r
JOIN run                 ON run.id = r.run_id
JOIN host                ON host.id = run.host_id
JOIN backend_build bb    ON bb.id = r.backend_build_id
JOIN workload w          ON w.id = r.workload_id
LEFT JOIN model m        ON m.id = r.model_id;
