//! A llama-bench record as tokbench's own cell: quantization and accelerator names, settings, repetitions.

use super::*;
use crate::offload::{Offload, TensorOverrides};

/// `Q4_K - Medium` (llama.cpp's file-type name in `model_type`) → `Q4_K_M`.
pub fn quant_of(model_type: &str) -> String {
    // `llama 8B Q4_K - Medium`: the architecture and size come first.
    let words: Vec<&str> = model_type.split_whitespace().collect();
    let mut tail = words.get(2..).map(|w| w.join(" ")).unwrap_or_default();
    // Builds of 2023 wrote `llama 7B mostly Q4_0`.
    if let Some(rest) = tail.strip_prefix("mostly ") {
        tail = rest.to_string();
    }
    let (base, size) = match tail.split_once(" - ") {
        Some((b, s)) => (b.to_string(), Some(s)),
        None => (tail.clone(), None),
    };
    // IQ types are named by their bits per weight (`IQ4_XS - 4.25 bpw`), and IQ3_M is
    // `IQ3_S mix - 3.66 bpw` (llama.cpp's `llama_model_ftype_name`).
    if size.is_some_and(|s| s.trim_end().ends_with("bpw")) {
        return match base.as_str() {
            "IQ3_S mix" => "IQ3_M".to_string(),
            other => other.to_string(),
        };
    }
    let suffix = match size {
        Some("Small") => "_S",
        Some("Medium") => "_M",
        Some("Large") => "_L",
        Some(other) if !other.is_empty() => return format!("{base} - {other}"),
        _ => "",
    };
    if base.is_empty() {
        model_type.to_string()
    } else {
        format!("{base}{suffix}")
    }
}

/// The accelerator llama-bench ran on: the first backend that is not the CPU.
pub fn accel_of(backends: Option<&str>) -> String {
    backends
        .unwrap_or("CPU")
        .split(',')
        .map(|b| b.trim().to_ascii_lowercase())
        .find(|b| b != "cpu" && !b.is_empty())
        .map(|b| match b.as_str() {
            "blas" => "cpu".to_string(),
            "rpc" => "rpc".to_string(),
            other => other.to_string(),
        })
        .unwrap_or_else(|| "cpu".into())
}

/// A llama-bench record that tokbench cannot store as a result.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("field `{field}`: {message}")]
pub struct RecordError {
    pub field: &'static str,
    pub message: String,
}

/// A text field of the record as `T`, or the error naming the field.
pub(super) fn field<T: std::str::FromStr>(text: &str, field: &'static str) -> Result<T, RecordError>
where
    T::Err: std::fmt::Display,
{
    text.parse().map_err(|e: T::Err| RecordError {
        field,
        message: e.to_string(),
    })
}

pub(super) fn cache_type(name: &str, field: &'static str) -> Result<CacheType, RecordError> {
    self::field(name, field)
}

impl LlamaBenchRecord {
    /// The offload settings the record ran with (llama.cpp's defaults where an older build
    /// or a pasted table leaves a field out).
    pub fn offload(&self) -> Result<Offload, RecordError> {
        let r = self;
        let main_gpu = u32::try_from(r.main_gpu).map_err(|_| RecordError {
            field: "main_gpu",
            message: format!("{} is not a device index", r.main_gpu),
        })?;
        Ok(Offload {
            split_mode: field(&r.split_mode, "split_mode")?,
            main_gpu,
            tensor_split: field(&r.tensor_split, "tensor_split")?,
            overrides: match &r.tensor_buft_overrides {
                Some(o) => field(o, "tensor_buft_overrides")?,
                None => TensorOverrides::default(),
            },
            n_cpu_moe: r.n_cpu_moe.unwrap_or(0),
        })
    }
}

impl LlamaBenchRecord {
    /// One llama-bench record as a result: its settings, and each repetition's rate as the
    /// phase it measured (a `pp` test's rate is prefill, a `tg` test's decode; a `pp+tg` test's
    /// is over both phases together and is kept in the log only).
    pub fn cell_result(&self, index: usize) -> Result<CellResult, RecordError> {
        let r = self;
        let test = r.test_spec();
        // llama-bench's negative `n_gpu_layers` and `flash_attn = -1` leave the choice to
        // llama.cpp at load time: the value used is not in the output, so it stays unset.
        let mut auto = ParamSet::default();
        if r.n_gpu_layers < 0 {
            auto = auto.with("n_gpu_layers");
        }
        if matches!(r.flash_attn, Some(FlashAttn::Auto)) {
            auto = auto.with("flash_attn");
        }
        let params = EngineParams {
            n_threads: r.n_threads,
            n_batch: r.n_batch,
            n_ubatch: r.n_ubatch,
            n_gpu_layers: u32::try_from(r.n_gpu_layers).unwrap_or(0),
            flash_attn: matches!(r.flash_attn, Some(FlashAttn::On)),
            type_k: cache_type(&r.type_k, "type_k")?,
            type_v: cache_type(&r.type_v, "type_v")?,
            use_mmap: r.use_mmap.unwrap_or(true),
            offload: r.offload()?,
            unset: Unset {
                auto,
                unknown: self.unknown,
            },
        };
        let samples = r.samples_ts.clone().unwrap_or_default();
        let combined = test.n_prompt > 0 && test.n_gen > 0;
        let repetitions = if combined {
            Vec::new()
        } else {
            // Each repetition's rate, and its wall time where llama-bench printed them
            // (`samples_ns`, one per rate, in the same order).
            let ns = r
                .samples_ns
                .as_deref()
                .filter(|ns| ns.len() == samples.len());
            samples
                .iter()
                .enumerate()
                .map(|(i, &ts)| {
                    let ms = ns.map(|ns| ns[i] as f64 / 1e6);
                    Repetition {
                        prefill_tps: (test.n_gen == 0).then_some(ts),
                        decode_tps: (test.n_gen > 0).then_some(ts),
                        prompt_ms: ms.filter(|_| test.n_gen == 0),
                        gen_ms: ms.filter(|_| test.n_gen > 0),
                        ..Default::default()
                    }
                })
                .collect()
        };
        Ok(CellResult {
            cell_index: index,
            test,
            params,
            status: ResultStatus::Ok,
            error: None,
            metric_source: MetricSource::Engine,
            load_ms: None,
            rss_peak_bytes: None,
            allocated: None,
            telemetry: None,
            repetitions,
            serving: None,
            backend_json: None,
            log_tail: combined.then(|| {
                format!(
                    "llama-bench {}: {:.2} ± {:.2} t/s over prompt and generation together (not split into phases)",
                    test.label(),
                    r.avg_ts,
                    r.stddev_ts
                )
            }),
            started_at: r.test_time.clone(),
            duration_ms: r.avg_ns as f64 * samples.len().max(1) as f64 / 1e6,
            conditions: None,
        })
    }
}
