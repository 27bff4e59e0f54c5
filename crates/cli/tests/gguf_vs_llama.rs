//! The GGUF reader agrees with llama.cpp on every synthesized model: parameter count and
//! tensor bytes as llama.cpp reports them after loading the file (`llama_model_n_params`,
//! `llama_model_size`), for every quantization preset, for both architectures we write.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::*;
use tokbench_engine::protocol::{EngineEvent, EngineJob, PROTOCOL_VERSION};
use tokbench_gguf::{GgufFile, ModelInfo};

/// Synthesizes `arch` at `quants` through the CLI; returns (quant, path) pairs.
fn synth(arch: &str, quants: &[&str]) -> Vec<(String, PathBuf)> {
    let out = run_ok(&[
        "model",
        "synth",
        "--arch",
        arch,
        "--quant",
        &quants.join(","),
    ]);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let mut parts = l.split('\t');
            let q = parts.next().unwrap().to_string();
            let p = PathBuf::from(parts.nth(1).unwrap());
            (q, p)
        })
        .collect()
}

/// What llama.cpp says about the model: (n_params, size in bytes).
fn llama_sees(path: &Path) -> (u64, u64) {
    let job = EngineJob {
        protocol: PROTOCOL_VERSION,
        model_path: path.to_path_buf(),
        n_gpu_layers: 0,
        use_mmap: true,
        offload: Default::default(),
        tests: Vec::new(),
    };
    let mut child = Command::new(bin())
        .arg("engine")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    writeln!(
        child.stdin.take().unwrap(),
        "{}",
        serde_json::to_string(&job).unwrap()
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        match serde_json::from_str::<EngineEvent>(line).unwrap() {
            EngineEvent::Loaded {
                n_params,
                model_size_bytes,
                ..
            } => return (n_params, model_size_bytes),
            EngineEvent::Fatal { error } => {
                panic!("llama.cpp could not load {}: {error}", path.display())
            }
            _ => {}
        }
    }
    panic!("no loaded event for {}", path.display());
}

fn check(arch: &str, quants: &[&str]) {
    let models = synth(arch, quants);
    assert_eq!(models.len(), quants.len());
    for (quant, path) in models {
        let info = ModelInfo::from_gguf(&GgufFile::open(&path).unwrap()).unwrap();
        let (n_params, size) = llama_sees(&path);
        assert_eq!(info.n_params, n_params, "{arch} {quant}: parameters");
        assert_eq!(info.tensor_bytes, size, "{arch} {quant}: tensor bytes");
        assert_eq!(
            info.file_type_name(),
            Some(quant.as_str()),
            "{arch} {quant}: file type"
        );
        let on_disk = std::fs::metadata(&path).unwrap().len();
        assert_eq!(info.file_size_bytes, on_disk);
        assert!(on_disk > size, "the file holds the tensors and a header");
        // `tokbench fit` predicts the weights from the architecture and llama.cpp's
        // per-tensor quantizer rules: it must match the real file's tensor table exactly,
        // and the whole file within 1% once the header (metadata and tokenizer, the same in
        // every quantization of one synthesized model) is added.
        let spec = tokbench_core::arch::ArchSpec::preset(arch).unwrap();
        let preset: tokbench_core::QuantPreset = quant.parse().unwrap();
        // A synthesized file is quantized without an importance matrix, which some IQ
        // presets' recipes consult.
        let predicted = tokbench_core::fit::weight_bytes_with(spec, preset, false);
        assert_eq!(
            predicted.total_bytes, info.tensor_bytes,
            "{arch} {quant}: predicted tensor bytes"
        );
        let header = tokbench_gguf::synth::estimate_f16_bytes(spec).unwrap()
            - tokbench_core::fit::weight_bytes(spec, tokbench_core::QuantPreset::F16).total_bytes;
        let predicted_file = predicted.total_bytes + header;
        let off = (on_disk as f64 - predicted_file as f64).abs() / on_disk as f64;
        assert!(
            off < 0.01,
            "{arch} {quant}: file {on_disk} vs predicted {predicted_file} ({:.3}%)",
            off * 100.0
        );
        for (t, tally) in &predicted.per_type {
            // One type table: the prediction's types are the file's types.
            let real = info.tensor_type_counts.get(t).copied();
            assert_eq!(
                real,
                Some(tally.n_tensors),
                "{arch} {quant}: tensors of type {t}"
            );
        }
    }
}

#[test]
fn reader_agrees_with_llama_cpp_on_every_preset_of_the_tiny_llama() {
    check(
        "tiny",
        &[
            "F16", "Q8_0", "Q6_K", "Q5_K_M", "Q5_K_S", "Q5_1", "Q5_0", "Q4_K_M", "Q4_K_S", "Q4_1",
            "Q4_0", "Q3_K_L", "Q3_K_M", "Q3_K_S", "Q2_K",
        ],
    );
}

/// The IQ presets llama.cpp's quantizer makes without an importance matrix: the recipe
/// (IQ3_M's Q4_K attn_v and ffn_down, IQ4_XS's Q5_K first ffn_down layers) and the
/// fallback of rows that 256-weight blocks do not divide (to IQ4_NL) are the quantizer's.
#[test]
fn reader_and_fit_agree_with_llama_cpp_on_iq_presets() {
    check("tiny", &["IQ4_XS", "IQ4_NL", "IQ3_S", "IQ3_M"]);
}

#[test]
fn presets_that_need_an_importance_matrix_are_refused_by_synth_with_the_reason() {
    for q in ["IQ2_XXS", "IQ1_S", "Q2_K_S", "IQ3_XXS"] {
        let out = tokbench(&["model", "synth", "--arch", "tiny", "--quant", q])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{q}: {}", stderr(&out));
        let e = stderr(&out);
        assert!(e.contains(q) && e.contains("importance matrix"), "{e}");
    }
}

#[test]
fn reader_agrees_with_llama_cpp_on_the_tiny_qwen2() {
    check("tiny-qwen2", &["F16", "Q8_0", "Q4_K_M"]);
}

#[test]
fn the_same_arguments_give_the_same_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    let other_cache = tmp.path().to_str().unwrap();
    let a = synth("tiny", &["Q4_K_M"]).remove(0).1;
    let out = tokbench(&[
        "model",
        "synth",
        "--arch",
        "tiny",
        "--quant",
        "Q4_K_M",
        "--cache-dir",
        other_cache,
    ])
    .output()
    .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let line = String::from_utf8_lossy(&out.stdout).to_string();
    let b = PathBuf::from(line.trim().split('\t').nth(2).unwrap());
    assert_ne!(a, b);
    assert_eq!(
        std::fs::read(&a).unwrap(),
        std::fs::read(&b).unwrap(),
        "quantized bytes differ"
    );
}
