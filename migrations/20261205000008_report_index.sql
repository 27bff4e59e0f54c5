-- Indexes for the statements that read many results: the report (every ok result) and
-- `check` (a series' history over a date range).
--
-- `result_report` holds every column of `result` those statements read, so SQLite answers
-- them from the index and never touches the wide rows: telemetry_json, backend_json and
-- log_tail sit before the later columns in each row and often spill to overflow pages
-- that must be walked to reach them. It leads with run_id so a date range found through
-- `run_by_started` lands on its runs' results directly. At 100,000 results (the
-- scripts/gen-db.sh database) in the sqlite3 shell: the report's statement 1.3 s → 0.65 s,
-- check's history over three months 2.4 s → 0.007 s, for about 12 MB of index. Keep it in
-- step with POINTS_SQL (crates/store/src/points.rs) and series_sql (series.rs): a store
-- test checks that both plans still read the covering index.
CREATE INDEX result_report ON result (
    run_id, status, backend_build_id, model_id, model_name, workload_id, metric_source,
    cell_index, n_threads, n_batch, n_ubatch, n_gpu_layers, flash_attn, type_k, type_v,
    use_mmap, concurrency, request_rate, prefill_tps, prefill_tps_sd, decode_tps,
    decode_tps_sd, ttft_ms, rss_peak_bytes, noisy, throttled, decode_power_avg_w,
    vram_peak_bytes
);
CREATE INDEX run_by_started ON run (started_at);
