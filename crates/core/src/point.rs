//! One stored measurement as the reports see it: what ran, on which hardware, how fast, and
//! the model facts the derived metrics need. The store builds these from its rows; the
//! report crate derives cost, power and roofline figures from them. Nothing here is SQL.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::bench::ResultStatus;
use crate::catalog::HardwareConfig;
use crate::series::SeriesKey;

/// The hardware a result ran on: a catalog configuration when one matched, else what the
/// host reported (its GPU or CPU name), with no figures.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HardwareRef {
    /// `GeForce RTX 4090`, `2× GeForce RTX 3090`, or the detected name when unmatched
    /// (`AMD EPYC 7B13 (CPU)`).
    pub name: String,
    /// The catalog configuration, when the name is in the catalog; shared, since every
    /// result on the same hardware points at the same one.
    pub config: Option<Arc<HardwareConfig>>,
}

impl HardwareRef {
    /// A catalog configuration under its display name.
    pub fn matched(config: HardwareConfig) -> Self {
        Self {
            name: config.display_name.clone(),
            config: Some(Arc::new(config)),
        }
    }

    /// A name with no catalog entry: every figure unknown.
    pub fn unmatched(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            config: None,
        }
    }

    /// Total device memory (all devices), bytes.
    pub fn memory_bytes(&self) -> Option<u64> {
        self.config.as_ref()?.memory_bytes
    }

    /// One device's DRAM bandwidth, bytes/s.
    pub fn bandwidth_bytes_per_s(&self) -> Option<f64> {
        self.config.as_ref()?.bandwidth_bytes_per_s_per_device
    }

    /// Total TDP, watts; a TDP of 0 is unknown.
    pub fn tdp_w(&self) -> Option<f64> {
        self.config.as_ref()?.tdp_w.filter(|w| *w > 0.0)
    }

    /// Total launch MSRP, US dollars; 0 is unknown.
    pub fn msrp_usd(&self) -> Option<f64> {
        self.config.as_ref()?.msrp_usd.filter(|p| *p > 0.0)
    }
}

/// The model facts a derived metric needs, from the GGUF file's metadata and tensor table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ModelFacts {
    pub n_params: Option<u64>,
    /// The file's size on disk.
    pub file_bytes: Option<u64>,
    /// All tensor data.
    pub tensor_bytes: Option<u64>,
    /// The token-embedding table (a lookup: decode reads one row of it, not all of it).
    pub token_embd_bytes: Option<u64>,
    /// The output matrix (`output.weight`); `Some(0)` when the model has none and ties it
    /// to the embeddings, so every token reads the whole embedding table.
    pub output_bytes: Option<u64>,
    pub n_layer: Option<u32>,
    /// `n_head_kv * head_dim`: the width of one layer's K (and V) row per token.
    pub kv_dim: Option<u32>,
    /// Only the total is known, as a tool reported it (an import: llama-bench's
    /// `model_size`): the embedding table is not told apart and the shape is unknown, so
    /// the bytes read per token are approximated by the whole total (see
    /// `tokbench_report::metrics::bytes_per_token`).
    #[serde(default)]
    pub tensor_bytes_only: bool,
}

/// One ok (or failed) result, ready for the reports.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ResultPoint {
    pub run_uuid: String,
    /// RFC 3339 UTC.
    pub started_at: String,
    /// What was measured: the series this result is one measurement of.
    pub series: SeriesKey,
    /// The host's name, for people (the key holds the host's identity).
    pub host: String,
    pub hardware: HardwareRef,
    pub backend_version: String,
    pub facts: ModelFacts,
    /// llama-bench's label of `series.test`: `pp512`, `tg128`, `pp512 @ d4096`.
    pub test: String,
    pub status: ResultStatus,
    pub prefill_tps: Option<f64>,
    pub prefill_tps_sd: Option<f64>,
    pub decode_tps: Option<f64>,
    pub decode_tps_sd: Option<f64>,
    pub ttft_ms: Option<f64>,
    /// Mean measured power over the decode phase, watts (telemetry), when measured.
    pub decode_power_w: Option<f64>,
    /// Peak device memory in use, bytes (telemetry), when measured.
    pub vram_peak_bytes: Option<u64>,
    pub rss_peak_bytes: Option<u64>,
    /// Where the numbers came from when they were not measured here (an imported
    /// llama-bench file, a published table); `None` for tokbench's own measurements.
    pub source: Option<String>,
    /// The repetitions scattered past a CV of 5% ([`crate::stats::NOISY_CV`]); `None` when
    /// it cannot be told (one repetition).
    pub noisy: Option<bool>,
    /// The machine throttled while the result was measured; `None` when not recorded.
    pub throttled: Option<bool>,
}
