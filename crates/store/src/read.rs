//! Reading back: a run's results, fit inputs, ad-hoc read-only queries, integrity.

use super::*;
use crate::series::parsed;

impl Store {
    /// The results of the newest run (or of the run `run_uuid`), in cell order.
    pub async fn results(&self, run_uuid: Option<&str>) -> Result<Vec<ResultRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT v.*, r.use_mmap AS use_mmap FROM v_results v JOIN result r ON r.id = v.result_id
             WHERE v.run_uuid = COALESCE(?, (SELECT uuid FROM run ORDER BY started_at DESC, id DESC LIMIT 1))
             ORDER BY r.cell_index, v.metric_source",
        )
        .bind(run_uuid)
        .fetch_all(&self.pool)
        .await
        .map_err(sql("read results"))?;
        rows.iter().map(result_row).collect()
    }

    /// What `tokbench fit --db` needs of each ok result of the newest run: the model's
    /// shape, the cell's context settings and the memory it took.
    pub async fn fit_inputs(&self) -> Result<Vec<FitInput>, StoreError> {
        let rows = sqlx::query(
            "SELECT r.model_name AS model, m.architecture, m.quant, w.label AS test,
                    w.n_prompt, w.n_gen, w.n_depth, r.n_ubatch, r.flash_attn, r.type_k, r.type_v,
                    m.shape_json, r.rss_peak_bytes, bb.accel, r.model_buffer_bytes, r.repack_buffer_bytes,
                    r.kv_buffer_bytes, r.compute_buffer_bytes, r.output_buffer_bytes,
                    r.placement_json
             FROM result r
             JOIN model m ON m.id = r.model_id
             JOIN workload w ON w.id = r.workload_id
             JOIN backend_build bb ON bb.id = r.backend_build_id
             WHERE r.status = 'ok'
               AND r.run_id = (SELECT id FROM run ORDER BY started_at DESC, id DESC LIMIT 1)
             ORDER BY r.cell_index, r.metric_source",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(sql("read fit inputs"))?;
        rows.iter()
            .map(fit_input)
            .collect::<Result<_, _>>()
            .map_err(sql("read fit inputs"))
    }

    /// Records what telemetry saw of the machine for a run (drivers, power limits, clocks,
    /// and what it could not measure), as JSON.
    pub async fn set_run_environment(&self, run: RunId, json: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE run SET environment_json = ? WHERE id = ?")
            .bind(json)
            .bind(run.0)
            .execute(&self.pool)
            .await
            .map_err(sql("store the run's environment"))?;
        Ok(())
    }

    /// Runs one read-only statement and returns its rows as JSON values.
    pub async fn query(&self, statement: &str) -> Result<QueryOutput, StoreError> {
        let mut out = QueryOutput {
            columns: Vec::new(),
            rows: Vec::new(),
        };
        self.query_each(statement, |event| {
            match event {
                QueryEvent::Columns(c) => out.columns = c.to_vec(),
                QueryEvent::Row(cells) => out.rows.push(cells.iter().map(Cell::to_json).collect()),
            }
            ControlFlow::Continue(())
        })
        .await?;
        Ok(out)
    }

    /// Runs one read-only statement and hands `each` its column names, then every row as
    /// SQLite steps to it, without holding more than that row: memory stays flat in the
    /// number of rows. `each` stops the statement early by returning `Break`.
    ///
    /// The statement runs on the connection's own SQLite handle, not through sqlx's row
    /// stream, which copies every value of every row and hands it to another thread (4×
    /// the sqlite3 shell's time for `SELECT * FROM v_results`).
    pub async fn query_each<F>(&self, statement: &str, each: F) -> Result<(), StoreError>
    where
        F: FnMut(QueryEvent<'_>) -> ControlFlow<()>,
    {
        self.query_each_within(statement, None, each).await
    }

    /// [`Store::query_each`], stopped with [`StoreError::TimedOut`] once `limit` has passed
    /// since it began (the rows handed out by then stay handed out).
    pub async fn query_each_within<F>(
        &self,
        statement: &str,
        limit: Option<std::time::Duration>,
        each: F,
    ) -> Result<(), StoreError>
    where
        F: FnMut(QueryEvent<'_>) -> ControlFlow<()>,
    {
        let mut conn = self
            .pool
            .acquire()
            .await
            .map_err(sql("open a connection"))?;
        let mut handle = conn.lock_handle().await.map_err(sql("open a connection"))?;
        crate::stream::step_each(handle.as_raw_handle(), statement, limit, each)
    }

    /// The check a writing command ends with: SQLite's `quick_check` where the file is at
    /// most `max_bytes`, else a line saying it was not checked and how to check it. The
    /// quick check reads every page (b-tree structure, records, NOT NULL and CHECK) but does
    /// not match each index against its table, which `tokbench doctor`'s full
    /// [`Store::integrity_check`] does: on a 100,000-result import (57 MB) 0.24 s against
    /// 2.07 s in the sqlite3 shell, about 0.4 s of the import's 3.5 s. Either check reads the
    /// whole file, so its cost follows the database, not what the command wrote.
    pub async fn integrity_check_up_to(&self, max_bytes: u64) -> Result<String, StoreError> {
        let (bytes,): (i64,) = sqlx::query_as(
            "SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(sql("read the database's size"))?;
        let bytes = u64::try_from(bytes).unwrap_or(0);
        if bytes > max_bytes {
            return Ok(format!(
                "not checked at {} MiB (`tokbench doctor` checks it)",
                bytes >> 20
            ));
        }
        self.pragma_check("quick_check").await
    }

    /// `PRAGMA integrity_check`: "ok", or what is wrong.
    pub async fn integrity_check(&self) -> Result<String, StoreError> {
        self.pragma_check("integrity_check").await
    }

    async fn pragma_check(&self, pragma: &str) -> Result<String, StoreError> {
        let rows: Vec<(String,)> = sqlx::query_as(&format!("PRAGMA {pragma}"))
            .fetch_all(&self.pool)
            .await
            .map_err(sql("check integrity"))?;
        Ok(rows
            .into_iter()
            .map(|(s,)| s)
            .collect::<Vec<_>>()
            .join("; "))
    }

    /// Closes the pool, checkpointing the WAL.
    pub async fn close(self) {
        self.pool.close().await;
    }
}

/// A column's text that names none of tokbench's values, as a decode error.
pub(crate) fn decode<T>(parsed: Result<T, tokbench_core::UnknownName>) -> Result<T, sqlx::Error> {
    parsed.map_err(|e| sqlx::Error::Decode(Box::new(e)))
}

pub(crate) fn result_row(row: &SqliteRow) -> Result<ResultRow, StoreError> {
    let get = sql("decode a v_results row");
    (|| -> Result<ResultRow, sqlx::Error> {
        Ok(ResultRow {
            run_uuid: row.try_get("run_uuid")?,
            started_at: row.try_get("started_at")?,
            host: row.try_get("host")?,
            backend: row.try_get("backend")?,
            model: row.try_get("model")?,
            quant: row.try_get("quant")?,
            test: row.try_get("test")?,
            settings: settings_of(row)?,
            status: decode(row.try_get::<String, _>("status")?.parse::<ResultStatus>())?,
            error: row.try_get("error")?,
            prefill_tps: row.try_get("prefill_tps")?,
            prefill_tps_sd: row.try_get("prefill_tps_sd")?,
            decode_tps: row.try_get("decode_tps")?,
            decode_tps_sd: row.try_get("decode_tps_sd")?,
            ttft_ms: row.try_get("ttft_ms")?,
            rss_peak_bytes: row.try_get("rss_peak_bytes")?,
            metric_source: decode(
                row.try_get::<String, _>("metric_source")?
                    .parse::<MetricSource>(),
            )?,
            n_reps: row.try_get("n_reps")?,
            concurrency: row.try_get("concurrency")?,
            ttft_p99_ms: row.try_get("ttft_p99_ms")?,
            output_tps: row.try_get("output_tps")?,
            noisy: row.try_get("noisy")?,
            throttled: row.try_get("throttled")?,
            throttle_reason: row.try_get("throttle_reason")?,
            cpu_governor: row.try_get("cpu_governor")?,
            params_auto: row.try_get("params_auto")?,
            source: row.try_get("source")?,
        })
    })()
    .map_err(get)
}

/// The engine settings columns of a `v_results` row (plus `use_mmap` from `result`); text
/// that does not parse is an error naming the column.
fn settings_of(row: &SqliteRow) -> Result<tokbench_core::EngineSettings, sqlx::Error> {
    let small = |c: &str| -> Result<Option<u32>, sqlx::Error> {
        Ok(row
            .try_get::<Option<i64>, _>(c)?
            .and_then(|v| u32::try_from(v).ok()))
    };
    Ok(tokbench_core::EngineSettings {
        n_threads: small("n_threads")?,
        n_batch: small("n_batch")?,
        n_ubatch: small("n_ubatch")?,
        n_gpu_layers: row
            .try_get::<Option<i64>, _>("n_gpu_layers")?
            .and_then(|v| i32::try_from(v).ok()),
        flash_attn: row.try_get("flash_attn")?,
        type_k: parsed(row, "type_k")?,
        type_v: parsed(row, "type_v")?,
        use_mmap: row.try_get("use_mmap")?,
        n_cpu_moe: small("n_cpu_moe")?,
        split_mode: parsed(row, "split_mode")?,
        main_gpu: small("main_gpu")?,
        tensor_split: parsed(row, "tensor_split")?,
        tensor_buft_overrides: parsed(row, "tensor_buft_overrides")?,
    })
}
