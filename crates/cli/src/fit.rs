//! `tokbench fit`: reads the model (a GGUF file's tensor table, a preset, an explicit
//! shape) and the hardware catalog, then prints `tokbench_report::fit`'s answer; with
//! `--db`, each stored result's prediction beside the memory it really took.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use tokbench_core::arch::ArchSpec;
use tokbench_core::catalog::{Catalog, HardwareConfig};
use tokbench_core::fit::weight_bytes;
use tokbench_core::{CacheType, QuantPreset};
use tokbench_report::fit::{
    self as fit, render, render_validations, FitReport, FitRequest, Style, Units, Validation,
};

use crate::exit::{BadInput, ExitCode};
use crate::Format;

/// How `fit` draws its tables in a format.
fn style(format: Format) -> Style {
    match format {
        Format::Md => Style::Markdown,
        _ => Style::Text,
    }
}

/// The model to size.
#[derive(Debug, Clone)]
pub enum FitModel {
    Preset(String),
    Gguf(PathBuf),
    /// `layers=32,embd=4096,heads=32,kv_heads=8,head_dim=128,ffn=14336,vocab=128256`.
    Explicit(String),
}

/// The default contexts of the context table.
pub const DEFAULT_CTX: [u32; 5] = [2048, 4096, 8192, 32768, 131072];

/// `tokbench fit`'s arguments: everything it was asked.
#[derive(Debug, Clone, clap::Args)]
pub struct FitArgs {
    /// An architecture preset (see `tokbench model synth --list`).
    #[arg(long, conflicts_with_all = ["gguf", "params", "db"])]
    pub arch: Option<String>,
    /// A GGUF file: exact weights from its tensor table.
    #[arg(long, conflicts_with_all = ["params", "db"])]
    pub gguf: Option<PathBuf>,
    /// Explicit shape: layers=,embd=,heads=,kv_heads=,head_dim=,ffn=,vocab=[,tied=1].
    #[arg(long, conflicts_with = "db")]
    pub params: Option<String>,
    /// Quantizations, comma-separated (default: every preset from F16 to Q2_K).
    #[arg(long, value_delimiter = ',')]
    pub quant: Vec<String>,
    /// Context lengths in tokens, comma-separated; the first is used for the quantization table.
    #[arg(long, value_delimiter = ',', default_values_t = DEFAULT_CTX)]
    pub ctx: Vec<u32>,
    /// K cache type.
    #[arg(long, default_value = "f16")]
    pub ctk: String,
    /// V cache type (a quantized V cache needs --fa).
    #[arg(long, default_value = "f16")]
    pub ctv: String,
    /// Flash attention.
    #[arg(long)]
    pub fa: bool,
    /// Physical batch (llama.cpp -ub), which sizes the compute buffer.
    #[arg(long, default_value_t = 512)]
    pub ubatch: u32,
    /// Hardware to check (repeatable; "2x NAME" for several devices). Default: the whole catalog.
    #[arg(long)]
    pub hardware: Vec<String>,
    /// The hardware catalog (default: bench-configs/hardware.toml, or $TOKBENCH_HARDWARE).
    #[arg(long)]
    pub catalog: Option<PathBuf>,
    #[arg(short = 'o', long, value_enum, default_value = "table")]
    pub format: Format,
    /// Print sizes in binary GiB, decimal GB, or binary MiB (small models). Default: GiB;
    /// with --db, MiB where every figure is under 4 GiB (the synthetic models).
    #[arg(long)]
    pub units: Option<Units>,
    /// Every hardware by name in the quantization table and one column per hardware in the
    /// context table (default: a layout that fits 120 columns).
    #[arg(long)]
    pub wide: bool,
    /// Compare predictions with the memory measured by the newest run in this database.
    #[arg(long)]
    pub db: Option<PathBuf>,
}

impl FitArgs {
    /// The model to size: exactly one of --arch, --gguf, --params.
    fn model(&self) -> Result<FitModel, BadInput> {
        match (&self.arch, &self.gguf, &self.params) {
            (Some(a), None, None) => Ok(FitModel::Preset(a.clone())),
            (None, Some(g), None) => Ok(FitModel::Gguf(g.clone())),
            (None, None, Some(p)) => Ok(FitModel::Explicit(p.clone())),
            _ => Err(BadInput(
                "tokbench fit needs one of --arch PRESET, --gguf FILE, --params SHAPE (or --db to validate)".into(),
            )),
        }
    }
}

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

/// Reads the model asked for: its shape and its weights per quantization.
fn load_model(model: &FitModel, quants: &[String]) -> anyhow::Result<fit::FitModel> {
    Ok(match model {
        FitModel::Gguf(path) => {
            let (file, info) = crate::models::read_model(path)?;
            let mut notes = Vec::new();
            if !matches!(info.architecture.as_str(), "llama" | "qwen2" | "mistral") {
                notes.push(format!(
                    "architecture `{}`: the KV cache is computed as for the llama family (every layer caches the whole context); sliding-window or recurrent layers would need less",
                    info.architecture
                ));
            }
            if !quants.is_empty() {
                notes.push("--quant is ignored for a GGUF file: its weights are read from its tensor table".into());
            }
            let arch = tokbench_gguf::fit::arch_spec(&info);
            let w = tokbench_gguf::fit::weights(&file, arch.n_layer);
            let q = info.file_type_name().unwrap_or("as stored").to_string();
            fit::FitModel {
                arch,
                label: path.display().to_string(),
                source: "gguf tensor table (exact)".into(),
                weights: vec![(q, w)],
                notes,
            }
        }
        FitModel::Preset(name) => {
            let Some(arch) = ArchSpec::preset(name) else {
                let known: Vec<&str> = ArchSpec::presets()
                    .iter()
                    .map(|a| a.name.as_str())
                    .collect();
                return Err(BadInput(format!(
                    "--arch: unknown preset `{name}` (known: {})",
                    known.join(", ")
                ))
                .into());
            };
            let weights = parse_quants(quants)?
                .iter()
                .map(|q| (q.to_string(), weight_bytes(arch, *q)))
                .collect();
            fit::FitModel {
                arch: arch.clone(),
                label: arch.display_name.clone(),
                source: "architecture preset, llama.cpp quantizer rules".into(),
                weights,
                notes: Vec::new(),
            }
        }
        FitModel::Explicit(spec) => {
            let arch = explicit_arch(spec)?;
            arch.validate_shape()
                .map_err(|e| BadInput(format!("--params: {e}")))?;
            let weights = parse_quants(quants)?
                .iter()
                .map(|q| (q.to_string(), weight_bytes(&arch, *q)))
                .collect();
            fit::FitModel {
                arch,
                label: format!("custom ({spec})"),
                source: "explicit shape, llama.cpp quantizer rules".into(),
                weights,
                notes: Vec::new(),
            }
        }
    })
}

/// The hardware to judge: the named configurations, or every catalog entry with a known
/// memory size.
fn hardware(names: &[String], catalog: &Catalog) -> Result<Vec<(HardwareConfig, u64)>, BadInput> {
    let mut hw = Vec::new();
    if names.is_empty() {
        for h in &catalog.entries {
            if let Ok(cfg) = catalog.resolve(&h.name) {
                if let Some(m) = cfg.memory_bytes {
                    hw.push((cfg, m));
                }
            }
        }
        return Ok(hw);
    }
    for name in names {
        let cfg = catalog
            .resolve(name)
            .map_err(|e| BadInput(format!("--hardware: {e}")))?;
        let Some(m) = cfg.memory_bytes else {
            return Err(BadInput(format!(
                "--hardware: {} has no known memory size in the catalog",
                cfg.display_name
            )));
        };
        hw.push((cfg, m));
    }
    Ok(hw)
}

/// Computes the report (no printing).
pub fn fit_report(args: &FitArgs, catalog: &Catalog) -> anyhow::Result<FitReport> {
    let type_k: CacheType = args
        .ctk
        .parse()
        .map_err(|e| BadInput(format!("--ctk: {e}")))?;
    let type_v: CacheType = args
        .ctv
        .parse()
        .map_err(|e| BadInput(format!("--ctv: {e}")))?;
    let model = load_model(&args.model()?, &args.quant)?;
    let hw = hardware(&args.hardware, catalog)?;
    let request = FitRequest {
        ctx: args.ctx.clone(),
        type_k,
        type_v,
        flash_attn: args.fa,
        n_ubatch: args.ubatch,
        units: args.units.unwrap_or(Units::Gib),
        // The context table at Q4_K_M, the quantization most people run, unless asked.
        ctx_quant: args.quant.is_empty().then(|| "Q4_K_M".to_string()),
    };
    fit::fit_report(&model, &request, &hw).map_err(|e| BadInput(e.to_string()).into())
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

/// `tokbench fit`: the fit tables, or with `--db` predictions beside measurements.
pub async fn fit_command(args: &FitArgs) -> anyhow::Result<ExitCode> {
    args.format
        .require("fit", &[Format::Table, Format::Md, Format::Json])?;
    if let Some(db) = &args.db {
        return validate_command(db, args.format, args.units).await;
    }
    let catalog = crate::hardware::load_catalog(args.catalog.as_deref())?;
    let report = fit_report(args, &catalog)?;
    match args.format {
        Format::Json => outln!("{}", serde_json::to_string_pretty(&report)?)?,
        f => out!("{}", render(&report, style(f), args.wide))?,
    }
    Ok(ExitCode::Ok)
}

async fn validate_command(
    db: &Path,
    format: Format,
    units: Option<Units>,
) -> anyhow::Result<ExitCode> {
    let local = crate::snapshot::local(db, "fit").await?;
    let store = tokbench_store::Store::open_read_only(local.path())
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
            local.shown()
        );
        return Ok(ExitCode::Ok);
    }
    if format == Format::Json {
        outln!("{}", serde_json::to_string_pretty(&out)?)?;
        return Ok(ExitCode::Ok);
    }
    let units = units.unwrap_or_else(|| tokbench_report::fit::units_for(&out));
    out!("{}", render_validations(&out, style(format), units))?;
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
        match fit::validation(r) {
            Ok(v) => out.push(v),
            Err(why) => skipped.push(format!("{what}: {why}")),
        }
    }
    Ok((out, skipped))
}
