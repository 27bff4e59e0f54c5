//! Writing a run: its host, build and models, then each cell's results, repetitions and
//! telemetry in one transaction per cell, every column bound by name ([`crate::columns::Insert`]).

use super::*;

impl Store {
    /// Records the host (once per identity) and a new run on it.
    pub async fn begin_run(&self, run: &NewRun, host: &HostInfo) -> Result<RunId, StoreError> {
        let mut tx = self.pool.begin().await.map_err(sql("begin a run"))?;
        let HostInfo {
            hostname,
            cpu_model,
            cpu_cores_logical,
            cpu_cores_physical,
            memory_total_bytes,
            os,
            kernel,
            arch,
            gpus,
        } = host;
        let gpus_json = serde_json::to_string(gpus).unwrap_or_else(|_| "[]".into());
        sqlx::query(
            "INSERT INTO host (identity, hostname, cpu_model, cpu_cores_logical, cpu_cores_physical,
                               memory_total_bytes, os, kernel, arch, gpus_json, first_seen_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
             ON CONFLICT (identity) DO UPDATE SET os = excluded.os, kernel = excluded.kernel",
        )
        .bind(host.identity())
        .bind(hostname)
        .bind(cpu_model)
        .bind(cpu_cores_logical)
        .bind(cpu_cores_physical)
        .bind(memory_total_bytes.map(|b| b as i64))
        .bind(os)
        .bind(kernel)
        .bind(arch)
        .bind(gpus_json)
        .bind(&run.started_at)
        .execute(&mut *tx)
        .await
        .map_err(sql("record the host"))?;
        let (host_id,): (i64,) = sqlx::query_as("SELECT id FROM host WHERE identity = ?")
            .bind(host.identity())
            .fetch_one(&mut *tx)
            .await
            .map_err(sql("record the host"))?;
        let id = sqlx::query(
            "INSERT INTO run (uuid, started_at, suite_name, suite_path, config_text,
                              tokbench_version, trigger, status, cells_total, host_id, source,
                              hardware)
             VALUES (?, ?, ?, ?, ?, ?, ?, 'running', ?, ?, ?, ?)",
        )
        .bind(&run.uuid)
        .bind(&run.started_at)
        .bind(&run.suite_name)
        .bind(&run.suite_path)
        .bind(&run.config_text)
        .bind(&run.tokbench_version)
        .bind(&run.trigger)
        .bind(run.cells_total as i64)
        .bind(host_id)
        .bind(&run.source)
        .bind(&run.hardware)
        .execute(&mut *tx)
        .await
        .map_err(sql("record the run"))?
        .last_insert_rowid();
        tx.commit().await.map_err(sql("record the run"))?;
        Ok(RunId(id))
    }

    /// Marks a run finished.
    pub async fn finish_run(
        &self,
        run: RunId,
        status: RunStatus,
        finished_at: &str,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE run SET status = ?, finished_at = ? WHERE id = ?")
            .bind(status.as_str())
            .bind(finished_at)
            .bind(run.0)
            .execute(&self.pool)
            .await
            .map_err(sql("finish the run"))?;
        Ok(())
    }

    /// A stored run, by UUID.
    pub async fn run_by_uuid(&self, uuid: &str) -> Result<Option<StoredRun>, StoreError> {
        #[derive(sqlx::FromRow)]
        struct Row {
            id: i64,
            uuid: String,
            suite_path: Option<String>,
            config_text: Option<String>,
            status: String,
        }
        let row: Option<Row> = sqlx::query_as(
            "SELECT id, uuid, suite_path, config_text, status FROM run WHERE uuid = ?",
        )
        .bind(uuid)
        .fetch_optional(&self.pool)
        .await
        .map_err(sql("look up the run"))?;
        let Some(Row {
            id,
            uuid,
            suite_path,
            config_text,
            status,
        }) = row
        else {
            return Ok(None);
        };
        let status = status.parse::<RunStatus>().map_err(|e| StoreError::Sql {
            what: format!("read run {uuid}"),
            source: sqlx::Error::Decode(Box::new(e)),
        })?;
        Ok(Some(StoredRun {
            id: RunId(id),
            uuid,
            suite_path,
            config_text,
            status,
        }))
    }

    /// The cell indices of a run that have a stored result.
    pub async fn stored_cells(&self, run: RunId) -> Result<Vec<usize>, StoreError> {
        let rows: Vec<(i64,)> =
            sqlx::query_as("SELECT DISTINCT cell_index FROM result WHERE run_id = ? ORDER BY 1")
                .bind(run.0)
                .fetch_all(&self.pool)
                .await
                .map_err(sql("read the run's cells"))?;
        Ok(rows.into_iter().map(|(i,)| i as usize).collect())
    }

    /// Removes a run's results that were cut short by an interrupt, so a resume measures
    /// those cells again.
    pub async fn delete_unfinished_results(&self, run: RunId) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM result WHERE run_id = ? AND status = 'interrupted'")
            .bind(run.0)
            .execute(&self.pool)
            .await
            .map_err(sql("clear interrupted results"))?;
        Ok(done.rows_affected())
    }

    /// Marks a run running again (for a resume).
    pub async fn reopen_run(&self, run: RunId) -> Result<(), StoreError> {
        sqlx::query("UPDATE run SET status = 'running', finished_at = NULL WHERE id = ?")
            .bind(run.0)
            .execute(&self.pool)
            .await
            .map_err(sql("reopen the run"))?;
        Ok(())
    }

    /// The id of a backend build, recorded on first sight.
    pub async fn backend_build(&self, b: &BackendBuild) -> Result<BuildId, StoreError> {
        let BackendBuild {
            name,
            version,
            commit,
            accel,
            flags,
        } = b;
        sqlx::query(
            "INSERT INTO backend_build (name, version, commit_sha, accel, flags)
             VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
        )
        .bind(name)
        .bind(version)
        .bind(commit)
        .bind(accel)
        .bind(flags)
        .execute(&self.pool)
        .await
        .map_err(sql("record the backend build"))?;
        let (id,): (i64,) = sqlx::query_as(
            "SELECT id FROM backend_build WHERE name = ? AND version = ?
               AND IFNULL(commit_sha, '') = IFNULL(?, '') AND accel = ? AND flags = ?",
        )
        .bind(name)
        .bind(version)
        .bind(commit)
        .bind(accel)
        .bind(flags)
        .fetch_one(&self.pool)
        .await
        .map_err(sql("record the backend build"))?;
        Ok(BuildId(id))
    }

    /// The id of a model, recorded on first sight.
    pub async fn model(&self, m: &ModelRecord) -> Result<ModelId, StoreError> {
        let ModelRecord {
            name,
            architecture,
            quant,
            n_params,
            file_bytes,
            file_sha256,
            shape_json,
            origin,
        } = m;
        sqlx::query(
            "INSERT INTO model (name, architecture, quant, n_params, file_bytes, file_sha256,
                                shape_json, origin)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (file_sha256, name) DO NOTHING",
        )
        .bind(name)
        .bind(architecture)
        .bind(quant)
        .bind(*n_params as i64)
        .bind(*file_bytes as i64)
        .bind(file_sha256)
        .bind(shape_json)
        .bind(origin)
        .execute(&self.pool)
        .await
        .map_err(sql("record the model"))?;
        let (id,): (i64,) =
            sqlx::query_as("SELECT id FROM model WHERE file_sha256 = ? AND name = ?")
                .bind(file_sha256)
                .bind(name)
                .fetch_one(&self.pool)
                .await
                .map_err(sql("record the model"))?;
        Ok(ModelId(id))
    }

    /// Stores one cell's result and its repetitions in one transaction.
    pub async fn insert_result(
        &self,
        run: RunId,
        build: BuildId,
        model: Option<ModelId>,
        model_name: &str,
        repetitions_expected: u32,
        r: &CellResult,
    ) -> Result<ResultId, StoreError> {
        let ids = self
            .insert_results(run, build, model, model_name, repetitions_expected, &[r])
            .await?;
        Ok(ids[0])
    }

    /// Stores the results of one cell (a server cell's client and server figures) in one
    /// transaction: a crash stores both or neither, so a resumed run never finds the cell
    /// half stored.
    pub async fn insert_results(
        &self,
        run: RunId,
        build: BuildId,
        model: Option<ModelId>,
        model_name: &str,
        repetitions_expected: u32,
        rs: &[&CellResult],
    ) -> Result<Vec<ResultId>, StoreError> {
        let mut tx = self.pool.begin().await.map_err(sql("store a result"))?;
        let mut ids = Vec::with_capacity(rs.len());
        for r in rs {
            ids.push(
                insert_one(
                    &mut tx,
                    run,
                    build,
                    model,
                    model_name,
                    repetitions_expected,
                    r,
                )
                .await?,
            );
        }
        tx.commit().await.map_err(sql("store a result"))?;
        Ok(ids)
    }
}

pub(crate) async fn insert_one(
    tx: &mut sqlx::SqliteConnection,
    run: RunId,
    build: BuildId,
    model: Option<ModelId>,
    model_name: &str,
    repetitions_expected: u32,
    r: &CellResult,
) -> Result<ResultId, StoreError> {
    {
        let CellResult {
            cell_index,
            test,
            params,
            status,
            error,
            metric_source,
            load_ms,
            rss_peak_bytes,
            allocated,
            telemetry,
            repetitions,
            serving,
            backend_json,
            log_tail,
            started_at,
            duration_ms,
            conditions,
        } = r;
        // A server backend's cells (client and server figures) are `serve` workloads: the
        // same pp/tg label means a request, not an engine test.
        let kind = if serving.is_some() || *metric_source != tokbench_core::MetricSource::Engine {
            "serve"
        } else {
            "bench"
        };
        let alloc = allocated.unwrap_or_default();
        let phase = |name: &str| {
            telemetry
                .as_ref()
                .and_then(|t| t.phase(name))
                .cloned()
                .unwrap_or_default()
        };
        let (t_prefill, t_decode) = (phase("prefill"), phase("decode"));
        let peak = |f: fn(&tokbench_core::record::PhaseFigures) -> Option<u64>| {
            telemetry
                .as_ref()
                .and_then(|t| t.phases.iter().filter_map(f).max())
        };
        let telemetry_json = telemetry.as_ref().map(|t| {
            serde_json::json!({"phases": t.phases, "unavailable": t.unavailable}).to_string()
        });
        let sv = serving.as_ref().map(|s| &s.summary);
        sqlx::query(
            "INSERT INTO workload (kind, label, n_prompt, n_gen, n_depth) VALUES (?, ?, ?, ?, ?)
             ON CONFLICT (kind, n_prompt, n_gen, n_depth) DO NOTHING",
        )
        .bind(kind)
        .bind(test.label())
        .bind(test.n_prompt)
        .bind(test.n_gen)
        .bind(test.n_depth)
        .execute(&mut *tx)
        .await
        .map_err(sql("store a result's workload"))?;
        let (workload_id,): (i64,) = sqlx::query_as(
            "SELECT id FROM workload WHERE kind = ? AND n_prompt = ? AND n_gen = ? AND n_depth = ?",
        )
        .bind(kind)
        .bind(test.n_prompt)
        .bind(test.n_gen)
        .bind(test.n_depth)
        .fetch_one(&mut *tx)
        .await
        .map_err(sql("store a result's workload"))?;
        let summary = r.summary();
        let telemetry_method = t_decode
            .energy_method
            .clone()
            .or(t_prefill.energy_method.clone());
        let id = Insert::into("result")
            .set("run_id", run.0)
            .set("cell_index", *cell_index as i64)
            .set("backend_build_id", build.0)
            .set("model_id", model.map(|m| m.0))
            .set("model_name", model_name)
            .set("workload_id", workload_id)
            .set("n_threads", params.n_threads)
            .set("n_batch", params.n_batch)
            .set("n_ubatch", params.n_ubatch)
            .set("n_gpu_layers", params.n_gpu_layers)
            .set("flash_attn", params.flash_attn)
            .set("type_k", params.type_k.name())
            .set("type_v", params.type_v.name())
            .set("use_mmap", params.use_mmap)
            .set("status", status.as_str())
            .set("error", error)
            .set("metric_source", metric_source.as_str())
            .set("repetitions_expected", repetitions_expected)
            .set("prefill_tps", summary.prefill_tps)
            .set("prefill_tps_sd", summary.prefill_tps_sd)
            .set("decode_tps", summary.decode_tps)
            .set("decode_tps_sd", summary.decode_tps_sd)
            .set("ttft_ms", summary.ttft_ms)
            .set("ttft_ms_sd", summary.ttft_ms_sd)
            .set("load_ms", *load_ms)
            .set("rss_peak_bytes", *rss_peak_bytes)
            .set("model_buffer_bytes", alloc.model_bytes)
            .set("repack_buffer_bytes", alloc.repack_bytes)
            .set("kv_buffer_bytes", alloc.kv_bytes)
            .set("compute_buffer_bytes", alloc.compute_bytes)
            .set("output_buffer_bytes", alloc.output_bytes)
            .set("log_tail", log_tail)
            .set("started_at", started_at.as_str())
            .set("duration_ms", *duration_ms)
            .set("vram_peak_bytes", peak(|p| p.vram_peak_bytes))
            .set("vram_proc_peak_bytes", peak(|p| p.vram_proc_peak_bytes))
            .set("prefill_power_avg_w", t_prefill.power_avg_w)
            .set("prefill_power_peak_w", t_prefill.power_peak_w)
            .set("prefill_energy_j", t_prefill.energy_j)
            .set("prefill_tokens_per_joule", t_prefill.tokens_per_joule)
            .set("decode_power_avg_w", t_decode.power_avg_w)
            .set("decode_power_peak_w", t_decode.power_peak_w)
            .set("decode_energy_j", t_decode.energy_j)
            .set("decode_tokens_per_joule", t_decode.tokens_per_joule)
            .set("energy_method", telemetry_method)
            .set("telemetry_json", telemetry_json)
            .set("concurrency", sv.and_then(|s| s.concurrency))
            .set("request_rate", sv.and_then(|s| s.request_rate))
            .set("n_requests", sv.map(|s| s.n_requests))
            .set("n_requests_failed", sv.map(|s| s.n_failed))
            .set("ttft_p50_ms", sv.and_then(|s| s.ttft_ms.p50))
            .set("ttft_p90_ms", sv.and_then(|s| s.ttft_ms.p90))
            .set("ttft_p99_ms", sv.and_then(|s| s.ttft_ms.p99))
            .set("tpot_ms", sv.and_then(|s| s.tpot_ms.mean))
            .set("tpot_p50_ms", sv.and_then(|s| s.tpot_ms.p50))
            .set("tpot_p90_ms", sv.and_then(|s| s.tpot_ms.p90))
            .set("tpot_p99_ms", sv.and_then(|s| s.tpot_ms.p99))
            .set("itl_ms", sv.and_then(|s| s.itl_ms.mean))
            .set("itl_p50_ms", sv.and_then(|s| s.itl_ms.p50))
            .set("itl_p90_ms", sv.and_then(|s| s.itl_ms.p90))
            .set("itl_p99_ms", sv.and_then(|s| s.itl_ms.p99))
            .set("e2e_ms", sv.and_then(|s| s.e2e_ms.mean))
            .set("e2e_p50_ms", sv.and_then(|s| s.e2e_ms.p50))
            .set("e2e_p90_ms", sv.and_then(|s| s.e2e_ms.p90))
            .set("e2e_p99_ms", sv.and_then(|s| s.e2e_ms.p99))
            .set("request_throughput", sv.and_then(|s| s.request_throughput))
            .set("output_tps", sv.and_then(|s| s.output_tps))
            .set("backend_json", backend_json)
            .set("noisy", r.noisy())
            .set("throttled", conditions.as_ref().and_then(|c| c.throttled))
            .set(
                "throttle_reason",
                conditions.as_ref().and_then(|c| c.throttle.as_deref()),
            )
            .set(
                "cpu_governor",
                conditions.as_ref().and_then(|c| c.cpu_governor.as_deref()),
            )
            .execute(&mut *tx)
            .await
            .map_err(sql("store a result"))?
            .last_insert_rowid();
        for rq in serving.iter().flat_map(|s| &s.requests) {
            sqlx::query(
                "INSERT INTO request (result_id, idx, start_ms, ttft_ms, e2e_ms, tpot_ms, n_prompt, n_gen,
                    itl_json, server_json, error)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(id)
            .bind(rq.index)
            .bind(rq.start_ms)
            .bind(rq.ttft_ms)
            .bind(rq.e2e_ms)
            .bind(rq.tpot_ms())
            .bind(rq.n_prompt)
            .bind(rq.n_gen)
            .bind(serde_json::to_string(&rq.itl_ms).unwrap_or_else(|_| "[]".into()))
            .bind(rq.server.as_ref().and_then(|t| serde_json::to_string(t).ok()))
            .bind(&rq.error)
            .execute(&mut *tx)
            .await
            .map_err(sql("store a request"))?;
        }
        for (i, rep) in repetitions.iter().enumerate() {
            sqlx::query(
                "INSERT INTO repetition (result_id, rep, prefill_tps, decode_tps, ttft_ms, prompt_ms, gen_ms)
                 VALUES (?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(id)
            .bind(i as i64)
            .bind(rep.prefill_tps)
            .bind(rep.decode_tps)
            .bind(rep.ttft_ms)
            .bind(rep.prompt_ms)
            .bind(rep.gen_ms)
            .execute(&mut *tx)
            .await
            .map_err(sql("store a repetition"))?;
        }
        for t in telemetry.iter().flat_map(|t| &t.samples) {
            sqlx::query(
                "INSERT INTO telemetry_sample (result_id, t_ms, phase, metric, value, source)
                 VALUES (?, ?, ?, ?, ?, ?)",
            )
            .bind(id)
            .bind(t.t_ms)
            .bind(&t.phase)
            .bind(&t.metric)
            .bind(t.value)
            .bind(&t.source)
            .execute(&mut *tx)
            .await
            .map_err(sql("store a telemetry sample"))?;
        }
        Ok(ResultId(id))
    }
}
