//! Writes the small GGUF files that seed the `gguf` fuzz target (`fuzz/seeds/gguf/`):
//! `cargo run -p tokbench-gguf --example fuzz_seeds -- <dir>`. Two synthesized models
//! (llama with tied embeddings, qwen2 with q/k/v biases) at the smallest shapes the
//! synthesizer accepts, and a hand-built file with every value type, quantized tensors and
//! per-layer arrays. Each is a few tens of KB at most.

use std::path::PathBuf;
use std::process::ExitCode;

use tokbench_core::arch::ArchSpec;
use tokbench_gguf::synth::{self, SynthSpec, MIN_VOCAB};
use tokbench_gguf::{GgmlType, GgufError, GgufWriter, Value, ValueType};

fn tiny(architecture: &str) -> ArchSpec {
    ArchSpec {
        name: format!("fuzz-{architecture}"),
        display_name: format!("fuzz seed {architecture}"),
        architecture: architecture.into(),
        n_layer: 1,
        n_embd: 32,
        n_head: 2,
        n_head_kv: 1,
        head_dim: 16,
        n_ff: 64,
        n_vocab: MIN_VOCAB,
        n_ctx_train: 128,
        rope_freq_base: 10_000.0,
        rms_norm_eps: 1e-5,
        tied_embeddings: architecture == "llama",
        qkv_bias: architecture == "qwen2",
        sliding_window: None,
    }
}

/// Every value type, a nested array, a per-layer array, a non-default alignment and
/// quantized tensors (data all zero).
fn hand_built() -> Result<Vec<u8>, GgufError> {
    let mut w = GgufWriter::new();
    let meta = [
        ("general.architecture", Value::String("llama".into())),
        ("general.name", Value::String("fuzz".into())),
        ("general.alignment", Value::U32(64)),
        ("general.file_type", Value::U32(15)),
        ("llama.block_count", Value::U32(2)),
        ("llama.embedding_length", Value::U64(256)),
        ("llama.attention.head_count", Value::U16(4)),
        ("llama.attention.head_count_kv", Value::U8(2)),
        ("llama.context_length", Value::I32(4096)),
        (
            "llama.feed_forward_length",
            Value::Array(ValueType::U32, vec![Value::U32(512), Value::U32(768)]),
        ),
        (
            "tokenizer.ggml.tokens",
            Value::string_array(["<s>", "a", "b"]),
        ),
        ("tokenizer.ggml.scores", Value::f32_array([0.0, -1.0, -2.5])),
        ("tokenizer.ggml.token_type", Value::i32_array([3, 1, 1])),
        ("t.i8", Value::I8(-1)),
        ("t.i16", Value::I16(-2)),
        ("t.i64", Value::I64(-3)),
        ("t.f64", Value::F64(0.125)),
        ("t.bool", Value::Bool(true)),
        (
            "t.nested",
            Value::Array(
                ValueType::Array,
                vec![Value::Array(ValueType::U8, vec![Value::U8(7)])],
            ),
        ),
    ];
    for (k, v) in meta {
        w.add_metadata(k, v)?;
    }
    w.add_tensor("token_embd.weight", &[256, 3], GgmlType::Q4_K)?;
    w.add_tensor("output.weight", &[256, 3], GgmlType::Q8_0)?;
    w.add_tensor("output_norm.weight", &[256], GgmlType::F32)?;
    w.add_tensor("blk.0.attn_q.weight", &[256, 1, 1, 1], GgmlType::F16)?;
    let mut data = w.begin(Vec::new())?;
    while let Some(n) = data.current_tensor().map(|t| t.n_bytes()) {
        data.write_data(&vec![0u8; n as usize])?;
    }
    data.finish()
}

fn run(dir: PathBuf) -> Result<(), String> {
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for arch in ["llama", "qwen2"] {
        let spec = SynthSpec {
            arch: tiny(arch),
            seed: 7,
        };
        let path = dir.join(format!("synth-{arch}.gguf"));
        let report = synth::write_f16(&spec, &path).map_err(|e| e.to_string())?;
        println!("{} {} bytes", path.display(), report.file_size_bytes);
    }
    let path = dir.join("hand-built.gguf");
    let bytes = hand_built().map_err(|e| e.to_string())?;
    std::fs::write(&path, &bytes).map_err(|e| format!("{}: {e}", path.display()))?;
    println!("{} {} bytes", path.display(), bytes.len());
    Ok(())
}

fn main() -> ExitCode {
    let Some(dir) = std::env::args().nth(1) else {
        eprintln!("usage: fuzz_seeds <dir>");
        return ExitCode::from(2);
    };
    match run(PathBuf::from(dir)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
