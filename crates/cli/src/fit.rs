//! `tokbench fit`: does a model fit, from its real architecture — weights per tensor as
//! llama.cpp's quantizer types them (exact from the tensor table for a GGUF file), the KV
//! cache at each context, the compute buffer, and which catalog hardware holds it entirely,
//! partly (how many layers on the GPU) or not at all. With `--db`, the prediction is set
//! beside the memory each stored result really took.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use serde::Serialize;
use tokbench_core::arch::ArchSpec;
use tokbench_core::catalog::{Catalog, HardwareConfig, HardwareKind};
use tokbench_core::fit::{
    estimate_with_weights, gpu_layers_that_fit_weights, weight_bytes, FitEstimate, FitParams,
    FitVerdict, WeightBreakdown, GB_BYTES, GIB_BYTES,
};
use tokbench_core::{CacheType, QuantPreset};

use crate::exit::{BadInput, ExitCode};
use crate::output::{markdown, table};

/// How sizes print: binary GiB or MiB, or decimal GB, labelled either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Units {
    Gib,
    Gb,
    /// MiB, for small models.
    Mib,
}

impl Units {
    fn label(self) -> &'static str {
        match self {
            Self::Gib => "GiB",
            Self::Gb => "GB",
            Self::Mib => "MiB",
        }
    }

    fn fmt(self, bytes: u64) -> String {
        let div = match self {
            Self::Gib => GIB_BYTES,
            Self::Gb => GB_BYTES,
            Self::Mib => 1 << 20,
        };
        format!("{:.2}", bytes as f64 / div as f64)
    }
}

/// Output of `tokbench fit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FitFormat {
    Table,
    Markdown,
    Json,
}

/// The model to size.
#[derive(Debug, Clone)]
pub enum FitModel {
    Preset(String),
    Gguf(PathBuf),
    /// `layers=32,embd=4096,heads=32,kv_heads=8,head_dim=128,ffn=14336,vocab=128256`.
    Explicit(String),
}

/// Everything `tokbench fit` was asked.
#[derive(Debug, Clone)]
pub struct FitArgs {
    pub model: FitModel,
    pub quants: Vec<String>,
    pub ctx: Vec<u32>,
    pub type_k: String,
    pub type_v: String,
    pub flash_attn: bool,
    pub n_ubatch: u32,
    pub hardware: Vec<String>,
    pub catalog: Option<PathBuf>,
    pub units: Units,
    pub format: FitFormat,
}

/// The default contexts of the context table.
pub const DEFAULT_CTX: [u32; 5] = [2048, 4096, 8192, 32768, 131072];

/// Parses `key=value,…` into an architecture.
pub fn explicit_arch(spec: &str) -> Result<ArchSpec, BadInput> {
    let mut v: BTreeMap<&str, u32> = BTreeMap::new();
    for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (k, val) = part
            .split_once('=')
            .ok_or_else(|| BadInput(format!("--params: `{part}` is not key=value")))?;
        let n: u32 = val
            .trim()
            .parse()
            .map_err(|_| BadInput(format!("--params: `{k}` = `{val}` is not a whole number")))?;
        v.insert(k.trim(), n);
    }
    let known = [
        "layers", "embd", "heads", "kv_heads", "head_dim", "ffn", "vocab", "tied",
    ];
    if let Some(k) = v.keys().find(|k| !known.contains(k)) {
        return Err(BadInput(format!(
            "--params: unknown key `{k}` (known: {})",
            known.join(", ")
        )));
    }
    let need = |k: &str| {
        v.get(k).copied().ok_or_else(|| BadInput(format!("--params: `{k}` is missing (need layers, embd, heads, ffn, vocab; kv_heads, head_dim, tied optional)")))
    };
    let heads = need("heads")?;
    let embd = need("embd")?;
    if heads == 0 {
        return Err(BadInput("--params: heads must be greater than 0".into()));
    }
    Ok(ArchSpec {
        name: "custom".into(),
        display_name: "custom".into(),
        architecture: "llama".into(),
        n_layer: need("layers")?,
        n_embd: embd,
        n_head: heads,
        n_head_kv: v.get("kv_heads").copied().unwrap_or(heads),
        head_dim: v.get("head_dim").copied().unwrap_or(embd / heads),
        n_ff: need("ffn")?,
        n_vocab: need("vocab")?,
        n_ctx_train: 0,
        rope_freq_base: 10_000.0,
        rms_norm_eps: 1e-5,
        tied_embeddings: v.get("tied").copied().unwrap_or(0) != 0,
        qkv_bias: false,
        sliding_window: None,
    })
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
) -> anyhow::Result<BTreeMap<String, String>> {
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

/// Computes the report (no printing).
pub fn fit_report(args: &FitArgs, catalog: &Catalog) -> anyhow::Result<FitReport> {
    if args.ctx.contains(&0) {
        bail!(BadInput(
            "--ctx: a context of 0 tokens cannot hold anything; give lengths ≥ 1".into()
        ));
    }
    let type_k: CacheType = args
        .type_k
        .parse()
        .map_err(|e| BadInput(format!("--ctk: {e}")))?;
    let type_v: CacheType = args
        .type_v
        .parse()
        .map_err(|e| BadInput(format!("--ctv: {e}")))?;
    if type_v.is_quantized() && !args.flash_attn {
        bail!(BadInput(format!(
            "--ctv {type_v}: llama.cpp refuses a quantized V cache without flash attention (it fails with \"quantized V cache requires flash_attn\"); add --fa, or use --ctv f16"
        )));
    }
    if args.n_ubatch == 0 {
        bail!(BadInput("--ubatch must be greater than 0".into()));
    }
    let params_at = |n_ctx: u32| FitParams {
        n_ctx,
        n_ubatch: args.n_ubatch,
        type_k,
        type_v,
        flash_attn: args.flash_attn,
    };
    let mut notes = Vec::new();
    // The model: its shape and, per quantization, its weights.
    let (arch, model, source, weights): (ArchSpec, String, String, Vec<(String, WeightBreakdown)>) =
        match &args.model {
            FitModel::Gguf(path) => {
                let (file, info) = crate::models::read_model(path)?;
                if !matches!(info.architecture.as_str(), "llama" | "qwen2" | "mistral") {
                    notes.push(format!(
                    "architecture `{}`: the KV cache is computed as for the llama family (every layer caches the whole context); sliding-window or recurrent layers would need less",
                    info.architecture
                ));
                }
                if !args.quants.is_empty() {
                    notes.push("--quant is ignored for a GGUF file: its weights are read from its tensor table".into());
                }
                let arch = tokbench_gguf::fit::arch_spec(&info);
                let w = tokbench_gguf::fit::weights(&file, arch.n_layer);
                let q = info.file_type_name().unwrap_or("as stored").to_string();
                (
                    arch,
                    path.display().to_string(),
                    "gguf tensor table (exact)".into(),
                    vec![(q, w)],
                )
            }
            FitModel::Preset(name) => {
                let Some(arch) = ArchSpec::preset(name) else {
                    let known: Vec<&str> = ArchSpec::presets()
                        .iter()
                        .map(|a| a.name.as_str())
                        .collect();
                    bail!(BadInput(format!(
                        "--arch: unknown preset `{name}` (known: {})",
                        known.join(", ")
                    )));
                };
                let quants = parse_quants(&args.quants)?;
                let w = quants
                    .iter()
                    .map(|q| (q.to_string(), weight_bytes(arch, *q)))
                    .collect();
                (
                    arch.clone(),
                    arch.display_name.clone(),
                    "architecture preset, llama.cpp quantizer rules".into(),
                    w,
                )
            }
            FitModel::Explicit(spec) => {
                let arch = explicit_arch(spec)?;
                arch.validate_shape()
                    .map_err(|e| BadInput(format!("--params: {e}")))?;
                let quants = parse_quants(&args.quants)?;
                let w = quants
                    .iter()
                    .map(|q| (q.to_string(), weight_bytes(&arch, *q)))
                    .collect();
                (
                    arch,
                    format!("custom ({spec})"),
                    "explicit shape, llama.cpp quantizer rules".into(),
                    w,
                )
            }
        };
    // The hardware: named ones, or every catalog entry with a known memory size.
    let mut hw: Vec<(HardwareConfig, u64)> = Vec::new();
    if args.hardware.is_empty() {
        for h in &catalog.entries {
            if let Ok(cfg) = catalog.resolve(&h.name) {
                if let Some(m) = cfg.memory_bytes {
                    hw.push((cfg, m));
                }
            }
        }
    } else {
        for name in &args.hardware {
            let cfg = catalog
                .resolve(name)
                .map_err(|e| BadInput(format!("--hardware: {e}")))?;
            let Some(m) = cfg.memory_bytes else {
                bail!(BadInput(format!(
                    "--hardware: {} has no known memory size in the catalog",
                    cfg.display_name
                )));
            };
            hw.push((cfg, m));
        }
    }
    let n_ctx0 = args.ctx[0];
    let mut quantizations = Vec::new();
    for (q, w) in &weights {
        let params = params_at(n_ctx0);
        let est =
            estimate_with_weights(&arch, w, &params).map_err(|e| BadInput(format!("{e:#}")))?;
        let n_weights: u64 = arch.n_params();
        quantizations.push(QuantRow {
            quant: q.clone(),
            bits_per_weight: w.total_bytes as f64 * 8.0 / n_weights.max(1) as f64,
            n_ctx: n_ctx0,
            weights_bytes: est.weights_bytes,
            kv_bytes: est.kv_bytes,
            compute_bytes: est.compute_bytes,
            total_bytes: est.total_bytes,
            hardware: hardware_verdicts(&arch, w, &params, &est, &hw)?,
        });
    }
    // The context table at Q4_K_M, the quantization most people run, unless asked otherwise.
    let ctx_quant = if args.quants.is_empty() {
        weights.iter().position(|(q, _)| q == "Q4_K_M").unwrap_or(0)
    } else {
        0
    };
    let (q0, w0) = &weights[ctx_quant];
    let mut contexts = Vec::new();
    for &n_ctx in &args.ctx {
        let params = params_at(n_ctx);
        let est =
            estimate_with_weights(&arch, w0, &params).map_err(|e| BadInput(format!("{e:#}")))?;
        contexts.push(CtxRow {
            n_ctx,
            kv_bytes: est.kv_bytes,
            compute_bytes: est.compute_bytes,
            total_bytes: est.total_bytes,
            hardware: hardware_verdicts(&arch, w0, &params, &est, &hw)?,
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
        model,
        source,
        n_params: arch.n_params(),
        type_k: type_k.to_string(),
        type_v: type_v.to_string(),
        flash_attn: args.flash_attn,
        n_ubatch: args.n_ubatch,
        units: args.units,
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

fn parse_quants(quants: &[String]) -> Result<Vec<QuantPreset>, BadInput> {
    if quants.is_empty() {
        return Ok(QuantPreset::ALL
            .into_iter()
            .filter(|q| !matches!(q, QuantPreset::F32 | QuantPreset::BF16))
            .collect());
    }
    quants
        .iter()
        .map(|q| {
            q.parse::<QuantPreset>()
                .map_err(|e| BadInput(format!("--quant: {e}")))
        })
        .collect()
}

fn render(report: &FitReport, format: FitFormat) -> anyhow::Result<String> {
    if format == FitFormat::Json {
        return Ok(serde_json::to_string_pretty(report)? + "\n");
    }
    let u = report.units;
    let unit = u.label();
    let hw: Vec<String> = report
        .hardware
        .iter()
        .map(|h| format!("{} ({} {unit})", h.name, u.fmt(h.memory_bytes)))
        .collect();
    let tbl = |cols: Vec<String>, rows: Vec<Vec<String>>| match format {
        FitFormat::Markdown => markdown(&cols, &rows),
        _ => table(&cols, &rows),
    };
    let mut out = String::new();
    let heading = |s: &str| match format {
        FitFormat::Markdown => format!("\n### {s}\n\n"),
        _ => format!("\n{s}\n"),
    };
    out.push_str(&format!(
        "{} — {} parameters ({}); KV cache {}/{}, flash attention {}, ubatch {}\n",
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
            vec![
                r.quant.clone(),
                format!("{:.2}", r.bits_per_weight),
                u.fmt(r.weights_bytes),
                u.fmt(r.kv_bytes),
                u.fmt(r.compute_bytes),
                u.fmt(r.total_bytes),
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
            ]
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
            let mut row = vec![
                r.n_ctx.to_string(),
                u.fmt(r.kv_bytes),
                u.fmt(r.compute_bytes),
                u.fmt(r.total_bytes),
            ];
            row.extend(report.hardware.iter().map(|h| {
                r.hardware
                    .get(&h.name)
                    .cloned()
                    .unwrap_or_else(|| "—".into())
            }));
            row
        })
        .collect();
    out.push_str(&tbl(cols, rows));
    out.push('\n');
    for n in &report.notes {
        out.push_str(&format!("Note: {n}\n"));
    }
    Ok(out)
}

pub fn fit_command(args: &FitArgs) -> anyhow::Result<ExitCode> {
    let catalog = crate::hardware::load_catalog(args.catalog.as_deref())?;
    let report = fit_report(args, &catalog)?;
    print!("{}", render(&report, args.format)?);
    Ok(ExitCode::Ok)
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

/// The context the engine created for a cell (depth + prompt + generated + 1, as the
/// engine sizes it; llama.cpp pads it to 256).
fn engine_ctx(n_prompt: u32, n_gen: u32, n_depth: u32) -> u32 {
    n_depth + n_prompt + n_gen + 1
}

pub async fn validate_command(
    db: &Path,
    format: FitFormat,
    units: Units,
) -> anyhow::Result<ExitCode> {
    let store = tokbench_store::Store::open_read_only(db)
        .await
        .map_err(|e| BadInput(e.to_string()))?;
    let (out, skipped) = validations(&store).await?;
    store.close().await;
    for s in &skipped {
        eprintln!("not compared: {s}");
    }
    if out.is_empty() {
        eprintln!(
            "{} has no ok results with a measured memory peak to compare",
            db.display()
        );
        return Ok(ExitCode::Ok);
    }
    if format == FitFormat::Json {
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(ExitCode::Ok);
    }
    print!("{}", render_validations(&out, format, units));
    Ok(ExitCode::Ok)
}

/// Every ok result of the newest run set beside its prediction, and why the others could
/// not be compared.
pub async fn validations(
    store: &tokbench_store::Store,
) -> anyhow::Result<(Vec<Validation>, Vec<String>)> {
    let rows = store.fit_inputs().await.context("cannot read results")?;
    let mut out: Vec<Validation> = Vec::new();
    let mut skipped: Vec<String> = Vec::new();
    for r in rows {
        let what = format!("{} {} {}", r.model, r.quant, r.test);
        match validation_row(r) {
            Ok(v) => out.push(v),
            Err(why) => skipped.push(format!("{what}: {why}")),
        }
    }
    Ok((out, skipped))
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
pub fn render_validations(out: &[Validation], format: FitFormat, units: Units) -> String {
    let mut text = String::new();
    let unit = units.label();
    let pct = |p: Option<f64>| p.map(|p| format!("{p:+.1}%")).unwrap_or_else(|| "—".into());
    let alloc = |v: &Validation, f: fn(&Allocated) -> u64| {
        v.allocated
            .as_ref()
            .map(|a| units.fmt(f(a)))
            .unwrap_or_else(|| "—".into())
    };
    let cols: Vec<String> = [
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
    let rows: Vec<Vec<String>> = out
        .iter()
        .map(|v| {
            vec![
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
            ]
        })
        .collect();
    match format {
        FitFormat::Markdown => {
            text.push_str("## Predicted vs measured memory\n\n");
            text.push_str("Predicted: weights from the GGUF tensor table, the KV cache at the context the engine created (padded to 256 cells), and the compute-buffer estimate. Allocated: what llama.cpp reported allocating for the same test (its `… buffer size` log lines; compute includes the output buffer). CPU repack: on x86 with AVX2 and on recent ARM cores, llama.cpp's CPU backend also keeps an interleaved copy of the Q4_0/Q4_K/IQ4_NL weight matrices, part of the allocated weights (the mapped file may still span the originals); GPU and Metal runs do not repack, so the prediction leaves it out and Q4 rows on a CPU show it as the gap. Peak RSS: the engine process's resident memory at its peak during the test, which also holds the program (code, libraries, allocator slack) and only the pages actually touched.\n\n");
            text.push_str(&markdown(&cols, &rows));
        }
        _ => {
            text.push_str(&table(&cols, &rows));
            text.push_str("pred = tokbench fit's prediction; alloc = what llama.cpp reported allocating; peak RSS also counts the program itself and only pages touched\n");
        }
    }
    text
}

/// One stored result's prediction beside its measurement, or why it cannot be compared.
fn validation_row(r: tokbench_store::FitInput) -> Result<Validation, String> {
    let measured = r
        .rss_peak_bytes
        .and_then(|b| u64::try_from(b).ok())
        .ok_or("no peak memory was recorded")?;
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
    let est = estimate_with_weights(&arch, &w, &params).map_err(|e| format!("{e:#}"))?;
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
    })
}
