//! `tokbench fit`'s answer, computed and rendered: for a model's real architecture, the
//! weights per quantization, the KV cache and compute buffer at each context, which
//! hardware holds it entirely, partly (how many layers on the GPU) or not at all; and each
//! stored result's measured memory beside its prediction. The model is read by the caller
//! (a GGUF file's tensor table, a preset, an explicit shape); the math is `core::fit`'s.

use std::collections::BTreeMap;

use serde::Serialize;
use tokbench_core::arch::ArchSpec;
use tokbench_core::catalog::{HardwareConfig, HardwareKind};
use tokbench_core::fit::{
    estimate_with_weights, gpu_layers_that_fit_weights, FitError, FitEstimate, FitInput, FitParams,
    FitVerdict, WeightBreakdown, GB_BYTES, GIB_BYTES,
};
use tokbench_core::CacheType;

use crate::text::{markdown, table};

/// How sizes print: binary GiB or MiB, or decimal GB, labelled either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Units {
    Gib,
    Gb,
    /// MiB, for small models.
    Mib,
}

impl Units {
    pub const ALL: [Units; 3] = [Units::Gib, Units::Gb, Units::Mib];

    pub fn label(self) -> &'static str {
        match self {
            Self::Gib => "GiB",
            Self::Gb => "GB",
            Self::Mib => "MiB",
        }
    }

    /// `bytes` in these units, two decimals.
    pub fn fmt(self, bytes: u64) -> String {
        let div = match self {
            Self::Gib => GIB_BYTES,
            Self::Gb => GB_BYTES,
            Self::Mib => 1 << 20,
        };
        format!("{:.2}", bytes as f64 / div as f64)
    }
}

/// A unit name that is not one of gib, gb, mib.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown units `{0}`: gib, gb or mib")]
pub struct UnknownUnits(pub String);

impl std::str::FromStr for Units {
    type Err = UnknownUnits;

    fn from_str(s: &str) -> Result<Units, UnknownUnits> {
        Units::ALL
            .into_iter()
            .find(|u| u.label().eq_ignore_ascii_case(s))
            .ok_or_else(|| UnknownUnits(s.to_string()))
    }
}

/// How a fit table prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// Aligned text columns, for a terminal.
    Text,
    /// GitHub Markdown, with headings.
    Markdown,
}

/// The model to size, as the caller loaded it: its shape, and its weights per
/// quantization (exact from a GGUF tensor table, or by llama.cpp's quantizer rules).
#[derive(Debug, Clone)]
pub struct FitModel {
    pub arch: ArchSpec,
    /// How the model is named in the report (a file, a preset's display name).
    pub label: String,
    /// Where its weights come from, said in the report.
    pub source: String,
    pub weights: Vec<(String, WeightBreakdown)>,
    /// What the caller has to say about it (an architecture sized as llama's).
    pub notes: Vec<String>,
}

/// What `tokbench fit` was asked, besides the model and the hardware.
#[derive(Debug, Clone)]
pub struct FitRequest {
    /// Context lengths; the first sizes the quantization table.
    pub ctx: Vec<u32>,
    pub type_k: CacheType,
    pub type_v: CacheType,
    pub flash_attn: bool,
    pub n_ubatch: u32,
    pub units: Units,
    /// The quantization the context table is for: Q4_K_M (the one most people run) when
    /// there, else the first.
    pub ctx_quant: Option<String>,
}

/// Why a fit cannot be computed.
#[derive(Debug, thiserror::Error)]
pub enum FitRequestError {
    #[error("--ctx: a context of 0 tokens cannot hold anything; give lengths ≥ 1")]
    ZeroContext,
    #[error("--ctx: give at least one context length")]
    NoContext,
    #[error("--ctv {0}: llama.cpp refuses a quantized V cache without flash attention (it fails with \"quantized V cache requires flash_attn\"); add --fa, or use --ctv f16")]
    QuantizedVWithoutFlashAttention(CacheType),
    #[error("--ubatch must be greater than 0")]
    ZeroUbatch,
    #[error("no quantization to size")]
    NoWeights,
    #[error("{}", chain(.0))]
    Estimate(#[from] FitError),
}

/// An error and its sources, `: `-joined.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(&format!(": {s}"));
        source = s.source();
    }
    text
}

/// One row of the quantization matrix.
#[derive(Debug, Clone, Serialize)]
pub struct QuantRow {
    pub quant: String,
    pub bits_per_weight: f64,
    pub n_ctx: u32,
    pub weights_bytes: u64,
    pub kv_bytes: u64,
    pub compute_bytes: u64,
    pub total_bytes: u64,
    /// Hardware name → `full`, `ngl N` or `no`.
    pub hardware: BTreeMap<String, String>,
}

/// One row of the context table.
#[derive(Debug, Clone, Serialize)]
pub struct CtxRow {
    pub n_ctx: u32,
    pub kv_bytes: u64,
    pub compute_bytes: u64,
    pub total_bytes: u64,
    pub hardware: BTreeMap<String, String>,
}

/// `tokbench fit`'s answer.
#[derive(Debug, Clone, Serialize)]
pub struct FitReport {
    pub model: String,
    pub source: String,
    pub n_params: u64,
    pub type_k: String,
    pub type_v: String,
    pub flash_attn: bool,
    pub n_ubatch: u32,
    pub units: Units,
    pub quantizations: Vec<QuantRow>,
    /// For the first quantization.
    pub contexts_quant: String,
    pub contexts: Vec<CtxRow>,
    pub hardware: Vec<HardwareCol>,
    pub notes: Vec<String>,
}

/// A hardware configuration judged, and its memory.
#[derive(Debug, Clone, Serialize)]
pub struct HardwareCol {
    pub name: String,
    pub memory_bytes: u64,
}

fn verdict_text(v: FitVerdict, arch: &ArchSpec) -> String {
    match v {
        FitVerdict::Full => "full".into(),
        FitVerdict::Partial { n_gpu_layers } => format!("ngl {n_gpu_layers}/{}", arch.n_layer + 1),
        FitVerdict::No => "no".into(),
    }
}

fn hardware_verdicts(
    arch: &ArchSpec,
    w: &WeightBreakdown,
    params: &FitParams,
    est: &FitEstimate,
    hw: &[(HardwareConfig, u64)],
) -> Result<BTreeMap<String, String>, FitError> {
    let mut out = BTreeMap::new();
    for (cfg, mem) in hw {
        let text = if cfg.hardware.kind == HardwareKind::DiscreteGpu {
            verdict_text(gpu_layers_that_fit_weights(arch, w, params, *mem)?, arch)
        } else if est.total_bytes <= *mem {
            // Unified memory and CPUs hold the whole model in one memory.
            "full".into()
        } else {
            "no".into()
        };
        out.insert(cfg.display_name.clone(), text);
    }
    Ok(out)
}

/// Computes the report: per quantization at the first context, and per context at one
/// quantization, with each `hardware` (a catalog configuration and its memory) judged.
pub fn fit_report(
    model: &FitModel,
    req: &FitRequest,
    hw: &[(HardwareConfig, u64)],
) -> Result<FitReport, FitRequestError> {
    let Some(&n_ctx0) = req.ctx.first() else {
        return Err(FitRequestError::NoContext);
    };
    if req.ctx.contains(&0) {
        return Err(FitRequestError::ZeroContext);
    }
    if req.type_v.is_quantized() && !req.flash_attn {
        return Err(FitRequestError::QuantizedVWithoutFlashAttention(req.type_v));
    }
    if req.n_ubatch == 0 {
        return Err(FitRequestError::ZeroUbatch);
    }
    if model.weights.is_empty() {
        return Err(FitRequestError::NoWeights);
    }
    let params_at = |n_ctx: u32| FitParams {
        n_ctx,
        n_ubatch: req.n_ubatch,
        type_k: req.type_k,
        type_v: req.type_v,
        flash_attn: req.flash_attn,
    };
    let arch = &model.arch;
    let mut notes = model.notes.clone();
    let mut quantizations = Vec::new();
    for (q, w) in &model.weights {
        let params = params_at(n_ctx0);
        let est = estimate_with_weights(arch, w, &params)?;
        quantizations.push(QuantRow {
            quant: q.clone(),
            bits_per_weight: w.total_bytes as f64 * 8.0 / arch.n_params().max(1) as f64,
            n_ctx: n_ctx0,
            weights_bytes: est.weights_bytes,
            kv_bytes: est.kv_bytes,
            compute_bytes: est.compute_bytes,
            total_bytes: est.total_bytes,
            hardware: hardware_verdicts(arch, w, &params, &est, hw)?,
        });
    }
    let ctx_quant = req
        .ctx_quant
        .as_deref()
        .and_then(|want| model.weights.iter().position(|(q, _)| q == want))
        .unwrap_or(0);
    let (q0, w0) = &model.weights[ctx_quant];
    let mut contexts = Vec::new();
    for &n_ctx in &req.ctx {
        let params = params_at(n_ctx);
        let est = estimate_with_weights(arch, w0, &params)?;
        contexts.push(CtxRow {
            n_ctx,
            kv_bytes: est.kv_bytes,
            compute_bytes: est.compute_bytes,
            total_bytes: est.total_bytes,
            hardware: hardware_verdicts(arch, w0, &params, &est, hw)?,
        });
    }
    if hw
        .iter()
        .any(|(c, _)| c.hardware.kind == HardwareKind::Unified)
    {
        notes.push("unified memory: `full` means the whole memory holds it; the GPU may use only part of it by default (macOS caps it at the `recommendedMaxWorkingSetSize` llama.cpp prints; `sysctl iogpu.wired_limit_mb` raises it), and the OS and other programs need their share".into());
    }
    notes.push("weights include the token-embedding table, which llama.cpp keeps in host memory; `full` = every layer on the device (-ngl 999), `ngl N/M` = the output layer and the last N-1 blocks fit, `no` = not even that; the compute buffer is an estimate; nothing is reserved for the driver".into());
    Ok(FitReport {
        model: model.label.clone(),
        source: model.source.clone(),
        n_params: arch.n_params(),
        type_k: req.type_k.to_string(),
        type_v: req.type_v.to_string(),
        flash_attn: req.flash_attn,
        n_ubatch: req.n_ubatch,
        units: req.units,
        quantizations,
        contexts_quant: q0.clone(),
        contexts,
        hardware: hw
            .iter()
            .map(|(c, m)| HardwareCol {
                name: c.display_name.clone(),
                memory_bytes: *m,
            })
            .collect(),
        notes,
    })
}

/// The report as text tables or Markdown (JSON is the report serialized).
/// The report as text or Markdown. `wide`: every hardware named in the quantization table
/// and one column per hardware in the context table (as wide as the catalog); otherwise a
/// layout that fits 120 columns: counts and the smallest device that fits, and the context
/// verdicts with one row per hardware.
pub fn render(report: &FitReport, style: Style, wide: bool) -> String {
    let u = report.units;
    let unit = u.label();
    let hw: Vec<String> = report
        .hardware
        .iter()
        .map(|h| format!("{} ({} {unit})", h.name, u.fmt(h.memory_bytes)))
        .collect();
    let tbl = |cols: Vec<String>, rows: Vec<Vec<String>>| match style {
        Style::Markdown => markdown(&cols, &rows),
        _ => table(&cols, &rows),
    };
    let mut out = String::new();
    // One context row's sizes, and one hardware's verdict at one context.
    let ctx_cells = |r: &CtxRow| {
        vec![
            r.n_ctx.to_string(),
            u.fmt(r.kv_bytes),
            u.fmt(r.compute_bytes),
            u.fmt(r.total_bytes),
        ]
    };
    let verdict = |r: &CtxRow, h: &HardwareCol| {
        r.hardware
            .get(&h.name)
            .cloned()
            .unwrap_or_else(|| "—".into())
    };
    let heading = |s: &str| match style {
        Style::Markdown => format!("\n### {s}\n\n"),
        _ => format!("\n{s}\n"),
    };
    out.push_str(&format!(
        "{} — {} parameters ({})\nKV cache {}/{}, flash attention {}, ubatch {}\n",
        report.model,
        report.n_params,
        report.source,
        report.type_k,
        report.type_v,
        if report.flash_attn { "on" } else { "off" },
        report.n_ubatch
    ));
    out.push_str(&heading(&format!(
        "Quantizations at {} tokens of context",
        report.quantizations[0].n_ctx
    )));
    let cols: Vec<String> = [
        "quant",
        "bits/weight",
        &format!("weights {unit}"),
        &format!("KV {unit}"),
        &format!("compute {unit}"),
        &format!("total {unit}"),
        "fits entirely on",
        "partly (layers on GPU)",
    ]
    .map(String::from)
    .to_vec();
    if !wide {
        out.push_str(&tbl(narrow_quant_cols(unit), narrow_quant_rows(report)));
        out.push_str(&heading(&format!(
            "Context lengths at {}",
            report.contexts_quant
        )));
        out.push_str(&tbl(
            vec![
                "context".into(),
                format!("KV {unit}"),
                format!("compute {unit}"),
                format!("total {unit}"),
            ],
            report.contexts.iter().map(ctx_cells).collect(),
        ));
        if !report.hardware.is_empty() {
            out.push_str(&heading(&format!(
                "Does {} fit? (full: every layer on the device; ngl N/M: N of M layers)",
                report.contexts_quant
            )));
            let mut cols = vec!["hardware".to_string(), unit.to_string()];
            cols.extend(report.contexts.iter().map(|r| r.n_ctx.to_string()));
            let rows = report
                .hardware
                .iter()
                .map(|h| {
                    let mut row = vec![h.name.clone(), u.fmt(h.memory_bytes)];
                    row.extend(report.contexts.iter().map(|r| verdict(r, h)));
                    row
                })
                .collect();
            out.push_str(&tbl(cols, rows));
        }
        out.push('\n');
        let width = (style == Style::Text).then_some(NARROW_WIDTH);
        push_notes(&mut out, report, width);
        return out;
    }
    let rows = report
        .quantizations
        .iter()
        .map(|r| {
            let full: Vec<&str> = r
                .hardware
                .iter()
                .filter(|(_, v)| *v == "full")
                .map(|(k, _)| k.as_str())
                .collect();
            let part: Vec<String> = r
                .hardware
                .iter()
                .filter(|(_, v)| v.starts_with("ngl"))
                .map(|(k, v)| format!("{k} ({})", v.trim_start_matches("ngl ")))
                .collect();
            let mut row = quant_size_cells(r, u);
            row.extend([
                if full.is_empty() {
                    "—".into()
                } else {
                    full.join(", ")
                },
                if part.is_empty() {
                    "—".into()
                } else {
                    part.join(", ")
                },
            ]);
            row
        })
        .collect();
    out.push_str(&tbl(cols, rows));
    out.push_str(&heading(&format!(
        "Context lengths at {}",
        report.contexts_quant
    )));
    let mut cols: Vec<String> = vec![
        "context".into(),
        format!("KV {unit}"),
        format!("compute {unit}"),
        format!("total {unit}"),
    ];
    cols.extend(hw.iter().cloned());
    let rows = report
        .contexts
        .iter()
        .map(|r| {
            let mut row = ctx_cells(r);
            row.extend(report.hardware.iter().map(|h| verdict(r, h)));
            row
        })
        .collect();
    out.push_str(&tbl(cols, rows));
    out.push('\n');
    push_notes(&mut out, report, None);
    out
}

/// One stored result with its prediction.
#[derive(Debug, Clone, Serialize)]
pub struct Validation {
    pub model: String,
    pub quant: String,
    pub test: String,
    /// The context settings: `ub512 f16/f16`, `+fa` with flash attention.
    pub settings: String,
    pub n_ctx: u32,
    /// The prediction: weights + KV cache + compute estimate.
    pub predicted_bytes: u64,
    pub weights_bytes: u64,
    pub kv_bytes: u64,
    pub compute_bytes: u64,
    /// What llama.cpp reported allocating (its buffer-size log lines), where recorded.
    pub allocated: Option<Allocated>,
    /// `(predicted - allocated total) / allocated total`, percent.
    pub error_vs_allocated_pct: Option<f64>,
    /// The engine process's peak resident memory during the test.
    pub measured_bytes: u64,
    pub measured_what: String,
    /// `(predicted - measured) / measured`, percent.
    pub error_pct: f64,
    /// What the accelerators said of their own memory during the test, where the engine
    /// read any (a GPU build).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device: Option<DeviceSeen>,
}

/// The accelerators' own account of the memory a test took: free before the model's load
/// less free at the end of the test, context allocated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeviceSeen {
    /// Summed over the devices whose readings show use; `None` where none does.
    pub used_bytes: Option<u64>,
    /// The devices whose readings cannot show a process's use (every reading "all free",
    /// as a Vulkan driver without `VK_EXT_memory_budget` reports).
    pub not_visible: Vec<String>,
}

impl DeviceSeen {
    /// From a stored `placement_json`; `None` where it holds no device readings.
    fn from_placement(json: &str) -> Option<DeviceSeen> {
        let placement: serde_json::Value = serde_json::from_str(json).ok()?;
        let readings: Vec<tokbench_core::record::DeviceMemory> =
            serde_json::from_value(placement.get("device_memory")?.clone()).ok()?;
        if readings.is_empty() {
            return None;
        }
        let used: Vec<u64> = readings.iter().filter_map(|d| d.used_in_test()).collect();
        Some(DeviceSeen {
            used_bytes: (!used.is_empty()).then(|| used.iter().sum()),
            not_visible: readings
                .iter()
                .filter(|d| !d.usage_visible())
                .map(|d| d.name.clone())
                .collect(),
        })
    }
}

/// llama.cpp's own account of a test's buffers, bytes.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Allocated {
    /// The weights' buffers, the CPU repacked copy included.
    pub model_bytes: u64,
    /// Of `model_bytes`, the CPU backend's repacked second copy of some quantized weight
    /// matrices, which the prediction leaves out (GPU and Metal backends do not repack).
    pub repack_bytes: u64,
    pub kv_bytes: u64,
    /// Compute (graph scratch) plus output (logits) buffers.
    pub compute_bytes: u64,
    pub total_bytes: u64,
}

/// The context the engine created for a cell ([`tokbench_core::bench::engine_ctx`];
/// llama.cpp pads it to 256), at most `u32::MAX` (a stored record's numbers may sum past it).
fn engine_ctx(n_prompt: u32, n_gen: u32, n_depth: u32) -> u32 {
    u32::try_from(tokbench_core::bench::engine_ctx(n_depth, n_prompt, n_gen)).unwrap_or(u32::MAX)
}

/// MiB when every figure is small (the synthetic models), else GiB.
pub fn units_for(out: &[Validation]) -> Units {
    let largest = out
        .iter()
        .map(|v| v.predicted_bytes.max(v.measured_bytes))
        .max()
        .unwrap_or(0);
    if largest < 4 * GIB_BYTES {
        Units::Mib
    } else {
        Units::Gib
    }
}

/// The comparison as a text table or Markdown (with its explanation).
/// The report's notes, each `Note: …`; wrapped at `width` characters when given (a
/// terminal), on one line each otherwise (Markdown, `--wide`).
fn push_notes(out: &mut String, report: &FitReport, width: Option<usize>) {
    for n in &report.notes {
        let text = format!("Note: {n}");
        let Some(width) = width else {
            out.push_str(&text);
            out.push('\n');
            continue;
        };
        let mut line = String::new();
        for word in text.split(' ') {
            if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > width {
                out.push_str(&line);
                out.push('\n');
                line = "      ".to_string();
            } else if !line.is_empty() && !line.ends_with("      ") {
                line.push(' ');
            }
            line.push_str(word);
        }
        out.push_str(&line);
        out.push('\n');
    }
}

/// The width the default layout fits, in characters.
pub const NARROW_WIDTH: usize = 120;

fn narrow_quant_cols(unit: &str) -> Vec<String> {
    [
        "quant",
        // Bits per weight; spelled short so IQ2_XXS and the catalog's longest name fit.
        "bpw",
        &format!("weights {unit}"),
        &format!("KV {unit}"),
        &format!("compute {unit}"),
        &format!("total {unit}"),
        "fits on",
        "smallest that fits",
        "partly",
    ]
    .map(String::from)
    .to_vec()
}

/// The quantization table's rows, narrow: how many of the hardware judged hold the model
/// entirely, the one with the least memory among them, and how many hold part of it.
fn narrow_quant_rows(report: &FitReport) -> Vec<Vec<String>> {
    let u = report.units;
    let memory: BTreeMap<&str, u64> = report
        .hardware
        .iter()
        .map(|h| (h.name.as_str(), h.memory_bytes))
        .collect();
    let judged = report.hardware.len();
    report
        .quantizations
        .iter()
        .map(|r| {
            let full: Vec<&str> = r
                .hardware
                .iter()
                .filter(|(_, v)| *v == "full")
                .map(|(k, _)| k.as_str())
                .collect();
            let partly = r.hardware.values().filter(|v| v.starts_with("ngl")).count();
            let smallest = full
                .iter()
                .min_by_key(|n| (memory.get(*n).copied().unwrap_or(u64::MAX), **n))
                .map(|n| {
                    // Long names are cut so the table keeps to NARROW_WIDTH (`--wide` names
                    // every part in full).
                    let name: String = if n.chars().count() > 28 {
                        n.chars().take(27).chain(['…']).collect()
                    } else {
                        n.to_string()
                    };
                    let mem = u.fmt(memory.get(n).copied().unwrap_or(0));
                    format!("{name} ({mem} {})", u.label())
                })
                .unwrap_or_else(|| "—".into());
            let mut row = quant_size_cells(r, u);
            row.extend([
                if judged == 0 {
                    "—".into()
                } else {
                    format!("{} of {judged}", full.len())
                },
                smallest,
                if judged == 0 {
                    "—".into()
                } else {
                    partly.to_string()
                },
            ]);
            row
        })
        .collect()
}

/// A quantization row's sizes, the same in both layouts: quant, bits/weight, weights, KV,
/// compute, total.
fn quant_size_cells(r: &QuantRow, u: Units) -> Vec<String> {
    vec![
        r.quant.clone(),
        format!("{:.2}", r.bits_per_weight),
        u.fmt(r.weights_bytes),
        u.fmt(r.kv_bytes),
        u.fmt(r.compute_bytes),
        u.fmt(r.total_bytes),
    ]
}

pub fn render_validations(out: &[Validation], style: Style, units: Units) -> String {
    let mut text = String::new();
    let unit = units.label();
    let pct = |p: Option<f64>| p.map(|p| format!("{p:+.1}%")).unwrap_or_else(|| "—".into());
    let alloc = |v: &Validation, f: fn(&Allocated) -> u64| {
        v.allocated
            .as_ref()
            .map(|a| units.fmt(f(a)))
            .unwrap_or_else(|| "—".into())
    };
    // Only where the engine read a device's memory (a GPU build): a CPU run has none.
    let with_device = out.iter().any(|v| v.device.is_some());
    let mut cols: Vec<String> = [
        "model".to_string(),
        "quant".into(),
        "test".into(),
        "settings".into(),
        "context".into(),
        format!("weights {unit} pred/alloc"),
        format!("KV {unit} pred/alloc"),
        format!("compute {unit} pred/alloc"),
        format!("total {unit} pred/alloc"),
        "vs alloc".into(),
        format!("of which CPU repack {unit}"),
        format!("peak RSS {unit}"),
        "vs RSS".into(),
    ]
    .to_vec();
    if with_device {
        cols.push(format!("device used {unit}"));
    }
    let device = |v: &Validation| match &v.device {
        Some(DeviceSeen {
            used_bytes: Some(b),
            ..
        }) => units.fmt(*b),
        Some(d) => format!("not visible ({})", d.not_visible.join(", ")),
        None => "—".into(),
    };
    let rows: Vec<Vec<String>> = out
        .iter()
        .map(|v| {
            let mut row = vec![
                v.model.clone(),
                v.quant.clone(),
                v.test.clone(),
                v.settings.clone(),
                v.n_ctx.to_string(),
                format!(
                    "{} / {}",
                    units.fmt(v.weights_bytes),
                    alloc(v, |a| a.model_bytes)
                ),
                format!("{} / {}", units.fmt(v.kv_bytes), alloc(v, |a| a.kv_bytes)),
                format!(
                    "{} / {}",
                    units.fmt(v.compute_bytes),
                    alloc(v, |a| a.compute_bytes)
                ),
                format!(
                    "{} / {}",
                    units.fmt(v.predicted_bytes),
                    alloc(v, |a| a.total_bytes)
                ),
                pct(v.error_vs_allocated_pct),
                match v.allocated {
                    Some(a) if a.repack_bytes > 0 => units.fmt(a.repack_bytes),
                    Some(_) => "0".into(),
                    None => "—".into(),
                },
                units.fmt(v.measured_bytes),
                pct(Some(v.error_pct)),
            ];
            if with_device {
                row.push(device(v));
            }
            row
        })
        .collect();
    match style {
        Style::Markdown => {
            text.push_str("## Predicted vs measured memory\n\n");
            text.push_str("Predicted: weights from the GGUF tensor table, the KV cache at the context the engine created (padded to 256 cells), and the compute-buffer estimate. Allocated: what llama.cpp reported allocating for the same test (its `… buffer size` log lines; compute includes the output buffer). CPU repack: on x86 with AVX2 and on recent ARM cores, llama.cpp's CPU backend also keeps an interleaved copy of the Q4_0/Q4_K/IQ4_NL weight matrices, part of the allocated weights (the mapped file may still span the originals); GPU and Metal runs do not repack, so the prediction leaves it out and Q4 rows on a CPU show it as the gap. Peak RSS: the engine process's resident memory at its peak during the test, which also holds the program (code, libraries, allocator slack) and only the pages actually touched.\n\n");
            text.push_str(&markdown(&cols, &rows));
            if with_device {
                text.push_str(&format!("\n{DEVICE_USED}\n"));
            }
        }
        _ => {
            text.push_str(&table(&cols, &rows));
            text.push_str("pred = tokbench fit's prediction; alloc = what llama.cpp reported allocating; peak RSS also counts the program itself and only pages touched\n");
            if with_device {
                text.push_str(DEVICE_USED);
                text.push('\n');
            }
        }
    }
    text
}

/// What the `device used` column is.
const DEVICE_USED: &str = "device used = the accelerators' own free memory before the model's load less at the end of the test (the engine reads it; on CUDA that is the whole device's free memory, so another process's allocations meanwhile count too, as do the libraries' own workspaces beside llama.cpp's buffers); not visible where a device reports all its memory free whatever is allocated (a Vulkan driver without VK_EXT_memory_budget, such as lavapipe)";

/// Why a stored result cannot be set beside its prediction.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct NotComparable(String);

impl From<String> for NotComparable {
    fn from(why: String) -> Self {
        NotComparable(why)
    }
}

impl From<&str> for NotComparable {
    fn from(why: &str) -> Self {
        NotComparable(why.to_string())
    }
}

/// One stored result's prediction beside its measurement, or why it cannot be compared.
pub fn validation(r: FitInput) -> Result<Validation, NotComparable> {
    let measured = r
        .rss_peak_bytes
        .and_then(|b| u64::try_from(b).ok())
        .ok_or(NotComparable::from("no peak memory was recorded"))?;
    let shape: serde_json::Value = serde_json::from_str(&r.shape_json)
        .map_err(|e| format!("its model's shape_json is not JSON: {e}"))?;
    let g = |k: &str| {
        shape
            .get(k)
            .and_then(|v| v.as_u64())
            .ok_or(format!("its model's shape_json lacks `{k}`"))
    };
    let tensor_bytes = g("tensor_bytes")?;
    let arch = ArchSpec {
        name: r.model.clone(),
        display_name: r.model.clone(),
        architecture: if r.architecture == "qwen2" {
            "qwen2"
        } else {
            "llama"
        }
        .into(),
        n_layer: g("block_count")? as u32,
        n_embd: g("embedding_length")? as u32,
        n_head: g("head_count")? as u32,
        n_head_kv: g("head_count_kv")? as u32,
        head_dim: g("head_dim")? as u32,
        n_ff: g("feed_forward_length").unwrap_or(1) as u32,
        n_vocab: g("vocab_size")? as u32,
        n_ctx_train: g("context_length").unwrap_or(0) as u32,
        rope_freq_base: 10_000.0,
        rms_norm_eps: 1e-5,
        tied_embeddings: false,
        qkv_bias: r.architecture == "qwen2",
        sliding_window: None,
    };
    let type_k: CacheType = r.type_k.parse().map_err(|e| format!("K cache type: {e}"))?;
    let type_v: CacheType = r.type_v.parse().map_err(|e| format!("V cache type: {e}"))?;
    let n_ctx = engine_ctx(r.n_prompt, r.n_gen, r.n_depth);
    let params = FitParams {
        n_ctx,
        n_ubatch: r.n_ubatch,
        type_k,
        type_v,
        flash_attn: r.flash_attn,
    };
    let w = WeightBreakdown {
        total_bytes: tensor_bytes,
        token_embd_bytes: 0,
        output_bytes: 0,
        output_norm_bytes: 0,
        layer_bytes: Vec::new(),
        per_type: BTreeMap::new(),
    };
    let est = estimate_with_weights(&arch, &w, &params).map_err(|e| chain(&e))?;
    let bytes = |b: Option<i64>| b.and_then(|b| u64::try_from(b).ok());
    let allocated = match (bytes(r.model_buffer_bytes), bytes(r.kv_buffer_bytes)) {
        (Some(model_bytes), Some(kv_bytes)) => {
            let compute_bytes = bytes(r.compute_buffer_bytes).unwrap_or(0)
                + bytes(r.output_buffer_bytes).unwrap_or(0);
            let repack_bytes = bytes(r.repack_buffer_bytes).unwrap_or(0);
            Some(Allocated {
                model_bytes: model_bytes + repack_bytes,
                repack_bytes,
                kv_bytes,
                compute_bytes,
                total_bytes: model_bytes + repack_bytes + kv_bytes + compute_bytes,
            })
        }
        _ => None,
    };
    let error_vs_allocated_pct = allocated
        .map(|a| (est.total_bytes as f64 - a.total_bytes as f64) / a.total_bytes as f64 * 100.0);
    let settings = format!(
        "ub{} {}/{}{}",
        r.n_ubatch,
        r.type_k,
        r.type_v,
        if r.flash_attn { " fa" } else { "" }
    );
    Ok(Validation {
        settings,
        allocated,
        error_vs_allocated_pct,
        model: r.model,
        quant: r.quant,
        test: r.test,
        n_ctx,
        predicted_bytes: est.total_bytes,
        weights_bytes: est.weights_bytes,
        kv_bytes: est.kv_bytes,
        compute_bytes: est.compute_bytes,
        measured_bytes: measured,
        measured_what: if r.accel == "cpu" {
            "engine peak RSS".into()
        } else {
            "engine peak RSS (host side only)".into()
        },
        error_pct: (est.total_bytes as f64 - measured as f64) / measured as f64 * 100.0,
        device: r
            .placement_json
            .as_deref()
            .and_then(DeviceSeen::from_placement),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokbench_core::fit::weight_bytes;
    use tokbench_core::QuantPreset;

    /// A stored result of a GPU build, its buffers and (where the engine read them) the
    /// devices' own memory readings.
    fn gpu_result(device_memory: serde_json::Value) -> FitInput {
        FitInput {
            model: "tiny".into(),
            architecture: "llama".into(),
            quant: "Q8_0".into(),
            test: "pp64".into(),
            n_prompt: 64,
            n_gen: 0,
            n_depth: 0,
            n_ubatch: 512,
            flash_attn: false,
            type_k: "f16".into(),
            type_v: "f16".into(),
            shape_json: serde_json::json!({
                "tensor_bytes": 30_000_000u64, "block_count": 8, "embedding_length": 256,
                "head_count": 4, "head_count_kv": 4, "head_dim": 64, "vocab_size": 32000,
            })
            .to_string(),
            rss_peak_bytes: Some(200_000_000),
            accel: "cuda".into(),
            model_buffer_bytes: Some(30_000_000),
            repack_buffer_bytes: None,
            kv_buffer_bytes: Some(1_048_576),
            compute_buffer_bytes: Some(2_000_000),
            output_buffer_bytes: None,
            placement_json: Some(
                serde_json::json!({ "buffers": [], "devices": [], "device_memory": device_memory })
                    .to_string(),
            ),
        }
    }

    #[test]
    fn the_devices_own_readings_stand_beside_the_prediction_where_they_show_use() {
        const MIB: u64 = 1 << 20;
        let cuda = validation(gpu_result(serde_json::json!([{
            "name": "CUDA0", "total_bytes": 143_771 * MIB,
            "free_before_load": 140_000 * MIB, "free_after_load": 139_970 * MIB,
            "free_in_test": 139_960 * MIB, "usage_visible": true,
        }])))
        .unwrap();
        assert_eq!(
            cuda.device,
            Some(DeviceSeen {
                used_bytes: Some(40 * MIB),
                not_visible: Vec::new(),
            })
        );
        let lavapipe = validation(gpu_result(serde_json::json!([{
            "name": "Vulkan0", "total_bytes": 2048 * MIB, "free_before_load": 2048 * MIB,
            "free_after_load": 2048 * MIB, "free_in_test": 2048 * MIB,
        }])))
        .unwrap();
        assert_eq!(
            lavapipe.device,
            Some(DeviceSeen {
                used_bytes: None,
                not_visible: vec!["Vulkan0".into()],
            })
        );
        let text = render_validations(&[cuda.clone(), lavapipe], Style::Text, Units::Mib);
        assert!(text.contains("device used MiB"), "{text}");
        assert!(text.contains("not visible (Vulkan0)"), "{text}");
        assert!(text.contains(" 40.00"), "{text}");
        // A CPU result has no readings, and the column is not shown for it alone.
        let mut cpu = gpu_result(serde_json::json!([]));
        cpu.placement_json = None;
        let cpu = validation(cpu).unwrap();
        assert_eq!(cpu.device, None);
        let text = render_validations(&[cpu], Style::Text, Units::Mib);
        assert!(!text.contains("device used"), "{text}");
    }

    fn model() -> FitModel {
        let arch = ArchSpec::preset("llama-3.1-8b").expect("a preset").clone();
        let weights = [QuantPreset::Q8_0, QuantPreset::Q4_K_M]
            .map(|q| (q.to_string(), weight_bytes(&arch, q)))
            .to_vec();
        FitModel {
            arch,
            label: "Llama 3.1 8B".into(),
            source: "preset".into(),
            weights,
            notes: Vec::new(),
        }
    }

    fn request() -> FitRequest {
        FitRequest {
            ctx: vec![4096, 32768],
            type_k: CacheType::F16,
            type_v: CacheType::F16,
            flash_attn: false,
            n_ubatch: 512,
            units: Units::Gib,
            ctx_quant: Some("Q4_K_M".into()),
        }
    }

    #[test]
    fn the_context_table_is_for_the_quantization_asked_and_grows_with_context() {
        let r = fit_report(&model(), &request(), &[]).unwrap();
        assert_eq!(r.quantizations.len(), 2);
        assert_eq!(r.contexts_quant, "Q4_K_M");
        assert!(r.contexts[1].kv_bytes > r.contexts[0].kv_bytes);
        // Llama 3.1 8B: 32 layers × 8 KV heads × 128 × 2 (K and V) × 2 bytes = 128 KiB per token.
        assert_eq!(r.contexts[0].kv_bytes, 4096 * 32 * 8 * 128 * 2 * 2);
        let text = render(&r, Style::Text, false);
        assert!(text.contains("Context lengths at Q4_K_M"), "{text}");
        let md = render(&r, Style::Markdown, true);
        assert!(
            md.contains("### Quantizations at 4096 tokens of context"),
            "{md}"
        );
    }

    #[test]
    fn impossible_requests_say_why() {
        let mut r = request();
        r.ctx = vec![0];
        let e = fit_report(&model(), &r, &[]).unwrap_err();
        assert!(matches!(e, FitRequestError::ZeroContext), "{e}");
        let mut r = request();
        r.type_v = CacheType::Q8_0;
        let e = fit_report(&model(), &r, &[]).unwrap_err().to_string();
        assert!(e.starts_with("--ctv q8_0: llama.cpp refuses"), "{e}");
        let mut r = request();
        r.n_ubatch = 0;
        assert!(matches!(
            fit_report(&model(), &r, &[]),
            Err(FitRequestError::ZeroUbatch)
        ));
    }

    #[test]
    fn units_by_name_and_their_figures() {
        assert_eq!("GiB".parse::<Units>().unwrap(), Units::Gib);
        assert_eq!("gb".parse::<Units>().unwrap(), Units::Gb);
        assert!("tb".parse::<Units>().is_err());
        assert_eq!(Units::Gb.fmt(1_500_000_000), "1.50");
        assert_eq!(Units::Mib.fmt(3 << 20), "3.00");
    }
}
