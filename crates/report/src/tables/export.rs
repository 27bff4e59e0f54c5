//! The rows themselves as CSV and JSON: every point field and every derived figure, as numbers.

use super::*;

// CSV and JSON

/// One field of an exported row.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Field {
    Text(String),
    Int(u64),
    Signed(i64),
    Float(Option<f64>),
    Bool(bool),
    Null,
}

impl Field {
    fn text(s: &str) -> Field {
        Field::Text(s.to_string())
    }

    fn opt_int(v: Option<u64>) -> Field {
        v.map_or(Field::Null, Field::Int)
    }

    fn opt_float(v: Option<f64>) -> Field {
        match v.filter(|v| v.is_finite()) {
            Some(v) => Field::Float(Some(v)),
            None => Field::Null,
        }
    }

    fn csv(&self) -> String {
        match self {
            Field::Text(s) => crate::text::csv_field(s),
            Field::Int(v) => v.to_string(),
            Field::Signed(v) => v.to_string(),
            Field::Float(Some(v)) => v.to_string(),
            Field::Bool(b) => b.to_string(),
            Field::Float(None) | Field::Null => String::new(),
        }
    }
}

impl Serialize for Field {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Field::Text(v) => s.serialize_str(v),
            Field::Int(v) => s.serialize_u64(*v),
            Field::Signed(v) => s.serialize_i64(*v),
            Field::Float(Some(v)) => s.serialize_f64(*v),
            Field::Bool(b) => s.serialize_bool(*b),
            Field::Float(None) | Field::Null => s.serialize_none(),
        }
    }
}

/// A row's fields as an ordered JSON object.
pub(super) struct Record(Vec<(&'static str, Field)>);

impl Serialize for Record {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

/// Every field of a result and its derived figures, in export order. The names are the
/// CSV header and the JSON keys; units are in the names.
pub(super) fn fields(row: &ReportRow) -> Vec<(&'static str, Field)> {
    let ResultPoint {
        run_uuid,
        started_at,
        series,
        host,
        hardware,
        backend_version,
        facts,
        test,
        status,
        prefill_tps,
        prefill_tps_sd,
        decode_tps,
        decode_tps_sd,
        ttft_ms,
        decode_power_w,
        vram_peak_bytes,
        rss_peak_bytes,
        source,
        noisy,
        throttled,
    } = &row.point;
    let tokbench_core::ModelFacts {
        n_params,
        file_bytes,
        tensor_bytes,
        token_embd_bytes,
        // Used by bytes per token (tied embeddings); not a column of its own.
        output_bytes: _,
        n_layer,
        kv_dim,
        tensor_bytes_only,
    } = *facts;
    let Derived {
        bytes_per_token,
        tps_per_1k_usd,
        tps_per_100w_tdp,
        tps_per_100w_measured,
        tokens_per_joule,
        roofline_fraction,
    } = row.derived;
    let tokbench_core::SeriesKey {
        // The host's identity; `host` is its name.
        host: _,
        backend,
        metric_source,
        model,
        test: TestSpec {
            n_prompt,
            n_gen,
            n_depth,
        },
        settings:
            EngineSettings {
                n_threads,
                n_batch,
                n_ubatch,
                n_gpu_layers,
                flash_attn,
                type_k,
                type_v,
                use_mmap,
                n_cpu_moe,
                split_mode,
                main_gpu,
                tensor_split,
                tensor_buft_overrides,
            },
        load: ServeLoad {
            concurrency,
            request_rate,
        },
    } = series;
    let cache =
        |t: &Option<tokbench_core::CacheType>| t.map_or(Field::Null, |t| Field::text(t.name()));
    vec![
        ("run_uuid", Field::text(run_uuid)),
        ("started_at", Field::text(started_at)),
        ("host", Field::text(host)),
        ("hardware", Field::text(&hardware.name)),
        (
            "hardware_count",
            Field::opt_int(hardware.config.as_ref().map(|c| u64::from(c.count))),
        ),
        ("memory_bytes", Field::opt_int(hardware.memory_bytes())),
        (
            "bandwidth_bytes_per_s",
            Field::opt_float(positive(hardware.bandwidth_bytes_per_s())),
        ),
        ("tdp_w", Field::opt_float(positive(hardware.tdp_w()))),
        ("msrp_usd", Field::opt_float(positive(hardware.msrp_usd()))),
        ("backend", Field::text(&series.backend_label())),
        ("backend_version", Field::text(backend_version)),
        ("accel", Field::text(&backend.accel)),
        ("model", Field::text(&model.name)),
        ("quant", Field::text(&model.quant)),
        (
            "model_sha256",
            model
                .sha256
                .as_deref()
                .map_or(Field::Null, |s| Field::Text(s.to_string())),
        ),
        ("n_params", Field::opt_int(n_params)),
        ("file_bytes", Field::opt_int(file_bytes)),
        ("tensor_bytes", Field::opt_int(tensor_bytes)),
        ("token_embd_bytes", Field::opt_int(token_embd_bytes)),
        ("n_layer", Field::opt_int(n_layer.map(u64::from))),
        ("kv_dim", Field::opt_int(kv_dim.map(u64::from))),
        // An import's reported total: bytes per token and roofline are approximate.
        ("tensor_bytes_only", Field::Bool(tensor_bytes_only)),
        ("test", Field::text(test)),
        ("n_prompt", Field::Int(u64::from(*n_prompt))),
        ("n_gen", Field::Int(u64::from(*n_gen))),
        ("n_depth", Field::Int(u64::from(*n_depth))),
        ("n_threads", Field::opt_int(n_threads.map(u64::from))),
        ("n_batch", Field::opt_int(n_batch.map(u64::from))),
        ("n_ubatch", Field::opt_int(n_ubatch.map(u64::from))),
        (
            "n_gpu_layers",
            n_gpu_layers.map_or(Field::Null, |n| Field::Signed(i64::from(n))),
        ),
        ("flash_attn", flash_attn.map_or(Field::Null, Field::Bool)),
        ("type_k", cache(type_k)),
        ("type_v", cache(type_v)),
        ("use_mmap", use_mmap.map_or(Field::Null, Field::Bool)),
        // NULL at llama.cpp's defaults (layer split, main GPU 0, no tensor split, no
        // overrides, no MoE layers kept on the CPU).
        ("n_cpu_moe", Field::opt_int(n_cpu_moe.map(u64::from))),
        (
            "split_mode",
            split_mode.map_or(Field::Null, |m| Field::text(m.name())),
        ),
        ("main_gpu", Field::opt_int(main_gpu.map(u64::from))),
        (
            "tensor_split",
            tensor_split.map_or(Field::Null, |t| Field::Text(t.to_string())),
        ),
        (
            "tensor_buft_overrides",
            tensor_buft_overrides.map_or(Field::Null, |o| Field::text(o.as_str())),
        ),
        ("metric_source", Field::text(metric_source.as_str())),
        ("concurrency", Field::opt_int(concurrency.map(u64::from))),
        ("request_rate", Field::opt_float(request_rate.map(|r| r.0))),
        ("status", Field::text(status.as_str())),
        ("noisy", noisy.map_or(Field::Null, Field::Bool)),
        ("throttled", throttled.map_or(Field::Null, Field::Bool)),
        ("prefill_tps", Field::opt_float(*prefill_tps)),
        ("prefill_tps_sd", Field::opt_float(*prefill_tps_sd)),
        ("decode_tps", Field::opt_float(*decode_tps)),
        ("decode_tps_sd", Field::opt_float(*decode_tps_sd)),
        ("ttft_ms", Field::opt_float(*ttft_ms)),
        ("decode_power_w", Field::opt_float(*decode_power_w)),
        ("vram_peak_bytes", Field::opt_int(*vram_peak_bytes)),
        ("rss_peak_bytes", Field::opt_int(*rss_peak_bytes)),
        (
            "source",
            source
                .as_deref()
                .map_or(Field::Null, |s| Field::Text(s.to_string())),
        ),
        ("bytes_per_token", Field::opt_float(bytes_per_token)),
        ("tps_per_1k_usd", Field::opt_float(tps_per_1k_usd)),
        ("tps_per_100w_tdp", Field::opt_float(tps_per_100w_tdp)),
        (
            "tps_per_100w_measured",
            Field::opt_float(tps_per_100w_measured),
        ),
        ("tokens_per_joule", Field::opt_float(tokens_per_joule)),
        ("roofline_fraction", Field::opt_float(roofline_fraction)),
    ]
}

/// The export order of rows: model, quantization, test, hardware, then [`tiebreak`].
pub(super) fn export_order(rows: &[ReportRow]) -> Vec<&ReportRow> {
    let mut sorted: Vec<&ReportRow> = rows.iter().collect();
    sorted.sort_by(|a, b| {
        let (p, q) = (&a.point, &b.point);
        p.series
            .model
            .name
            .cmp(&q.series.model.name)
            .then_with(|| p.series.model.quant.cmp(&q.series.model.quant))
            .then_with(|| test_order(p).cmp(&test_order(q)))
            .then_with(|| tiebreak(a, b))
    });
    sorted
}

pub(super) fn csv_line(fields: &[(&'static str, Field)]) -> String {
    let cells: Vec<String> = fields.iter().map(|(_, f)| f.csv()).collect();
    cells.join(",")
}

/// Every result, ok or not, as CSV: a header, then one line per result with every point
/// field (hardware figures from the catalog, model facts) and every derived figure, in
/// the order model, quantization, test, hardware. Unknown is an empty field; numbers are
/// unrounded (shortest form that reads back exactly); lines end with `\n`. No rows give the
/// header alone.
pub fn csv_rows(rows: &[ReportRow]) -> String {
    let header: Vec<&str> = match rows.first() {
        Some(r) => fields(r).into_iter().map(|(k, _)| k).collect(),
        None => csv_header(),
    };
    let mut out = header.join(",");
    out.push('\n');
    for row in export_order(rows) {
        out.push_str(&canonical(row));
        out.push('\n');
    }
    out
}

/// The CSV header, the same names as the JSON keys of a row.
pub fn csv_header() -> Vec<&'static str> {
    fields(&empty_row()).into_iter().map(|(k, _)| k).collect()
}

pub(super) fn empty_row() -> ReportRow {
    ReportRow {
        point: ResultPoint {
            run_uuid: String::new(),
            started_at: String::new(),
            series: SeriesKey::default(),
            host: String::new(),
            hardware: tokbench_core::HardwareRef::unmatched(""),
            backend_version: String::new(),
            facts: Default::default(),
            test: String::new(),
            status: ResultStatus::Ok,
            prefill_tps: None,
            prefill_tps_sd: None,
            decode_tps: None,
            decode_tps_sd: None,
            ttft_ms: None,
            decode_power_w: None,
            vram_peak_bytes: None,
            rss_peak_bytes: None,
            source: None,
            noisy: None,
            throttled: None,
        },
        derived: Derived::default(),
    }
}

/// Where a JSON export's rows came from, computed from the rows alone (no clock).
#[derive(Debug, Serialize)]
pub(super) struct GeneratedFrom<'a> {
    /// What the caller said the rows came from (a database path), or null.
    source: Option<&'a str>,
    results: usize,
    ok_results: usize,
    /// Run UUIDs, sorted.
    runs: Vec<&'a str>,
    /// The earliest and latest `started_at` among the rows (RFC 3339 sorts as text).
    first_started_at: Option<&'a str>,
    last_started_at: Option<&'a str>,
}

#[derive(Serialize)]
pub(super) struct JsonExport<'a> {
    schema_version: u32,
    generated_from: GeneratedFrom<'a>,
    rows: Vec<Record>,
}

/// Every result as pretty JSON (two-space indent, a final newline):
///
/// ```json
/// {
///   "schema_version": 1,
///   "generated_from": {
///     "source": null, "results": 12, "ok_results": 10,
///     "runs": ["<uuid>", …], "first_started_at": "…", "last_started_at": "…"
///   },
///   "rows": [ { "run_uuid": "…", …, "roofline_fraction": 0.79 }, … ]
/// }
/// ```
///
/// Each row is a flat object with the CSV's names, in the CSV's order and row order
/// ([`csv_rows`]); unknown is `null`. Nothing depends on when it was generated.
pub fn json(rows: &[ReportRow]) -> String {
    json_export(rows, None)
}

/// [`json`] with `generated_from.source` set (a database path, say); an empty source is null.
pub fn json_with_source(rows: &[ReportRow], source: &str) -> String {
    json_export(rows, Some(source).filter(|s| !s.is_empty()))
}

pub(super) fn json_export(rows: &[ReportRow], source: Option<&str>) -> String {
    let runs: BTreeSet<&str> = rows.iter().map(|r| r.point.run_uuid.as_str()).collect();
    let started = || rows.iter().map(|r| r.point.started_at.as_str());
    let export = JsonExport {
        schema_version: JSON_SCHEMA_VERSION,
        generated_from: GeneratedFrom {
            source,
            results: rows.len(),
            ok_results: rows.iter().filter(|r| is_ok(r)).count(),
            runs: runs.into_iter().collect(),
            first_started_at: started().min(),
            last_started_at: started().max(),
        },
        rows: export_order(rows)
            .into_iter()
            .map(|r| Record(fields(r)))
            .collect(),
    };
    match serde_json::to_string_pretty(&export) {
        Ok(mut s) => {
            s.push('\n');
            s
        }
        // Strings, integers, finite floats and booleans always serialize; this is only
        // here so that a future field cannot turn into a panic.
        Err(e) => format!(
            "{{\"schema_version\": {JSON_SCHEMA_VERSION}, \"error\": {}}}\n",
            serde_json::Value::String(e.to_string())
        ),
    }
}
