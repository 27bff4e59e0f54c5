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
        P::Q2_K | P::Q2_K_S => T::Q2_K,
        P::IQ4_XS => T::IQ4_XS,
        P::IQ4_NL => T::IQ4_NL,
        P::IQ3_M | P::IQ3_S | P::IQ3_XS => T::IQ3_S,
        P::IQ3_XXS => T::IQ3_XXS,
        P::IQ2_M => T::IQ2_S,
        P::IQ2_S | P::IQ2_XS => T::IQ2_XS,
        P::IQ2_XXS => T::IQ2_XXS,
        P::IQ1_M => T::IQ1_M,
        P::IQ1_S => T::IQ1_S,
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
/// tensors) when it quantizes an F16 model of shape `arch` to `preset`, as published: with
/// an importance matrix for the presets made with one
/// ([`QuantPreset::published_with_imatrix`]), without for the rest. See [`tensor_type_with`].
pub fn tensor_type_for(
    preset: QuantPreset,
    role: TensorRole,
    layer: u32,
    arch: &ArchSpec,
) -> GgmlType {
    tensor_type_with(preset, role, layer, arch, preset.published_with_imatrix())
}

/// The type llama.cpp's quantizer gives tensor `role` of block `layer` when it quantizes an
/// F16 model of shape `arch` to `preset`, with or without an importance matrix (`imatrix`;
/// only IQ3_XXS, IQ4_NL, IQ4_XS, Q4_0 and Q5_0 choose differently with one, and the
/// matrix's values never matter).
///
/// A port of `llama_tensor_get_type` and `llama_tensor_get_type_impl` (vendored llama.cpp,
/// `src/llama-quant.cpp`) for dense llama/qwen2 models (`n_expert == 0`), without overrides:
/// - 1-D tensors (norms, biases) are never quantized and stay F32;
/// - F32/F16/BF16 presets give every matrix that type;
/// - `output.weight` (and `token_embd.weight` when the embeddings are tied) becomes Q5_K for
///   the 1- and 2-bit IQ presets and IQ3_XXS, else Q6_K, except that Q8_0 stays Q8_0 and a
///   row not divisible by the preset's block size gives Q8_0;
/// - untied `token_embd.weight` keeps the preset's type, except Q2_K for IQ1_*, IQ2_XXS and
///   IQ2_XS, and IQ3_S for IQ2_S, IQ2_M and IQ3_XXS;
/// - `attn_v`, `attn_q`, `attn_k`, `ffn_down`, `ffn_gate`, `ffn_up` and `attn_output` follow
///   the per-preset rules below (the 1- and 2-bit IQ presets have a branch of their own, to
///   which the 70B `attn_v` bump does not apply);
/// - a row length not divisible by the chosen type's block size falls back: IQ types with
///   256-blocks → IQ4_NL, Q2_K/Q3_K → Q4_0, Q4_K → Q5_0, Q5_K → Q5_1, Q6_K → Q8_0, and to F16
///   if even 32 does not divide it. (Older llama.cpp sent Q2_K/Q3_K to IQ4_NL; the vendored
///   source sends them to Q4_0. Both are 18 bytes per 32 weights, so the size is the same.)
///
/// llama.cpp walks the tensors sorted by layer, so its `i_attention_wv` and `i_ffn_down`
/// counters equal the layer index here.
pub fn tensor_type_with(
    preset: QuantPreset,
    role: TensorRole,
    layer: u32,
    arch: &ArchSpec,
    imatrix: bool,
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
    // The presets llama.cpp treats together: 1- and 2-bit IQ (not IQ3_XXS).
    let low_iq = matches!(
        preset,
        P::IQ2_XXS | P::IQ2_XS | P::IQ1_S | P::IQ2_S | P::IQ2_M | P::IQ1_M
    );
    let iq2_s_or_m = matches!(preset, P::IQ2_S | P::IQ2_M);

    // With tied embeddings, llama.cpp quantizes token_embd as the output tensor it also is.
    let output_like =
        role == TensorRole::Output || (role == TensorRole::TokenEmbd && arch.tied_embeddings);
    let chosen = if output_like {
        if !is_multiple(row_len, default.block_size()) {
            T::Q8_0
        } else if low_iq || preset == P::IQ3_XXS {
            T::Q5_K
        } else if default != T::Q8_0 {
            T::Q6_K
        } else {
            default
        }
    } else if role == TensorRole::TokenEmbd {
        match preset {
            P::IQ2_XXS | P::IQ2_XS | P::IQ1_S | P::IQ1_M => T::Q2_K,
            P::IQ2_S | P::IQ2_M | P::IQ3_XXS => T::IQ3_S,
            _ => default,
        }
    } else if low_iq {
        match role {
            TensorRole::AttnV if n_gqa >= 4 => T::Q4_K,
            TensorRole::AttnV if iq2_s_or_m => T::IQ3_S,
            TensorRole::AttnV => T::Q2_K,
            TensorRole::FfnDown if layer < n_layer / 8 => {
                if iq2_s_or_m {
                    T::IQ3_S
                } else {
                    T::Q2_K
                }
            }
            TensorRole::AttnOutput => match preset {
                P::IQ1_S | P::IQ1_M => T::IQ2_XXS,
                P::IQ2_S | P::IQ2_M => T::IQ3_S,
                _ => default,
            },
            _ => default,
        }
    } else {
        match role {
            TensorRole::AttnV => {
                let t = match preset {
                    P::Q2_K if n_gqa >= 4 => T::Q4_K,
                    P::Q2_K => T::Q3_K,
                    P::Q2_K_S if n_gqa >= 4 => T::Q4_K,
                    P::IQ3_XXS if n_gqa >= 4 => T::Q4_K,
                    P::IQ3_XXS if !imatrix => T::IQ3_S,
                    P::IQ3_XXS => T::IQ3_XXS,
                    P::IQ3_XS | P::IQ3_S if n_gqa >= 4 => T::Q4_K,
                    P::IQ3_M => T::Q4_K,
                    P::Q3_K_M if layer < 2 => T::Q5_K,
                    P::Q3_K_M => T::Q4_K,
                    P::Q3_K_L => T::Q5_K,
                    P::IQ4_NL | P::IQ4_XS if n_gqa >= 4 => T::Q5_K,
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
            TensorRole::AttnK | TensorRole::AttnQ => match preset {
                P::IQ3_XS => T::IQ3_XXS,
                P::IQ3_XXS => T::IQ2_S,
                _ => default,
            },
            TensorRole::FfnDown => match preset {
                P::Q2_K => T::Q3_K,
                P::Q2_K_S if layer < n_layer / 8 => T::Q4_K,
                P::Q2_K_S => default,
                P::IQ3_XXS if !imatrix && layer < n_layer / 8 => T::Q4_K,
                P::IQ3_XXS if !imatrix => T::Q3_K,
                P::Q3_K_M if layer < n_layer / 16 => T::Q5_K,
                P::Q3_K_M => T::Q4_K,
                P::IQ3_M if layer < n_layer / 8 => T::Q4_K,
                P::Q3_K_L => T::Q5_K,
                P::Q4_K_M if use_more_bits(layer, n_layer) => T::Q6_K,
                P::Q4_K_M => default,
                P::IQ4_NL | P::IQ4_XS if layer < n_layer / 8 && !imatrix => T::Q5_K,
                P::Q5_K_M if use_more_bits(layer, n_layer) => T::Q6_K,
                P::Q4_K_S if layer < n_layer / 8 => T::Q5_K,
                P::Q4_0 if imatrix && layer < n_layer / 8 => T::Q4_1,
                P::Q5_0 if imatrix && layer < n_layer / 8 => T::Q5_1,
                _ => default,
            },
            TensorRole::AttnOutput => match preset {
                P::Q2_K => T::Q3_K,
                P::IQ3_XXS => T::IQ3_S,
                P::Q3_K_M | P::IQ3_M => T::Q4_K,
                P::Q3_K_L => T::Q5_K,
                _ => default,
            },
            TensorRole::FfnGate | TensorRole::FfnUp
                if preset == P::IQ3_XS && layer >= n_layer / 8 && layer < 7 * n_layer / 8 =>
            {
                T::IQ3_XXS
            }
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
        T::IQ1_S
        | T::IQ1_M
        | T::IQ2_XXS
        | T::IQ2_XS
        | T::IQ2_S
        | T::IQ3_XXS
        | T::IQ3_S
        | T::IQ4_XS => T::IQ4_NL,
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
    weight_bytes_with(arch, preset, preset.published_with_imatrix())
}

/// [`weight_bytes`] with or without an importance matrix (see [`tensor_type_with`]).
pub fn weight_bytes_with(arch: &ArchSpec, preset: QuantPreset, imatrix: bool) -> WeightBreakdown {
    let mut per_type: BTreeMap<GgmlType, TypeTally> = BTreeMap::new();
    let mut add = |role: TensorRole, layer: u32| -> u64 {
        if !role.is_present(arch) {
            return 0;
        }
        let t = tensor_type_with(preset, role, layer, arch, imatrix);
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
            offload: _,
            unset: _,
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
    /// The result's `placement_json` (buffers by device, and the engine's readings of each
    /// accelerator's memory), where stored.
    pub placement_json: Option<String>,
}

#[cfg(test)]
mod tests;
