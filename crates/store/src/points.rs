//! Results as the reports take them: [`ResultPoint`]s (core types) built from the rows of
//! one query, with the run's hardware name and the host, so the caller can match the
//! hardware against the catalog. Only ok results: the reports compare measurements.

use std::collections::HashMap;

use futures_util::TryStreamExt;
use sqlx::sqlite::SqliteRow;
use sqlx::Row;
use tokbench_core::{HardwareRef, HostInfo, ModelFacts, ResultPoint, ResultStatus};

use crate::series::{series_key, SERIES_COLUMNS};
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
       host.hostname, host.cpu_model, host.cpu_cores_logical, host.cpu_cores_physical,
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
        let mut text = POINTS_SQL.replace("{SERIES_COLUMNS}", SERIES_COLUMNS);
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
        text.push_str(" ORDER BY run.started_at, r.id");
        let mut q = sqlx::query(&text);
        for b in binds {
            q = q.bind(b);
        }
        // Streamed, so only the decoded points are held, not every row as well; many
        // results share a model, so each shape is parsed once.
        let mut rows = q.fetch(&self.pool);
        let mut shapes: HashMap<Option<String>, Shape> = HashMap::new();
        let mut out = Vec::new();
        while let Some(row) = rows
            .try_next()
            .await
            .map_err(sql("read results for the report"))?
        {
            out.push(point_row(&row, &mut shapes).map_err(sql("decode a result for the report"))?);
        }
        Ok(out)
    }
}

/// What a model's `shape_json` says that the reports use.
#[derive(Debug, Clone, Copy, Default)]
struct Shape {
    tensor_bytes: Option<u64>,
    token_embd_bytes: Option<u64>,
    output_bytes: Option<u64>,
    n_layer: Option<u32>,
    kv_dim: Option<u32>,
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
    }
}

fn point_row(
    row: &SqliteRow,
    shapes: &mut HashMap<Option<String>, Shape>,
) -> Result<StoredPoint, sqlx::Error> {
    let text: Option<String> = row.try_get("shape_json")?;
    let shape = *shapes
        .entry(text)
        .or_insert_with_key(|t| parse_shape(t.as_deref()));
    let unsigned = |v: Option<i64>| v.and_then(|v| u64::try_from(v).ok());
    let small = |v: Option<i64>| v.and_then(|v| u32::try_from(v).ok());
    let gpus: Vec<String> =
        serde_json::from_str(&row.try_get::<String, _>("gpus_json")?).unwrap_or_default();
    let host = HostInfo {
        hostname: row.try_get("hostname")?,
        cpu_model: row.try_get("cpu_model")?,
        cpu_cores_logical: small(row.try_get("cpu_cores_logical")?).unwrap_or(0),
        cpu_cores_physical: small(row.try_get("cpu_cores_physical")?),
        memory_total_bytes: unsigned(row.try_get("memory_total_bytes")?),
        os: row.try_get("os")?,
        kernel: row.try_get("kernel")?,
        arch: row.try_get("arch")?,
        gpus,
    };
    let run_hardware: Option<String> = row.try_get("run_hardware")?;
    let status: String = row.try_get("status")?;
    let point = ResultPoint {
        run_uuid: row.try_get("run_uuid")?,
        started_at: row.try_get("started_at")?,
        series: series_key(row)?,
        host: host.hostname.clone(),
        hardware: HardwareRef::unmatched(run_hardware.clone().unwrap_or_default()),
        backend_version: row.try_get("backend_version")?,
        facts: ModelFacts {
            n_params: unsigned(row.try_get("n_params")?),
            file_bytes: unsigned(row.try_get("file_bytes")?),
            tensor_bytes: shape.tensor_bytes,
            token_embd_bytes: shape.token_embd_bytes,
            output_bytes: shape.output_bytes,
            n_layer: shape.n_layer,
            kv_dim: shape.kv_dim,
        },
        test: row.try_get("test")?,
        status: status
            .parse::<ResultStatus>()
            .map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
        prefill_tps: row.try_get("prefill_tps")?,
        prefill_tps_sd: row.try_get("prefill_tps_sd")?,
        decode_tps: row.try_get("decode_tps")?,
        decode_tps_sd: row.try_get("decode_tps_sd")?,
        ttft_ms: row.try_get("ttft_ms")?,
        decode_power_w: row.try_get("decode_power_w")?,
        vram_peak_bytes: row
            .try_get::<Option<f64>, _>("vram_peak_bytes")?
            .filter(|v| v.is_finite() && *v >= 0.0)
            .map(|v| v as u64),
        rss_peak_bytes: unsigned(row.try_get("rss_peak_bytes")?),
        source: row.try_get("source")?,
        noisy: row.try_get("noisy")?,
        throttled: row.try_get("throttled")?,
    };
    Ok(StoredPoint {
        point,
        run_hardware,
        host,
    })
}
