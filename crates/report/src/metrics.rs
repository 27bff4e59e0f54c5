//! Derived metrics: what a result is worth per dollar, per watt and against the memory
//! bandwidth roofline. Missing inputs give `None` ("—" in tables), never 0 and never a
//! division by zero.
//!
//! Every input is checked the same way ([`positive`]): a figure that is absent, zero,
//! negative, NaN or infinite is unknown, and so is every figure derived from it.

use serde::Serialize;
use tokbench_core::fit::GgmlType;
use tokbench_core::{CacheType, ModelFacts, ResultPoint};

/// The figures derived from one result. `None` when an input is unknown.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct Derived {
    /// Bytes read from memory per generated token: the weights without the token-embedding
    /// table plus the KV cache at the test's mean context during generation
    /// (see [`bytes_per_token`]).
    pub bytes_per_token: Option<f64>,
    /// Generation tok/s per $1,000 of launch MSRP (all devices).
    pub tps_per_1k_usd: Option<f64>,
    /// Generation tok/s per 100 W of TDP (all devices).
    pub tps_per_100w_tdp: Option<f64>,
    /// Generation tok/s per 100 W of measured average power during decode.
    pub tps_per_100w_measured: Option<f64>,
    /// Generated tokens per joule of measured energy (= tok/s ÷ W).
    pub tokens_per_joule: Option<f64>,
    /// decode tok/s × bytes per token ÷ DRAM bandwidth (one device's), 0–1 (can exceed 1
    /// when caches hold part of the model).
    pub roofline_fraction: Option<f64>,
}

/// Derives every figure of one result.
///
/// The speed figures use `decode_tps` whatever the status; the tables show ok results only.
pub fn derive(point: &ResultPoint) -> Derived {
    let decode_tps = positive(point.decode_tps);
    let msrp_usd = positive(point.hardware.msrp_usd());
    let tdp_w = positive(point.hardware.tdp_w());
    let power_w = positive(point.decode_power_w);
    let bandwidth = positive(point.hardware.bandwidth_bytes_per_s());
    let bytes_per_token = bytes_per_token(point);
    Derived {
        bytes_per_token,
        tps_per_1k_usd: ratio(decode_tps, msrp_usd.map(|usd| usd / 1000.0)),
        tps_per_100w_tdp: ratio(decode_tps, tdp_w.map(|w| w / 100.0)),
        tps_per_100w_measured: ratio(decode_tps, power_w.map(|w| w / 100.0)),
        tokens_per_joule: ratio(decode_tps, power_w),
        roofline_fraction: ratio(product(decode_tps, bytes_per_token), bandwidth),
    }
}

/// Bytes read from memory for each generated token, for tests that generate (`n_gen > 0`):
///
/// - the weights without the token-embedding table (`tensor_bytes − token_embd_bytes`):
///   decode reads every weight matrix once per token but only one row of the embedding
///   table, a lookup. A model with tied embeddings (`output_bytes == Some(0)`: no
///   `output.weight`) reads the whole table as its output matrix, so it counts in full;
/// - plus the KV cache read by attention: [`kv_bytes_per_cell`] × the mean context during
///   generation, `n_depth + n_prompt + n_gen / 2`. Token `i` of `n_gen` attends to
///   `n_depth + n_prompt + i` earlier cells, so the mean over the test is the context
///   before generation plus half the tokens generated (exactly, `(n_gen − 1) / 2`; the
///   half-cell difference is far below the precision of any measurement). Cells that
///   llama.cpp pads its cache with are not counted.
///
/// `None` for prefill-only tests and when a model fact is unknown or inconsistent (an
/// embedding table larger than all the tensors).
pub fn bytes_per_token(point: &ResultPoint) -> Option<f64> {
    if point.series.test.n_gen == 0 {
        return None;
    }
    // An imported result knows its weights only as the tool's total (llama-bench's
    // `model_size`): the embedding table is counted in full (decode reads one row of it)
    // and the KV cache not at all (its shape is unknown). For Llama 3.1 8B at Q4_K_M the
    // first overstates the bytes by about 6%; at the short contexts of published tests the
    // second understates them by well under 1%. The reports mark such figures "≈".
    if point.facts.tensor_bytes_only {
        return positive(point.facts.tensor_bytes.map(|b| b as f64));
    }
    let ModelFacts {
        tensor_bytes,
        token_embd_bytes,
        ..
    } = point.facts;
    // A model that ties its output matrix to the embeddings reads the whole table per
    // token (as the output projection); otherwise decode reads one row of it.
    let weights = match point.facts.output_bytes {
        Some(0) => tensor_bytes?,
        _ => tensor_bytes?.checked_sub(token_embd_bytes?)?,
    };
    let kv_per_cell = kv_bytes_per_cell(
        &point.facts,
        point.series.settings.type_k,
        point.series.settings.type_v,
    )?;
    let mean_context = f64::from(point.series.test.n_depth)
        + f64::from(point.series.test.n_prompt)
        + f64::from(point.series.test.n_gen) / 2.0;
    positive(Some(weights as f64 + kv_per_cell * mean_context))
}

/// Bytes of KV cache per context cell (one token), all layers: `n_layer × kv_dim ×
/// (bytes per element of K + bytes per element of V)`.
///
/// A cache type that is not recorded (`None`) is taken as f16, llama.cpp's default for
/// `-ctk`/`-ctv`. `None` when `n_layer` or `kv_dim` is unknown.
pub fn kv_bytes_per_cell(
    facts: &ModelFacts,
    type_k: Option<CacheType>,
    type_v: Option<CacheType>,
) -> Option<f64> {
    let n_layer = f64::from(facts.n_layer?);
    let kv_dim = f64::from(facts.kv_dim?);
    Some(n_layer * kv_dim * (cache_bytes_per_element(type_k) + cache_bytes_per_element(type_v)))
}

/// Bytes per element of a KV cache type (`type_size / block_size`: 2 for f16, 34/32 for
/// q8_0); `None` (not recorded) is llama.cpp's default, f16.
pub fn cache_bytes_per_element(cache_type: Option<CacheType>) -> f64 {
    let t = GgmlType::from(cache_type.unwrap_or(CacheType::F16));
    t.type_size() as f64 / t.block_size() as f64
}

/// The figure when it is a usable input: finite and greater than 0; else unknown.
pub fn positive(x: Option<f64>) -> Option<f64> {
    x.filter(|v| v.is_finite() && *v > 0.0)
}

/// `num ÷ den` when both are usable ([`positive`]) and so is the quotient (no overflow to
/// infinity, no underflow to 0).
fn ratio(num: Option<f64>, den: Option<f64>) -> Option<f64> {
    positive(Some(positive(num)? / positive(den)?))
}

/// `a × b` when both are usable ([`positive`]) and the product is finite.
fn product(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    positive(Some(positive(a)? * positive(b)?))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use tokbench_core::catalog::Catalog;
    use tokbench_core::{
        BackendIdentity, HardwareRef, ModelIdentity, ResultStatus, SeriesKey, TestSpec,
    };

    use super::*;

    const CATALOG: &str = r#"
[[hardware]]
name = "Test 4090"
vendor = "NVIDIA"
kind = "discrete_gpu"
memory_gib = 24
bandwidth_gbps = 1008
tdp_w = 450
msrp_usd = 1599
[hardware.sources]
memory = "test"
bandwidth = "test"
tdp = "test"
msrp = "test"

[[hardware]]
name = "Test Datacenter"
vendor = "NVIDIA"
kind = "discrete_gpu"
memory_gib = 80
bandwidth_gbps = 2000
[hardware.sources]
memory = "test"
bandwidth = "test"
"#;

    fn hardware(spec: &str) -> HardwareRef {
        let catalog = Catalog::from_toml(CATALOG, Path::new("t.toml")).unwrap();
        let config = catalog.resolve(spec).unwrap();
        HardwareRef::matched(config)
    }

    /// An 8B-like model: 8.5 GB of tensors of which 0.5 GB token embeddings, 32 layers,
    /// 8 KV heads × 128.
    fn facts() -> ModelFacts {
        ModelFacts {
            n_params: Some(8_000_000_000),
            file_bytes: Some(8_510_000_000),
            tensor_bytes: Some(8_500_000_000),
            token_embd_bytes: Some(500_000_000),
            output_bytes: Some(500_000_000),
            n_layer: Some(32),
            kv_dim: Some(1024),
            tensor_bytes_only: false,
        }
    }

    fn point(hardware: HardwareRef, decode_tps: Option<f64>, power: Option<f64>) -> ResultPoint {
        ResultPoint {
            run_uuid: "run".into(),
            started_at: "2026-01-01T00:00:00Z".into(),
            series: SeriesKey {
                host: "host".into(),
                backend: BackendIdentity {
                    name: "engine".into(),
                    accel: "cuda".into(),
                    flags: String::new(),
                },
                model: ModelIdentity {
                    name: "m".into(),
                    quant: "Q8_0".into(),
                    sha256: None,
                },
                test: TestSpec {
                    n_prompt: 0,
                    n_gen: 128,
                    n_depth: 0,
                },
                ..SeriesKey::default()
            },
            host: "host".into(),
            hardware,
            backend_version: "b1".into(),
            facts: facts(),
            test: "tg128".into(),
            status: ResultStatus::Ok,
            prefill_tps: None,
            prefill_tps_sd: None,
            decode_tps,
            decode_tps_sd: None,
            ttft_ms: None,
            decode_power_w: power,
            vram_peak_bytes: None,
            rss_peak_bytes: None,
            source: None,
            noisy: None,
            throttled: None,
        }
    }

    fn close(actual: Option<f64>, expected: f64) {
        let a = actual.unwrap_or_else(|| panic!("expected {expected}, got None"));
        assert!(
            (a - expected).abs() <= 1e-9 * expected.abs().max(1.0),
            "expected {expected}, got {a}"
        );
    }

    #[test]
    fn cost_and_power_figures_match_hand_calculation() {
        // A 4090 at $1,599 and 450 W doing 100 tok/s, drawing 300 W measured:
        //   per $1k:          100 / (1599 / 1000) = 100 / 1.599 = 62.5391 tok/s/$1k
        //   per 100 W TDP:    100 / (450 / 100)   = 100 / 4.5   = 22.2222 tok/s/100W
        //   per 100 W meas.:  100 / (300 / 100)   = 100 / 3     = 33.3333
        //   tokens per joule: 100 / 300                         = 0.3333 tok/J
        let d = derive(&point(hardware("Test 4090"), Some(100.0), Some(300.0)));
        close(d.tps_per_1k_usd, 100.0 / 1.599);
        assert_eq!(format!("{:.2}", d.tps_per_1k_usd.unwrap()), "62.54");
        close(d.tps_per_100w_tdp, 100.0 / 4.5);
        assert_eq!(format!("{:.2}", d.tps_per_100w_tdp.unwrap()), "22.22");
        close(d.tps_per_100w_measured, 100.0 / 3.0);
        close(d.tokens_per_joule, 1.0 / 3.0);
    }

    #[test]
    fn two_devices_add_price_and_power() {
        // 2× 4090: $3,198 and 900 W. 150 tok/s:
        //   150 / 3.198 = 46.9043 tok/s/$1k; 150 / 9 = 16.6667 tok/s/100W.
        let d = derive(&point(hardware("2x Test 4090"), Some(150.0), None));
        close(d.tps_per_1k_usd, 150.0 / 3.198);
        close(d.tps_per_100w_tdp, 150.0 / 9.0);
    }

    #[test]
    fn bytes_per_token_and_roofline_match_hand_calculation() {
        // Weights read per token: 8,500,000,000 − 500,000,000 = 8,000,000,000 bytes.
        // KV per cell, f16 K and V (type not recorded → f16): 32 layers × 1024 × (2 + 2)
        //   = 131,072 bytes. tg128 at depth 0: mean context 0 + 0 + 128 / 2 = 64 cells
        //   → 8,388,608 bytes. Total 8,008,388,608 bytes per token.
        // Roofline at 100 tok/s on 1008 GB/s: 100 × 8,008,388,608 / 1.008e12 = 0.794483.
        let d = derive(&point(hardware("Test 4090"), Some(100.0), None));
        close(d.bytes_per_token, 8_008_388_608.0);
        close(d.roofline_fraction, 800_838_860_800.0 / 1.008e12);
        assert_eq!(
            format!("{:.1}", d.roofline_fraction.unwrap() * 100.0),
            "79.4"
        );
    }

    #[test]
    fn quantized_cache_and_depth_change_the_kv_term() {
        // q8_0 K and V: 34 / 32 = 1.0625 bytes per element each.
        // KV per cell: 32 × 1024 × 2.125 = 69,632 bytes.
        // pp512+tg128 @ d4096: mean context 4096 + 512 + 64 = 4672 cells
        //   → 69,632 × 4672 = 325,320,704 bytes. Plus weights: 8,325,320,704.
        let mut p = point(hardware("Test 4090"), Some(50.0), None);
        p.test = "pp512+tg128 @ d4096".into();
        p.series.test.n_prompt = 512;
        p.series.test.n_depth = 4096;
        p.series.settings.type_k = Some(CacheType::Q8_0);
        p.series.settings.type_v = Some(CacheType::Q8_0);
        close(bytes_per_token(&p), 8_325_320_704.0);
        // K f16 and V q8_0 mix: 32 × 1024 × (2 + 1.0625) = 100,352 bytes per cell.
        close(
            kv_bytes_per_cell(&p.facts, Some(CacheType::F16), Some(CacheType::Q8_0)),
            100_352.0,
        );
    }

    #[test]
    fn missing_msrp_tdp_or_power_gives_none() {
        // No MSRP and no TDP in the catalog; bandwidth known.
        let d = derive(&point(hardware("Test Datacenter"), Some(100.0), None));
        assert_eq!(d.tps_per_1k_usd, None);
        assert_eq!(d.tps_per_100w_tdp, None);
        assert_eq!(d.tps_per_100w_measured, None);
        assert_eq!(d.tokens_per_joule, None);
        assert!(d.roofline_fraction.is_some());

        // Not in the catalog at all: nothing hardware-based.
        let d = derive(&point(
            HardwareRef::unmatched("Some CPU"),
            Some(100.0),
            Some(65.0),
        ));
        assert_eq!(d.tps_per_1k_usd, None);
        assert_eq!(d.tps_per_100w_tdp, None);
        assert_eq!(d.roofline_fraction, None);
        close(d.tokens_per_joule, 100.0 / 65.0);
    }

    #[test]
    fn zero_tdp_and_msrp_are_unknown() {
        let mut hw = hardware("Test 4090");
        if let Some(c) = hw.config.as_mut().map(std::sync::Arc::make_mut) {
            c.tdp_w = Some(0.0);
            c.msrp_usd = Some(0.0);
            c.bandwidth_bytes_per_s_per_device = Some(0.0);
        }
        let d = derive(&point(hw, Some(100.0), Some(0.0)));
        assert_eq!(d.tps_per_1k_usd, None);
        assert_eq!(d.tps_per_100w_tdp, None);
        assert_eq!(d.tps_per_100w_measured, None);
        assert_eq!(d.tokens_per_joule, None);
        assert_eq!(d.roofline_fraction, None);
    }

    #[test]
    fn weird_inputs_never_panic_or_give_non_finite_figures() {
        let weird = [
            None,
            Some(0.0),
            Some(-5.0),
            Some(f64::NAN),
            Some(f64::INFINITY),
            Some(f64::MIN_POSITIVE),
            Some(f64::MAX),
        ];
        for tps in weird {
            for power in weird {
                let d = derive(&point(hardware("Test 4090"), tps, power));
                for v in [
                    d.bytes_per_token,
                    d.tps_per_1k_usd,
                    d.tps_per_100w_tdp,
                    d.tps_per_100w_measured,
                    d.tokens_per_joule,
                    d.roofline_fraction,
                ]
                .into_iter()
                .flatten()
                {
                    assert!(v.is_finite() && v > 0.0, "{tps:?} {power:?} gave {v}");
                }
                if !tps.is_some_and(|t| t.is_finite() && t > 0.0) {
                    assert_eq!(d.tps_per_1k_usd, None);
                    assert_eq!(d.roofline_fraction, None);
                }
            }
        }
    }

    #[test]
    fn prefill_tests_and_unknown_facts_have_no_bytes_per_token() {
        let mut p = point(hardware("Test 4090"), None, None);
        p.test = "pp512".into();
        p.series.test.n_prompt = 512;
        p.series.test.n_gen = 0;
        p.prefill_tps = Some(5000.0);
        assert_eq!(derive(&p), Derived::default());

        let mut p = point(hardware("Test 4090"), Some(100.0), None);
        p.facts.kv_dim = None;
        assert_eq!(bytes_per_token(&p), None);
        assert_eq!(derive(&p).roofline_fraction, None);

        // An embedding table larger than all tensors is inconsistent: unknown, no underflow.
        let mut p = point(hardware("Test 4090"), Some(100.0), None);
        p.facts.token_embd_bytes = Some(9_000_000_000);
        assert_eq!(bytes_per_token(&p), None);
    }

    #[test]
    fn tied_embeddings_count_the_whole_table() {
        // Untied: 8.5 GB − 0.5 GB embeddings = 8.0 GB of weights, + KV 32 × 1024 × 4 B ×
        // (0 + 0 + 128/2) = 8 388 608 B for tg128 at depth 0.
        let mut p = point(HardwareRef::unmatched("x"), Some(10.0), None);
        p.series.test.n_gen = 128;
        p.series.test.n_prompt = 0;
        p.series.test.n_depth = 0;
        let kv = 32.0 * 1024.0 * 4.0 * 64.0;
        assert_eq!(bytes_per_token(&p), Some(8_000_000_000.0 + kv));
        // Tied (no output.weight): the table is read whole as the output matrix.
        p.facts.output_bytes = Some(0);
        assert_eq!(bytes_per_token(&p), Some(8_500_000_000.0 + kv));
    }
}
