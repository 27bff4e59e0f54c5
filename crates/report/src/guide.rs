//! `guide.md`: the hardware guide people look for, computed. For Llama 3.1 405B, 70B and 8B
//! and every hardware configuration in the catalog: memory, price and power, whether each
//! quantization fits (from `core::fit`, the model's real architecture), the generation
//! speed measured or imported where a result exists (with its source and date), else the
//! memory-bandwidth ceiling, clearly labelled as not measured; tok/s per $1k and per 100 W
//! on the same basis; the KV cache against context; and, where a model fits only with
//! layers left in host memory, the ceiling from both bandwidths.
//!
//! The ceiling is an upper bound, not a prediction: generating one token reads every weight
//! once (the embedding table excepted: one row) and the KV cache, so `bandwidth ÷ bytes per
//! token` tokens per second is the most the memory can feed. Real runs reach 50–90% of it.
//! Several GPUs splitting a model by layers (llama.cpp's default) read their shares one
//! after another, so the ceiling uses one device's bandwidth.

use std::fmt::Write as _;

use tokbench_core::arch::ArchSpec;
use tokbench_core::catalog::{Catalog, HardwareConfig, HardwareKind};
use tokbench_core::fit::{
    estimate, gpu_layers_that_fit_weights, kv_cache_bytes, weight_bytes, FitParams, FitVerdict,
    WeightBreakdown, GIB_BYTES,
};
use tokbench_core::{CacheType, QuantPreset, ResultPoint};

use crate::tables::{md_row, Table};

/// The models the guide answers for (architecture presets).
pub const MODELS: [&str; 3] = ["llama-3.1-405b", "llama-3.1-70b", "llama-3.1-8b"];

/// The quantizations it judges, most bits first.
pub const QUANTS: [QuantPreset; 10] = [
    QuantPreset::Q8_0,
    QuantPreset::Q6_K,
    QuantPreset::Q4_K_M,
    QuantPreset::IQ4_XS,
    QuantPreset::Q3_K_M,
    QuantPreset::IQ3_M,
    QuantPreset::IQ3_XXS,
    QuantPreset::IQ2_M,
    QuantPreset::IQ2_XXS,
    QuantPreset::IQ1_M,
];

/// The context the fit and the ceilings are computed at, tokens.
pub const CONTEXT: u32 = 8192;

/// Host memory bandwidth assumed for layers left in host memory: dual-channel DDR5-5600,
/// 5600 MT/s × 2 channels × 8 bytes = 89.6 GB/s (computed from the DDR5 transfer rate and
/// bus width; a desktop's typical configuration, stated in the guide).
pub const HOST_BANDWIDTH_BYTES_PER_S: f64 = 89.6e9;

/// Multi-device configurations the guide adds to the catalog's single devices: (catalog
/// name, counts). Consumer cards people stack, and datacenter parts as 8-GPU servers.
pub const MULTI: [(&str, &[u32]); 8] = [
    ("GeForce RTX 3090", &[2, 4]),
    ("GeForce RTX 4090", &[2, 4]),
    ("GeForce RTX 5090", &[2, 4]),
    ("Radeon RX 7900 XTX", &[2, 4]),
    ("A100 80GB SXM", &[8]),
    ("H100 SXM", &[8]),
    ("H200 (SXM)", &[8]),
    ("Instinct MI300X", &[8]),
];

/// Every configuration the guide lists: each catalog entry, then [`MULTI`]'s.
pub fn configurations(catalog: &Catalog) -> Vec<HardwareConfig> {
    let mut out: Vec<HardwareConfig> = catalog
        .entries
        .iter()
        .filter(|h| h.kind != HardwareKind::Cpu)
        .filter_map(|h| HardwareConfig::new(h.clone(), 1))
        .collect();
    for (name, counts) in MULTI {
        if let Some(h) = catalog.find(name) {
            out.extend(
                counts
                    .iter()
                    .filter_map(|&n| HardwareConfig::new(h.clone(), n)),
            );
        }
    }
    out
}

/// The weights a generated token reads: every tensor but the embedding table (one row of
/// it), or all of it when the output matrix is tied to it.
fn streamed_bytes(arch: &ArchSpec, w: &WeightBreakdown) -> u64 {
    if arch.tied_embeddings {
        w.total_bytes
    } else {
        w.total_bytes - w.token_embd_bytes
    }
}

/// How a quantization sits on a configuration at [`CONTEXT`].
#[derive(Debug, Clone, Copy, PartialEq)]
enum Placement {
    /// Everything in device (or unified) memory.
    Full,
    /// The output layer and `n_gpu_layers - 1` blocks on the devices, the rest in host
    /// memory (discrete GPUs only).
    Offload {
        n_gpu_layers: u32,
    },
    No,
}

fn placement(
    arch: &ArchSpec,
    q: QuantPreset,
    w: &WeightBreakdown,
    cfg: &HardwareConfig,
) -> Option<Placement> {
    let mem = cfg.memory_bytes?;
    let params = FitParams::new(CONTEXT);
    if cfg.hardware.kind == HardwareKind::DiscreteGpu {
        // Several devices: llama.cpp splits layers across them; the whole memory counts,
        // as `fit` judges it (each device's compute buffer is not counted again).
        return Some(
            match gpu_layers_that_fit_weights(arch, w, &params, mem).ok()? {
                FitVerdict::Full => Placement::Full,
                FitVerdict::Partial { n_gpu_layers } => Placement::Offload { n_gpu_layers },
                FitVerdict::No => Placement::No,
            },
        );
    }
    let total = estimate(arch, q, &params).ok()?.total_bytes;
    Some(if total <= mem {
        Placement::Full
    } else {
        Placement::No
    })
}

/// Bytes of f16 KV cache read per generated token at a short context (a `tg128` test's
/// mean, 64 cells; the cache's padding is allocated, not read): small beside the weights.
fn kv_read_bytes(arch: &ArchSpec) -> u64 {
    64 * u64::from(arch.n_layer) * arch.kv_dim() * 2 * 2
}

/// The bandwidth ceiling in tok/s: all on the device, or split between device and host.
fn ceiling(
    arch: &ArchSpec,
    w: &WeightBreakdown,
    cfg: &HardwareConfig,
    place: Placement,
) -> Option<f64> {
    let bw = cfg.bandwidth_bytes_per_s_per_device.filter(|b| *b > 0.0)?;
    let streamed = (streamed_bytes(arch, w) + kv_read_bytes(arch)) as f64;
    match place {
        Placement::Full => Some(bw / streamed),
        Placement::Offload { n_gpu_layers } => {
            // The output layer and the last n_gpu_layers - 1 blocks are on the device.
            let blocks_on_device = n_gpu_layers.saturating_sub(1) as usize;
            let on_device: u64 = w.output_bytes
                + w.output_norm_bytes
                + w.layer_bytes
                    .iter()
                    .rev()
                    .take(blocks_on_device)
                    .sum::<u64>();
            let on_host = (streamed as u64).saturating_sub(on_device);
            let seconds = on_device as f64 / bw + on_host as f64 / HOST_BANDWIDTH_BYTES_PER_S;
            (seconds > 0.0).then(|| 1.0 / seconds)
        }
        Placement::No => None,
    }
}

/// A measured or imported generation result for `arch` on `cfg`: the newest `tgN` test at
/// depth 0 of a model with the architecture's parameter count (within 1%), at quantization
/// `q` when there is one, else at any.
fn measured<'a>(
    points: &'a [ResultPoint],
    arch: &ArchSpec,
    q: QuantPreset,
    cfg: &'a HardwareConfig,
) -> Option<&'a ResultPoint> {
    let newest = |same_quant: bool| {
        candidates(points, arch, cfg)
            .filter(|p| !same_quant || p.series.model.quant == q.name())
            .max_by(|a, b| a.started_at.cmp(&b.started_at))
    };
    newest(true).or_else(|| newest(false))
}

fn candidates<'a>(
    points: &'a [ResultPoint],
    arch: &ArchSpec,
    cfg: &'a HardwareConfig,
) -> impl Iterator<Item = &'a ResultPoint> {
    let n = arch.n_params() as f64;
    points
        .iter()
        .filter(move |p| p.hardware.name == cfg.display_name)
        .filter(|p| p.series.test.n_prompt == 0 && p.series.test.n_gen > 0)
        .filter(|p| p.series.test.n_depth == 0)
        .filter(move |p| {
            p.facts
                .n_params
                .is_some_and(|m| (m as f64 - n).abs() <= 0.01 * n)
        })
        .filter(|p| p.decode_tps.is_some_and(|t| t > 0.0))
}

/// Whether the guide can use `p`: a generation test of a model with one of [`MODELS`]'
/// parameter counts (within 1%).
pub fn relevant(p: &ResultPoint) -> bool {
    p.series.test.n_prompt == 0
        && p.series.test.n_gen > 0
        && MODELS.iter().filter_map(|m| ArchSpec::preset(m)).any(|a| {
            let n = a.n_params() as f64;
            p.facts
                .n_params
                .is_some_and(|m| (m as f64 - n).abs() <= 0.01 * n)
        })
}

fn gib(bytes: u64) -> String {
    format!("{:.1}", bytes as f64 / GIB_BYTES as f64)
}

fn money(v: Option<f64>) -> String {
    v.map(|d| {
        let whole = d.round() as u64;
        let s = whole.to_string();
        let mut out = String::new();
        for (i, c) in s.chars().enumerate() {
            if i > 0 && (s.len() - i) % 3 == 0 {
                out.push(',');
            }
            out.push(c);
        }
        format!("${out}")
    })
    .unwrap_or_else(|| "—".into())
}

fn rate(v: Option<f64>) -> String {
    match v {
        Some(x) if x >= 100.0 => format!("{x:.0}"),
        Some(x) if x >= 10.0 => format!("{x:.1}"),
        Some(x) => format!("{x:.2}"),
        None => "—".into(),
    }
}

/// What the power figure of a configuration is (the catalog's `power_basis`).
fn power_basis(cfg: &HardwareConfig) -> &'static str {
    cfg.hardware.power_basis.map_or("—", |b| b.as_str())
}

/// `guide.md`, from the catalog and the results the report read (any hardware; those whose
/// hardware, model and quantization match a row are shown beside its ceiling).
pub fn markdown(catalog: &Catalog, points: &[ResultPoint]) -> String {
    guide(catalog, points).markdown
}

/// The guide, computed once: `guide.md`'s text, and each model's hardware table for the
/// HTML page.
#[derive(Debug, Clone)]
pub struct Guide {
    pub markdown: String,
    pub tables: Vec<Table>,
}

/// Builds [`Guide`] from the catalog and the results the report read.
pub fn guide(catalog: &Catalog, points: &[ResultPoint]) -> Guide {
    let configs = configurations(catalog);
    let mut tables = Vec::new();
    let mut s = String::new();
    let _ = write!(
        s,
        "# Which hardware runs Llama 3.1, and how fast\n\n\
         Generated by `tokbench report` from the hardware catalog and the results in the \
         database. For each model and configuration: whether each quantization fits at a \
         {CONTEXT}-token context (f16 KV cache, flash attention, `-ub 512`; `tokbench fit` \
         computes the same from the model's real architecture), and the generation speed at \
         the largest quantization that fits entirely: **measured** where a stored or imported \
         result exists (its source and date beside it), otherwise **≤ N tok/s**, the \
         memory-bandwidth ceiling (bytes read per token ÷ bandwidth), **not measured**. Real \
         runs reach 50–90% of the ceiling. Per $1k (launch MSRP) and per 100 W (the catalog's \
         power figure: a card's board power, a system's published maximum, or a package's \
         TDP, as said) use the same figure. — is unknown.\n\n\
         - Fit cells: ✓ fits entirely; `offload k/n` puts the output layer and k−1 of n−1 blocks \
         on the GPU(s) and the rest in host memory; ✗ not even that. Weights include the \
         embedding table, which llama.cpp keeps in host memory.\n\
         - Several GPUs split the model by layers and read their shares in turn: the ceiling \
         uses one device's bandwidth; memory, price and power are the totals, a multi-GPU \
         configuration priced as its cards (the catalog holds no system prices).\n\
         - Where only offload fits, the ceiling adds the time to read the host's share at \
         {:.1} GB/s (dual-channel DDR5-5600, 5600 MT/s × 2 × 8 bytes, computed; an assumption: \
         your host's bandwidth decides it).\n\
         - Unified memory (Apple, AMD APUs, DGX Spark): ✓ means the whole memory holds it; \
         the OS and the GPU's working-set limit take a share.\n\
         - IQ quantizations are sized as published (made with an importance matrix).\n\n",
        HOST_BANDWIDTH_BYTES_PER_S / 1e9
    );
    for name in MODELS {
        let Some(arch) = ArchSpec::preset(name) else {
            continue;
        };
        let weights: Vec<(QuantPreset, WeightBreakdown)> =
            QUANTS.iter().map(|&q| (q, weight_bytes(arch, q))).collect();
        let _ = writeln!(
            s,
            "## {} ({:.1} B parameters)\n",
            arch.display_name,
            arch.n_params() as f64 / 1e9
        );
        // Weights per quantization.
        s.push_str("| quantization |");
        for (q, _) in &weights {
            let _ = write!(s, " {q} |");
        }
        s.push_str("\n|---|");
        s.push_str(&"---:|".repeat(weights.len()));
        s.push_str("\n| weights GiB |");
        for (_, w) in &weights {
            let _ = write!(s, " {} |", gib(w.total_bytes));
        }
        s.push_str("\n\n");
        // KV cache against context.
        s.push_str("KV cache by context (all layers):\n\n| context | f16 GiB | q8_0 GiB |\n|---:|---:|---:|\n");
        for ctx in [4096u32, 8192, 32768, 131_072] {
            let f16 = kv_cache_bytes(arch, ctx, CacheType::F16, CacheType::F16, true);
            let q8 = kv_cache_bytes(arch, ctx, CacheType::Q8_0, CacheType::Q8_0, true);
            if let (Ok(f16), Ok(q8)) = (f16, q8) {
                let _ = writeln!(s, "| {ctx} | {} | {} |", gib(f16), gib(q8));
            }
        }
        s.push('\n');
        // The hardware table.
        let t = hardware_table(arch, &weights, &configs, points);
        s.push_str(&md_row(&t.columns));
        s.push_str("|---|---:|---:|---:|");
        s.push_str(&":-:|".repeat(weights.len()));
        s.push_str("---|---:|---:|\n");
        for row in &t.rows {
            s.push_str(&md_row(row));
        }
        s.push('\n');
        tables.push(t);
    }
    Guide {
        markdown: s,
        tables,
    }
}

/// One model's row per configuration: memory, price, power, a fit cell per quantization,
/// then the generation speed (measured, else the ceiling) and its ratios.
fn hardware_table(
    arch: &ArchSpec,
    weights: &[(QuantPreset, WeightBreakdown)],
    configs: &[HardwareConfig],
    points: &[ResultPoint],
) -> Table {
    let mut columns: Vec<String> = ["hardware", "memory GiB", "MSRP", "power W (basis)"]
        .map(String::from)
        .to_vec();
    columns.extend(weights.iter().map(|(q, _)| q.to_string()));
    columns.extend(["generation tok/s", "tok/s per $1k", "tok/s per 100 W"].map(String::from));
    let mut rows = Vec::new();
    let mut sort = Vec::new();
    for cfg in configs {
        let places: Vec<Option<Placement>> = weights
            .iter()
            .map(|(q, w)| placement(arch, *q, w, cfg))
            .collect();
        let mut row = vec![
            cfg.display_name.clone(),
            cfg.memory_bytes.map(gib).unwrap_or_else(|| "—".into()),
            money(cfg.msrp_usd),
            cfg.tdp_w
                .map(|w| format!("{w:.0} ({})", power_basis(cfg)))
                .unwrap_or_else(|| "—".into()),
        ];
        let mut keys = vec![
            None,
            cfg.memory_bytes.map(|b| b as f64),
            cfg.msrp_usd,
            cfg.tdp_w,
        ];
        for p in &places {
            row.push(match p {
                Some(Placement::Full) => "✓".to_string(),
                Some(Placement::Offload { n_gpu_layers }) => {
                    format!("offload {n_gpu_layers}/{}", arch.n_layer + 1)
                }
                Some(Placement::No) => "✗".into(),
                None => "—".into(),
            });
            keys.push(match p {
                Some(Placement::Full) => Some(2.0),
                Some(Placement::Offload { .. }) => Some(1.0),
                Some(Placement::No) => Some(0.0),
                None => None,
            });
        }
        // The largest quantization that fits entirely, else Q4_K_M (the one most people
        // run) with offload, else the smallest that offloads.
        let offloads = |i: &usize| matches!(places[*i], Some(Placement::Offload { .. }));
        let best = places
            .iter()
            .position(|p| *p == Some(Placement::Full))
            .or_else(|| {
                let q4 = weights.iter().position(|(q, _)| *q == QuantPreset::Q4_K_M);
                q4.filter(offloads)
                    .or_else(|| (0..places.len()).rev().find(offloads))
            });
        let (speed, figure, is_measured) = match best {
            None => ("does not fit".to_string(), None, false),
            Some(i) => {
                let (q, w) = &weights[i];
                match measured(points, arch, *q, cfg) {
                    Some(p) => {
                        let tps = p.decode_tps;
                        let from = p
                            .source
                            .clone()
                            .unwrap_or_else(|| format!("measured on {}", p.host));
                        // A run with layers left in host memory says how many it offloaded:
                        // the figure to set beside an offload ceiling.
                        let settings = &p.series.settings;
                        let mut partial = settings
                            .n_gpu_layers
                            .filter(|&n| n >= 0 && (n as u32) < arch.n_layer + 1)
                            .map(|n| format!(" with ngl {n}"))
                            .unwrap_or_default();
                        // Weights kept in host memory by a tensor override or n_cpu_moe,
                        // with every layer offloaded, are as much a partial offload.
                        if let Some(n) = settings.n_cpu_moe {
                            partial
                                .push_str(&format!(" with the experts of {n} layers on the CPU"));
                        }
                        if let Some(o) = settings.tensor_buft_overrides {
                            partial.push_str(&format!(" with -ot {o}"));
                        }
                        (
                            format!(
                                "{} at {}, measured {}{partial} ({}, {})",
                                rate(tps),
                                p.series.model.quant,
                                p.test,
                                from,
                                p.started_at.get(..10).unwrap_or(&p.started_at)
                            ),
                            tps,
                            true,
                        )
                    }
                    None => match places[i].and_then(|pl| ceiling(arch, w, cfg, pl)) {
                        Some(c) => {
                            let how = if matches!(places[i], Some(Placement::Offload { .. })) {
                                "device + host bandwidth bound"
                            } else {
                                "memory-bandwidth bound"
                            };
                            (
                                format!("≤ {} at {q} ({how}, not measured)", rate(Some(c))),
                                Some(c),
                                false,
                            )
                        }
                        None => (format!("{q}: bandwidth unknown"), None, false),
                    },
                }
            }
        };
        let per_1k = figure.zip(cfg.msrp_usd).map(|(t, usd)| t / (usd / 1000.0));
        let per_100w = figure.zip(cfg.tdp_w).map(|(t, w)| t / (w / 100.0));
        // A ceiling's ratios are ceilings too.
        let mark = |v: Option<f64>| match v {
            Some(_) if !is_measured => format!("≤ {}", rate(v)),
            _ => rate(v),
        };
        row.extend([speed, mark(per_1k), mark(per_100w)]);
        keys.extend([figure, per_1k, per_100w]);
        rows.push(row);
        sort.push(keys);
    }
    Table {
        id: format!("guide-{}", arch.name),
        title: format!(
            "Guide: {} at {CONTEXT} tokens of context",
            arch.display_name
        ),
        columns,
        rows,
        sort,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog() -> Catalog {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../bench-configs/hardware.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        Catalog::from_toml(&text, &path).unwrap()
    }

    #[test]
    fn the_ceiling_is_bandwidth_over_bytes_per_token() {
        // Llama 3.1 8B at Q4_K_M on an RTX 4090 (1,008 GB/s): the weights without the
        // embedding table plus 64 cells of f16 KV cache.
        let c = catalog();
        let cfg = c.resolve("GeForce RTX 4090").unwrap();
        let arch = ArchSpec::preset("llama-3.1-8b").unwrap();
        let w = weight_bytes(arch, QuantPreset::Q4_K_M);
        let bytes = (w.total_bytes - w.token_embd_bytes) as f64 + 64.0 * 32.0 * 1024.0 * 2.0 * 2.0;
        let got = ceiling(arch, &w, &cfg, Placement::Full).unwrap();
        assert!((got - 1.008e12 / bytes).abs() < 1e-9 * got, "{got}");
        // About 4.6 GB read per token: about 219 tok/s.
        assert!((200.0..240.0).contains(&got), "{got}");
    }

    #[test]
    fn offload_adds_the_host_share_at_host_bandwidth() {
        let c = catalog();
        let cfg = c.resolve("GeForce RTX 4090").unwrap();
        let arch = ArchSpec::preset("llama-3.1-70b").unwrap();
        let w = weight_bytes(arch, QuantPreset::Q4_K_M);
        let p = placement(arch, QuantPreset::Q4_K_M, &w, &cfg).unwrap();
        let Placement::Offload { n_gpu_layers } = p else {
            panic!("70B Q4_K_M on 24 GiB: {p:?}");
        };
        let full = ceiling(arch, &w, &cfg, Placement::Full).unwrap();
        let split = ceiling(arch, &w, &cfg, p).unwrap();
        // Slower than on the GPU alone, faster than from host memory alone.
        let host_only =
            HOST_BANDWIDTH_BYTES_PER_S / (streamed_bytes(arch, &w) + kv_read_bytes(arch)) as f64;
        assert!(
            split < full && split > host_only,
            "{split} {full} {host_only}"
        );
        assert!(n_gpu_layers > 1 && n_gpu_layers < arch.n_layer + 1);
    }

    /// A published 70B result on one RTX 3090 with 40 layers offloaded.
    fn offloaded_70b(cfg: HardwareConfig) -> ResultPoint {
        use tokbench_core::{
            BackendIdentity, EngineSettings, HardwareRef, ModelFacts, ModelIdentity, ResultStatus,
            SeriesKey, TestSpec,
        };
        ResultPoint {
            run_uuid: "run".into(),
            started_at: "2025-03-01T00:00:00Z".into(),
            series: SeriesKey {
                host: "post".into(),
                backend: BackendIdentity {
                    name: "llama-bench".into(),
                    accel: "cuda".into(),
                    flags: String::new(),
                },
                model: ModelIdentity {
                    name: "llama 70B Q4_K - Medium".into(),
                    quant: "Q4_K_M".into(),
                    sha256: None,
                },
                test: TestSpec {
                    n_prompt: 0,
                    n_gen: 128,
                    n_depth: 0,
                },
                settings: EngineSettings {
                    n_gpu_layers: Some(40),
                    ..EngineSettings::default()
                },
                ..SeriesKey::default()
            },
            host: "post".into(),
            hardware: HardwareRef::matched(cfg),
            backend_version: "b4000".into(),
            facts: ModelFacts {
                n_params: Some(70_550_000_000),
                ..ModelFacts::default()
            },
            test: "tg128".into(),
            status: ResultStatus::Ok,
            prefill_tps: None,
            prefill_tps_sd: None,
            decode_tps: Some(3.2),
            decode_tps_sd: None,
            ttft_ms: None,
            decode_power_w: None,
            vram_peak_bytes: None,
            rss_peak_bytes: None,
            source: Some("https://example.org/post".into()),
            noisy: None,
            throttled: None,
        }
    }

    #[test]
    fn a_partly_offloaded_result_stands_beside_the_offload_row() {
        let c = catalog();
        let cfg = c.resolve("GeForce RTX 3090").unwrap();
        let text = markdown(&c, &[offloaded_70b(cfg)]);
        let start = text.find("## Llama 3.1 70B").unwrap();
        let row = text[start..]
            .lines()
            .find(|l| l.starts_with("| GeForce RTX 3090 |"))
            .unwrap();
        assert!(
            row.contains(
                "3.20 at Q4_K_M, measured tg128 with ngl 40 (https://example.org/post, 2025-03-01)"
            ),
            "{row}"
        );
        // Its ratios are the measurement's, not marked as ceilings: 3.2 / 1.499.
        assert!(row.contains("| 2.13 |"), "{row}");
    }

    #[test]
    fn the_guide_lists_every_model_and_labels_ceilings() {
        let text = markdown(&catalog(), &[]);
        for h in [
            "## Llama 3.1 405B",
            "## Llama 3.1 70B",
            "## Llama 3.1 8B",
            "8× H200 (SXM)",
            "2× GeForce RTX 3090",
        ] {
            assert!(text.contains(h), "{h}");
        }
        assert!(text.contains("memory-bandwidth bound, not measured"));
        assert!(text.contains("device + host bandwidth bound, not measured"));
        // 405B at Q4_K_M needs about 228 GiB: it fits an 8× H200 server, not one 4090.
        let line = |name: &str, model: &str| {
            let start = text.find(model).unwrap();
            text[start..]
                .lines()
                .find(|l| l.starts_with(&format!("| {name} |")))
                .unwrap()
                .to_string()
        };
        let h200 = line("8× H200 (SXM)", "## Llama 3.1 405B");
        assert!(h200.contains('✓'), "{h200}");
        let rtx = line("GeForce RTX 4090", "## Llama 3.1 405B");
        assert!(!rtx.contains('✓'), "{rtx}");
    }
}
