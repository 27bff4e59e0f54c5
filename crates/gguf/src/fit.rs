//! A GGUF file in the memory calculator's terms: its shape as an [`ArchSpec`] and its
//! exact weights per layer and per tensor type, from the tensor table.

use std::collections::BTreeMap;

use tokbench_core::arch::ArchSpec;
use tokbench_core::fit::{TypeTally, WeightBreakdown};

use crate::{GgufFile, ModelInfo};

/// The shape of a GGUF model as an [`ArchSpec`] (for the KV cache and compute buffer).
pub fn arch_spec(info: &ModelInfo) -> ArchSpec {
    ArchSpec {
        name: info.name.clone().unwrap_or_else(|| "gguf".into()),
        display_name: info.name.clone().unwrap_or_else(|| "gguf".into()),
        // The KV and compute math is that of the llama family; qwen2 is kept as itself.
        architecture: if info.architecture == "qwen2" {
            "qwen2"
        } else {
            "llama"
        }
        .into(),
        n_layer: info.block_count,
        n_embd: info.embedding_length,
        n_head: info.head_count,
        n_head_kv: info.head_count_kv,
        head_dim: info.head_dim,
        n_ff: info.feed_forward_length,
        n_vocab: info.vocab_size,
        n_ctx_train: info.context_length,
        rope_freq_base: 10_000.0,
        rms_norm_eps: 1e-5,
        tied_embeddings: info.tied_embeddings(),
        qkv_bias: info.architecture == "qwen2",
        sliding_window: None,
    }
}

/// The exact weights of a GGUF file, from its tensor table.
pub fn weights(file: &GgufFile, n_layer: u32) -> WeightBreakdown {
    let mut w = WeightBreakdown {
        total_bytes: 0,
        token_embd_bytes: 0,
        output_bytes: 0,
        output_norm_bytes: 0,
        layer_bytes: vec![0; n_layer as usize],
        per_type: BTreeMap::new(),
    };
    for t in &file.tensors {
        let bytes = t.n_bytes();
        w.total_bytes += bytes;
        match t.name.as_str() {
            "token_embd.weight" => w.token_embd_bytes += bytes,
            "output.weight" => w.output_bytes += bytes,
            "output_norm.weight" => w.output_norm_bytes += bytes,
            name => {
                let layer = name
                    .strip_prefix("blk.")
                    .and_then(|r| r.split('.').next())
                    .and_then(|i| i.parse::<usize>().ok());
                match layer {
                    Some(i) if i < w.layer_bytes.len() => w.layer_bytes[i] += bytes,
                    // Anything else (rope_freqs, …) stays with the output layer.
                    _ => w.output_norm_bytes += bytes,
                }
            }
        }
        let tally: &mut TypeTally = w.per_type.entry(t.ggml_type).or_default();
        tally.n_tensors += 1;
        tally.bytes += bytes;
    }
    w
}
