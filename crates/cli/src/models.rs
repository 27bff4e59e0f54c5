//! Models for the CLI: the on-disk cache of synthesized models (content-keyed, written
//! atomically, disk space checked first), `model inspect`, `model synth`, and the
//! [`ModelProvider`] the runner calls to make a suite's models available.

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use sha2::{Digest, Sha256};
use tokbench_core::arch::ArchSpec;
use tokbench_core::{ModelRecord, ModelSource, QuantPreset};
use tokbench_gguf::synth::{content_key, estimate_f16_bytes, write_f16};
use tokbench_gguf::{GgufFile, ModelInfo, SynthSpec};
use tokbench_runner::{ModelProvider, ModelUnavailable, PreparedModel};

use crate::exit::{BadInput, ExitCode};
use crate::output::{fmt_bytes, table};
use crate::Format;

/// Where synthesized models live: `$TOKBENCH_CACHE`, else `$XDG_CACHE_HOME/tokbench`, else
/// `~/.cache/tokbench`.
#[derive(Debug, Clone)]
pub struct ModelCache {
    pub dir: PathBuf,
}

fn gib(b: u64) -> String {
    format!("{:.2} GiB", b as f64 / (1u64 << 30) as f64)
}

/// Free bytes on the file system holding `dir` (for a non-root user).
fn free_bytes(dir: &Path) -> Option<u64> {
    let st = nix::sys::statvfs::statvfs(dir).ok()?;
    Some(st.blocks_available() as u64 * st.fragment_size() as u64)
}

impl ModelCache {
    pub fn new(dir: Option<PathBuf>) -> anyhow::Result<ModelCache> {
        let dir = match dir {
            Some(d) => d,
            None => crate::machine::user_dir("XDG_CACHE_HOME", ".cache", "TOKBENCH_CACHE")?,
        };
        let dir = dir.join("models");
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create the model cache {}", dir.display()))?;
        Ok(ModelCache { dir })
    }

    /// Where the hashes of model files are remembered (see [`sha256_remembered`]).
    pub fn hashes(&self) -> PathBuf {
        self.dir.with_file_name("hashes")
    }

    /// The F16 file of a spec, and the file at `quant`. Names carry the content key, so
    /// a changed generator or spec never reuses a stale file.
    fn paths(&self, spec: &SynthSpec, quant: QuantPreset) -> (PathBuf, PathBuf) {
        let key = content_key(spec);
        let stem = format!("synth-{}-s{}-{}", spec.arch.name, spec.seed, &key[..16]);
        let f16 = self.dir.join(format!("{stem}-F16.gguf"));
        // The quantized bytes depend on llama.cpp's quantizer too.
        let qkey = hex::encode(
            &Sha256::digest(format!("{key}|{quant}|{}", tokbench_engine::LLAMA_BINDINGS))[..6],
        );
        let out = self.dir.join(format!("{stem}-{quant}-{qkey}.gguf"));
        (f16, out)
    }

    /// Synthesizes (if not cached) `arch` at `quant`; `say` gets progress lines.
    pub fn synth(
        &self,
        arch: &ArchSpec,
        seed: u64,
        quant: QuantPreset,
        say: &mut dyn FnMut(String),
    ) -> anyhow::Result<PathBuf> {
        if quant == QuantPreset::F32 || quant == QuantPreset::BF16 {
            bail!(BadInput(format!(
                "quantization {quant} is not offered for synthetic models (they are written in F16)"
            )));
        }
        if quant.needs_imatrix() {
            bail!(BadInput(format!(
                "quantization {quant} is not offered for synthetic models: llama.cpp's quantizer \
                 makes it only with an importance matrix, which a synthetic model has no text to \
                 compute (`tokbench fit --quant {quant}` predicts the layout a real file has)"
            )));
        }
        let spec = SynthSpec {
            arch: arch.clone(),
            seed,
        };
        let (f16, out) = self.paths(&spec, quant);
        let target = if quant == QuantPreset::F16 {
            &f16
        } else {
            &out
        };
        if target.is_file() {
            return Ok(target.clone());
        }
        let f16_bytes = estimate_f16_bytes(arch).context("cannot size the model")?;
        // Every preset we offer is at most as large as F16.
        let need = if f16.is_file() { 0 } else { f16_bytes }
            + if quant == QuantPreset::F16 {
                0
            } else {
                f16_bytes
            };
        let free = free_bytes(&self.dir);
        say(format!(
            "{} ({} parameters) at {quant}: needs up to {} on disk in {} (F16 {}{}), {} free",
            arch.display_name,
            arch.n_params(),
            gib(need),
            self.dir.display(),
            gib(f16_bytes),
            if quant == QuantPreset::F16 {
                String::new()
            } else {
                format!(" + {quant} ≤ {}", gib(f16_bytes))
            },
            free.map(gib).unwrap_or_else(|| "unknown".into()),
        ));
        if let Some(free) = free {
            // Keep 1 GiB of head-room for everything else on the disk.
            if need + (1 << 30) > free {
                bail!(BadInput(format!(
                    "not enough disk space for {} at {quant}: needs {} plus 1 GiB head-room, {} is free in {} (set TOKBENCH_CACHE to a larger disk)",
                    arch.name,
                    gib(need),
                    gib(free),
                    self.dir.display()
                )));
            }
        }
        sweep_stale_partials(&self.dir);
        if !f16.is_file() {
            let tmp = partial(&f16);
            let _unfinished = Unfinished::hold(&tmp);
            let t = std::time::Instant::now();
            write_f16(&spec, &tmp).with_context(|| format!("cannot write {}", tmp.display()))?;
            std::fs::rename(&tmp, &f16)
                .with_context(|| format!("cannot move {} into place", tmp.display()))?;
            say(format!(
                "wrote {} in {:.1} s",
                f16.display(),
                t.elapsed().as_secs_f64()
            ));
        }
        if quant == QuantPreset::F16 {
            return Ok(f16);
        }
        let tmp = partial(&out);
        let _unfinished = Unfinished::hold(&tmp);
        let t = std::time::Instant::now();
        tokbench_engine::quantize::quantize(&f16, &tmp, quant, 0)
            .with_context(|| format!("cannot quantize {} to {quant}", f16.display()))?;
        std::fs::rename(&tmp, &out)
            .with_context(|| format!("cannot move {} into place", tmp.display()))?;
        say(format!(
            "quantized to {} in {:.1} s",
            out.display(),
            t.elapsed().as_secs_f64()
        ));
        Ok(out)
    }
}

/// A temporary name beside `path`, unique to this process: two runs synthesizing the same
/// model at once each write their own file and the last rename wins (same bytes).
fn partial(path: &Path) -> PathBuf {
    path.with_extension(format!("gguf.{}.partial", std::process::id()))
}

/// The temporary files this process is writing (a synthesis or a quantization on a
/// blocking thread, which an interrupted run abandons rather than wait minutes for).
static UNFINISHED: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());

/// Holds `tmp` (and the `.partial` the GGUF writer makes beside it) as unfinished while a
/// file is written; dropping it removes whatever of them is left (none after the rename).
struct Unfinished(Vec<PathBuf>);

impl Unfinished {
    fn hold(tmp: &Path) -> Unfinished {
        let mut inner = tmp.as_os_str().to_owned();
        inner.push(".partial");
        let paths = vec![tmp.to_path_buf(), PathBuf::from(inner)];
        lock_unfinished().extend(paths.iter().cloned());
        Unfinished(paths)
    }
}

impl Drop for Unfinished {
    fn drop(&mut self) {
        lock_unfinished().retain(|p| !self.0.contains(p));
        for p in &self.0 {
            let _ = std::fs::remove_file(p);
        }
    }
}

fn lock_unfinished() -> std::sync::MutexGuard<'static, Vec<PathBuf>> {
    UNFINISHED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Removes the temporary files of the syntheses still in flight: called when a run is
/// interrupted, before the process exits and abandons the threads writing them. Returns
/// the files removed.
pub fn remove_unfinished() -> Vec<PathBuf> {
    let mut removed = Vec::new();
    for p in lock_unfinished().drain(..) {
        if std::fs::remove_file(&p).is_ok() {
            removed.push(p);
        }
    }
    removed
}

/// Removes the temporary files in `dir` left by a tokbench that was killed while writing
/// them (their names carry its process id, and no such process is alive).
fn sweep_stale_partials(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(pid) = partial_pid(name) else {
            continue;
        };
        if pid != std::process::id() && !process_alive(pid) {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// The process id in a temporary file's name (`….gguf.1234.partial`, `….partial.partial`).
fn partial_pid(name: &str) -> Option<u32> {
    let rest = name.strip_suffix(".partial")?;
    let rest = rest.strip_suffix(".partial").unwrap_or(rest);
    let (head, pid) = rest.rsplit_once('.')?;
    head.ends_with(".gguf").then_some(())?;
    pid.parse().ok()
}

fn process_alive(pid: u32) -> bool {
    let Ok(pid) = i32::try_from(pid) else {
        return false;
    };
    // Signal 0 checks existence; EPERM means it exists under another user.
    match nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None) {
        Ok(()) => true,
        Err(e) => e != nix::errno::Errno::ESRCH,
    }
}

/// sha256 of a file, hex.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}

/// sha256 of a model file, remembered under `memo_dir` with the file's identity (size,
/// modification and change times to the nanosecond, inode and device, as git's index does),
/// so a model already on disk is read whole once, not at every run: 40 GB is minutes of
/// hashing. Any change to the file changes its change time, and then it is hashed again. A
/// memo that cannot be read or written is ignored.
pub fn sha256_remembered(path: &Path, memo_dir: &Path) -> std::io::Result<String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let canonical = std::fs::canonicalize(path)?;
        let m = std::fs::metadata(&canonical)?;
        let identity = format!(
            "{}\n{} {} {} {} {} {} {}",
            canonical.display(),
            m.len(),
            m.mtime(),
            m.mtime_nsec(),
            m.ctime(),
            m.ctime_nsec(),
            m.ino(),
            m.dev()
        );
        let name = hex::encode(&Sha256::digest(canonical.as_os_str().as_encoded_bytes())[..16]);
        let memo = memo_dir.join(format!("{name}.sha256"));
        if let Ok(text) = std::fs::read_to_string(&memo) {
            if let Some((seen, hash)) = text.rsplit_once('\n') {
                if seen == identity && hash.len() == 64 {
                    return Ok(hash.to_string());
                }
            }
        }
        let hash = sha256_file(&canonical)?;
        let tmp = memo_dir.join(format!("{name}.{}.tmp", std::process::id()));
        let written = std::fs::create_dir_all(memo_dir)
            .and_then(|()| std::fs::write(&tmp, format!("{identity}\n{hash}")))
            .and_then(|()| std::fs::rename(&tmp, &memo));
        if written.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        Ok(hash)
    }
    #[cfg(not(unix))]
    {
        let _ = memo_dir;
        sha256_file(path)
    }
}

/// Reads a GGUF file's header; errors name the file.
pub fn read_model(path: &Path) -> anyhow::Result<(GgufFile, ModelInfo)> {
    if !path.is_file() {
        bail!(BadInput(format!(
            "model file not found: {}",
            path.display()
        )));
    }
    let file = GgufFile::open(path)
        .map_err(|e| BadInput(format!("{}: not a usable GGUF file: {e}", path.display())))?;
    let info =
        ModelInfo::from_gguf(&file).map_err(|e| BadInput(format!("{}: {e}", path.display())))?;
    Ok((file, info))
}

/// The model's identity and shape, for the database.
pub fn model_record(
    path: &Path,
    name: String,
    origin: String,
    memo_dir: &Path,
) -> anyhow::Result<ModelRecord> {
    let (_, info) = read_model(path)?;
    let shape = serde_json::json!({
        "block_count": info.block_count,
        "embedding_length": info.embedding_length,
        "head_count": info.head_count,
        "head_count_kv": info.head_count_kv,
        "head_dim": info.head_dim,
        "feed_forward_length": info.feed_forward_length,
        "vocab_size": info.vocab_size,
        "context_length": info.context_length,
        "tensor_bytes": info.tensor_bytes,
        "token_embd_bytes": info.token_embd_bytes,
        "output_bytes": info.output_bytes,
    });
    Ok(ModelRecord {
        name,
        architecture: info.architecture.clone(),
        quant: info.file_type_name().unwrap_or("unknown").to_string(),
        n_params: info.n_params,
        file_bytes: info.file_size_bytes,
        file_sha256: sha256_remembered(path, memo_dir)
            .with_context(|| format!("cannot hash {}", path.display()))?,
        shape_json: shape.to_string(),
        origin,
    })
}

/// The runner's models: synthesized into the cache, or the user's files as they are.
#[derive(Debug)]
pub struct CliModels {
    pub cache: ModelCache,
    pub verbose: bool,
}

impl ModelProvider for CliModels {
    fn prepare(&self, source: &ModelSource) -> Result<PreparedModel, ModelUnavailable> {
        let r = (|| -> anyhow::Result<PreparedModel> {
            match source {
                ModelSource::Synth { arch, seed, quant } => {
                    let spec =
                        ArchSpec::preset(arch).with_context(|| format!("unknown preset {arch}"))?;
                    let verbose = self.verbose;
                    let path = self.cache.synth(spec, *seed, *quant, &mut |line| {
                        if verbose {
                            eprintln!("  {line}");
                        }
                    })?;
                    let record = model_record(
                        &path,
                        format!("synth:{arch}"),
                        format!("synth:{arch}:{seed}"),
                        &self.cache.hashes(),
                    )?;
                    Ok(PreparedModel { path, record })
                }
                ModelSource::File { path } => {
                    let name = source.display_name();
                    let record =
                        model_record(path, name, path.display().to_string(), &self.cache.hashes())?;
                    Ok(PreparedModel {
                        path: path.clone(),
                        record,
                    })
                }
            }
        })();
        r.map_err(|e| ModelUnavailable(format!("{e:#}")))
    }
}

/// `tokbench model`'s subcommands.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum ModelCommand {
    /// Print what a GGUF file holds: architecture, shapes, parameters, tensor types.
    #[command(after_help = "Example:\n  tokbench model inspect ~/models/Llama-3.1-8B-Q4_K_M.gguf")]
    Inspect {
        file: PathBuf,
        /// Also list every tensor.
        #[arg(long)]
        tensors: bool,
        #[arg(short = 'o', long, value_enum, default_value = "table")]
        format: Format,
    },
    /// Write a synthetic model (seeded random weights, a working tokenizer) of a real
    /// architecture, quantized by llama.cpp's own quantizer.
    #[command(
        after_help = "Examples:\n  tokbench model synth --arch tiny --quant Q4_K_M,Q8_0\n  tokbench model synth --arch llama-3.1-8b --quant Q4_K_M --seed 7\n  tokbench model synth --list"
    )]
    Synth {
        /// Architecture preset (see --list).
        #[arg(long, default_value = "tiny")]
        arch: String,
        /// Quantizations, comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "Q8_0")]
        quant: Vec<String>,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Where models are cached (default: $TOKBENCH_CACHE, else ~/.cache/tokbench).
        #[arg(long, env = "TOKBENCH_CACHE")]
        cache_dir: Option<PathBuf>,
        /// List the architecture presets and their sizes.
        #[arg(long)]
        list: bool,
    },
    /// Evaluate a fixed prompt (BOS, then seeded random tokens) in one batch and write every
    /// position's logits; with --against, compare them with another build's and fail when
    /// they disagree (a GPU offload that computes something else).
    #[command(
        after_help = "Examples:\n  tokbench model logits tiny-Q8_0.gguf --out cpu.logits\n  GGML_VK_VISIBLE_DEVICES=0 tokbench-vulkan model logits tiny-Q8_0.gguf --ngl 99 --against cpu.logits\n\nExit codes: 0 agree (or no --against), 1 tool error, 2 bad input, 3 they disagree.\nAgreeing means the same top token at --min-top1 of the positions and a root-mean-square\ndifference of at most --max-rel-rms of the reference's spread (its logits' RMS about each\nposition's mean)."
    )]
    Logits(LogitsArgs),
}

#[derive(Debug, Clone, clap::Args)]
pub struct LogitsArgs {
    /// The GGUF model.
    pub file: PathBuf,
    /// Layers to offload to the GPU (a build with an accelerator).
    #[arg(long = "n-gpu-layers", visible_alias = "ngl", default_value_t = 0)]
    pub n_gpu_layers: u32,
    /// Prompt length: BOS and this many tokens less one.
    #[arg(long, default_value_t = 64)]
    pub tokens: u32,
    /// Seed of the prompt's tokens.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[arg(short = 't', long, default_value_t = 1)]
    pub threads: u32,
    /// One token at a time against the KV cache (generation's matrix × vector kernels),
    /// instead of the whole prompt in one batch (prompt processing's).
    #[arg(long)]
    pub stepwise: bool,
    /// Write the logits here (a JSON line, then little-endian f32s).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Compare with logits another build wrote (the same model, prompt and seed).
    #[arg(long)]
    pub against: Option<PathBuf>,
    /// The least fraction of positions whose top token must be the same.
    #[arg(long, default_value_t = 0.9)]
    pub min_top1: f64,
    /// The largest RMS difference, as a fraction of the reference's spread.
    #[arg(long, default_value_t = 0.05)]
    pub max_rel_rms: f64,
    /// Pass llama.cpp's log on to stderr.
    #[arg(short, long)]
    pub verbose: bool,
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
}

/// `tokbench model …`.
pub fn command(cmd: &ModelCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        ModelCommand::Inspect {
            file,
            tensors,
            format,
        } => inspect(file, *tensors, *format),
        ModelCommand::Synth { list: true, .. } => list_presets(),
        ModelCommand::Synth {
            arch,
            quant,
            seed,
            cache_dir,
            list: false,
        } => {
            let cache = ModelCache::new(cache_dir.clone())?;
            synth_command(&cache, arch, quant, *seed)
        }
        ModelCommand::Logits(args) => logits_command(args),
    }
}

fn logits_command(args: &LogitsArgs) -> anyhow::Result<ExitCode> {
    use tokbench_engine::logits::{compare, Logits};
    args.format
        .require("model logits", &[Format::Table, Format::Json])?;
    if !(0.0..=1.0).contains(&args.min_top1) {
        bail!(BadInput(format!(
            "--min-top1 {}: a fraction, from 0 to 1",
            args.min_top1
        )));
    }
    if args.max_rel_rms.is_nan() || args.max_rel_rms < 0.0 {
        bail!(BadInput(format!(
            "--max-rel-rms {}: a fraction, 0 or more",
            args.max_rel_rms
        )));
    }
    // The reference first: a file that cannot be read is refused before minutes of GPU work.
    let reference = args
        .against
        .as_ref()
        .map(|p| {
            std::fs::File::open(p)
                .map_err(|e| e.to_string())
                .and_then(Logits::read)
                .map_err(|e| BadInput(format!("--against {}: {e}", p.display())))
        })
        .transpose()?;
    if !args.file.is_file() {
        bail!(BadInput(format!(
            "model file not found: {}",
            args.file.display()
        )));
    }
    let got = tokbench_engine::bench::eval_logits(
        &args.file,
        args.n_gpu_layers,
        args.tokens,
        args.seed,
        args.threads,
        args.stepwise,
        args.verbose,
    )
    // The file was checked above: what fails now is llama.cpp's (a load, a device out of
    // memory), a tool error.
    .map_err(|e| anyhow::anyhow!("{}: {e}", args.file.display()))?;
    if let Some(out) = &args.out {
        let f = std::fs::File::create(out)
            .with_context(|| format!("cannot write {}", out.display()))?;
        got.write(std::io::BufWriter::new(f))
            .with_context(|| format!("cannot write {}", out.display()))?;
    }
    let h = &got.header;
    let offload = match (h.layers_offloaded, h.layers_total) {
        (Some(n), Some(m)) => format!("{n}/{m} layers offloaded"),
        _ => "no layers offloaded (a CPU build)".into(),
    };
    let agreement = match &reference {
        Some(r) => Some(compare(r, &got).map_err(|e| {
            BadInput(format!(
                "--against {}: {e}",
                args.against
                    .as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default()
            ))
        })?),
        None => None,
    };
    if let Some(r) = &reference {
        if r.header.stepwise != got.header.stepwise {
            eprintln!(
                "model logits: the reference was evaluated {}, this {}: their kernels round differently (the CPU build differs from itself by about 2.4%), compare like with like",
                if r.header.stepwise { "one token at a time" } else { "in one batch" },
                if got.header.stepwise { "one token at a time" } else { "in one batch" },
            );
        }
    }
    let agrees = agreement
        .as_ref()
        .map(|a| a.top1_fraction() >= args.min_top1 && a.relative_rms() <= args.max_rel_rms);
    if matches!(args.format, Format::Json) {
        let v = serde_json::json!({
            "header": h,
            "reference": reference.as_ref().map(|r| &r.header),
            "agreement": agreement.as_ref().map(|a| serde_json::json!({
                "positions": a.positions,
                "top1_same": a.top1_same,
                "top1_fraction": a.top1_fraction(),
                "max_abs_diff": a.max_abs_diff,
                "rms_diff": a.rms_diff,
                "rms_ref": a.rms_ref,
                "relative_rms": a.relative_rms(),
                "worst_top1_gap": a.worst_top1_gap,
                "min_top1": args.min_top1,
                "max_rel_rms": args.max_rel_rms,
                "agrees": agrees,
            })),
        });
        outln!("{}", serde_json::to_string_pretty(&v)?)?;
    } else {
        outln!(
            "{}: {} positions × {} tokens{}, {} build, n_gpu_layers {}, {offload}{}",
            args.file.display(),
            h.tokens.len(),
            h.n_vocab,
            if h.stepwise {
                " one at a time"
            } else {
                " in one batch"
            },
            h.accel,
            h.n_gpu_layers,
            match h.devices.as_slice() {
                [] => String::new(),
                d => format!(", on {}", d.join(", ")),
            }
        )?;
        if let (Some(a), Some(r)) = (&agreement, &reference) {
            outln!(
                "against {} ({} build, n_gpu_layers {}): top-1 the same at {}/{} positions ({:.1}%, at least {:.1}% wanted); RMS difference {:.3e} = {:.3}% of the reference's spread {:.3} (at most {:.3}% wanted); largest difference {:.3e}; where the top tokens differ, the other's scored at most {:.3} below the reference's top",
                args.against.as_ref().map(|p| p.display().to_string()).unwrap_or_default(),
                r.header.accel,
                r.header.n_gpu_layers,
                a.top1_same,
                a.positions,
                100.0 * a.top1_fraction(),
                100.0 * args.min_top1,
                a.rms_diff,
                100.0 * a.relative_rms(),
                a.rms_ref,
                100.0 * args.max_rel_rms,
                a.max_abs_diff,
                a.worst_top1_gap,
            )?;
        }
    }
    match agrees {
        Some(false) => {
            eprintln!("model logits: this build's logits disagree with the reference's");
            Ok(ExitCode::Regression)
        }
        _ => Ok(ExitCode::Ok),
    }
}

fn list_presets() -> anyhow::Result<ExitCode> {
    let cols = [
        "preset",
        "architecture",
        "layers",
        "embd",
        "heads",
        "kv heads",
        "ffn",
        "vocab",
        "parameters",
        "F16 file",
    ]
    .map(String::from)
    .to_vec();
    let rows: Vec<Vec<String>> = ArchSpec::presets()
        .iter()
        .map(|a| {
            vec![
                a.name.clone(),
                a.architecture.clone(),
                a.n_layer.to_string(),
                a.n_embd.to_string(),
                a.n_head.to_string(),
                a.n_head_kv.to_string(),
                a.n_ff.to_string(),
                a.n_vocab.to_string(),
                format!("{:.3} B", a.n_params() as f64 / 1e9),
                estimate_f16_bytes(a)
                    .map(gib)
                    .unwrap_or_else(|_| "—".into()),
            ]
        })
        .collect();
    out!("{}", table(&cols, &rows))?;
    Ok(ExitCode::Ok)
}

fn synth_command(
    cache: &ModelCache,
    arch: &str,
    quants: &[String],
    seed: u64,
) -> anyhow::Result<ExitCode> {
    let Some(spec) = ArchSpec::preset(arch) else {
        let known: Vec<&str> = ArchSpec::presets()
            .iter()
            .map(|a| a.name.as_str())
            .collect();
        bail!(BadInput(format!(
            "unknown architecture preset `{arch}` (known: {})",
            known.join(", ")
        )));
    };
    let quants: Vec<QuantPreset> = quants
        .iter()
        .map(|q| {
            q.parse::<QuantPreset>()
                .map_err(|e| BadInput(e.to_string()))
        })
        .collect::<Result<_, _>>()?;
    for q in quants {
        let path = cache.synth(spec, seed, q, &mut |line| eprintln!("{line}"))?;
        let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        outln!(
            "{}\t{}\t{}",
            q,
            fmt_bytes(Some(size as i64)),
            path.display()
        )?;
    }
    Ok(ExitCode::Ok)
}

fn inspect(path: &Path, tensors: bool, format: Format) -> anyhow::Result<ExitCode> {
    format.require("model inspect", &[Format::Table, Format::Json])?;
    let (file, info) = read_model(path)?;
    if matches!(format, Format::Json) {
        let mut v = serde_json::json!({
            "file": path.display().to_string(),
            "gguf_version": file.version,
            "architecture": info.architecture,
            "name": info.name,
            "block_count": info.block_count,
            "embedding_length": info.embedding_length,
            "head_count": info.head_count,
            "head_count_kv": info.head_count_kv,
            "head_dim": info.head_dim,
            "context_length": info.context_length,
            "feed_forward_length": info.feed_forward_length,
            "vocab_size": info.vocab_size,
            "file_type": info.file_type_name(),
            "n_params": info.n_params,
            "tensor_bytes": info.tensor_bytes,
            "file_bytes": info.file_size_bytes,
            "bits_per_weight": info.bits_per_weight(),
            "tensor_types": info.tensor_type_counts.iter().map(|(t, n)| (t.name().to_string(), *n)).collect::<std::collections::BTreeMap<_, _>>(),
        });
        if tensors {
            v["tensors"] = file
                .tensors
                .iter()
                .map(|t| serde_json::json!({"name": t.name, "type": t.ggml_type.name(), "dims": t.dims, "bytes": t.n_bytes()}))
                .collect();
        }
        outln!("{}", serde_json::to_string_pretty(&v)?)?;
        return Ok(ExitCode::Ok);
    }
    let opt = |v: Option<String>| v.unwrap_or_else(|| "—".into());
    let types = info
        .tensor_type_counts
        .iter()
        .map(|(t, n)| format!("{}: {n}", t.name()))
        .collect::<Vec<_>>()
        .join(", ");
    let rows = vec![
        ("file", path.display().to_string()),
        ("GGUF version", file.version.to_string()),
        ("architecture", info.architecture.clone()),
        ("name", opt(info.name.clone())),
        ("file type", opt(info.file_type_name().map(String::from))),
        (
            "parameters",
            format!("{} ({:.3} B)", info.n_params, info.n_params as f64 / 1e9),
        ),
        (
            "tensor data",
            format!("{} bytes ({})", info.tensor_bytes, gib(info.tensor_bytes)),
        ),
        (
            "file size",
            format!(
                "{} bytes ({})",
                info.file_size_bytes,
                gib(info.file_size_bytes)
            ),
        ),
        ("bits per weight", format!("{:.3}", info.bits_per_weight())),
        ("layers", info.block_count.to_string()),
        ("embedding length", info.embedding_length.to_string()),
        ("attention heads", info.head_count.to_string()),
        ("KV heads", info.head_count_kv.to_string()),
        ("head dim", info.head_dim.to_string()),
        ("feed-forward length", info.feed_forward_length.to_string()),
        ("vocabulary", info.vocab_size.to_string()),
        ("context length (trained)", info.context_length.to_string()),
        (
            "KV cache per token (f16)",
            format!("{} bytes", info.kv_bytes_per_token_f16()),
        ),
        ("tensor types", types),
    ];
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    for (k, v) in rows {
        outln!("{k:<width$}  {v}")?;
    }
    if tensors {
        let cols = ["tensor", "type", "shape", "bytes"]
            .map(String::from)
            .to_vec();
        let trows: Vec<Vec<String>> = file
            .tensors
            .iter()
            .map(|t| {
                vec![
                    t.name.clone(),
                    t.ggml_type.name().to_string(),
                    t.dims
                        .iter()
                        .map(|d| d.to_string())
                        .collect::<Vec<_>>()
                        .join(" × "),
                    t.n_bytes().to_string(),
                ]
            })
            .collect();
        outln!()?;
        out!("{}", table(&cols, &trows))?;
    }
    Ok(ExitCode::Ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_model_hash_is_remembered_until_the_file_changes() {
        let tmp = tempfile::tempdir().unwrap();
        let (file, memo) = (tmp.path().join("m.gguf"), tmp.path().join("hashes"));
        std::fs::write(&file, b"first").unwrap();
        let first = sha256_remembered(&file, &memo).unwrap();
        assert_eq!(first, sha256_file(&file).unwrap());
        assert_eq!(std::fs::read_dir(&memo).unwrap().count(), 1);
        // The memo is what answers while the file is unchanged: forge its hash and see it.
        let entry = std::fs::read_dir(&memo)
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        let text = std::fs::read_to_string(&entry).unwrap();
        let forged = text.replace(&first, &"f".repeat(64));
        std::fs::write(&entry, forged).unwrap();
        assert_eq!(sha256_remembered(&file, &memo).unwrap(), "f".repeat(64));
        // Same length, new bytes: the change time moves, and the file is read again.
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(&file, b"other").unwrap();
        let second = sha256_remembered(&file, &memo).unwrap();
        assert_eq!(second, sha256_file(&file).unwrap());
        assert_ne!(second, first);
        // A memo directory that cannot be made costs only the memo.
        let blocked = tmp.path().join("blocked");
        std::fs::write(&blocked, b"a file, not a directory").unwrap();
        assert_eq!(sha256_remembered(&file, &blocked).unwrap(), second);
    }

    #[test]
    fn temporary_names_give_back_their_process_id() {
        let out = Path::new("/c/synth-tiny-s0-ab-Q8_0-cd.gguf");
        let tmp = partial(out);
        let me = std::process::id();
        let name = tmp.file_name().unwrap().to_str().unwrap();
        assert_eq!(partial_pid(name), Some(me));
        assert_eq!(partial_pid(&format!("{name}.partial")), Some(me));
        assert_eq!(partial_pid("synth-tiny-s0-ab-Q8_0-cd.gguf"), None);
        assert_eq!(partial_pid("notes.partial"), None);
        assert_eq!(partial_pid("x.gguf.abc.partial"), None);
    }

    #[test]
    fn the_sweep_removes_only_a_dead_process_s_files() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        // A process id no process has: above the kernel's pid_max (at most 2^22).
        let dead = dir.join("m-F16.gguf.4194999.partial");
        let dead_inner = dir.join("m-F16.gguf.4194999.partial.partial");
        let mine = partial(&dir.join("n-F16.gguf"));
        let model = dir.join("m-F16.gguf");
        for p in [&dead, &dead_inner, &mine, &model] {
            std::fs::write(p, b"x").unwrap();
        }
        sweep_stale_partials(dir);
        assert!(!dead.exists() && !dead_inner.exists());
        assert!(mine.exists(), "this process is alive: its file stays");
        assert!(model.exists());
    }

    #[test]
    fn unfinished_files_go_when_abandoned_or_dropped() {
        let tmp = tempfile::tempdir().unwrap();
        let a = tmp.path().join("a.gguf.1.partial");
        let held = Unfinished::hold(&a);
        std::fs::write(&a, b"half").unwrap();
        assert_eq!(remove_unfinished(), vec![a.clone()]);
        assert!(!a.exists());
        drop(held);
        // Dropped after a rename: nothing there, nothing to do, and nothing still held.
        let b = tmp.path().join("b.gguf.1.partial");
        drop(Unfinished::hold(&b));
        assert!(remove_unfinished().is_empty());
    }
}
