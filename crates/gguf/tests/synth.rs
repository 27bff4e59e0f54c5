//! Synthetic models: layout llama.cpp expects, exact size estimate, determinism, and the model
//! summary of the result.

use std::collections::HashSet;
use std::io::{self, Write};

use half::f16;
use sha2::{Digest, Sha256};
use tokbench_core::arch::ArchSpec;
use tokbench_gguf::synth::{self, SynthSpec};
use tokbench_gguf::{parse_bytes, FileType, GgmlType, GgufFile, ModelInfo, Value};

fn mini(architecture: &str) -> ArchSpec {
    let mut a = ArchSpec::preset("tiny").unwrap().clone();
    a.name = format!("mini-{architecture}");
    a.display_name = "Mini".into();
    a.architecture = architecture.into();
    a.n_layer = 2;
    a.n_embd = 64;
    a.n_head = 4;
    a.n_head_kv = 2;
    a.head_dim = 16;
    a.n_ff = 128;
    a.n_vocab = 400;
    a.qkv_bias = architecture == "qwen2";
    a
}

fn write_mem(spec: &SynthSpec) -> Vec<u8> {
    let (bytes, summary) = synth::write_f16_to(spec, Vec::new()).unwrap();
    assert_eq!(summary.file_size_bytes, bytes.len() as u64);
    bytes
}

struct HashWriter(Sha256, u64);

impl Write for HashWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.update(buf);
        self.1 += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn hash_of(spec: &SynthSpec) -> (String, u64) {
    let (w, _) = synth::write_f16_to(spec, HashWriter(Sha256::new(), 0)).unwrap();
    (hex::encode(w.0.finalize()), w.1)
}

fn f16_values(bytes: &[u8], f: &GgufFile, name: &str) -> Vec<f32> {
    let t = f.tensor(name).unwrap();
    assert_eq!(t.ggml_type, GgmlType::F16, "{name}");
    let r = f.tensor_file_range(t);
    bytes[r.start as usize..r.end as usize]
        .chunks_exact(2)
        .map(|c| f16::from_le_bytes([c[0], c[1]]).to_f32())
        .collect()
}

fn f32_values(bytes: &[u8], f: &GgufFile, name: &str) -> Vec<f32> {
    let t = f.tensor(name).unwrap();
    assert_eq!(t.ggml_type, GgmlType::F32, "{name}");
    let r = f.tensor_file_range(t);
    bytes[r.start as usize..r.end as usize]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// The metadata llama.cpp reads with strictly typed `get_key` calls, with the type it insists on.
fn assert_llama_cpp_keys(f: &GgufFile, a: &ArchSpec) {
    let arch = a.architecture.as_str();
    let u32_keys = [
        ("general.file_type".to_string(), 1),
        (format!("{arch}.context_length"), a.n_ctx_train),
        (format!("{arch}.embedding_length"), a.n_embd),
        (format!("{arch}.block_count"), a.n_layer),
        (format!("{arch}.feed_forward_length"), a.n_ff),
        (format!("{arch}.attention.head_count"), a.n_head),
        (format!("{arch}.attention.head_count_kv"), a.n_head_kv),
        (format!("{arch}.attention.key_length"), a.head_dim),
        (format!("{arch}.attention.value_length"), a.head_dim),
        (format!("{arch}.rope.dimension_count"), a.head_dim),
        (format!("{arch}.vocab_size"), a.n_vocab),
        ("tokenizer.ggml.bos_token_id".to_string(), 1),
        ("tokenizer.ggml.eos_token_id".to_string(), 2),
        ("tokenizer.ggml.unknown_token_id".to_string(), 0),
    ];
    for (key, value) in u32_keys {
        assert_eq!(f.get(&key), Some(&Value::U32(value)), "{key}");
    }
    assert_eq!(
        f.get(&format!("{arch}.rope.freq_base")),
        Some(&Value::F32(a.rope_freq_base))
    );
    assert_eq!(
        f.get(&format!("{arch}.attention.layer_norm_rms_epsilon")),
        Some(&Value::F32(a.rms_norm_eps))
    );
    assert_eq!(f.get_str("general.architecture"), Some(arch));
    assert_eq!(f.get_str("tokenizer.ggml.model"), Some("llama"));
    assert_eq!(
        f.get("tokenizer.ggml.add_bos_token"),
        Some(&Value::Bool(true))
    );

    let n = a.n_vocab as usize;
    let tokens = f.get_array("tokenizer.ggml.tokens").unwrap();
    assert_eq!(tokens.len(), n);
    let unique: HashSet<&str> = tokens.iter().map(|t| t.as_str().unwrap()).collect();
    assert_eq!(unique.len(), n, "token strings must be unique");
    assert!(
        unique.contains("<0x0A>"),
        "llama.cpp looks up the newline byte token"
    );
    let scores = f.get_array("tokenizer.ggml.scores").unwrap();
    assert_eq!(scores.len(), n);
    assert!(scores.iter().all(|s| matches!(s, Value::F32(_))));
    let types = f.get_array("tokenizer.ggml.token_type").unwrap();
    assert_eq!(types.len(), n);
    assert!(types.iter().all(|s| matches!(s, Value::I32(_))));
}

/// Names, shapes and types as `models/llama.cpp` / `models/qwen2.cpp` `load_arch_tensors` create
/// them, and nothing else (llama.cpp rejects unused tensors).
fn assert_tensor_layout(f: &GgufFile, a: &ArchSpec) {
    let (e, v, ff) = (u64::from(a.n_embd), u64::from(a.n_vocab), u64::from(a.n_ff));
    let (q, kv) = (a.q_dim(), a.kv_dim());
    let mut expected: Vec<(String, Vec<u64>, GgmlType)> = vec![
        ("token_embd.weight".into(), vec![e, v], GgmlType::F16),
        ("output_norm.weight".into(), vec![e], GgmlType::F32),
    ];
    if !a.tied_embeddings {
        expected.push(("output.weight".into(), vec![e, v], GgmlType::F16));
    }
    for i in 0..a.n_layer {
        let b = |s: &str| format!("blk.{i}.{s}");
        expected.extend([
            (b("attn_norm.weight"), vec![e], GgmlType::F32),
            (b("attn_q.weight"), vec![e, q], GgmlType::F16),
            (b("attn_k.weight"), vec![e, kv], GgmlType::F16),
            (b("attn_v.weight"), vec![e, kv], GgmlType::F16),
            (b("attn_output.weight"), vec![q, e], GgmlType::F16),
            (b("ffn_norm.weight"), vec![e], GgmlType::F32),
            (b("ffn_gate.weight"), vec![e, ff], GgmlType::F16),
            (b("ffn_up.weight"), vec![e, ff], GgmlType::F16),
            (b("ffn_down.weight"), vec![ff, e], GgmlType::F16),
        ]);
        if a.qkv_bias {
            expected.extend([
                (b("attn_q.bias"), vec![q], GgmlType::F32),
                (b("attn_k.bias"), vec![kv], GgmlType::F32),
                (b("attn_v.bias"), vec![kv], GgmlType::F32),
            ]);
        }
    }
    assert_eq!(f.tensors.len(), expected.len());
    for (name, dims, ty) in expected {
        let t = f.tensor(&name).unwrap_or_else(|| panic!("missing {name}"));
        assert_eq!((&t.dims, t.ggml_type), (&dims, ty), "{name}");
    }
}

#[test]
fn mini_models_have_llama_cpp_layout() {
    for arch in ["llama", "qwen2"] {
        let a = mini(arch);
        let spec = SynthSpec {
            arch: a.clone(),
            seed: 42,
        };
        let bytes = write_mem(&spec);
        assert_eq!(synth::estimate_f16_bytes(&a).unwrap(), bytes.len() as u64);
        let f = parse_bytes(&bytes).unwrap();
        assert_llama_cpp_keys(&f, &a);
        assert_tensor_layout(&f, &a);
        assert_eq!(f.get_u64("tokbench.synth.seed"), Some(42));

        let info = ModelInfo::from_gguf(&f).unwrap();
        assert_eq!(info.n_params, a.n_params(), "{arch}");
        assert_eq!(info.architecture, arch);
        assert_eq!(info.block_count, a.n_layer);
        assert_eq!(info.head_count_kv, a.n_head_kv);
        assert_eq!(info.head_dim, a.head_dim);
        assert_eq!(info.vocab_size, a.n_vocab);
        assert_eq!(info.file_type, Some(FileType::MOSTLY_F16));
        assert_eq!(info.kv_bytes_per_token_f16(), a.kv_bytes_per_token_f16());
        assert!(!info.tied_embeddings());
    }
}

#[test]
fn tied_embeddings_omit_output() {
    let mut a = mini("llama");
    a.tied_embeddings = true;
    let bytes = write_mem(&SynthSpec {
        arch: a.clone(),
        seed: 1,
    });
    let f = parse_bytes(&bytes).unwrap();
    assert_tensor_layout(&f, &a);
    let info = ModelInfo::from_gguf(&f).unwrap();
    assert_eq!(info.n_params, a.n_params());
    assert!(info.tied_embeddings());
}

#[test]
fn weights_are_finite_scaled_and_norms_are_one() {
    let a = mini("qwen2");
    let bytes = write_mem(&SynthSpec { arch: a, seed: 3 });
    let f = parse_bytes(&bytes).unwrap();
    for (name, row_len) in [
        ("blk.1.ffn_down.weight", 128.0f64),
        ("blk.0.attn_q.weight", 64.0),
    ] {
        let w = f16_values(&bytes, &f, name);
        assert!(w.iter().all(|x| x.is_finite()));
        let mean = w.iter().map(|&x| f64::from(x)).sum::<f64>() / w.len() as f64;
        let std = (w
            .iter()
            .map(|&x| (f64::from(x) - mean).powi(2))
            .sum::<f64>()
            / w.len() as f64)
            .sqrt();
        let want = 1.0 / row_len.sqrt();
        assert!(
            (std / want - 1.0).abs() < 0.05,
            "{name}: std {std} want {want}"
        );
        assert!(mean.abs() < 0.1 * want, "{name}: mean {mean}");
    }
    assert!(f32_values(&bytes, &f, "blk.0.attn_norm.weight")
        .iter()
        .all(|&x| x == 1.0));
    assert!(f32_values(&bytes, &f, "output_norm.weight")
        .iter()
        .all(|&x| x == 1.0));
    let bias = f32_values(&bytes, &f, "blk.1.attn_k.bias");
    assert!(bias.iter().all(|x| x.is_finite() && x.abs() < 0.1));
    assert!(bias.iter().any(|&x| x != 0.0));
    // Different tensors get different streams.
    let q = f16_values(&bytes, &f, "blk.0.attn_k.weight");
    let v = f16_values(&bytes, &f, "blk.0.attn_v.weight");
    assert_ne!(q, v);
}

#[test]
fn same_spec_same_bytes_different_seed_different_bytes() {
    let spec = SynthSpec {
        arch: mini("llama"),
        seed: 9,
    };
    let (h1, n1) = hash_of(&spec);
    let (h2, n2) = hash_of(&spec.clone());
    assert_eq!((h1.clone(), n1), (h2, n2));
    let (h3, _) = hash_of(&SynthSpec { seed: 10, ..spec });
    assert_ne!(h1, h3);
}

#[test]
fn invalid_specs_are_rejected() {
    let mut a = mini("llama");
    a.n_vocab = 100;
    let e = synth::write_f16_to(&SynthSpec { arch: a, seed: 0 }, Vec::new()).unwrap_err();
    assert!(e.to_string().contains("259"), "{e}");
    let mut a = mini("llama");
    a.n_head_kv = 3;
    assert!(synth::estimate_f16_bytes(&a).is_err());
}

#[test]
fn tiny_preset_on_disk() {
    let arch = ArchSpec::preset("tiny").unwrap().clone();
    let spec = SynthSpec {
        arch: arch.clone(),
        seed: 0,
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tiny-f16.gguf");
    let report = synth::write_f16(&spec, &path).unwrap();
    let on_disk = std::fs::metadata(&path).unwrap().len();
    assert_eq!(report.file_size_bytes, on_disk);
    assert_eq!(synth::estimate_f16_bytes(&arch).unwrap(), on_disk);
    assert_eq!(report.content_key, synth::content_key(&spec));
    assert!(!dir.path().join("tiny-f16.gguf.partial").exists());

    let f = GgufFile::open(&path).unwrap();
    assert_llama_cpp_keys(&f, &arch);
    assert_tensor_layout(&f, &arch);
    let info = ModelInfo::from_gguf(&f).unwrap();
    assert_eq!(info.n_params, arch.n_params());
    assert_eq!(info.n_params, 57_942_528);
    assert_eq!(report.n_params, info.n_params);
    assert_eq!(info.file_type_name(), Some("F16"));
    assert_eq!(info.tensor_type_counts[&GgmlType::F32], 2 * 8 + 1);
    assert_eq!(info.tensor_type_counts[&GgmlType::F16], 7 * 8 + 2);
    assert_eq!(info.output_bytes, Some(512 * 32000 * 2));

    // Same bytes when streamed again.
    let file_hash = hex::encode(Sha256::digest(std::fs::read(&path).unwrap()));
    assert_eq!(hash_of(&spec), (file_hash, on_disk));
}

#[test]
fn estimates_for_every_preset_are_close_to_two_bytes_per_param() {
    for arch in ArchSpec::presets() {
        let bytes = synth::estimate_f16_bytes(arch).unwrap();
        let weights = 2 * arch.n_params();
        assert!(bytes > weights, "{}", arch.name);
        // Header (vocabulary) + F32 norms/biases + alignment padding stay small.
        assert!(
            bytes - weights < 64 << 20,
            "{}: {bytes} vs {weights}",
            arch.name
        );
    }
}
