//! Results as the reports take them: [`ResultPoint`]s (core types) built from the rows of
//! one query, with the run's hardware name and the host, so the caller can match the
//! hardware against the catalog. Only ok results: the reports compare measurements.

use std::collections::HashMap;

use tokbench_core::{HardwareRef, HostInfo, ModelFacts, ResultPoint, ResultStatus};

use crate::series::{series_key, SERIES_COLUMNS};
use crate::stream::Columns;
use crate::{sql, Store, StoreError};

/// Which results a report covers. Empty lists match everything; dates compare with
/// `started_at` (RFC 3339 UTC), `since` inclusive and `until` exclusive, so `2026-11-01`
/// to `2026-12-01` is November.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PointFilter {
    pub models: Vec<String>,
    pub quants: Vec<String>,
    pub backends: Vec<String>,
    pub hosts: Vec<String>,
    pub since: Option<String>,
    pub until: Option<String>,
}

/// One ok result with what the hardware match needs. `point.hardware` is a placeholder
/// ([`HardwareRef::unmatched`] with the run's hardware name or an empty name) until the
/// caller resolves it.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredPoint {
    pub point: ResultPoint,
    /// The run's `hardware` (the suite's, or the match at run time), when recorded.
    pub run_hardware: Option<String>,
    pub host: HostInfo,
}

/// Every ok result with its series columns; `{SERIES_COLUMNS}` is filled in.
const POINTS_SQL: &str = "
SELECT run.uuid AS run_uuid, run.started_at, run.hardware AS run_hardware, run.source,
       host.id AS host_id, host.hostname, host.cpu_model, host.cpu_cores_logical, host.cpu_cores_physical,
       host.memory_total_bytes, host.os, host.kernel, host.arch, host.gpus_json,
       {SERIES_COLUMNS},
       bb.version AS backend_version, m.n_params, m.file_bytes, m.shape_json,
       w.label AS test, r.status,
       r.prefill_tps, r.prefill_tps_sd, r.decode_tps, r.decode_tps_sd, r.ttft_ms,
       r.rss_peak_bytes, r.noisy, r.throttled,
       COALESCE(r.decode_power_avg_w, (SELECT AVG(t.value) FROM telemetry_sample t
         WHERE t.result_id = r.id AND t.metric = 'power_w' AND t.phase = 'decode')) AS decode_power_w,
       COALESCE(CAST(r.vram_peak_bytes AS REAL), (SELECT MAX(t.value) FROM telemetry_sample t
         WHERE t.result_id = r.id AND t.metric = 'vram_used_bytes')) AS vram_peak_bytes
FROM result r
JOIN run                 ON run.id = r.run_id
JOIN host                ON host.id = run.host_id
JOIN backend_build bb    ON bb.id = r.backend_build_id
JOIN workload w          ON w.id = r.workload_id
LEFT JOIN model m        ON m.id = r.model_id
WHERE r.status = 'ok'";

impl Store {
    /// Every ok result that `filter` selects, oldest first (then by result id).
    pub async fn points(&self, filter: &PointFilter) -> Result<Vec<StoredPoint>, StoreError> {
        let mut out = Vec::new();
        self.points_each(filter, |p| out.push(p)).await?;
        Ok(out)
    }

    /// [`Store::points`], handed over one by one as they are read, so the caller decides
    /// what to keep.
    pub async fn points_each(
        &self,
        filter: &PointFilter,
        mut each: impl FnMut(StoredPoint),
    ) -> Result<(), StoreError> {
        let (text, binds) = points_statement(filter);
        self.step_points(&text, &binds, |p, _| {
            each(p);
            Ok(())
        })
        .await
    }

    /// The results that can be the newest of their series ([`newest_points_statement`]),
    /// oldest first, one by one; returns how many results `filter` selected in all. Every
    /// series' newest result is among those handed over; so are older ones of series that
    /// changed build, which the caller's own reduction drops.
    pub async fn newest_points_each(
        &self,
        filter: &PointFilter,
        mut each: impl FnMut(StoredPoint),
    ) -> Result<u64, StoreError> {
        let (text, binds) = newest_points_statement(filter);
        let mut n_results = 0;
        self.step_points(&text, &binds, |p, row| {
            n_results = row.int("n_results")?.unwrap_or(0) as u64;
            each(p);
            Ok(())
        })
        .await?;
        Ok(n_results)
    }

    /// Steps a points statement on the connection's own handle, row by row: no row is
    /// held past its point, and none is copied first (sqlx's row stream copies each value
    /// and hands it to another thread, 5× SQLite's own time for this statement). Many
    /// results share a model and a host, so each shape and host is decoded once.
    async fn step_points(
        &self,
        text: &str,
        binds: &[&str],
        mut each: impl FnMut(StoredPoint, &crate::stream::RawRow) -> Result<(), sqlx::Error>,
    ) -> Result<(), StoreError> {
        let mut conn = self
            .pool
            .acquire()
            .await
            .map_err(sql("open a connection"))?;
        let mut handle = conn.lock_handle().await.map_err(sql("open a connection"))?;
        let mut shapes: HashMap<String, Shape> = HashMap::new();
        let mut hosts: HashMap<i64, HostInfo> = HashMap::new();
        crate::stream::step_rows(handle.as_raw_handle(), text, binds, |row| {
            let p = point_row(row, &mut shapes, &mut hosts)
                .map_err(sql("decode a result for the report"))?;
            each(p, row).map_err(sql("decode a result for the report"))
        })
    }
}

/// The report's statement for `filter`, with the values its `?`s take in order.
pub fn points_statement(filter: &PointFilter) -> (String, Vec<&str>) {
    let (clause, binds) = filter_clause(filter);
    let text = format!(
        "{}{clause} ORDER BY run.started_at, r.id",
        POINTS_SQL.replace("{SERIES_COLUMNS}", SERIES_COLUMNS)
    );
    (text, binds)
}

/// The rows that can be the newest of their series, for the report, which shows nothing
/// else: results are grouped in SQL by the ids their series key is made of (host, backend
/// build, model, workload, settings, load — finer than a series, since a series spans
/// builds), and only each group's newest (by started_at, then result id, the order in
/// which the report's `NewestPerSeries` breaks ties) is decoded. At a million results
/// that decodes a few tens of thousands instead. Each row also carries `n_results`, how
/// many results the filter selected.
pub fn newest_points_statement(filter: &PointFilter) -> (String, Vec<&str>) {
    let (clause, binds) = filter_clause(filter);
    let text = format!(
        "WITH newest AS (
           SELECT r.id AS id, COUNT(*) AS n,
                  MAX(run.started_at || char(1) || printf('%020d', r.id)) AS latest
           FROM result r
           JOIN run                 ON run.id = r.run_id
           JOIN host                ON host.id = run.host_id
           JOIN backend_build bb    ON bb.id = r.backend_build_id
           LEFT JOIN model m        ON m.id = r.model_id
           WHERE r.status = 'ok'{clause}
           GROUP BY run.host_id, r.backend_build_id, r.metric_source, r.model_id,
                    r.model_name, r.workload_id, {GROUP_SETTINGS})
         {points} AND r.id IN (SELECT id FROM newest) ORDER BY run.started_at, r.id",
        points = POINTS_SQL
            .replace("{SERIES_COLUMNS}", SERIES_COLUMNS)
            .replacen(
                "\nFROM result r",
                ", (SELECT SUM(n) FROM newest) AS n_results\nFROM result r",
                1
            )
    );
    (text, binds)
}

/// The settings and load columns of a result's series key (see `SERIES_COLUMNS`).
const GROUP_SETTINGS: &str = "r.n_threads, r.n_batch, r.n_ubatch, r.n_gpu_layers, r.flash_attn,
    r.type_k, r.type_v, r.use_mmap, r.concurrency, r.request_rate, r.n_cpu_moe, r.split_mode,
    r.main_gpu, r.tensor_split, r.tensor_buft_overrides";

/// `filter` as ` AND …` conditions on the aliases of [`POINTS_SQL`], with their values.
fn filter_clause(filter: &PointFilter) -> (String, Vec<&str>) {
    let mut text = String::new();
    let mut binds: Vec<&str> = Vec::new();
    for (column, values) in [
        ("r.model_name", &filter.models),
        ("m.quant", &filter.quants),
        ("bb.name", &filter.backends),
        ("host.hostname", &filter.hosts),
    ] {
        if !values.is_empty() {
            let marks = vec!["?"; values.len()].join(", ");
            text.push_str(&format!(" AND {column} IN ({marks})"));
            binds.extend(values.iter().map(String::as_str));
        }
    }
    if let Some(since) = &filter.since {
        text.push_str(" AND run.started_at >= ?");
        binds.push(since);
    }
    if let Some(until) = &filter.until {
        text.push_str(" AND run.started_at < ?");
        binds.push(until);
    }
    (text, binds)
}

/// What a model's `shape_json` says that the reports use.
#[derive(Debug, Clone, Copy, Default)]
struct Shape {
    tensor_bytes: Option<u64>,
    token_embd_bytes: Option<u64>,
    output_bytes: Option<u64>,
    n_layer: Option<u32>,
    kv_dim: Option<u32>,
    /// `"tensor_bytes_only": true`: an import's reported total (see `ModelFacts`).
    tensor_bytes_only: bool,
}

fn parse_shape(text: Option<&str>) -> Shape {
    let shape: serde_json::Value = text
        .and_then(|s| serde_json::from_str(s).ok())
        .unwrap_or_default();
    let u64_of = |k: &str| shape.get(k).and_then(serde_json::Value::as_u64);
    let u32_of = |k: &str| u64_of(k).and_then(|v| u32::try_from(v).ok());
    Shape {
        tensor_bytes: u64_of("tensor_bytes"),
        token_embd_bytes: u64_of("token_embd_bytes"),
        output_bytes: u64_of("output_bytes"),
        n_layer: u32_of("block_count"),
        kv_dim: match (u64_of("head_count_kv"), u64_of("head_dim")) {
            (Some(h), Some(d)) => h.checked_mul(d).and_then(|v| u32::try_from(v).ok()),
            _ => None,
        },
        tensor_bytes_only: shape
            .get("tensor_bytes_only")
            .and_then(serde_json::Value::as_bool)
            .unwrap_or(false),
    }
}

fn point_row(
    row: &impl Columns,
    shapes: &mut HashMap<String, Shape>,
    hosts: &mut HashMap<i64, HostInfo>,
) -> Result<StoredPoint, sqlx::Error> {
    let shape = row.with_text("shape_json", |t| {
        let t = t.unwrap_or_default();
        match shapes.get(t) {
            Some(shape) => *shape,
            None => *shapes
                .entry(t.to_string())
                .or_insert_with(|| parse_shape(Some(t))),
        }
    })?;
    let unsigned = |v: Option<i64>| v.and_then(|v| u64::try_from(v).ok());
    let small = |v: Option<i64>| v.and_then(|v| u32::try_from(v).ok());
    // A host's row is the same for every one of its results: decoded once.
    let host_id = row.int("host_id")?.unwrap_or_default();
    let host = match hosts.get(&host_id) {
        Some(h) => h.clone(),
        None => {
            let gpus: Vec<String> =
                serde_json::from_str(&row.text_required("gpus_json")?).unwrap_or_default();
            let host = HostInfo {
                hostname: row.text_required("hostname")?,
                cpu_model: row.text_required("cpu_model")?,
                cpu_cores_logical: small(row.int("cpu_cores_logical")?).unwrap_or(0),
                cpu_cores_physical: small(row.int("cpu_cores_physical")?),
                memory_total_bytes: unsigned(row.int("memory_total_bytes")?),
                os: row.text_required("os")?,
                kernel: row.text("kernel")?,
                arch: row.text_required("arch")?,
                gpus,
            };
            hosts.insert(host_id, host.clone());
            host
        }
    };
    let run_hardware = row.text("run_hardware")?;
    let status = row
        .with_text("status", |t| t.unwrap_or_default().parse::<ResultStatus>())?
        .map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
    let point = ResultPoint {
        run_uuid: row.text_required("run_uuid")?,
        started_at: row.text_required("started_at")?,
        series: series_key(row)?,
        host: host.hostname.clone(),
        hardware: HardwareRef::unmatched(run_hardware.clone().unwrap_or_default()),
        backend_version: row.text_required("backend_version")?,
        facts: ModelFacts {
            n_params: unsigned(row.int("n_params")?),
            file_bytes: unsigned(row.int("file_bytes")?),
            tensor_bytes: shape.tensor_bytes,
            token_embd_bytes: shape.token_embd_bytes,
            output_bytes: shape.output_bytes,
            n_layer: shape.n_layer,
            kv_dim: shape.kv_dim,
            tensor_bytes_only: shape.tensor_bytes_only,
        },
        test: row.text_required("test")?,
        status,
        prefill_tps: row.real("prefill_tps")?,
        prefill_tps_sd: row.real("prefill_tps_sd")?,
        decode_tps: row.real("decode_tps")?,
        decode_tps_sd: row.real("decode_tps_sd")?,
        ttft_ms: row.real("ttft_ms")?,
        decode_power_w: row.real("decode_power_w")?,
        vram_peak_bytes: row
            .real("vram_peak_bytes")?
            .filter(|v| v.is_finite() && *v >= 0.0)
            .map(|v| v as u64),
        rss_peak_bytes: unsigned(row.int("rss_peak_bytes")?),
        source: row.text("source")?,
        noisy: row.bool("noisy")?,
        throttled: row.bool("throttled")?,
    };
    Ok(StoredPoint {
        point,
        run_hardware,
        host,
    })
}
