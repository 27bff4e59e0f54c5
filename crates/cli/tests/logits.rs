//! `tokbench model logits`: the same model and prompt evaluated again agree exactly, another
//! model (what a broken offload computes) is told apart and fails with exit 3, and a bad
//! reference file is refused by name before any work. The comparison of a GPU build with
//! the CPU build runs in scripts/vulkan-check.sh (lavapipe).

mod common;
use common::*;

/// The tiny synthetic model at `quant` with `seed`, synthesized into the shared cache.
fn tiny(quant: &str, seed: u64) -> String {
    let out = run_ok(&[
        "model",
        "synth",
        "--arch",
        "tiny",
        "--quant",
        quant,
        "--seed",
        &seed.to_string(),
    ]);
    let line = String::from_utf8(out.stdout).unwrap();
    line.trim_end()
        .rsplit('\t')
        .next()
        .expect("synth prints the model's path")
        .to_string()
}

fn logits_json(args: &[&str]) -> (Option<i32>, serde_json::Value, String) {
    let mut a = vec!["model", "logits", "--format", "json"];
    a.extend_from_slice(args);
    let out = tokbench(&a).output().unwrap();
    let v = serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
    (out.status.code(), v, stderr(&out))
}

#[test]
fn the_same_prompt_agrees_exactly_on_any_thread_count_and_another_model_is_told_apart() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tiny("Q8_0", 0);
    let reference = tmp.path().join("ref.logits");
    let r = reference.to_str().unwrap();
    let (code, v, e) = logits_json(&[&model, "--tokens", "64", "--out", r]);
    assert_eq!(code, Some(0), "{e}");
    let h = &v["header"];
    assert_eq!(h["tokens"].as_array().unwrap().len(), 64, "{v}");
    assert_eq!(h["n_vocab"], 32000, "{v}");
    assert_eq!(h["accel"], "cpu", "{v}");
    // 64 rows of 32,000 f32s after the header line.
    let bytes = std::fs::read(&reference).unwrap();
    let header_len = bytes.iter().position(|&b| b == b'\n').unwrap() + 1;
    assert_eq!(bytes.len() - header_len, 64 * 32000 * 4);

    // Two threads split the rows differently, but each dot product is summed in one order:
    // the same logits, bit for bit.
    let (code, v, e) = logits_json(&[&model, "--tokens", "64", "-t", "2", "--against", r]);
    assert_eq!(code, Some(0), "{e}");
    let a = &v["agreement"];
    assert_eq!(a["top1_same"], 64, "{v}");
    assert_eq!(a["max_abs_diff"], 0.0, "{v}");
    assert_eq!(a["agrees"], true, "{v}");
    // The logits of random weights spread about 1 around each row's mean.
    let spread = a["rms_ref"].as_f64().unwrap();
    assert!((0.5..2.0).contains(&spread), "{v}");

    // One token at a time runs generation's kernels (matrix × vector, the KV cache grown a
    // row per step): the same model, so close to the batch's logits, but rounded otherwise.
    // Top tokens are not judged here: near-ties flip (89% agreed). (Up to 32 tokens the
    // two paths gave the same logits bit for bit.)
    let (code, v, e) = logits_json(&[
        &model,
        "--tokens",
        "64",
        "--stepwise",
        "--min-top1",
        "0",
        "--against",
        r,
    ]);
    assert_eq!(code, Some(0), "{v} {e}");
    assert_eq!(v["header"]["stepwise"], true, "{v}");
    let rel = v["agreement"]["relative_rms"].as_f64().unwrap();
    assert!(rel > 0.0 && rel < 0.05, "{v}");

    // Another model's logits — what an offload computing something else gives — disagree
    // on nearly every top token and by more than their spread: exit 3, and it says so.
    let other = tiny("Q8_0", 1);
    let (code, v, e) = logits_json(&[&other, "--tokens", "64", "--against", r]);
    assert_eq!(code, Some(3), "{v} {e}");
    let a = &v["agreement"];
    assert_eq!(a["agrees"], false, "{v}");
    assert!(a["top1_fraction"].as_f64().unwrap() < 0.2, "{v}");
    assert!(a["relative_rms"].as_f64().unwrap() > 0.5, "{v}");
    assert!(a["worst_top1_gap"].as_f64().unwrap() > 0.5, "{v}");
    assert!(e.contains("disagree with the reference"), "{e}");

    // A different prompt is not compared: it says so, exit 2.
    let (code, _, e) = logits_json(&[&model, "--tokens", "16", "--against", r]);
    assert_eq!(code, Some(2), "{e}");
    assert!(e.contains("prompts differ"), "{e}");
}

#[test]
fn a_bad_reference_or_model_is_refused_by_name_before_any_work() {
    let tmp = tempfile::tempdir().unwrap();
    let bad = tmp.path().join("not-logits.txt");
    std::fs::write(&bad, "hello\n").unwrap();
    let (code, _, e) = logits_json(&["nowhere.gguf", "--against", bad.to_str().unwrap()]);
    assert_eq!(code, Some(2), "{e}");
    assert!(
        e.contains("not-logits.txt") && e.contains("not a tokbench logits file"),
        "{e}"
    );
    let (code, _, e) = logits_json(&["nowhere.gguf"]);
    assert_eq!(code, Some(2), "{e}");
    assert!(e.contains("model file not found: nowhere.gguf"), "{e}");
    let (code, _, e) = logits_json(&["nowhere.gguf", "--min-top1", "1.5"]);
    assert_eq!(code, Some(2), "{e}");
    assert!(e.contains("--min-top1 1.5"), "{e}");
}
