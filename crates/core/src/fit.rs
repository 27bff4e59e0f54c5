//! Does it fit? The memory llama.cpp needs for a model, computed from the model's real
//! architecture rather than from a rule of thumb.
//!
//! This module owns the arithmetic only, no I/O:
//! - the tensor types of [`crate::ggml`] (block size, bytes per block, row bytes) as
//!   llama.cpp's quantizer assigns them;
//! - llama.cpp's per-tensor quantization recipe ([`tensor_type_for`], a port of
//!   `llama_tensor_get_type` in `src/llama-quant.cpp`) and the weight bytes it yields
//!   ([`weight_bytes`]);
//! - the KV cache ([`kv_cache_bytes`]), an estimate of the compute buffer
//!   ([`compute_buffer_bytes`]), their sum ([`estimate`]) and how many layers a device of a given
//!   size holds ([`gpu_layers_that_fit`]).
//!
//! Every size is a `u64` count of bytes. [`gib`] (2^30) and [`gb`] (10^9) turn one into a float
//! for display; the two units are never mixed inside this module.
//!
//! Scope: dense decoder-only transformers of the `llama` and `qwen2` architectures as
//! [`ArchSpec`] describes them, quantized from F16 without an importance matrix, without
//! `--pure`, `--output-tensor-type`, `--token-embedding-type` or `--tensor-type` overrides. The
//! recipe branches for MoE models, Falcon and the IQ presets are left out because no
//! [`ArchSpec`] or [`QuantPreset`] can reach them.

use std::collections::BTreeMap;

use crate::arch::{ArchError, ArchSpec};
use crate::bench::{CacheType, EngineParams};
pub use crate::ggml::GgmlType;
use crate::quant::QuantPreset;

/// Bytes in one GiB (2^30).
pub const GIB_BYTES: u64 = 1 << 30;

/// Bytes in one GB (10^9).
pub const GB_BYTES: u64 = 1_000_000_000;

/// llama.cpp pads the context to a multiple of this many cells (`GGML_PAD(cparams.n_ctx, 256)`
/// in `llama_context::llama_context`, `src/llama-context.cpp` of the vendored llama.cpp).
pub const KV_CTX_PAD: u64 = 256;

/// `bytes` in GiB (2^30 bytes), the unit llama.cpp logs and quantize.cpp's size table use.
pub fn gib(bytes: u64) -> f64 {
    bytes as f64 / GIB_BYTES as f64
}

/// `bytes` in GB (10^9 bytes), the unit GPU vendors print on the box.
pub fn gb(bytes: u64) -> f64 {
    bytes as f64 / GB_BYTES as f64
}

/// Returns true if and only if `n` is a multiple of `block` (`block > 0`). Spelled out because
/// `u64::is_multiple_of` needs Rust 1.87 and the workspace targets 1.85.
fn is_multiple(n: u64, block: u64) -> bool {
    n / block * block == n
}

/// The type a preset gives a 2-D weight before the per-tensor recipe adjusts it
/// (`llama_ftype_get_default_type`).
pub fn default_tensor_type(preset: QuantPreset) -> GgmlType {
    use GgmlType as T;
    use QuantPreset as P;
    match preset {
        P::F32 => T::F32,
        P::F16 => T::F16,
        P::BF16 => T::BF16,
        P::Q8_0 => T::Q8_0,
        P::Q5_1 => T::Q5_1,
        P::Q5_0 => T::Q5_0,
        P::Q4_1 => T::Q4_1,
        P::Q4_0 => T::Q4_0,
        P::Q6_K => T::Q6_K,
        P::Q5_K_M | P::Q5_K_S => T::Q5_K,
        P::Q4_K_M | P::Q4_K_S => T::Q4_K,
        P::Q3_K_L | P::Q3_K_M | P::Q3_K_S => T::Q3_K,
        P::Q2_K => T::Q2_K,
    }
}

// ---------------------------------------------------------------------------------------------
// Tensors of a model
// ---------------------------------------------------------------------------------------------

/// What a tensor of a llama/qwen2 GGUF is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TensorRole {
    /// `token_embd.weight`, `[n_embd, n_vocab]`.
    TokenEmbd,
    /// `output.weight`, `[n_embd, n_vocab]`; absent when the embeddings are tied.
    Output,
    /// `output_norm.weight`, `[n_embd]`.
    OutputNorm,
    /// `blk.N.attn_norm.weight`, `[n_embd]`.
    AttnNorm,
    /// `blk.N.attn_q.weight`, `[n_embd, n_head * head_dim]`.
    AttnQ,
    /// `blk.N.attn_k.weight`, `[n_embd, n_head_kv * head_dim]`.
    AttnK,
    /// `blk.N.attn_v.weight`, `[n_embd, n_head_kv * head_dim]`.
    AttnV,
    /// `blk.N.attn_output.weight`, `[n_head * head_dim, n_embd]`.
    AttnOutput,
    /// `blk.N.ffn_norm.weight`, `[n_embd]`.
    FfnNorm,
    /// `blk.N.ffn_gate.weight`, `[n_embd, n_ff]`.
    FfnGate,
    /// `blk.N.ffn_up.weight`, `[n_embd, n_ff]`.
    FfnUp,
    /// `blk.N.ffn_down.weight`, `[n_ff, n_embd]`.
    FfnDown,
    /// `blk.N.attn_q.bias`, `[n_head * head_dim]` (qwen2 only).
    QBias,
    /// `blk.N.attn_k.bias`, `[n_head_kv * head_dim]` (qwen2 only).
    KBias,
    /// `blk.N.attn_v.bias`, `[n_head_kv * head_dim]` (qwen2 only).
    VBias,
}

impl TensorRole {
    /// The tensors outside the repeating blocks.
    pub const GLOBAL: [TensorRole; 3] = [Self::TokenEmbd, Self::OutputNorm, Self::Output];

    /// The tensors of one block, in the order the synthesized GGUF writes them.
    pub const PER_LAYER: [TensorRole; 12] = [
        Self::AttnNorm,
        Self::AttnQ,
        Self::AttnK,
        Self::AttnV,
        Self::QBias,
        Self::KBias,
        Self::VBias,
        Self::AttnOutput,
        Self::FfnNorm,
        Self::FfnGate,
        Self::FfnUp,
        Self::FfnDown,
    ];

    /// Returns true if and only if this tensor exists once per block (`blk.N.*`).
    pub fn is_per_layer(self) -> bool {
        !matches!(self, Self::TokenEmbd | Self::Output | Self::OutputNorm)
    }

    /// Returns true if and only if a model of shape `arch` has this tensor: `output.weight`
    /// only when the embeddings are untied, the q/k/v biases only when `qkv_bias` is set.
    pub fn is_present(self, arch: &ArchSpec) -> bool {
        match self {
            Self::Output => !arch.tied_embeddings,
            Self::QBias | Self::KBias | Self::VBias => arch.qkv_bias,
            _ => true,
        }
    }

    /// Number of dimensions: 1 for norms and biases, 2 for the weight matrices.
    pub fn n_dims(self) -> u32 {
        match self {
            Self::OutputNorm
            | Self::AttnNorm
            | Self::FfnNorm
            | Self::QBias
            | Self::KBias
            | Self::VBias => 1,
            _ => 2,
        }
    }

    /// The GGUF shape `[ne0, ne1]`, as the synthesized GGUF writes it; `ne0` is the row
    /// length that block quantization splits. 1-D tensors have `ne1 == 1`.
    pub fn shape(self, arch: &ArchSpec) -> [u64; 2] {
        let embd = u64::from(arch.n_embd);
        let vocab = u64::from(arch.n_vocab);
        let ff = u64::from(arch.n_ff);
        let q = arch.q_dim();
        let kv = arch.kv_dim();
        match self {
            Self::TokenEmbd | Self::Output => [embd, vocab],
            Self::OutputNorm | Self::AttnNorm | Self::FfnNorm => [embd, 1],
            Self::AttnQ => [embd, q],
            Self::AttnK | Self::AttnV => [embd, kv],
            Self::AttnOutput => [q, embd],
            Self::FfnGate | Self::FfnUp => [embd, ff],
            Self::FfnDown => [ff, embd],
            Self::QBias => [q, 1],
            Self::KBias | Self::VBias => [kv, 1],
        }
    }

    /// Elements in the tensor: `ne0 * ne1`.
    pub fn n_elements(self, arch: &ArchSpec) -> u64 {
        let [ne0, ne1] = self.shape(arch);
        ne0 * ne1
    }

    /// The GGUF tensor name, e.g. `blk.3.attn_v.weight`; `layer` is ignored for global tensors.
    pub fn gguf_name(self, layer: u32) -> String {
        let suffix = match self {
            Self::TokenEmbd => return "token_embd.weight".to_owned(),
            Self::Output => return "output.weight".to_owned(),
            Self::OutputNorm => return "output_norm.weight".to_owned(),
            Self::AttnNorm => "attn_norm.weight",
            Self::AttnQ => "attn_q.weight",
            Self::AttnK => "attn_k.weight",
            Self::AttnV => "attn_v.weight",
            Self::AttnOutput => "attn_output.weight",
            Self::FfnNorm => "ffn_norm.weight",
            Self::FfnGate => "ffn_gate.weight",
            Self::FfnUp => "ffn_up.weight",
            Self::FfnDown => "ffn_down.weight",
            Self::QBias => "attn_q.bias",
            Self::KBias => "attn_k.bias",
            Self::VBias => "attn_v.bias",
        };
        format!("blk.{layer}.{suffix}")
    }
}

// ---------------------------------------------------------------------------------------------
// The quantization recipe
// ---------------------------------------------------------------------------------------------

/// llama.cpp's `use_more_bits`: the first and last eighth of the layers and every third layer
/// in between get more bits in the `_M` presets.
fn use_more_bits(i_layer: u32, n_layer: u32) -> bool {
    let (i, n) = (i64::from(i_layer), i64::from(n_layer));
    i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2
}

/// Returns true if and only if llama.cpp classifies the model as `LLM_TYPE_70B`, which bumps
/// `attn_v` from Q3_K/Q4_K to Q5_K: 80 layers, for `llama` only with grouped-query attention
/// (`src/models/llama.cpp`, `src/models/qwen2.cpp`).
fn is_llm_type_70b(arch: &ArchSpec) -> bool {
    arch.n_layer == 80
        && match arch.architecture.as_str() {
            "llama" => arch.n_head != arch.n_head_kv,
            "qwen2" => true,
            _ => false,
        }
}

/// The type llama.cpp's quantizer gives tensor `role` of block `layer` (ignored for global
/// tensors) when it quantizes an F16 model of shape `arch` to `preset`.
///
/// A port of `llama_tensor_get_type` and `llama_tensor_get_type_impl` (vendored llama.cpp,
/// `src/llama-quant.cpp`) for dense llama/qwen2 models (`n_expert == 0`), without an
/// importance matrix or overrides:
/// - 1-D tensors (norms, biases) are never quantized and stay F32;
/// - F32/F16/BF16 presets give every matrix that type;
/// - `output.weight` (and `token_embd.weight` when the embeddings are tied) becomes Q6_K,
///   except that Q8_0 stays Q8_0 and a row not divisible by the preset's block size gives Q8_0;
/// - untied `token_embd.weight` keeps the preset's type;
/// - `attn_v`, `ffn_down` and `attn_output` follow the per-preset rules (see the match below);
///   `attn_q`, `attn_k`, `ffn_gate` and `ffn_up` only change for IQ and MoE recipes, so they
///   keep the preset's type;
/// - a row length not divisible by the chosen type's block size falls back: Q2_K/Q3_K → Q4_0,
///   Q4_K → Q5_0, Q5_K → Q5_1, Q6_K → Q8_0, and to F16 if even 32 does not divide it.
///   (Older llama.cpp sent Q2_K/Q3_K to IQ4_NL; the vendored source sends them to Q4_0. Both
///   are 18 bytes per 32 weights, so the size is the same.)
///
/// llama.cpp walks the tensors sorted by layer, so its `i_attention_wv` and `i_ffn_down`
/// counters equal the layer index here.
pub fn tensor_type_for(
    preset: QuantPreset,
    role: TensorRole,
    layer: u32,
    arch: &ArchSpec,
) -> GgmlType {
    use GgmlType as T;
    use QuantPreset as P;

    // tensor_allows_quantization: only tensors of 2+ dimensions; they keep the type the
    // converter (and tokbench's synthesizer) wrote, F32.
    if role.n_dims() < 2 {
        return T::F32;
    }
    let default = default_tensor_type(preset);
    // llama_tensor_get_type only consults the recipe when the target type is quantized.
    if !default.is_quantized() {
        return default;
    }
    let [row_len, _] = role.shape(arch);
    let n_layer = arch.n_layer;
    let n_gqa = arch.n_head.checked_div(arch.n_head_kv).unwrap_or(0);

    // With tied embeddings, llama.cpp quantizes token_embd as the output tensor it also is.
    let output_like =
        role == TensorRole::Output || (role == TensorRole::TokenEmbd && arch.tied_embeddings);
    let chosen = if output_like {
        if !is_multiple(row_len, default.block_size()) {
            T::Q8_0
        } else if default != T::Q8_0 {
            T::Q6_K
        } else {
            default
        }
    } else {
        match role {
            TensorRole::AttnV => {
                let t = match preset {
                    P::Q2_K if n_gqa >= 4 => T::Q4_K,
                    P::Q2_K => T::Q3_K,
                    P::Q3_K_M if layer < 2 => T::Q5_K,
                    P::Q3_K_M => T::Q4_K,
                    P::Q3_K_L => T::Q5_K,
                    P::Q4_K_M | P::Q5_K_M if use_more_bits(layer, n_layer) => T::Q6_K,
                    P::Q4_K_S if layer < 4 => T::Q5_K,
                    _ => default,
                };
                // "In the 70B model we have 8 heads sharing the same attn_v weights" (llama-quant.cpp).
                if is_llm_type_70b(arch) && matches!(t, T::Q3_K | T::Q4_K) {
                    T::Q5_K
                } else {
                    t
                }
            }
            TensorRole::FfnDown => match preset {
                P::Q2_K => T::Q3_K,
                P::Q3_K_M if layer < n_layer / 16 => T::Q5_K,
                P::Q3_K_M => T::Q4_K,
                P::Q3_K_L => T::Q5_K,
                P::Q4_K_M | P::Q5_K_M if use_more_bits(layer, n_layer) => T::Q6_K,
                P::Q4_K_S if layer < n_layer / 8 => T::Q5_K,
                _ => default,
            },
            TensorRole::AttnOutput => match preset {
                P::Q2_K => T::Q3_K,
                P::Q3_K_M => T::Q4_K,
                P::Q3_K_L => T::Q5_K,
                _ => default,
            },
            _ => default,
        }
    };
    fallback(chosen, row_len)
}

/// `tensor_type_fallback`: a type whose block does not divide the row length is demoted.
fn fallback(t: GgmlType, row_len: u64) -> GgmlType {
    use GgmlType as T;
    if t.row_bytes(row_len).is_some() {
        return t;
    }
    let demoted = match t {
        T::Q2_K | T::Q3_K => T::Q4_0,
        T::Q4_K => T::Q5_0,
        T::Q5_K => T::Q5_1,
        T::Q6_K => T::Q8_0,
        other => other,
    };
    if demoted.row_bytes(row_len).is_some() {
        demoted
    } else {
        T::F16
    }
}

// ---------------------------------------------------------------------------------------------
// Weights
// ---------------------------------------------------------------------------------------------

/// How many tensors of one type a model has and their bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TypeTally {
    pub n_tensors: u32,
    pub bytes: u64,
}

/// The tensor data of a model at a preset, in bytes (GGUF metadata and alignment padding
/// excluded: a few MB, most of it the tokenizer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WeightBreakdown {
    /// Every tensor: `token_embd_bytes + output_bytes + output_norm_bytes + sum(layer_bytes)`.
    pub total_bytes: u64,
    /// `token_embd.weight`; llama.cpp keeps it in host memory whatever `-ngl` says.
    pub token_embd_bytes: u64,
    /// `output.weight`; 0 when the embeddings are tied (the file has no such tensor).
    pub output_bytes: u64,
    /// `output_norm.weight`.
    pub output_norm_bytes: u64,
    /// Each block's tensors, indexed by layer.
    pub layer_bytes: Vec<u64>,
    /// Tensor count and bytes per type, as llama.cpp's loader logs them (`type q4_K: 193 tensors`).
    pub per_type: BTreeMap<GgmlType, TypeTally>,
}

/// Bytes of a tensor of `shape` stored as `t`.
fn tensor_bytes(t: GgmlType, [ne0, ne1]: [u64; 2]) -> u64 {
    let row = t
        .row_bytes(ne0)
        .expect("tensor_type_for falls back to a type whose block divides the row");
    row * ne1
}

/// Sums every tensor of a model of shape `arch` quantized to `preset`, with the types
/// [`tensor_type_for`] gives them.
pub fn weight_bytes(arch: &ArchSpec, preset: QuantPreset) -> WeightBreakdown {
    let mut per_type: BTreeMap<GgmlType, TypeTally> = BTreeMap::new();
    let mut add = |role: TensorRole, layer: u32| -> u64 {
        if !role.is_present(arch) {
            return 0;
        }
        let t = tensor_type_for(preset, role, layer, arch);
        let bytes = tensor_bytes(t, role.shape(arch));
        let tally = per_type.entry(t).or_default();
        tally.n_tensors += 1;
        tally.bytes += bytes;
        bytes
    };
    let token_embd_bytes = add(TensorRole::TokenEmbd, 0);
    let output_norm_bytes = add(TensorRole::OutputNorm, 0);
    let output_bytes = add(TensorRole::Output, 0);
    let layer_bytes: Vec<u64> = (0..arch.n_layer)
        .map(|il| TensorRole::PER_LAYER.iter().map(|&r| add(r, il)).sum())
        .collect();
    let total_bytes =
        token_embd_bytes + output_bytes + output_norm_bytes + layer_bytes.iter().sum::<u64>();
    WeightBreakdown {
        total_bytes,
        token_embd_bytes,
        output_bytes,
        output_norm_bytes,
        layer_bytes,
        per_type,
    }
}

// ---------------------------------------------------------------------------------------------
// KV cache
// ---------------------------------------------------------------------------------------------

/// Why llama.cpp would not create a KV cache with these settings.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KvError {
    #[error("n_ctx must be greater than zero")]
    ZeroContext,
    #[error(
        "quantized V cache ({type_v}) requires flash_attn; llama.cpp refuses it without flash attention"
    )]
    QuantizedVWithoutFlashAttn { type_v: CacheType },
    #[error("{cache} cache type {cache_type} with block size {block_size} does not divide head_dim {head_dim}")]
    HeadDimNotBlockAligned {
        /// `K` or `V`.
        cache: &'static str,
        cache_type: CacheType,
        block_size: u64,
        head_dim: u32,
    },
}

/// Cells llama.cpp allocates for a context of `n_ctx` tokens: `n_ctx` rounded up to a
/// multiple of [`KV_CTX_PAD`] (256). This is what the vendored llama.cpp does for a single
/// sequence or a unified cache; with `n_seq_max > 1` and a split cache it pads each
/// sequence's share, which can add up to 255 cells per sequence more.
pub fn kv_size(n_ctx: u32) -> u64 {
    u64::from(n_ctx).div_ceil(KV_CTX_PAD) * KV_CTX_PAD
}

/// Checks the cache settings the way `llama_init_from_model` does: a quantized V cache needs
/// flash attention, and a quantized type's block must divide `head_dim`. (llama.cpp checks
/// the block size only with flash attention on; without it a quantized K cache is viewed per
/// head all the same, so this checks it always.)
fn check_kv(
    arch: &ArchSpec,
    n_ctx: u32,
    type_k: CacheType,
    type_v: CacheType,
    flash_attn: bool,
) -> Result<(), KvError> {
    if n_ctx == 0 {
        return Err(KvError::ZeroContext);
    }
    if type_v.is_quantized() && !flash_attn {
        return Err(KvError::QuantizedVWithoutFlashAttn { type_v });
    }
    for (cache, cache_type) in [("K", type_k), ("V", type_v)] {
        let block_size = GgmlType::from(cache_type).block_size();
        if !is_multiple(u64::from(arch.head_dim), block_size) {
            return Err(KvError::HeadDimNotBlockAligned {
                cache,
                cache_type,
                block_size,
                head_dim: arch.head_dim,
            });
        }
    }
    Ok(())
}

/// KV-cache bytes of one layer (every layer is the same size for these architectures):
/// `kv_size * (row_bytes(n_head_kv * head_dim, type_k) + row_bytes(n_head_kv * head_dim, type_v))`.
/// Assumes [`check_kv`] passed, so the rows are whole blocks.
fn kv_layer_bytes(arch: &ArchSpec, n_ctx: u32, type_k: CacheType, type_v: CacheType) -> u64 {
    let row = |c: CacheType| {
        GgmlType::from(c)
            .row_bytes(arch.kv_dim())
            .expect("head_dim is a multiple of the block size, so n_head_kv * head_dim is too")
    };
    kv_size(n_ctx) * (row(type_k) + row(type_v))
}

/// Bytes of the KV cache of one sequence stream (llama.cpp's `-np` with a unified cache does
/// not multiply it): summed over layers, `kv_size * n_head_kv * head_dim *
/// (bytes_per_elem(type_k) + bytes_per_elem(type_v))`, where `kv_size` is `n_ctx` rounded up to
/// 256 ([`kv_size`]) and `bytes_per_elem = type_size / block_size` (f16: 2, q8_0: 34/32).
///
/// Errors when llama.cpp would refuse the settings ([`KvError`]).
pub fn kv_cache_bytes(
    arch: &ArchSpec,
    n_ctx: u32,
    type_k: CacheType,
    type_v: CacheType,
    flash_attn: bool,
) -> Result<u64, KvError> {
    check_kv(arch, n_ctx, type_k, type_v, flash_attn)?;
    Ok(u64::from(arch.n_layer) * kv_layer_bytes(arch, n_ctx, type_k, type_v))
}

// ---------------------------------------------------------------------------------------------
// Compute buffer
// ---------------------------------------------------------------------------------------------

/// An **estimate** of llama.cpp's compute buffer (the scratch memory of the graph for one
/// micro-batch) plus its output buffer, in bytes. ggml's allocator reuses memory between
/// tensors whose lifetimes do not overlap, so the buffer is the peak of the graph, not the
/// sum of its tensors: the f32 logits of the micro-batch and (without flash attention) the
/// f32 attention scores of one layer are never alive together. With `T = min(n_ubatch,
/// n_ctx)` tokens (llama.cpp caps the batch at the unpadded context) and `kv =
/// kv_size(n_ctx)` cells:
///
/// ```text
/// max(logits n_vocab·T·4, scores kv·T·n_head·4 [no FA only])
///   + mask kv·T·4 (f32; FA: f16, ·2)
///   + activations 6·T·n_embd·4 + 2·T·kv_dim·4
///   + output buffer n_vocab·4
/// ```
///
/// Calibrated against the buffers the vendored llama.cpp reports allocating on the CPU
/// backend (its `compute buffer size` log line, recorded by `tokbench run` and compared
/// by `tokbench fit --db`): the `tiny` and `small` presets at n_ubatch 256 and 512, 512 to
/// 4352 cells, f16 and q8_0 K cache, within 0.1 % without flash attention; with flash
/// attention up to 5 % over (its tile scratch is per thread, outside this buffer). GPU
/// backends split the graph differently; treat the figure there as an estimate.
pub fn compute_buffer_bytes(arch: &ArchSpec, n_ctx: u32, n_ubatch: u32, flash_attn: bool) -> u64 {
    let kv_cells = kv_size(n_ctx);
    let n_tokens = u64::from(n_ubatch.min(n_ctx));
    let n_vocab = u64::from(arch.n_vocab);
    let logits_bytes = n_vocab * n_tokens * 4;
    let (scores_bytes, mask_bytes) = if flash_attn {
        (0, kv_cells * n_tokens * 2)
    } else {
        (
            kv_cells * n_tokens * u64::from(arch.n_head) * 4,
            kv_cells * n_tokens * 4,
        )
    };
    let activations = 6 * n_tokens * u64::from(arch.n_embd) * 4 + 2 * n_tokens * arch.kv_dim() * 4;
    let output_bytes = n_vocab * 4;
    logits_bytes.max(scores_bytes) + mask_bytes + activations + output_bytes
}

// ---------------------------------------------------------------------------------------------
// Fit
// ---------------------------------------------------------------------------------------------

/// Why a fit cannot be computed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FitError {
    #[error("the architecture cannot describe a loadable model")]
    Arch(#[from] ArchError),
    #[error("llama.cpp would not create this kv cache")]
    Kv(#[from] KvError),
    #[error("n_ubatch must be greater than zero")]
    ZeroUbatch,
}

/// The context settings a fit depends on (llama.cpp's `-c`, `-ub`, `-ctk`, `-ctv`, `-fa`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FitParams {
    pub n_ctx: u32,
    pub n_ubatch: u32,
    pub type_k: CacheType,
    pub type_v: CacheType,
    pub flash_attn: bool,
}

impl FitParams {
    /// `n_ctx` with llama.cpp's other defaults: `-ub 512`, f16 K and V, flash attention on
    /// (llama.cpp's `auto` turns it on for GPUs that support it).
    pub fn new(n_ctx: u32) -> Self {
        Self {
            n_ctx,
            n_ubatch: 512,
            type_k: CacheType::F16,
            type_v: CacheType::F16,
            flash_attn: true,
        }
    }

    /// The settings of a benchmark cell run at context `n_ctx`.
    pub fn from_engine(n_ctx: u32, engine: &EngineParams) -> Self {
        let EngineParams {
            n_ubatch,
            flash_attn,
            type_k,
            type_v,
            n_threads: _,
            n_batch: _,
            n_gpu_layers: _,
            use_mmap: _,
        } = *engine;
        Self {
            n_ctx,
            n_ubatch,
            type_k,
            type_v,
            flash_attn,
        }
    }
}

/// The memory a model needs with a context, in bytes, wherever it ends up (device or host).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FitEstimate {
    /// All tensor data ([`WeightBreakdown::total_bytes`]), token embeddings included.
    pub weights_bytes: u64,
    /// The KV cache ([`kv_cache_bytes`]).
    pub kv_bytes: u64,
    /// The compute buffer, an estimate ([`compute_buffer_bytes`]).
    pub compute_bytes: u64,
    /// `weights_bytes + kv_bytes + compute_bytes`.
    pub total_bytes: u64,
}

fn check_fit(arch: &ArchSpec, params: &FitParams) -> Result<(), FitError> {
    arch.validate_shape()?;
    check_kv(
        arch,
        params.n_ctx,
        params.type_k,
        params.type_v,
        params.flash_attn,
    )?;
    if params.n_ubatch == 0 {
        return Err(FitError::ZeroUbatch);
    }
    Ok(())
}

/// Weights + KV cache + compute buffer of a model of shape `arch` at `preset` with `params`.
pub fn estimate(
    arch: &ArchSpec,
    preset: QuantPreset,
    params: &FitParams,
) -> Result<FitEstimate, FitError> {
    check_fit(arch, params)?;
    estimate_with_weights(arch, &weight_bytes(arch, preset), params)
}

/// [`estimate`] for weights known otherwise (a GGUF file's tensor table).
pub fn estimate_with_weights(
    arch: &ArchSpec,
    weights: &WeightBreakdown,
    params: &FitParams,
) -> Result<FitEstimate, FitError> {
    check_fit(arch, params)?;
    let weights_bytes = weights.total_bytes;
    let kv_bytes = kv_cache_bytes(
        arch,
        params.n_ctx,
        params.type_k,
        params.type_v,
        params.flash_attn,
    )?;
    let compute_bytes =
        compute_buffer_bytes(arch, params.n_ctx, params.n_ubatch, params.flash_attn);
    Ok(FitEstimate {
        weights_bytes,
        kv_bytes,
        compute_bytes,
        total_bytes: weights_bytes + kv_bytes + compute_bytes,
    })
}

/// How much of a model a device holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FitVerdict {
    /// Every block and the output layer fit: run with `-ngl` ≥ `n_layer + 1` (e.g. 999).
    Full,
    /// The output layer and the last `n_gpu_layers - 1` blocks fit: run with
    /// `-ngl n_gpu_layers`. `n_gpu_layers` counts the output layer, as llama.cpp's `-ngl`
    /// does, so it is between 1 and `n_layer`.
    Partial { n_gpu_layers: u32 },
    /// Not even the output layer and the compute buffer fit.
    No,
}

impl FitVerdict {
    /// The `-ngl` value this verdict stands for: `n_layer + 1`, `n_gpu_layers` or 0.
    pub fn n_gpu_layers(self, arch: &ArchSpec) -> u32 {
        match self {
            Self::Full => arch.n_layer + 1,
            Self::Partial { n_gpu_layers } => n_gpu_layers,
            Self::No => 0,
        }
    }
}

/// How many layers of a model of shape `arch` at `preset` with `params` fit in
/// `device_bytes` of device memory, following llama.cpp's placement
/// (`llama_model::load_tensors`): `token_embd` always stays in host memory; `-ngl k` puts the
/// output layer (`output` + `output_norm`, or a duplicate of the tied embeddings) on the
/// device first, then the last `k - 1` blocks, each with its share of the KV cache. The
/// compute buffer ([`compute_buffer_bytes`], an estimate) must fit beside the output layer.
/// Nothing is reserved for the driver or other processes: pass the memory that is free.
pub fn gpu_layers_that_fit(
    arch: &ArchSpec,
    preset: QuantPreset,
    params: &FitParams,
    device_bytes: u64,
) -> Result<FitVerdict, FitError> {
    check_fit(arch, params)?;
    gpu_layers_that_fit_weights(arch, &weight_bytes(arch, preset), params, device_bytes)
}

/// [`gpu_layers_that_fit`] for weights known otherwise (a GGUF file's tensor table).
pub fn gpu_layers_that_fit_weights(
    arch: &ArchSpec,
    w: &WeightBreakdown,
    params: &FitParams,
    device_bytes: u64,
) -> Result<FitVerdict, FitError> {
    check_fit(arch, params)?;
    let output_layer_bytes = if arch.tied_embeddings {
        w.token_embd_bytes
    } else {
        w.output_bytes
    } + w.output_norm_bytes;
    let compute = compute_buffer_bytes(arch, params.n_ctx, params.n_ubatch, params.flash_attn);
    let kv_layer = kv_layer_bytes(arch, params.n_ctx, params.type_k, params.type_v);

    let mut used_bytes = output_layer_bytes + compute;
    if used_bytes > device_bytes {
        return Ok(FitVerdict::No);
    }
    let mut n_blocks = 0u32;
    for &layer in w.layer_bytes.iter().rev() {
        let need = layer + kv_layer;
        if used_bytes + need > device_bytes {
            break;
        }
        used_bytes += need;
        n_blocks += 1;
    }
    Ok(if n_blocks == arch.n_layer {
        FitVerdict::Full
    } else {
        FitVerdict::Partial {
            n_gpu_layers: n_blocks + 1,
        }
    })
}

/// One stored result as `tokbench fit --db` compares it with a prediction: the model's
/// shape, the test's context settings, and the memory it took.
#[derive(Debug, Clone, PartialEq)]
pub struct FitInput {
    pub model: String,
    pub architecture: String,
    pub quant: String,
    pub test: String,
    pub n_prompt: u32,
    pub n_gen: u32,
    pub n_depth: u32,
    pub n_ubatch: u32,
    pub flash_attn: bool,
    pub type_k: String,
    pub type_v: String,
    pub shape_json: String,
    pub rss_peak_bytes: Option<i64>,
    pub accel: String,
    pub model_buffer_bytes: Option<i64>,
    pub repack_buffer_bytes: Option<i64>,
    pub kv_buffer_bytes: Option<i64>,
    pub compute_buffer_bytes: Option<i64>,
    pub output_buffer_bytes: Option<i64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(name: &str) -> &'static ArchSpec {
        ArchSpec::preset(name).unwrap()
    }

    const MIB: u64 = 1 << 20;

    #[test]
    fn tensor_type_table_matches_ggml() {
        // (type, blck_size, type_size) from quantization.md §3a.
        let table = [
            (GgmlType::F32, 1, 4),
            (GgmlType::F16, 1, 2),
            (GgmlType::BF16, 1, 2),
            (GgmlType::Q4_0, 32, 18),
            (GgmlType::Q4_1, 32, 20),
            (GgmlType::Q5_0, 32, 22),
            (GgmlType::Q5_1, 32, 24),
            (GgmlType::Q8_0, 32, 34),
            (GgmlType::Q2_K, 256, 84),
            (GgmlType::Q3_K, 256, 110),
            (GgmlType::Q4_K, 256, 144),
            (GgmlType::Q5_K, 256, 176),
            (GgmlType::Q6_K, 256, 210),
            (GgmlType::IQ4_NL, 32, 18),
        ];
        for (t, blck, size) in table {
            assert_eq!((t.block_size(), t.type_size()), (blck, size), "{t}");
            assert_eq!(t.is_quantized(), blck > 1, "{t}");
        }
        assert_eq!(GgmlType::Q4_K.row_bytes(4096), Some(16 * 144));
        assert_eq!(GgmlType::Q4_K.row_bytes(4096 + 32), None);
        assert_eq!(GgmlType::Q8_0.row_bytes(100), None);
        assert_eq!(GgmlType::F16.row_bytes(7), Some(14));
        assert_eq!(GgmlType::Q6_K.bits_per_weight(), 6.5625);
        for c in CacheType::ALL {
            assert_eq!(GgmlType::from(c).name(), c.name());
        }
    }

    #[test]
    fn use_more_bits_matches_llama_cpp() {
        // n = 32: i < 4, i >= 28, and (i - 4) % 3 == 2 → i = 6, 9, ..., 27.
        let got: Vec<u32> = (0..32).filter(|&i| use_more_bits(i, 32)).collect();
        assert_eq!(
            got,
            [0, 1, 2, 3, 6, 9, 12, 15, 18, 21, 24, 27, 28, 29, 30, 31]
        );
        // n = 8: i < 1, i >= 7, (i - 1) % 3 == 2 → 0, 3, 6, 7.
        let got: Vec<u32> = (0..8).filter(|&i| use_more_bits(i, 8)).collect();
        assert_eq!(got, [0, 3, 6, 7]);
    }

    // ----- KV cache -----

    #[test]
    fn kv_llama_8b_f16_at_8k_is_one_gib() {
        // 32 layers × 8 kv heads × 128 head_dim × (2 + 2) bytes = 131072 B/token;
        // × 8192 tokens = 1 073 741 824 B = 1 GiB exactly.
        let a = p("llama-3.1-8b");
        let bytes = kv_cache_bytes(a, 8192, CacheType::F16, CacheType::F16, false).unwrap();
        assert_eq!(bytes, 131_072 * 8192);
        assert_eq!(bytes, GIB_BYTES);
        assert_eq!(bytes / 8192, a.kv_bytes_per_token_f16());
    }

    #[test]
    fn kv_llama_70b_f16_at_32k_is_ten_gib() {
        // 80 × 8 × 128 × 4 = 327680 B/token; × 32768 = 10 737 418 240 B = 10 GiB.
        let bytes = kv_cache_bytes(
            p("llama-3.1-70b"),
            32768,
            CacheType::F16,
            CacheType::F16,
            false,
        )
        .unwrap();
        assert_eq!(bytes, 10 * GIB_BYTES);
    }

    #[test]
    fn kv_qwen_7b_q8_0_is_53_percent_of_f16() {
        // f16: 28 × 4 × 128 × 4 = 57344 B/token. q8_0: 1.0625 B/elem instead of 2, so
        // 57344 × 4096 × 1.0625 / 2 = 124 780 544 B. Row view: kv_dim 512 = 16 blocks × 34 B
        // = 544 B per cell per K or V; 28 × 4096 × 2 × 544 = 124 780 544.
        let bytes = kv_cache_bytes(
            p("qwen2.5-7b"),
            4096,
            CacheType::Q8_0,
            CacheType::Q8_0,
            true,
        )
        .unwrap();
        assert_eq!(bytes, 57_344 * 4096 * 17 / 32);
        assert_eq!(bytes, 124_780_544);
        assert_eq!(bytes, 28 * 4096 * 2 * 544);
    }

    #[test]
    fn kv_context_rounds_up_to_256() {
        // 1000 → 1024 cells: 1024 × 131072 = 128 MiB for Llama 3.1 8B f16.
        assert_eq!(kv_size(1000), 1024);
        assert_eq!(kv_size(1024), 1024);
        assert_eq!(kv_size(1025), 1280);
        assert_eq!(kv_size(1), 256);
        let bytes = kv_cache_bytes(
            p("llama-3.1-8b"),
            1000,
            CacheType::F16,
            CacheType::F16,
            false,
        )
        .unwrap();
        assert_eq!(bytes, 1024 * 131_072);
        assert_eq!(bytes, 128 * MIB);
    }

    #[test]
    fn kv_mixed_types_and_quantized_k_without_flash_attn() {
        // K q4_0 (18/32 B) + V f16 (2 B) on Llama 3.1 8B at 4096: per cell per layer
        // 1024 × 18/32 + 1024 × 2 = 576 + 2048 = 2624 B; × 32 × 4096 = 343 932 928.
        // A quantized K cache alone is allowed without flash attention.
        let bytes = kv_cache_bytes(
            p("llama-3.1-8b"),
            4096,
            CacheType::Q4_0,
            CacheType::F16,
            false,
        )
        .unwrap();
        assert_eq!(bytes, 2624 * 32 * 4096);
    }

    #[test]
    fn kv_errors() {
        let a = p("llama-3.1-8b");
        assert_eq!(
            kv_cache_bytes(a, 0, CacheType::F16, CacheType::F16, true),
            Err(KvError::ZeroContext)
        );
        let err = kv_cache_bytes(a, 4096, CacheType::Q8_0, CacheType::Q8_0, false).unwrap_err();
        assert_eq!(
            err,
            KvError::QuantizedVWithoutFlashAttn {
                type_v: CacheType::Q8_0
            }
        );
        assert!(
            err.to_string().contains("quantized V cache")
                && err.to_string().contains("requires flash_attn"),
            "{err}"
        );
        let mut odd = a.clone();
        odd.head_dim = 80; // 80 % 32 == 16
        let err = kv_cache_bytes(&odd, 4096, CacheType::Q4_0, CacheType::F16, true).unwrap_err();
        assert_eq!(
            err,
            KvError::HeadDimNotBlockAligned {
                cache: "K",
                cache_type: CacheType::Q4_0,
                block_size: 32,
                head_dim: 80
            }
        );
        assert_eq!(
            err.to_string(),
            "K cache type q4_0 with block size 32 does not divide head_dim 80"
        );
    }

    // ----- weights -----

    // tiny: 8 layers, n_embd 512, 8 heads, 4 kv heads, head_dim 64, n_ff 1536, n_vocab 32000.
    // q_dim 512, kv_dim 256. Elements:
    //   token_embd, output: 512 × 32000 = 16 384 000 each
    //   per layer: q 512×512 = 262 144, k 512×256 = 131 072, v 131 072, o 262 144,
    //              gate/up/down 512×1536 = 786 432 each → 3 145 728 per layer, 25 165 824 total
    //   norms: 2 × 512 per layer + 512 output_norm = 8 704 (F32, 34 816 B)
    //   2-D total: 32 768 000 + 25 165 824 = 57 933 824; + 8 704 = 57 942 528 = n_params.
    const TINY_NORM_BYTES: u64 = 8_704 * 4;
    const TINY_2D_ELEMS: u64 = 32_768_000 + 25_165_824;

    #[test]
    fn tiny_f16_is_two_bytes_per_matrix_weight() {
        // 57 933 824 × 2 = 115 867 648; + 34 816 = 115 902 464.
        let w = weight_bytes(p("tiny"), QuantPreset::F16);
        assert_eq!(TINY_2D_ELEMS + 8_704, p("tiny").n_params());
        assert_eq!(w.total_bytes, TINY_2D_ELEMS * 2 + TINY_NORM_BYTES);
        assert_eq!(w.total_bytes, 115_902_464);
        assert_eq!(w.token_embd_bytes, 32_768_000);
        assert_eq!(w.output_bytes, 32_768_000);
        assert_eq!(w.output_norm_bytes, 2048);
        assert_eq!(w.layer_bytes, vec![3_145_728 * 2 + 1024 * 4; 8]);
        assert_eq!(
            w.per_type[&GgmlType::F16],
            TypeTally {
                n_tensors: 2 + 8 * 7,
                bytes: TINY_2D_ELEMS * 2
            }
        );
        assert_eq!(w.per_type[&GgmlType::F32].n_tensors, 17);
        assert_eq!(w.per_type.len(), 2);
    }

    #[test]
    fn tiny_q8_0_keeps_output_q8_0() {
        // Every matrix Q8_0 (34 B per 32): 57 933 824 / 32 × 34 = 61 554 688; + 34 816 =
        // 61 589 504. output.weight stays Q8_0 under the Q8_0 preset.
        let w = weight_bytes(p("tiny"), QuantPreset::Q8_0);
        assert_eq!(w.total_bytes, TINY_2D_ELEMS / 32 * 34 + TINY_NORM_BYTES);
        assert_eq!(w.total_bytes, 61_589_504);
        assert_eq!(w.per_type[&GgmlType::Q8_0].n_tensors, 58);
        assert_eq!(w.per_type.len(), 2);
    }

    #[test]
    fn tiny_q4_k_m_follows_the_recipe() {
        // use_more_bits(i, 8) = {0, 3, 6, 7}: attn_v and ffn_down Q6_K there, Q4_K elsewhere;
        // output Q6_K, token_embd Q4_K. Counts: f32 17, q6_K 4 + 4 + 1 = 9,
        // q4_K 8 × 7 − 8 + 1 = 49 (75 tensors).
        // Bytes (Q4_K 144 B / 256, Q6_K 210 B / 256):
        //   token_embd 64 000 blocks × 144 = 9 216 000
        //   output     64 000 blocks × 210 = 13 440 000
        //   q, k, o, gate, up per layer: 2 228 224 elems = 8 704 blocks × 144 = 1 253 376; × 8
        //     = 10 027 008
        //   attn_v 512 blocks: 4 × 107 520 (Q6_K) + 4 × 73 728 (Q4_K) = 724 992
        //   ffn_down 3 072 blocks: 4 × 645 120 + 4 × 442 368 = 4 349 952
        //   norms 34 816
        //   total 37 792 768
        let a = p("tiny");
        let w = weight_bytes(a, QuantPreset::Q4_K_M);
        let count = |t| w.per_type[&t].n_tensors;
        assert_eq!(count(GgmlType::F32), 17);
        assert_eq!(count(GgmlType::Q6_K), 9);
        assert_eq!(count(GgmlType::Q4_K), 49);
        assert_eq!(w.token_embd_bytes, 9_216_000);
        assert_eq!(w.output_bytes, 13_440_000);
        assert_eq!(
            w.total_bytes,
            9_216_000 + 13_440_000 + 10_027_008 + 724_992 + 4_349_952 + TINY_NORM_BYTES
        );
        assert_eq!(w.total_bytes, 37_792_768);
        let t = |role, layer| tensor_type_for(QuantPreset::Q4_K_M, role, layer, a);
        assert_eq!(t(TensorRole::AttnV, 3), GgmlType::Q6_K);
        assert_eq!(t(TensorRole::AttnV, 4), GgmlType::Q4_K);
        assert_eq!(t(TensorRole::FfnDown, 7), GgmlType::Q6_K);
        assert_eq!(t(TensorRole::AttnNorm, 0), GgmlType::F32);
    }

    #[test]
    fn recipe_rules_per_preset() {
        use GgmlType as T;
        use QuantPreset as P;
        use TensorRole as R;
        let a = p("llama-3.1-8b"); // n_gqa 4, 32 layers
        let t = |q, r, i| tensor_type_for(q, r, i, a);
        // output.weight: Q6_K for k-quant and legacy presets, Q8_0 and floats keep theirs.
        for q in [
            P::Q4_0,
            P::Q4_1,
            P::Q5_0,
            P::Q5_1,
            P::Q2_K,
            P::Q3_K_S,
            P::Q6_K,
        ] {
            assert_eq!(t(q, R::Output, 0), T::Q6_K, "{q}");
        }
        assert_eq!(t(P::Q8_0, R::Output, 0), T::Q8_0);
        assert_eq!(t(P::F16, R::Output, 0), T::F16);
        assert_eq!(t(P::BF16, R::Output, 0), T::BF16);
        // token_embd keeps the base type.
        assert_eq!(t(P::Q4_K_M, R::TokenEmbd, 0), T::Q4_K);
        assert_eq!(t(P::Q2_K, R::TokenEmbd, 0), T::Q2_K);
        assert_eq!(t(P::Q4_0, R::TokenEmbd, 0), T::Q4_0);
        // Q2_K: attn_v Q4_K (n_gqa 4 ≥ 4), ffn_down and attn_output Q3_K, the rest Q2_K.
        assert_eq!(t(P::Q2_K, R::AttnV, 10), T::Q4_K);
        assert_eq!(t(P::Q2_K, R::FfnDown, 10), T::Q3_K);
        assert_eq!(t(P::Q2_K, R::AttnOutput, 10), T::Q3_K);
        assert_eq!(t(P::Q2_K, R::AttnQ, 10), T::Q2_K);
        // Q3_K_M: attn_v Q5_K for layers 0-1, Q4_K after; ffn_down Q5_K below n/16 = 2.
        assert_eq!(t(P::Q3_K_M, R::AttnV, 1), T::Q5_K);
        assert_eq!(t(P::Q3_K_M, R::AttnV, 2), T::Q4_K);
        assert_eq!(t(P::Q3_K_M, R::FfnDown, 1), T::Q5_K);
        assert_eq!(t(P::Q3_K_M, R::FfnDown, 2), T::Q4_K);
        assert_eq!(t(P::Q3_K_M, R::AttnOutput, 2), T::Q4_K);
        assert_eq!(t(P::Q3_K_M, R::FfnUp, 2), T::Q3_K);
        // Q3_K_L: attn_v, ffn_down, attn_output Q5_K.
        for r in [R::AttnV, R::FfnDown, R::AttnOutput] {
            assert_eq!(t(P::Q3_K_L, r, 15), T::Q5_K);
        }
        // Q3_K_S: nothing but the output changes.
        assert_eq!(t(P::Q3_K_S, R::AttnV, 0), T::Q3_K);
        // Q4_K_S: attn_v Q5_K for layers 0-3, ffn_down Q5_K below n/8 = 4.
        assert_eq!(t(P::Q4_K_S, R::AttnV, 3), T::Q5_K);
        assert_eq!(t(P::Q4_K_S, R::AttnV, 4), T::Q4_K);
        assert_eq!(t(P::Q4_K_S, R::FfnDown, 3), T::Q5_K);
        assert_eq!(t(P::Q4_K_S, R::FfnDown, 4), T::Q4_K);
        // Q5_K_M: Q6_K on use_more_bits layers.
        assert_eq!(t(P::Q5_K_M, R::AttnV, 6), T::Q6_K);
        assert_eq!(t(P::Q5_K_M, R::FfnDown, 7), T::Q5_K);
        // Legacy presets change nothing but the output.
        assert_eq!(t(P::Q4_0, R::FfnDown, 0), T::Q4_0);
        assert_eq!(t(P::Q5_1, R::AttnV, 0), T::Q5_1);
    }

    #[test]
    fn llama_70b_bumps_attn_v_to_q5_k() {
        // LLM_TYPE_70B (80 layers, GQA): attn_v Q3_K/Q4_K → Q5_K; a Q6_K choice stays.
        use GgmlType as T;
        use TensorRole as R;
        let a = p("llama-3.1-70b");
        let t = |q, i| tensor_type_for(q, R::AttnV, i, a);
        assert_eq!(t(QuantPreset::Q4_K_M, 11), T::Q5_K); // not use_more_bits(11, 80)
        assert_eq!(t(QuantPreset::Q4_K_M, 0), T::Q6_K);
        assert_eq!(t(QuantPreset::Q3_K_S, 40), T::Q5_K);
        assert_eq!(t(QuantPreset::Q2_K, 40), T::Q5_K);
        assert_eq!(t(QuantPreset::Q4_0, 40), T::Q4_0);
        // An 8B model is not 70B.
        assert_eq!(
            tensor_type_for(QuantPreset::Q3_K_S, R::AttnV, 10, p("llama-3.1-8b")),
            T::Q3_K
        );
    }

    #[test]
    fn tied_embeddings_quantize_token_embd_as_output() {
        let mut a = p("tiny").clone();
        a.tied_embeddings = true;
        assert_eq!(
            tensor_type_for(QuantPreset::Q4_K_M, TensorRole::TokenEmbd, 0, &a),
            GgmlType::Q6_K
        );
        let w = weight_bytes(&a, QuantPreset::Q4_K_M);
        assert_eq!(w.output_bytes, 0);
        // 64 000 Q6_K blocks.
        assert_eq!(w.token_embd_bytes, 13_440_000);
        assert_eq!(w.per_type[&GgmlType::Q6_K].n_tensors, 9);
        assert_eq!(w.per_type[&GgmlType::Q4_K].n_tensors, 48);
    }

    #[test]
    fn odd_rows_fall_back() {
        use GgmlType as T;
        // 29568 = 115.5 × 256 = 924 × 32.
        assert_eq!(fallback(T::Q2_K, 29568), T::Q4_0);
        assert_eq!(fallback(T::Q3_K, 29568), T::Q4_0);
        assert_eq!(fallback(T::Q4_K, 29568), T::Q5_0);
        assert_eq!(fallback(T::Q5_K, 29568), T::Q5_1);
        assert_eq!(fallback(T::Q6_K, 29568), T::Q8_0);
        assert_eq!(fallback(T::Q4_K, 29568 + 256), T::Q5_0);
        // Not even 32 divides 100: F16.
        assert_eq!(fallback(T::Q4_K, 100), T::F16);
        assert_eq!(fallback(T::Q8_0, 100), T::F16);
        assert_eq!(fallback(T::F16, 100), T::F16);
        // An output row not divisible by the preset's block goes to Q8_0 directly.
        let mut a = p("tiny").clone();
        a.n_embd = 544; // 17 × 32, not a multiple of 256
        assert_eq!(
            tensor_type_for(QuantPreset::Q4_K_M, TensorRole::Output, 0, &a),
            T::Q8_0
        );
        assert_eq!(
            tensor_type_for(QuantPreset::Q4_0, TensorRole::Output, 0, &a),
            T::Q8_0 // Q6_K chosen, then the Q6_K → Q8_0 fallback
        );
        assert_eq!(
            tensor_type_for(QuantPreset::Q4_K_M, TensorRole::TokenEmbd, 0, &a),
            T::Q5_0
        );
    }

    #[test]
    fn qwen_72b_ffn_down_falls_back() {
        // ffn_down rows are n_ff = 29568 long, not a multiple of 256. Q4_K_M: use_more_bits
        // layers choose Q6_K → Q8_0, the others Q4_K → Q5_0 (tensor_type_fallback). gate/up
        // rows are n_embd = 8192 long and keep Q4_K. attn_v gets the 70B bump (Q4_K → Q5_K).
        use GgmlType as T;
        use TensorRole as R;
        let a = p("qwen2.5-72b");
        let t = |q, r, i| tensor_type_for(q, r, i, a);
        assert!(!use_more_bits(10, 80) && use_more_bits(0, 80));
        assert_eq!(t(QuantPreset::Q4_K_M, R::FfnDown, 10), T::Q5_0);
        assert_eq!(t(QuantPreset::Q4_K_M, R::FfnDown, 0), T::Q8_0);
        assert_eq!(t(QuantPreset::Q4_K_M, R::FfnGate, 10), T::Q4_K);
        assert_eq!(t(QuantPreset::Q4_K_M, R::AttnV, 10), T::Q5_K);
        assert_eq!(t(QuantPreset::Q2_K, R::FfnDown, 10), T::Q4_0); // Q3_K → Q4_0
        assert_eq!(t(QuantPreset::Q5_K_S, R::FfnDown, 10), T::Q5_1);
        assert_eq!(t(QuantPreset::Q8_0, R::FfnDown, 10), T::Q8_0);
        // Biases stay F32.
        assert_eq!(t(QuantPreset::Q4_K_M, R::QBias, 10), T::F32);
        // So the file is larger than Q4_K_M's 4.9 bpw suggests: > 5 bpw here.
        let w = weight_bytes(a, QuantPreset::Q4_K_M);
        let bpw = w.total_bytes as f64 * 8.0 / a.n_params() as f64;
        assert!(bpw > 5.0, "{bpw}");
        let tally = w.per_type[&T::Q5_0];
        assert_eq!(tally.n_tensors, 80 - 40); // 40 of 80 layers are use_more_bits
    }

    /// (preset, quantize.cpp's `QUANT_OPTIONS` size for Llama-3-8B in GiB). Llama-3-8B has the
    /// shapes of Llama 3.1 8B; the strings count the whole file, metadata (mostly the 128k-token
    /// vocabulary, a few MiB) included, and are rounded to 0.01 GiB.
    const LLAMA3_8B_SIZES: [(QuantPreset, f64); 14] = [
        (QuantPreset::Q8_0, 7.96),
        (QuantPreset::Q6_K, 6.14),
        (QuantPreset::Q5_K_M, 5.33),
        (QuantPreset::Q5_K_S, 5.21),
        (QuantPreset::Q5_1, 5.65),
        (QuantPreset::Q5_0, 5.21),
        (QuantPreset::Q4_K_M, 4.58),
        (QuantPreset::Q4_K_S, 4.37),
        (QuantPreset::Q4_1, 4.78),
        (QuantPreset::Q4_0, 4.34),
        (QuantPreset::Q3_K_L, 4.03),
        (QuantPreset::Q3_K_M, 3.74),
        (QuantPreset::Q3_K_S, 3.41),
        (QuantPreset::Q2_K, 2.96),
    ];

    #[test]
    fn llama_8b_sizes_match_quantize_cpp() {
        let a = p("llama-3.1-8b");
        println!("| preset | predicted GiB | quantize.cpp GiB | diff % |");
        let mut off = Vec::new();
        for (q, table_gib) in LLAMA3_8B_SIZES {
            let got = gib(weight_bytes(a, q).total_bytes);
            let diff_pct = (got - table_gib) / table_gib * 100.0;
            println!("| {q} | {got:.3} | {table_gib:.2} | {diff_pct:+.2} |");
            if diff_pct.abs() > 0.5 {
                off.push(format!("{q}: {got:.3} GiB vs {table_gib} GiB"));
            }
        }
        assert!(off.is_empty(), "{off:?}");
    }

    #[test]
    fn llama_8b_float_presets_are_exact() {
        // quantize.cpp's F16/BF16 "14.00G" and F32 "26.00G" are for a 7B model, so check the
        // float presets by hand instead: 8 030 261 248 params, of which 65 × 4096 = 266 240
        // are norm weights (F32 whatever the preset).
        let a = p("llama-3.1-8b");
        let norms = 65 * 4096;
        let matrices = a.n_params() - norms;
        for (q, bytes_per_weight) in [
            (QuantPreset::F32, 4),
            (QuantPreset::F16, 2),
            (QuantPreset::BF16, 2),
        ] {
            let got = weight_bytes(a, q).total_bytes;
            println!("| {q} | {:.3} | — | — |", gib(got));
            assert_eq!(got, matrices * bytes_per_weight + norms * 4, "{q}");
        }
        // F16: 8 029 995 008 × 2 + 266 240 × 4 = 16 061 054 976 B = 14.958 GiB.
        assert_eq!(
            weight_bytes(a, QuantPreset::F16).total_bytes,
            16_061_054_976
        );
    }

    #[test]
    fn llama_8b_q4_k_m_tensor_counts() {
        // The llama-cpp-python#1693 load log: f32 66, q4_K 193, q6_K 33. Llama 3.1's file
        // carries rope_freqs.weight (f32, llama3 rope scaling), which ArchSpec does not model:
        // 65 + 1 = 66. q6_K: 16 use_more_bits layers × (attn_v, ffn_down) + output = 33.
        // q4_K: 32 × 7 − 32 + token_embd = 193.
        let w = weight_bytes(p("llama-3.1-8b"), QuantPreset::Q4_K_M);
        let count = |t| w.per_type[&t].n_tensors;
        assert_eq!(count(GgmlType::F32) + 1, 66);
        assert_eq!(count(GgmlType::Q4_K), 193);
        assert_eq!(count(GgmlType::Q6_K), 33);
        assert_eq!(w.per_type.len(), 3);
        let sum: u64 = w.per_type.values().map(|t| t.bytes).sum();
        assert_eq!(sum, w.total_bytes);
    }

    // ----- compute buffer, estimate, fit -----

    #[test]
    fn compute_buffer_estimate() {
        // Measured: llama.cpp reported these CPU compute + output buffers (MiB) for the tiny
        // preset (vocab 32000, embd 512, 8 heads, kv_dim 256) and the small one (embd 1024,
        // 16 heads), without flash attention.
        let mib = |b: u64| b as f64 / MIB as f64;
        let cases = [
            ("tiny", 513, 512, 71.02 + 0.12),
            ("tiny", 4097, 512, 83.52 + 0.12),
            ("tiny", 258, 256, 35.26 + 0.12),
            ("tiny", 65, 512, 8.89 + 0.12),
            ("tiny", 3841, 256, 39.51 + 0.12),
            ("small", 513, 512, 77.02 + 0.12),
            ("small", 4097, 512, 157.52 + 0.12),
            ("small", 3841, 256, 74.51 + 0.12),
        ];
        for (preset, n_ctx, ub, measured) in cases {
            let got = mib(compute_buffer_bytes(p(preset), n_ctx, ub, false));
            assert!(
                (got - measured).abs() < 0.05,
                "{preset} n_ctx {n_ctx} ub {ub}: {got} vs {measured}"
            );
        }
        // With flash attention the estimate stays at or above what was measured, by ≤ 5 %.
        for (preset, n_ctx, measured) in [
            ("tiny", 258, 34.13),
            ("tiny", 3841, 36.38),
            ("small", 258, 36.63),
            ("small", 3841, 39.38),
        ] {
            let got = mib(compute_buffer_bytes(p(preset), n_ctx, 256, true));
            assert!(
                got >= measured && got <= measured * 1.05,
                "{preset} {n_ctx}: {got} vs {measured}"
            );
        }
        // Llama 3.1 8B, n_ctx 8192, ubatch 512: the scores (512 MiB) outweigh the logits
        // (128 256 × 512 × 4 = 250.5 MiB) without flash attention; with it, the logits count.
        let a = p("llama-3.1-8b");
        let acts = 6 * 512 * 4096 * 4 + 2 * 512 * 1024 * 4;
        assert_eq!(
            compute_buffer_bytes(a, 8192, 512, false),
            512 * MIB + 8192 * 512 * 4 + acts + 128_256 * 4
        );
        assert_eq!(
            compute_buffer_bytes(a, 8192, 512, true),
            262_668_288 + 8192 * 512 * 2 + acts + 128_256 * 4
        );
        // A ubatch larger than the context is capped at the context (not the padded one):
        // n_ctx 100 → 100 tokens over 256 cells.
        assert_eq!(
            compute_buffer_bytes(a, 100, 512, true),
            128_256 * 100 * 4
                + 256 * 100 * 2
                + 6 * 100 * 4096 * 4
                + 2 * 100 * 1024 * 4
                + 128_256 * 4
        );
    }

    #[test]
    fn estimate_sums_the_parts() {
        let a = p("llama-3.1-8b");
        let params = FitParams::new(8192);
        let e = estimate(a, QuantPreset::Q4_K_M, &params).unwrap();
        assert_eq!(
            e.weights_bytes,
            weight_bytes(a, QuantPreset::Q4_K_M).total_bytes
        );
        assert_eq!(e.kv_bytes, GIB_BYTES);
        assert_eq!(e.compute_bytes, compute_buffer_bytes(a, 8192, 512, true));
        assert_eq!(
            e.total_bytes,
            e.weights_bytes + e.kv_bytes + e.compute_bytes
        );

        let bad = FitParams {
            type_v: CacheType::Q4_0,
            flash_attn: false,
            ..params
        };
        let err = estimate(a, QuantPreset::Q4_K_M, &bad).unwrap_err();
        assert!(matches!(
            err,
            FitError::Kv(KvError::QuantizedVWithoutFlashAttn { .. })
        ));
        assert_eq!(err.to_string(), "llama.cpp would not create this kv cache");
        let zero = FitParams {
            n_ubatch: 0,
            ..params
        };
        assert_eq!(
            estimate(a, QuantPreset::Q4_K_M, &zero),
            Err(FitError::ZeroUbatch)
        );
        let mut broken = a.clone();
        broken.n_head_kv = 0;
        assert!(matches!(
            estimate(&broken, QuantPreset::Q4_K_M, &params),
            Err(FitError::Arch(_))
        ));
    }

    #[test]
    fn from_engine_takes_the_cache_settings() {
        let engine = EngineParams {
            n_threads: 4,
            n_batch: 2048,
            n_ubatch: 256,
            n_gpu_layers: 99,
            flash_attn: true,
            type_k: CacheType::Q8_0,
            type_v: CacheType::Q4_0,
            use_mmap: true,
        };
        assert_eq!(
            FitParams::from_engine(4096, &engine),
            FitParams {
                n_ctx: 4096,
                n_ubatch: 256,
                type_k: CacheType::Q8_0,
                type_v: CacheType::Q4_0,
                flash_attn: true,
            }
        );
    }

    #[test]
    fn gpu_layers_that_fit_tiny() {
        // tiny at Q8_0, n_ctx 1024, f16 cache, flash attention, ubatch 512:
        //   block weights: 3 145 728 × 34/32 = 3 342 336 + norms 1024 × 4 = 3 346 432
        //   block KV: 1024 cells × 256 kv_dim × (2 + 2) = 1 048 576
        //   per block 4 395 008
        //   output layer: output 16 384 000 × 34/32 = 17 408 000 + output_norm 2 048
        //     = 17 410 048
        //   compute: logits 32 000 × 512 × 4 = 65 536 000 + f16 mask 1024 × 512 × 2 = 1 048 576
        //     + activations 6 × 512 × 512 × 4 + 2 × 512 × 256 × 4 = 7 340 032
        //     + output 32 000 × 4 = 128 000 → 74 052 608
        //   base (output layer + compute) = 91 462 656
        let a = p("tiny");
        let params = FitParams {
            n_ctx: 1024,
            n_ubatch: 512,
            type_k: CacheType::F16,
            type_v: CacheType::F16,
            flash_attn: true,
        };
        let per_block = 3_346_432 + 1_048_576;
        assert_eq!(per_block, 4_395_008);
        let base = 17_410_048 + 74_052_608;
        assert_eq!(base, 91_462_656);
        let fit = |device| gpu_layers_that_fit(a, QuantPreset::Q8_0, &params, device).unwrap();

        // Room for 3.5 blocks: output + 3 blocks, -ngl 4.
        assert_eq!(
            fit(base + 3 * per_block + per_block / 2),
            FitVerdict::Partial { n_gpu_layers: 4 }
        );
        // Exactly the output layer and compute: -ngl 1.
        assert_eq!(fit(base), FitVerdict::Partial { n_gpu_layers: 1 });
        // One byte short of the output layer and compute.
        assert_eq!(fit(base - 1), FitVerdict::No);
        assert_eq!(fit(0), FitVerdict::No);
        // All 8 blocks: full offload; one byte less: 7 blocks, -ngl 8.
        assert_eq!(fit(base + 8 * per_block), FitVerdict::Full);
        assert_eq!(
            fit(base + 8 * per_block - 1),
            FitVerdict::Partial { n_gpu_layers: 8 }
        );
        assert_eq!(FitVerdict::Full.n_gpu_layers(a), 9);
        assert_eq!(FitVerdict::No.n_gpu_layers(a), 0);
        // token_embd is not on the device: a device of total − token_embd suffices.
        let w = weight_bytes(a, QuantPreset::Q8_0);
        let e = estimate(a, QuantPreset::Q8_0, &params).unwrap();
        assert_eq!(fit(e.total_bytes - w.token_embd_bytes), FitVerdict::Full);
    }

    #[test]
    fn gpu_layers_that_fit_llama_8b() {
        // Llama 3.1 8B Q4_K_M, n_ctx 8192, f16 cache, flash attention, ubatch 512.
        //   output layer: output Q6_K 525 336 576 elems = 2 052 096 blocks × 210 = 430 940 160
        //                 + output_norm 16 384 = 430 956 544
        //   compute: logits 128 256 × 512 × 4 = 262 668 288 + f16 mask 8192 × 512 × 2 = 8 388 608
        //     + activations 6 × 512 × 4096 × 4 + 2 × 512 × 1024 × 4 = 54 525 952
        //     + output 128 256 × 4 = 513 024 → 326 095 872
        //   base = 757 052 416
        //   block elems: q, o 16 777 216; k, v 4 194 304; gate, up, down 58 720 256
        //     all Q4_K (144/256): 218 103 808 × 0.5625 = 122 683 392 + norms 32 768
        //       = 122 716 160
        //     use_more_bits (attn_v, ffn_down Q6_K, +0.2578125 B/elem on 62 914 560 elems):
        //       + 16 220 160 = 138 936 320
        //   block KV: 8192 × 1024 × (2 + 2) = 33 554 432
        //   → 156 270 592 per plain block, 172 490 752 per use_more_bits block.
        // 4 GiB = 4 294 967 296 leaves 3 537 914 880 after the base. Filling from layer 31 down,
        // layers 31..=11 (21 blocks: 10 use_more_bits — 31, 30, 29, 28, 27, 24, 21, 18, 15, 12 —
        // and 11 plain) take 10 × 172 490 752 + 11 × 156 270 592 = 3 443 884 032; layer 10
        // (plain, 156 270 592) does not fit. 21 blocks + output = -ngl 22.
        // Everything: base + 16 × 172 490 752 + 16 × 156 270 592 = 6 017 233 920.
        let a = p("llama-3.1-8b");
        let params = FitParams::new(8192);
        let fit = |device| gpu_layers_that_fit(a, QuantPreset::Q4_K_M, &params, device).unwrap();
        assert_eq!(fit(4 * GIB_BYTES), FitVerdict::Partial { n_gpu_layers: 22 });
        assert_eq!(fit(6_017_233_920), FitVerdict::Full);
        assert_eq!(
            fit(6_017_233_920 - 1),
            FitVerdict::Partial { n_gpu_layers: 32 }
        );
        assert_eq!(fit(8 * GIB_BYTES), FitVerdict::Full);
        assert_eq!(fit(757_052_416 - 1), FitVerdict::No);
        // The full-offload figure is the estimate minus the token embeddings (Q4_K:
        // 525 336 576 × 0.5625 = 295 501 824), which stay in host memory.
        let e = estimate(a, QuantPreset::Q4_K_M, &params).unwrap();
        assert_eq!(e.total_bytes - 295_501_824, 6_017_233_920);
    }

    #[test]
    fn units() {
        assert_eq!(gib(3 * GIB_BYTES / 2), 1.5);
        assert_eq!(gb(1_500_000_000), 1.5);
        assert!((gb(GIB_BYTES) - 1.073_741_824).abs() < 1e-12);
    }

    #[test]
    fn tensor_names() {
        assert_eq!(TensorRole::AttnV.gguf_name(3), "blk.3.attn_v.weight");
        assert_eq!(TensorRole::QBias.gguf_name(0), "blk.0.attn_q.bias");
        assert_eq!(TensorRole::Output.gguf_name(7), "output.weight");
        assert!(TensorRole::PER_LAYER.iter().all(|r| r.is_per_layer()));
        assert!(TensorRole::GLOBAL.iter().all(|r| !r.is_per_layer()));
        // Per-layer elements agree with ArchSpec's parameter count.
        for a in [p("tiny"), p("qwen2.5-7b")] {
            let per_layer: u64 = TensorRole::PER_LAYER
                .iter()
                .filter(|r| r.is_present(a))
                .map(|r| r.n_elements(a))
                .sum();
            assert_eq!(per_layer, a.n_params_per_layer(), "{}", a.name);
        }
    }
}
