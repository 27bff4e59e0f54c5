//! Deterministic synthetic F16 models that llama.cpp loads and runs.
//!
//! A [`SynthSpec`] (architecture + seed) fully determines the bytes written: metadata follows
//! what `src/llama-model.cpp` (`load_hparams`, `models/llama.cpp`, `models/qwen2.cpp`) and
//! `src/llama-vocab.cpp` (SPM `"llama"` tokenizer) read; tensors carry llama.cpp's names and
//! shapes. Weights are seeded normal-ish values with standard deviation `1/sqrt(row_len)`, so
//! activations stay finite; norm weights are 1.0.
//!
//! Generation streams tensor by tensor in 1 MiB chunks: memory stays bounded whatever the model
//! size, and each chunk costs one ChaCha8 fill plus a table lookup per weight.

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use half::f16;
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokbench_core::arch::ArchSpec;

use crate::error::GgufError;
use crate::model_info::FileType;
use crate::reader::TensorInfo;
use crate::types::{GgmlType, Value};
use crate::writer::{GgufWriter, TensorDataWriter};

/// Bumped whenever the bytes [`write_f16`] produces for a given spec change; part of
/// [`content_key`], so caches keyed by it invalidate themselves.
pub const SYNTH_FORMAT_VERSION: u32 = 1;

/// Token ids of the special tokens of the synthetic vocabulary.
pub const UNK_TOKEN_ID: u32 = 0;
pub const BOS_TOKEN_ID: u32 = 1;
pub const EOS_TOKEN_ID: u32 = 2;
/// Three special tokens plus the 256 byte tokens.
pub const MIN_VOCAB: u32 = 259;

/// `llama_token_type` values (`include/llama.h`).
const TOKEN_TYPE_NORMAL: i32 = 1;
const TOKEN_TYPE_UNKNOWN: i32 = 2;
const TOKEN_TYPE_CONTROL: i32 = 3;
const TOKEN_TYPE_BYTE: i32 = 6;

/// The SentencePiece word-boundary marker (U+2581).
const SPACE: char = '\u{2581}';

const CHUNK_BYTES: usize = 1 << 20;
/// Standard deviation of the q/k/v biases.
const BIAS_STD: f64 = 0.02;

/// What to synthesize: an architecture and the seed of its weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SynthSpec {
    pub arch: ArchSpec,
    pub seed: u64,
}

/// What [`write_f16`] wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SynthReport {
    pub path: PathBuf,
    pub file_size_bytes: u64,
    pub n_params: u64,
    pub n_tensors: usize,
    /// [`content_key`] of the spec.
    pub content_key: String,
}

/// sha256 (hex) of a canonical description of `spec` and [`SYNTH_FORMAT_VERSION`]: equal keys
/// mean byte-identical files.
pub fn content_key(spec: &SynthSpec) -> String {
    let SynthSpec { arch, seed } = spec;
    let ArchSpec {
        name,
        display_name,
        architecture,
        n_layer,
        n_embd,
        n_head,
        n_head_kv,
        head_dim,
        n_ff,
        n_vocab,
        n_ctx_train,
        rope_freq_base,
        rms_norm_eps,
        tied_embeddings,
        qkv_bias,
        sliding_window,
    } = arch;
    let canonical = format!(
        "tokbench-synth-f16\nformat={SYNTH_FORMAT_VERSION}\nseed={seed}\nname={name:?}\n\
         display_name={display_name:?}\narchitecture={architecture:?}\nn_layer={n_layer}\n\
         n_embd={n_embd}\nn_head={n_head}\nn_head_kv={n_head_kv}\nhead_dim={head_dim}\n\
         n_ff={n_ff}\nn_vocab={n_vocab}\nn_ctx_train={n_ctx_train}\n\
         rope_freq_base={:08x}\nrms_norm_eps={:08x}\ntied_embeddings={tied_embeddings}\n\
         qkv_bias={qkv_bias}\nsliding_window={sliding_window:?}\n",
        rope_freq_base.to_bits(),
        rms_norm_eps.to_bits(),
    );
    hex::encode(Sha256::digest(canonical.as_bytes()))
}

/// Exact size in bytes of the file [`write_f16`] writes for `arch` (any seed).
pub fn estimate_f16_bytes(arch: &ArchSpec) -> Result<u64, GgufError> {
    let spec = SynthSpec {
        arch: arch.clone(),
        seed: 0,
    };
    Ok(plan_f16(&spec)?.0.total_len())
}

/// Writes the synthetic F16 model for `spec` to `path`, atomically: the data goes to
/// `<path>.partial`, which is renamed over `path` once complete.
pub fn write_f16(spec: &SynthSpec, path: &Path) -> Result<SynthReport, GgufError> {
    let mut partial = path.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    let write_err = |what: &str, source| GgufError::Write {
        what: format!("{what} {}", partial.display()),
        source,
    };
    let file = File::create(&partial).map_err(|e| write_err("creating", e))?;
    let result = write_f16_to(spec, BufWriter::with_capacity(4 * CHUNK_BYTES, file)).and_then(
        |(out, summary)| {
            let file = out
                .into_inner()
                .map_err(|e| write_err("flushing", e.into_error()))?;
            file.sync_all().map_err(|e| write_err("syncing", e))?;
            Ok(summary)
        },
    );
    let summary = match result {
        Ok(s) => s,
        Err(e) => {
            // Best effort: the partial file is useless, and the error above is the one to report.
            let _ = fs::remove_file(&partial);
            return Err(e);
        }
    };
    fs::rename(&partial, path).map_err(|source| GgufError::Write {
        what: format!("renaming {} to {}", partial.display(), path.display()),
        source,
    })?;
    Ok(SynthReport {
        path: path.to_path_buf(),
        file_size_bytes: summary.file_size_bytes,
        n_params: summary.n_params,
        n_tensors: summary.n_tensors,
        content_key: content_key(spec),
    })
}

/// Sizes of what [`write_f16_to`] wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SynthSummary {
    pub file_size_bytes: u64,
    pub n_params: u64,
    pub n_tensors: usize,
}

/// Writes the synthetic F16 model for `spec` to `out` and returns `out` (unflushed beyond what
/// [`TensorDataWriter::finish`] flushes) with a summary.
pub fn write_f16_to<W: Write>(spec: &SynthSpec, out: W) -> Result<(W, SynthSummary), GgufError> {
    let (plan, kinds) = plan_f16(spec)?;
    let tensors = plan.tensors().to_vec();
    let summary = SynthSummary {
        file_size_bytes: plan.total_len(),
        n_params: tensors.iter().map(TensorInfo::n_elements).sum(),
        n_tensors: tensors.len(),
    };
    let mut data = plan.begin(out)?;
    let mut buf = vec![0u8; CHUNK_BYTES];
    for (index, (tensor, kind)) in tensors.iter().zip(kinds).enumerate() {
        let mut rng = ChaCha8Rng::seed_from_u64(spec.seed);
        rng.set_stream(index as u64);
        write_tensor(&mut data, tensor, kind, &mut rng, &mut buf)?;
    }
    Ok((data.finish()?, summary))
}

/// How a tensor's values are generated.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Fill {
    /// F16 normal-ish weights with this standard deviation.
    Weights(f64),
    /// F32 constant (norm weights).
    Constant(f32),
    /// F32 normal-ish values with this standard deviation (biases).
    Bias(f64),
}

fn write_tensor<W: Write>(
    data: &mut TensorDataWriter<W>,
    tensor: &TensorInfo,
    fill: Fill,
    rng: &mut ChaCha8Rng,
    buf: &mut [u8],
) -> Result<(), GgufError> {
    let mut left = tensor.n_bytes();
    match fill {
        Fill::Weights(std) => {
            let table = normal_f16_table(std);
            while left > 0 {
                let n = left.min(buf.len() as u64) as usize;
                let chunk = &mut buf[..n];
                rng.fill_bytes(chunk);
                for pair in chunk.chunks_exact_mut(2) {
                    let v = table[usize::from(u16::from_le_bytes([pair[0], pair[1]]))];
                    pair.copy_from_slice(&v.to_le_bytes());
                }
                data.write_data(chunk)?;
                left -= n as u64;
            }
        }
        Fill::Constant(value) => {
            for quad in buf.chunks_exact_mut(4) {
                quad.copy_from_slice(&value.to_le_bytes());
            }
            while left > 0 {
                let n = left.min(buf.len() as u64) as usize;
                data.write_data(&buf[..n])?;
                left -= n as u64;
            }
        }
        Fill::Bias(std) => {
            let table = normal_f16_table(std);
            while left > 0 {
                // Each f32 comes from 2 random bytes, generated into the back half of the chunk.
                let n = left.min(buf.len() as u64 / 2) as usize;
                let (out, random) = buf.split_at_mut(buf.len() / 2);
                let random = &mut random[..n / 2];
                rng.fill_bytes(random);
                for (quad, pair) in out.chunks_exact_mut(4).zip(random.chunks_exact(2)) {
                    let bits = table[usize::from(u16::from_le_bytes([pair[0], pair[1]]))];
                    quad.copy_from_slice(&f16::from_bits(bits).to_f32().to_le_bytes());
                }
                data.write_data(&out[..n])?;
                left -= n as u64;
            }
        }
    }
    Ok(())
}

/// f16 bit patterns of the standard normal quantiles at (i + 0.5) / 65536, scaled by `std`:
/// indexing it with uniform random 16-bit values yields normal samples (truncated at ±4.3σ).
fn normal_f16_table(std: f64) -> Vec<u16> {
    (0..=u16::MAX)
        .map(|i| {
            let p = (f64::from(i) + 0.5) / 65536.0;
            f16::from_f64(std * inverse_normal_cdf(p)).to_bits()
        })
        .collect()
}

/// Acklam's rational approximation of the standard normal quantile (relative error < 1.2e-9),
/// far below f16 resolution.
fn inverse_normal_cdf(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969_683_028_665_376e1,
        2.209_460_984_245_205e2,
        -2.759_285_104_469_687e2,
        1.383_577_518_672_69e2,
        -3.066_479_806_614_716e1,
        2.506_628_277_459_239,
    ];
    const B: [f64; 5] = [
        -5.447_609_879_822_406e1,
        1.615_858_368_580_409e2,
        -1.556_989_798_598_866e2,
        6.680_131_188_771_972e1,
        -1.328_068_155_288_572e1,
    ];
    const C: [f64; 6] = [
        -7.784_894_002_430_293e-3,
        -3.223_964_580_411_365e-1,
        -2.400_758_277_161_838,
        -2.549_732_539_343_734,
        4.374_664_141_464_968,
        2.938_163_982_698_783,
    ];
    const D: [f64; 4] = [
        7.784_695_709_041_462e-3,
        3.224_671_290_700_398e-1,
        2.445_134_137_142_996,
        3.754_408_661_907_416,
    ];
    const P_LOW: f64 = 0.02425;
    let tail = |q: f64| {
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    if p < P_LOW {
        tail((-2.0 * p.ln()).sqrt())
    } else if p > 1.0 - P_LOW {
        -tail((-2.0 * (1.0 - p).ln()).sqrt())
    } else {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    }
}

/// The synthetic SentencePiece-style vocabulary.
#[derive(Debug, Clone, PartialEq)]
pub struct SynthVocab {
    pub tokens: Vec<String>,
    pub scores: Vec<f32>,
    pub token_types: Vec<i32>,
}

/// Builds a vocabulary of exactly `n_vocab` unique tokens: `<unk>`, `<s>`, `</s>`, the 256 byte
/// tokens `<0x00>`..`<0xFF>`, then ordinary pieces (`▁`, printable ASCII characters, `▁`-prefixed
/// letters and digits, letter pairs and triples with and without `▁`, then `▁tok<N>`).
pub fn synth_vocab(n_vocab: u32) -> Result<SynthVocab, GgufError> {
    if n_vocab < MIN_VOCAB {
        return Err(GgufError::VocabTooSmall {
            n_vocab,
            min: MIN_VOCAB,
        });
    }
    let n = n_vocab as usize;
    let mut tokens: Vec<String> = Vec::with_capacity(n);
    let mut token_types = Vec::with_capacity(n);
    let mut scores = Vec::with_capacity(n);
    for (text, ty) in [
        ("<unk>", TOKEN_TYPE_UNKNOWN),
        ("<s>", TOKEN_TYPE_CONTROL),
        ("</s>", TOKEN_TYPE_CONTROL),
    ] {
        tokens.push(text.into());
        token_types.push(ty);
        scores.push(0.0);
    }
    for b in 0..=255u8 {
        tokens.push(format!("<0x{b:02X}>"));
        token_types.push(TOKEN_TYPE_BYTE);
        scores.push(0.0);
    }

    let pairs = || ('a'..='z').flat_map(|a| ('a'..='z').map(move |b| format!("{a}{b}")));
    let triples = || pairs().flat_map(|ab| ('a'..='z').map(move |c| format!("{ab}{c}")));
    let alnum = ('a'..='z').chain('A'..='Z').chain('0'..='9');
    let ordinary = std::iter::once(SPACE.to_string())
        .chain((b'!'..=b'~').map(|b| char::from(b).to_string()))
        .chain(alnum.map(|c| format!("{SPACE}{c}")))
        .chain(pairs())
        .chain(pairs().map(|p| format!("{SPACE}{p}")))
        .chain(triples())
        .chain(triples().map(|t| format!("{SPACE}{t}")))
        .chain((0u64..).map(|i| format!("{SPACE}tok{i}")));
    // The families are disjoint by construction (length, `▁` prefix, or `tok` + digits), so
    // every token is unique; llama.cpp aborts on duplicates.
    for (rank, text) in ordinary.take(n - tokens.len()).enumerate() {
        tokens.push(text);
        token_types.push(TOKEN_TYPE_NORMAL);
        scores.push(-(rank as f32));
    }
    Ok(SynthVocab {
        tokens,
        scores,
        token_types,
    })
}

/// Plans the file for `spec`: metadata, tensor shapes and how each tensor is filled.
fn plan_f16(spec: &SynthSpec) -> Result<(GgufWriter, Vec<Fill>), GgufError> {
    let a = &spec.arch;
    a.validate().map_err(GgufError::InvalidSpec)?;
    let vocab = synth_vocab(a.n_vocab)?;
    let arch = a.architecture.as_str();
    let mut w = GgufWriter::new();
    let mut meta = |key: String, value: Value| w.add_metadata(key, value);
    meta("general.architecture".into(), Value::String(arch.into()))?;
    meta("general.name".into(), Value::String(a.display_name.clone()))?;
    meta(
        "general.file_type".into(),
        Value::U32(FileType::MOSTLY_F16.0),
    )?;
    meta("general.quantization_version".into(), Value::U32(2))?;
    let k = |suffix: &str| format!("{arch}.{suffix}");
    meta(k("context_length"), Value::U32(a.n_ctx_train))?;
    meta(k("embedding_length"), Value::U32(a.n_embd))?;
    meta(k("block_count"), Value::U32(a.n_layer))?;
    meta(k("feed_forward_length"), Value::U32(a.n_ff))?;
    meta(k("attention.head_count"), Value::U32(a.n_head))?;
    meta(k("attention.head_count_kv"), Value::U32(a.n_head_kv))?;
    meta(k("attention.key_length"), Value::U32(a.head_dim))?;
    meta(k("attention.value_length"), Value::U32(a.head_dim))?;
    meta(k("rope.freq_base"), Value::F32(a.rope_freq_base))?;
    meta(
        k("attention.layer_norm_rms_epsilon"),
        Value::F32(a.rms_norm_eps),
    )?;
    meta(k("rope.dimension_count"), Value::U32(a.head_dim))?;
    meta(k("vocab_size"), Value::U32(a.n_vocab))?;
    meta("tokenizer.ggml.model".into(), Value::String("llama".into()))?;
    meta(
        "tokenizer.ggml.tokens".into(),
        Value::string_array(vocab.tokens),
    )?;
    meta(
        "tokenizer.ggml.scores".into(),
        Value::f32_array(vocab.scores),
    )?;
    meta(
        "tokenizer.ggml.token_type".into(),
        Value::i32_array(vocab.token_types),
    )?;
    meta(
        "tokenizer.ggml.bos_token_id".into(),
        Value::U32(BOS_TOKEN_ID),
    )?;
    meta(
        "tokenizer.ggml.eos_token_id".into(),
        Value::U32(EOS_TOKEN_ID),
    )?;
    meta(
        "tokenizer.ggml.unknown_token_id".into(),
        Value::U32(UNK_TOKEN_ID),
    )?;
    meta("tokenizer.ggml.add_bos_token".into(), Value::Bool(true))?;
    meta("tokenizer.ggml.add_eos_token".into(), Value::Bool(false))?;
    meta(
        "tokbench.synth.format_version".into(),
        Value::U32(SYNTH_FORMAT_VERSION),
    )?;
    meta(
        "tokbench.synth.preset".into(),
        Value::String(a.name.clone()),
    )?;
    meta("tokbench.synth.seed".into(), Value::U64(spec.seed))?;

    let embd = u64::from(a.n_embd);
    let vocab_n = u64::from(a.n_vocab);
    let ff = u64::from(a.n_ff);
    let (q, kv) = (a.q_dim(), a.kv_dim());
    let weights = |row_len: u64| Fill::Weights(1.0 / (row_len as f64).sqrt());
    let mut fills = Vec::new();
    let mut tensor = |name: String, dims: &[u64], fill: Fill| {
        let ty = match fill {
            Fill::Weights(_) => GgmlType::F16,
            Fill::Constant(_) | Fill::Bias(_) => GgmlType::F32,
        };
        fills.push(fill);
        w.add_tensor(name, dims, ty).map(|_| ())
    };
    tensor("token_embd.weight".into(), &[embd, vocab_n], weights(embd))?;
    for i in 0..a.n_layer {
        let blk = |suffix: &str| format!("blk.{i}.{suffix}");
        tensor(blk("attn_norm.weight"), &[embd], Fill::Constant(1.0))?;
        tensor(blk("attn_q.weight"), &[embd, q], weights(embd))?;
        tensor(blk("attn_k.weight"), &[embd, kv], weights(embd))?;
        tensor(blk("attn_v.weight"), &[embd, kv], weights(embd))?;
        if a.qkv_bias {
            tensor(blk("attn_q.bias"), &[q], Fill::Bias(BIAS_STD))?;
            tensor(blk("attn_k.bias"), &[kv], Fill::Bias(BIAS_STD))?;
            tensor(blk("attn_v.bias"), &[kv], Fill::Bias(BIAS_STD))?;
        }
        tensor(blk("attn_output.weight"), &[q, embd], weights(q))?;
        tensor(blk("ffn_norm.weight"), &[embd], Fill::Constant(1.0))?;
        tensor(blk("ffn_gate.weight"), &[embd, ff], weights(embd))?;
        tensor(blk("ffn_up.weight"), &[embd, ff], weights(embd))?;
        tensor(blk("ffn_down.weight"), &[ff, embd], weights(ff))?;
    }
    tensor("output_norm.weight".into(), &[embd], Fill::Constant(1.0))?;
    if !a.tied_embeddings {
        tensor("output.weight".into(), &[embd, vocab_n], weights(embd))?;
    }
    Ok((w, fills))
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn vocab_is_unique_and_exact() {
        for n in [MIN_VOCAB, 300, 32000, 128_256, 152_064] {
            let v = synth_vocab(n).unwrap();
            assert_eq!(v.tokens.len(), n as usize);
            assert_eq!(v.scores.len(), n as usize);
            assert_eq!(v.token_types.len(), n as usize);
            let unique: HashSet<&String> = v.tokens.iter().collect();
            assert_eq!(unique.len(), n as usize, "duplicate tokens at n_vocab={n}");
            assert!(v.tokens.iter().all(|t| !t.is_empty()));
        }
        let v = synth_vocab(300).unwrap();
        assert_eq!(&v.tokens[..3], ["<unk>", "<s>", "</s>"]);
        assert_eq!(v.token_types[..3], [2, 3, 3]);
        assert_eq!(v.tokens[3 + 0x0A], "<0x0A>");
        assert_eq!(v.tokens[3 + 0xFF], "<0xFF>");
        assert_eq!(v.token_types[3 + 0xFF], 6);
        assert_eq!(v.tokens[259], "\u{2581}");
        assert_eq!(v.token_types[259], 1);
        assert!(matches!(
            synth_vocab(258),
            Err(GgufError::VocabTooSmall { .. })
        ));
    }

    #[test]
    fn inverse_cdf_is_sane() {
        assert!(inverse_normal_cdf(0.5).abs() < 1e-12);
        assert!((inverse_normal_cdf(0.975) - 1.959_963_985).abs() < 1e-6);
        assert!((inverse_normal_cdf(0.01) + 2.326_347_874).abs() < 1e-6);
        let table = normal_f16_table(1.0);
        // Monotone, symmetric, finite.
        for w in table.windows(2) {
            assert!(f16::from_bits(w[0]).to_f32() <= f16::from_bits(w[1]).to_f32());
        }
        let first = f16::from_bits(table[0]).to_f32();
        let last = f16::from_bits(table[65535]).to_f32();
        assert_eq!(first, -last);
        assert!(last.is_finite() && last > 4.0 && last < 4.5);
        // Standard deviation of the table itself is ~1.
        let var: f64 = table
            .iter()
            .map(|&b| f64::from(f16::from_bits(b).to_f32()).powi(2))
            .sum::<f64>()
            / 65536.0;
        assert!((var.sqrt() - 1.0).abs() < 0.01, "{var}");
    }

    #[test]
    fn content_key_depends_on_every_input() {
        let base = SynthSpec {
            arch: ArchSpec::preset("tiny").unwrap().clone(),
            seed: 7,
        };
        let key = content_key(&base);
        assert_eq!(key.len(), 64);
        assert_eq!(key, content_key(&base.clone()));
        let mut other = base.clone();
        other.seed = 8;
        assert_ne!(content_key(&other), key);
        let mut other = base.clone();
        other.arch.rms_norm_eps = 1e-6;
        assert_ne!(content_key(&other), key);
        let mut other = base;
        other.arch.n_ff = 1024;
        assert_ne!(content_key(&other), key);
    }
}
