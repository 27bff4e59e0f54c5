//! Architecture specs: the shapes of a decoder-only transformer (Llama / Qwen2 family) and the
//! figures derived from them (exact parameter count, f16 KV-cache bytes per token).
//!
//! The presets mirror `shared/reference/model-architectures.md`; `tiny` and `small` are
//! synthetic shapes for fast benchmarks whose matrix rows are all multiples of 256, so every
//! K-quant applies to them without fallbacks.

use std::sync::LazyLock;

use serde::{Deserialize, Serialize};

/// The shapes of a decoder-only transformer as llama.cpp sees them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArchSpec {
    /// Preset id, e.g. `llama-3.1-8b`.
    pub name: String,
    /// Human-readable name, e.g. `Llama 3.1 8B`.
    pub display_name: String,
    /// GGUF `general.architecture`: `llama` or `qwen2`.
    pub architecture: String,
    pub n_layer: u32,
    /// Hidden size.
    pub n_embd: u32,
    pub n_head: u32,
    pub n_head_kv: u32,
    pub head_dim: u32,
    /// FFN intermediate size.
    pub n_ff: u32,
    pub n_vocab: u32,
    pub n_ctx_train: u32,
    pub rope_freq_base: f32,
    pub rms_norm_eps: f32,
    /// True if and only if the output projection reuses the token embedding matrix.
    pub tied_embeddings: bool,
    /// True if and only if q/k/v projections carry biases (Qwen2).
    pub qkv_bias: bool,
    /// Sliding-window attention size of the original model; informational only (llama.cpp's
    /// `llama` architecture allocates the full context anyway).
    #[serde(default)]
    pub sliding_window: Option<u32>,
}

/// Why an [`ArchSpec`] cannot describe a loadable model.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArchError {
    #[error("architecture '{0}' is not supported (expected 'llama' or 'qwen2')")]
    UnsupportedArchitecture(String),
    #[error("{field} must be greater than zero")]
    Zero { field: &'static str },
    #[error("n_head ({n_head}) is not a multiple of n_head_kv ({n_head_kv})")]
    HeadsNotGrouped { n_head: u32, n_head_kv: u32 },
    #[error("qwen2 needs n_head * head_dim ({q_dim}) to equal n_embd ({n_embd})")]
    QwenQueryWidth { q_dim: u64, n_embd: u32 },
    #[error("head_dim ({0}) must be even for rope")]
    OddHeadDim(u32),
}

impl ArchSpec {
    /// Every built-in preset, in a stable order.
    pub fn presets() -> &'static [ArchSpec] {
        &PRESETS
    }

    /// The preset named `name` (e.g. `llama-3.1-8b`), if any.
    pub fn preset(name: &str) -> Option<&'static ArchSpec> {
        PRESETS.iter().find(|p| p.name == name)
    }

    /// Checks the invariants llama.cpp relies on when it loads a model of this shape, and
    /// that tokbench can synthesize it.
    pub fn validate(&self) -> Result<(), ArchError> {
        if self.architecture != "llama" && self.architecture != "qwen2" {
            return Err(ArchError::UnsupportedArchitecture(
                self.architecture.clone(),
            ));
        }
        if self.n_ctx_train == 0 {
            return Err(ArchError::Zero {
                field: "n_ctx_train",
            });
        }
        self.validate_shape()
    }

    /// The part of [`ArchSpec::validate`] memory arithmetic needs: every dimension present
    /// and the heads grouped evenly. Holds for a shape read from any GGUF file or typed in.
    pub fn validate_shape(&self) -> Result<(), ArchError> {
        let fields = [
            ("n_layer", self.n_layer),
            ("n_embd", self.n_embd),
            ("n_head", self.n_head),
            ("n_head_kv", self.n_head_kv),
            ("head_dim", self.head_dim),
            ("n_ff", self.n_ff),
            ("n_vocab", self.n_vocab),
        ];
        for (field, value) in fields {
            if value == 0 {
                return Err(ArchError::Zero { field });
            }
        }
        if (self.n_head / self.n_head_kv) * self.n_head_kv != self.n_head {
            return Err(ArchError::HeadsNotGrouped {
                n_head: self.n_head,
                n_head_kv: self.n_head_kv,
            });
        }
        if self.head_dim & 1 == 1 {
            return Err(ArchError::OddHeadDim(self.head_dim));
        }
        if self.architecture == "qwen2" && self.q_dim() != u64::from(self.n_embd) {
            return Err(ArchError::QwenQueryWidth {
                q_dim: self.q_dim(),
                n_embd: self.n_embd,
            });
        }
        Ok(())
    }

    /// Width of the query projection output: `n_head * head_dim`.
    pub fn q_dim(&self) -> u64 {
        u64::from(self.n_head) * u64::from(self.head_dim)
    }

    /// Width of the key (and value) projection output: `n_head_kv * head_dim`.
    pub fn kv_dim(&self) -> u64 {
        u64::from(self.n_head_kv) * u64::from(self.head_dim)
    }

    /// Parameters of one transformer block: q/k/v/o, gate/up/down, two RMSNorm vectors and,
    /// for Qwen2, the q/k/v biases.
    pub fn n_params_per_layer(&self) -> u64 {
        let embd = u64::from(self.n_embd);
        let ff = u64::from(self.n_ff);
        let attn = embd * self.q_dim() + 2 * embd * self.kv_dim() + self.q_dim() * embd;
        let ffn = 3 * embd * ff;
        let norms = 2 * embd;
        let biases = if self.qkv_bias {
            self.q_dim() + 2 * self.kv_dim()
        } else {
            0
        };
        attn + ffn + norms + biases
    }

    /// Parameters of the token embedding plus, when untied, the output projection.
    pub fn n_params_embeddings(&self) -> u64 {
        let one = u64::from(self.n_vocab) * u64::from(self.n_embd);
        if self.tied_embeddings {
            one
        } else {
            2 * one
        }
    }

    /// Exact parameter count: embeddings (+ untied output) + all blocks + final norm.
    pub fn n_params(&self) -> u64 {
        self.n_params_embeddings() + self.n_params_without_embeddings()
    }

    /// [`ArchSpec::n_params`] minus the token embedding and untied output matrices.
    pub fn n_params_without_embeddings(&self) -> u64 {
        u64::from(self.n_layer) * self.n_params_per_layer() + u64::from(self.n_embd)
    }

    /// K plus V cache elements per token over all layers: `n_layer * n_head_kv * head_dim * 2`.
    pub fn kv_elements_per_token(&self) -> u64 {
        u64::from(self.n_layer) * self.kv_dim() * 2
    }

    /// f16 KV-cache bytes per token: `n_layer * n_head_kv * head_dim * 2 (K, V) * 2 bytes`.
    pub fn kv_bytes_per_token_f16(&self) -> u64 {
        self.kv_elements_per_token() * 2
    }
}

#[expect(
    clippy::too_many_arguments,
    reason = "a private table constructor; the call sites read as rows of a table"
)]
fn spec(
    name: &str,
    display_name: &str,
    architecture: &str,
    [n_layer, n_embd, n_head, n_head_kv, head_dim, n_ff, n_vocab, n_ctx_train]: [u32; 8],
    rope_freq_base: f32,
    rms_norm_eps: f32,
    qkv_bias: bool,
    sliding_window: Option<u32>,
) -> ArchSpec {
    ArchSpec {
        name: name.to_owned(),
        display_name: display_name.to_owned(),
        architecture: architecture.to_owned(),
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
        tied_embeddings: false,
        qkv_bias,
        sliding_window,
    }
}

// Shape arrays: [n_layer, n_embd, n_head, n_head_kv, head_dim, n_ff, n_vocab, n_ctx_train].
#[rustfmt::skip]
static PRESETS: LazyLock<Vec<ArchSpec>> = LazyLock::new(|| {
    vec![
        spec("tiny", "Tiny (synthetic, ~58M)", "llama",
            [8, 512, 8, 4, 64, 1536, 32000, 4096], 10_000.0, 1e-5, false, None),
        spec("tiny-qwen2", "Tiny Qwen2 (synthetic, ~58M)", "qwen2",
            [8, 512, 8, 4, 64, 1536, 32000, 4096], 1_000_000.0, 1e-6, true, None),
        spec("small", "Small (synthetic, ~246M)", "llama",
            [16, 1024, 16, 4, 64, 2816, 32000, 8192], 10_000.0, 1e-5, false, None),
        spec("llama-3.1-8b", "Llama 3.1 8B", "llama",
            [32, 4096, 32, 8, 128, 14336, 128_256, 131_072], 500_000.0, 1e-5, false, None),
        spec("llama-3.1-70b", "Llama 3.1 70B", "llama",
            [80, 8192, 64, 8, 128, 28672, 128_256, 131_072], 500_000.0, 1e-5, false, None),
        spec("llama-3.1-405b", "Llama 3.1 405B", "llama",
            [126, 16384, 128, 8, 128, 53248, 128_256, 131_072], 500_000.0, 1e-5, false, None),
        spec("qwen2.5-7b", "Qwen2.5 7B", "qwen2",
            [28, 3584, 28, 4, 128, 18944, 152_064, 32768], 1_000_000.0, 1e-6, true, None),
        spec("qwen2.5-32b", "Qwen2.5 32B", "qwen2",
            [64, 5120, 40, 8, 128, 27648, 152_064, 32768], 1_000_000.0, 1e-6, true, None),
        spec("qwen2.5-72b", "Qwen2.5 72B", "qwen2",
            [80, 8192, 64, 8, 128, 29568, 152_064, 32768], 1_000_000.0, 1e-6, true, None),
        spec("mistral-7b", "Mistral 7B v0.1", "llama",
            [32, 4096, 32, 8, 128, 14336, 32000, 32768], 10_000.0, 1e-5, false, Some(4096)),
    ]
});

#[cfg(test)]
mod tests {
    use super::*;

    fn p(name: &str) -> &'static ArchSpec {
        ArchSpec::preset(name).unwrap()
    }

    #[test]
    fn llama_param_counts_match_known_values() {
        assert_eq!(p("llama-3.1-8b").n_params(), 8_030_261_248);
        assert_eq!(p("llama-3.1-70b").n_params(), 70_553_706_496);
    }

    #[test]
    fn param_counts_match_reference_table_to_three_decimals() {
        // Billions, rounded to 3 decimals, from model-architectures.md.
        let table = [
            ("llama-3.1-405b", 405.853),
            ("qwen2.5-7b", 7.616),
            ("qwen2.5-32b", 32.764),
            ("qwen2.5-72b", 72.706),
            ("mistral-7b", 7.242),
        ];
        for (name, billions) in table {
            let got = p(name).n_params() as f64 / 1e9;
            assert!(
                (got - billions).abs() < 0.0005,
                "{name}: {got} vs {billions}"
            );
        }
    }

    #[test]
    fn qwen_biases_are_counted() {
        let q = p("qwen2.5-7b");
        let mut no_bias = q.clone();
        no_bias.qkv_bias = false;
        let per_layer = q.q_dim() + 2 * q.kv_dim();
        assert_eq!(q.n_params() - no_bias.n_params(), 28 * per_layer);
    }

    #[test]
    fn synthetic_presets_have_expected_sizes() {
        let tiny = p("tiny");
        assert_eq!(tiny.n_params(), 57_942_528);
        let small = p("small");
        assert!((small.n_params() as f64 / 1e6 - 246.0).abs() < 1.0);
        // Every matrix row (n_embd, n_ff, q_dim) is a multiple of 256 so K-quants apply.
        for s in [tiny, small] {
            for row in [u64::from(s.n_embd), u64::from(s.n_ff), s.q_dim()] {
                assert_eq!(row % 256, 0, "{}", s.name);
            }
        }
    }

    #[test]
    fn kv_bytes_per_token_match_reference_table() {
        let table = [
            ("llama-3.1-8b", 131_072),
            ("llama-3.1-70b", 327_680),
            ("llama-3.1-405b", 516_096),
            ("qwen2.5-7b", 57_344),
            ("qwen2.5-32b", 262_144),
            ("qwen2.5-72b", 327_680),
            ("mistral-7b", 131_072),
        ];
        for (name, bytes) in table {
            assert_eq!(p(name).kv_bytes_per_token_f16(), bytes, "{name}");
        }
    }

    #[test]
    fn presets_are_valid_and_unique() {
        let presets = ArchSpec::presets();
        assert_eq!(presets.len(), 10);
        for (i, s) in presets.iter().enumerate() {
            s.validate().unwrap();
            assert_eq!(u64::from(s.n_embd), s.q_dim(), "{}", s.name);
            assert!(presets[i + 1..].iter().all(|o| o.name != s.name));
        }
        assert!(ArchSpec::preset("nope").is_none());
    }

    #[test]
    fn validate_rejects_bad_shapes() {
        let mut s = p("tiny").clone();
        s.n_head_kv = 3;
        assert!(matches!(
            s.validate(),
            Err(ArchError::HeadsNotGrouped { .. })
        ));
        let mut s = p("tiny").clone();
        s.n_ff = 0;
        assert_eq!(s.validate(), Err(ArchError::Zero { field: "n_ff" }));
        let mut s = p("qwen2.5-7b").clone();
        s.head_dim = 64;
        assert!(matches!(
            s.validate(),
            Err(ArchError::QwenQueryWidth { .. })
        ));
        let mut s = p("tiny").clone();
        s.architecture = "gpt2".into();
        assert!(s.validate().unwrap_err().to_string().contains("gpt2"));
    }

    #[test]
    fn serde_round_trip() {
        let s = p("mistral-7b");
        let json = serde_json::to_string(s).unwrap();
        let back: ArchSpec = serde_json::from_str(&json).unwrap();
        assert_eq!(&back, s);
    }
}
