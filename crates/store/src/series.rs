//! Series and history for regression gating (`tokbench check`): which results measure the
//! same thing, their repetitions, the verdicts reached and the change points that restart
//! a baseline.
//!
//! What a series is, is [`tokbench_core::SeriesKey`]'s to say; this module decodes it from
//! the stored columns ([`SERIES_COLUMNS`]). Two results of a series are the same
//! measurement taken at two times.

use std::collections::HashMap;

use std::collections::HashSet;

use futures_util::TryStreamExt;
use serde::Serialize;
use sqlx::sqlite::SqliteRow;
use sqlx::Row;
use tokbench_core::{
    BackendIdentity, CacheType, EngineSettings, MetricSource, ModelIdentity, RequestRate,
    RunSelector, SeriesKey, ServeLoad, TestSpec,
};

use crate::stream::Columns;
use crate::{sql, Store, StoreError};

/// The columns a [`SeriesKey`] is decoded from, for a query that joins `result r`, `run`,
/// `host`, `backend_build bb`, `workload w` and `LEFT JOIN model m`. Every query that
/// groups results by series selects these and decodes them with [`series_key`].
pub(crate) const SERIES_COLUMNS: &str = "host.identity AS k_host, bb.name AS k_backend, bb.accel AS k_accel, bb.flags AS k_flags, r.metric_source AS k_source,
    COALESCE(m.name, r.model_name) AS k_model, COALESCE(m.quant, '') AS k_quant,
    m.file_sha256 AS k_sha256, w.n_prompt AS k_n_prompt, w.n_gen AS k_n_gen,
    w.n_depth AS k_n_depth, r.n_threads AS k_n_threads, r.n_batch AS k_n_batch,
    r.n_ubatch AS k_n_ubatch, r.n_gpu_layers AS k_n_gpu_layers, r.flash_attn AS k_flash_attn,
    r.type_k AS k_type_k, r.type_v AS k_type_v, r.use_mmap AS k_use_mmap,
    r.concurrency AS k_concurrency, r.request_rate AS k_request_rate,
    r.n_cpu_moe AS k_n_cpu_moe, r.split_mode AS k_split_mode, r.main_gpu AS k_main_gpu,
    r.tensor_split AS k_tensor_split, r.tensor_buft_overrides AS k_tensor_buft_overrides";

/// Decodes the [`SERIES_COLUMNS`] of a row.
pub(crate) fn series_key(row: &impl Columns) -> Result<SeriesKey, sqlx::Error> {
    let small = |c: &str| -> Result<Option<u32>, sqlx::Error> {
        Ok(row.int(c)?.and_then(|v| u32::try_from(v).ok()))
    };
    let cache = |c: &str| -> Result<Option<CacheType>, sqlx::Error> {
        row.with_text(c, |t| t.and_then(|s| s.parse::<CacheType>().ok()))
    };
    let metric_source = row
        .with_text("k_source", |t| {
            t.unwrap_or_default().parse::<MetricSource>()
        })?
        .map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
    let test = TestSpec {
        n_prompt: small("k_n_prompt")?.unwrap_or(0),
        n_gen: small("k_n_gen")?.unwrap_or(0),
        n_depth: small("k_n_depth")?.unwrap_or(0),
    };
    Ok(SeriesKey {
        host: row.text_required("k_host")?,
        backend: BackendIdentity {
            name: row.text_required("k_backend")?,
            accel: row.text_required("k_accel")?,
            flags: row.text_required("k_flags")?,
        },
        metric_source,
        model: ModelIdentity {
            name: row.text_required("k_model")?,
            quant: row.text_required("k_quant")?,
            sha256: row.text("k_sha256")?.filter(|s| !s.is_empty()),
        },
        test,
        settings: EngineSettings {
            n_threads: small("k_n_threads")?,
            n_batch: small("k_n_batch")?,
            n_ubatch: small("k_n_ubatch")?,
            n_gpu_layers: row
                .int("k_n_gpu_layers")?
                .and_then(|v| i32::try_from(v).ok()),
            flash_attn: row.bool("k_flash_attn")?,
            type_k: cache("k_type_k")?,
            type_v: cache("k_type_v")?,
            use_mmap: row.bool("k_use_mmap")?,
            n_cpu_moe: small("k_n_cpu_moe")?,
            split_mode: parsed(row, "k_split_mode")?,
            main_gpu: small("k_main_gpu")?,
            tensor_split: parsed(row, "k_tensor_split")?,
            tensor_buft_overrides: parsed(row, "k_tensor_buft_overrides")?,
        },
        load: ServeLoad {
            concurrency: small("k_concurrency")?,
            request_rate: row.real("k_request_rate")?.map(RequestRate),
        },
    })
}

/// A text column parsed as `T`; NULL is `None`, and text that does not parse is an error
/// naming the column and the value.
pub(crate) fn parsed<T: std::str::FromStr>(
    row: &impl Columns,
    column: &str,
) -> Result<Option<T>, sqlx::Error>
where
    T::Err: std::fmt::Display,
{
    row.with_text(column, |t| {
        t.map(|s| {
            s.parse::<T>()
                .map_err(|e| sqlx::Error::Decode(format!("column {column}: `{s}`: {e}").into()))
        })
        .transpose()
    })?
}

/// One ok result as the gate sees it: its series, its repetitions per metric.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SeriesResult {
    pub result_id: i64,
    pub run_uuid: String,
    pub run_started_at: String,
    pub cell_index: i64,
    /// The series this result is one measurement of.
    pub key: SeriesKey,
    /// The key's stored text ([`SeriesKey::encode`]), as verdicts and change points hold it.
    pub series_key: String,
    /// `synth:tiny Q8_0 tg128 t2 engine` — for people.
    pub label: String,
    /// The workload label: `pp512`, `tg128 @ d1024`.
    pub test: String,
    /// The engine settings for people: `t2 b2048 ub512 ngl99 fa0 ctk f16 ctv f16 mmap1`.
    pub settings: String,
    pub host: String,
    pub backend_version: String,
    pub prefill_tps: Vec<f64>,
    pub decode_tps: Vec<f64>,
    pub ttft_ms: Vec<f64>,
    pub rss_peak_bytes: Option<f64>,
}

/// A verdict to store, with everything it was reached from.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NewVerdict {
    pub check_uuid: String,
    pub checked_at: String,
    pub run_uuid: String,
    pub result_id: i64,
    pub series_key: String,
    pub metric: String,
    pub kind: String,
    pub value: f64,
    pub cv: Option<f64>,
    pub mad: Option<f64>,
    pub baseline_n: i64,
    pub baseline_geomean: Option<f64>,
    pub baseline_sd_log: Option<f64>,
    pub t_quantile: Option<f64>,
    pub limit_value: Option<f64>,
    pub floor: Option<f64>,
    pub ratio: Option<f64>,
    pub remeasured_json: String,
    pub reason: String,
}

fn series_sql(filter: &str) -> String {
    format!(
        "SELECT r.id AS result_id, run.uuid AS run_uuid, run.started_at AS run_started_at,
                r.cell_index, {SERIES_COLUMNS}, w.label AS test, host.hostname AS host,
                bb.version AS backend_version, r.rss_peak_bytes
         FROM result r
         JOIN run              ON run.id = r.run_id
         JOIN host             ON host.id = run.host_id
         JOIN backend_build bb ON bb.id = r.backend_build_id
         JOIN workload w       ON w.id = r.workload_id
         LEFT JOIN model m     ON m.id = r.model_id
         WHERE r.status = 'ok' AND {filter}
         ORDER BY run.started_at, r.id"
    )
}

/// `check`'s statement for the history of series among `n_models` model names: `?`s for
/// since, before and each name.
pub fn history_statement(n_models: usize) -> String {
    series_sql(&format!(
        // Re-measurements of a suspect are not history: they would count its cells again
        // and pull the baseline toward the level being judged.
        "run.started_at >= ? AND run.started_at < ? AND run.trigger NOT LIKE 'recheck%'
         AND COALESCE(m.name, r.model_name) IN ({})",
        vec!["?"; n_models].join(", ")
    ))
}

/// `check`'s statement for one run's results: `?` for the run's UUID.
pub fn run_statement() -> String {
    series_sql("run.uuid = ?")
}

impl Store {
    /// The ok results of run `run_uuid`, with their series and repetitions.
    pub async fn run_series(&self, run_uuid: &str) -> Result<Vec<SeriesResult>, StoreError> {
        let q = run_statement();
        let rows = sqlx::query(&q)
            .bind(run_uuid)
            .fetch_all(&self.pool)
            .await
            .map_err(sql("read the run's results"))?;
        self.with_repetitions(rows).await
    }

    /// Earlier ok results of the series in `keys`: started before `before` and at or after
    /// `since` (RFC 3339), oldest first. The caller applies change points and the baseline
    /// size.
    pub async fn series_history(
        &self,
        keys: &[SeriesKey],
        since: &str,
        before: &str,
    ) -> Result<Vec<SeriesResult>, StoreError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        // SQL narrows by model name (few per database); the key itself is compared in Rust,
        // where it is defined.
        let names: Vec<&str> = keys
            .iter()
            .map(|k| k.model.name.as_str())
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        let q = history_statement(names.len());
        let mut query = sqlx::query(&q).bind(since).bind(before);
        for n in &names {
            query = query.bind(*n);
        }
        let rows = query
            .fetch_all(&self.pool)
            .await
            .map_err(sql("read the series' history"))?;
        let wanted: HashSet<&SeriesKey> = keys.iter().collect();
        let mut out = self.with_repetitions(rows).await?;
        out.retain(|r| wanted.contains(&r.key));
        Ok(out)
    }

    async fn with_repetitions(
        &self,
        rows: Vec<SqliteRow>,
    ) -> Result<Vec<SeriesResult>, StoreError> {
        let mut out: Vec<SeriesResult> = Vec::with_capacity(rows.len());
        let mut index: HashMap<i64, usize> = HashMap::new();
        for row in &rows {
            let r = (|| -> Result<SeriesResult, sqlx::Error> {
                let key = series_key(row)?;
                let test: String = row.try_get("test")?;
                let threads = key
                    .settings
                    .n_threads
                    .map(|t| format!(" t{t}"))
                    .unwrap_or_default();
                let label = format!(
                    "{} {} {test}{threads} {}",
                    key.model.name,
                    key.model.quant,
                    key.backend_label(),
                );
                Ok(SeriesResult {
                    result_id: row.try_get("result_id")?,
                    run_uuid: row.try_get("run_uuid")?,
                    run_started_at: row.try_get("run_started_at")?,
                    cell_index: row.try_get("cell_index")?,
                    series_key: key.encode(),
                    label,
                    test,
                    settings: key.settings_label(),
                    host: row.try_get("host")?,
                    backend_version: row.try_get("backend_version")?,
                    prefill_tps: Vec::new(),
                    decode_tps: Vec::new(),
                    ttft_ms: Vec::new(),
                    rss_peak_bytes: row
                        .try_get::<Option<i64>, _>("rss_peak_bytes")?
                        .map(|b| b as f64),
                    key,
                })
            })()
            .map_err(sql("decode a series row"))?;
            index.insert(r.result_id, out.len());
            out.push(r);
        }
        if out.is_empty() {
            return Ok(out);
        }
        // Repetitions of those results, in chunks that stay under SQLite's bound-variable
        // limit.
        let ids: Vec<i64> = out.iter().map(|r| r.result_id).collect();
        for chunk in ids.chunks(500) {
            let q = format!(
                "SELECT result_id, prefill_tps, decode_tps, ttft_ms FROM repetition
                 WHERE result_id IN ({}) ORDER BY result_id, rep",
                vec!["?"; chunk.len()].join(", ")
            );
            let mut query = sqlx::query(&q);
            for id in chunk {
                query = query.bind(id);
            }
            let mut rows = query.fetch(&self.pool);
            while let Some(row) = rows.try_next().await.map_err(sql("read repetitions"))? {
                let id: i64 = row
                    .try_get("result_id")
                    .map_err(sql("decode a repetition"))?;
                let Some(&i) = index.get(&id) else { continue };
                let get = |c: &str| row.try_get::<Option<f64>, _>(c).ok().flatten();
                let r = &mut out[i];
                r.prefill_tps.extend(get("prefill_tps"));
                r.decode_tps.extend(get("decode_tps"));
                r.ttft_ms.extend(get("ttft_ms"));
            }
        }
        Ok(out)
    }

    /// The newest change point of each series in `keys`, at or before `at`.
    pub async fn change_points(
        &self,
        keys: &[String],
        at: &str,
    ) -> Result<HashMap<String, String>, StoreError> {
        let mut out = HashMap::new();
        for chunk in keys.chunks(500) {
            let q = format!(
                "SELECT series_key, MAX(at) AS at FROM change_point
                 WHERE at <= ? AND series_key IN ({}) GROUP BY series_key",
                vec!["?"; chunk.len()].join(", ")
            );
            let mut query = sqlx::query_as::<_, (String, String)>(&q).bind(at);
            for k in chunk {
                query = query.bind(k);
            }
            for (k, a) in query
                .fetch_all(&self.pool)
                .await
                .map_err(sql("read change points"))?
            {
                out.insert(k, a);
            }
        }
        Ok(out)
    }

    /// Records a change point: results of `series_key` started at or after `at` form its
    /// new baseline.
    pub async fn add_change_point(
        &self,
        series_key: &str,
        at: &str,
        note: &str,
        created_at: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO change_point (series_key, at, note, created_at) VALUES (?, ?, ?, ?)",
        )
        .bind(series_key)
        .bind(at)
        .bind(note)
        .bind(created_at)
        .execute(&self.pool)
        .await
        .map_err(sql("record a change point"))?;
        Ok(())
    }

    /// Stores verdicts, all or none.
    pub async fn insert_verdicts(&self, verdicts: &[NewVerdict]) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(sql("store verdicts"))?;
        for v in verdicts {
            sqlx::query(
                "INSERT INTO verdict (check_uuid, checked_at, run_id, result_id, series_key, metric,
                    kind, value, cv, mad, baseline_n, baseline_geomean, baseline_sd_log, t_quantile,
                    limit_value, floor, ratio, remeasured_json, reason)
                 VALUES (?, ?, (SELECT id FROM run WHERE uuid = ?), ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(&v.check_uuid)
            .bind(&v.checked_at)
            .bind(&v.run_uuid)
            .bind(v.result_id)
            .bind(&v.series_key)
            .bind(&v.metric)
            .bind(&v.kind)
            .bind(v.value)
            .bind(v.cv)
            .bind(v.mad)
            .bind(v.baseline_n)
            .bind(v.baseline_geomean)
            .bind(v.baseline_sd_log)
            .bind(v.t_quantile)
            .bind(v.limit_value)
            .bind(v.floor)
            .bind(v.ratio)
            .bind(&v.remeasured_json)
            .bind(&v.reason)
            .execute(&mut *tx)
            .await
            .map_err(sql("store a verdict"))?;
        }
        tx.commit().await.map_err(sql("store verdicts"))?;
        Ok(())
    }

    /// The run `sel` names, as (UUID, start time); `None` when it names none (or, for a
    /// UUID prefix, more than one). Runs started by `check`'s re-measurements are never
    /// `latest` or `previous`.
    pub async fn resolve_run(
        &self,
        sel: &RunSelector,
    ) -> Result<Option<(String, String)>, StoreError> {
        const NEWEST: &str = "SELECT uuid, started_at FROM run WHERE trigger NOT LIKE 'recheck%'";
        let found = match sel {
            RunSelector::Newest { skip } => {
                sqlx::query_as::<_, (String, String)>(&format!(
                    "{NEWEST} ORDER BY started_at DESC, id DESC LIMIT 1 OFFSET ?"
                ))
                .bind(i64::from(*skip))
                .fetch_optional(&self.pool)
                .await
            }
            RunSelector::Host(h) => {
                sqlx::query_as::<_, (String, String)>(&format!(
                    "{NEWEST} AND host_id IN (SELECT id FROM host WHERE hostname = ?)
                     ORDER BY started_at DESC, id DESC LIMIT 1"
                ))
                .bind(h)
                .fetch_optional(&self.pool)
                .await
            }
            RunSelector::Build(v) => {
                sqlx::query_as::<_, (String, String)>(&format!(
                    "{NEWEST} AND id IN (SELECT r.run_id FROM result r
                       JOIN backend_build bb ON bb.id = r.backend_build_id WHERE bb.version = ?)
                     ORDER BY started_at DESC, id DESC LIMIT 1"
                ))
                .bind(v)
                .fetch_optional(&self.pool)
                .await
            }
            RunSelector::Uuid(prefix) => {
                let rows = sqlx::query_as::<_, (String, String)>(
                    "SELECT uuid, started_at FROM run WHERE uuid LIKE ? || '%' ORDER BY started_at LIMIT 2",
                )
                .bind(prefix.replace(['%', '_'], ""))
                .fetch_all(&self.pool)
                .await;
                rows.map(|r| {
                    if r.len() == 1 {
                        r.into_iter().next()
                    } else {
                        None
                    }
                })
            }
        };
        found.map_err(sql("find the run"))
    }

    /// Results of run `run_uuid` that did not end ok.
    pub async fn failed_results(&self, run_uuid: &str) -> Result<i64, StoreError> {
        let (n,): (i64,) = sqlx::query_as(
            "SELECT COUNT(*) FROM result r JOIN run ON run.id = r.run_id
             WHERE run.uuid = ? AND r.status != 'ok'",
        )
        .bind(run_uuid)
        .fetch_one(&self.pool)
        .await
        .map_err(sql("count failed results"))?;
        Ok(n)
    }

    /// The newest ok result of each series measured by backend build `version` (the
    /// version string as stored, e.g. `llama-cpp-2 0.1.160 / llama-cpp-sys-2 0.1.161`) or on
    /// host `hostname`: how `compare build:A build:B` and `compare host:A host:B` pick sides.
    pub async fn newest_per_series_where(
        &self,
        column: SeriesColumn,
        value: &str,
    ) -> Result<Vec<SeriesResult>, StoreError> {
        let filter = match column {
            SeriesColumn::BuildVersion => "bb.version = ?",
            SeriesColumn::Hostname => "host.hostname = ?",
        };
        let rows = sqlx::query(&series_sql(filter))
            .bind(value)
            .fetch_all(&self.pool)
            .await
            .map_err(sql("read results"))?;
        let all = self.with_repetitions(rows).await?;
        // Oldest first: a later result of the same series replaces an earlier one.
        let mut newest: HashMap<SeriesKey, SeriesResult> = HashMap::new();
        for r in all {
            newest.insert(r.key.clone(), r);
        }
        let mut out: Vec<SeriesResult> = newest.into_values().collect();
        out.sort_by(|a, b| a.label.cmp(&b.label).then(a.result_id.cmp(&b.result_id)));
        Ok(out)
    }
}

/// What [`Store::newest_per_series_where`] selects by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeriesColumn {
    BuildVersion,
    Hostname,
}
