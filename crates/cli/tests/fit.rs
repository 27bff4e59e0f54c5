//! `tokbench fit` through the real binary: figures against hand calculations, exact weights
//! from a GGUF file, the hardware verdicts, and clear errors for bad input.

mod common;

use common::*;
use serde_json::Value;

fn fit_json(args: &[&str]) -> Value {
    let mut all = vec!["fit", "--format", "json"];
    all.extend_from_slice(args);
    let out = run_ok(&all);
    serde_json::from_slice(&out.stdout).expect("fit prints JSON")
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap()
}

#[test]
fn llama_8b_kv_cache_and_weights_match_hand_calculations() {
    let r = fit_json(&[
        "--arch",
        "llama-3.1-8b",
        "--quant",
        "Q4_K_M,Q8_0",
        "--ctx",
        "8192,131072",
        "--hardware",
        "GeForce RTX 4090",
        "--hardware",
        "GeForce RTX 4060 Ti 16GB",
    ]);
    let q = &r["quantizations"];
    // 32 layers × 8 KV heads × 128 dims × 2 (K and V) × 2 bytes = 131,072 bytes per token;
    // × 8192 tokens = exactly 1 GiB.
    assert_eq!(u(&q[0]["kv_bytes"]), 1 << 30);
    assert_eq!(q[0]["quant"], "Q4_K_M");
    // quantize.cpp's own table: Llama-3-8B Q4_K_M is 4.58 GiB (tensor data 4.575 GiB here).
    let w = u(&q[0]["weights_bytes"]) as f64 / (1u64 << 30) as f64;
    assert!((w - 4.58).abs() / 4.58 < 0.005, "{w}");
    let w8 = u(&q[1]["weights_bytes"]) as f64 / (1u64 << 30) as f64;
    assert!((w8 - 7.96).abs() / 7.96 < 0.005, "{w8}");
    // Totals add up.
    for row in q.as_array().unwrap() {
        assert_eq!(
            u(&row["total_bytes"]),
            u(&row["weights_bytes"]) + u(&row["kv_bytes"]) + u(&row["compute_bytes"])
        );
    }
    // At 128K the f16 cache is 16 GiB: a 24 GiB card holds Q4_K_M only partly.
    let c = &r["contexts"];
    assert_eq!(u(&c[1]["kv_bytes"]), 16 << 30);
    assert_eq!(q[0]["hardware"]["GeForce RTX 4090"], "full");
    let at_128k = c[1]["hardware"]["GeForce RTX 4090"].as_str().unwrap();
    assert!(at_128k.starts_with("ngl "), "{at_128k}");
    // A 16 GiB card holds Q8_0 at 8K (7.95 + 1 + compute < 16).
    assert_eq!(q[1]["hardware"]["GeForce RTX 4060 Ti 16GB"], "full");
}

#[test]
fn quantized_kv_cache_is_53_percent_and_needs_flash_attention() {
    let f16 = fit_json(&["--arch", "qwen2.5-7b", "--quant", "Q4_K_M", "--ctx", "4096"]);
    let q8 = fit_json(&[
        "--arch",
        "qwen2.5-7b",
        "--quant",
        "Q4_K_M",
        "--ctx",
        "4096",
        "--ctk",
        "q8_0",
        "--ctv",
        "q8_0",
        "--fa",
    ]);
    // Qwen2.5 7B: 28 layers × 4 KV heads × 128 × 2 × 2 bytes = 57,344 bytes per token.
    assert_eq!(u(&f16["contexts"][0]["kv_bytes"]), 57_344 * 4096);
    // q8_0 stores 34 bytes per 32 values: 1.0625 bytes instead of 2.
    assert_eq!(
        u(&q8["contexts"][0]["kv_bytes"]),
        57_344 * 4096 / 2 * 17 / 16
    );
    let out = tokbench(&["fit", "--arch", "qwen2.5-7b", "--ctv", "q8_0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("flash"), "{}", stderr(&out));
}

#[test]
fn a_gguf_file_gives_exact_weights() {
    let path = {
        let out = run_ok(&["model", "synth", "--arch", "tiny", "--quant", "Q4_K_M"]);
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .split('\t')
            .nth(2)
            .unwrap()
            .to_string()
    };
    let info = tokbench_gguf::ModelInfo::from_gguf(&tokbench_gguf::GgufFile::open(&path).unwrap())
        .unwrap();
    let r = fit_json(&["--gguf", &path, "--ctx", "4096"]);
    assert_eq!(
        u(&r["quantizations"][0]["weights_bytes"]),
        info.tensor_bytes
    );
    assert_eq!(r["quantizations"][0]["quant"], "Q4_K_M");
    // tiny: 8 layers × 4 KV heads × 64 dims × 2 × 2 bytes = 8192 bytes per token.
    assert_eq!(u(&r["contexts"][0]["kv_bytes"]), 8192 * 4096);
}

#[test]
fn explicit_shapes_and_multi_device_hardware() {
    let r = fit_json(&[
        "--params",
        "layers=80,embd=8192,heads=64,kv_heads=8,ffn=28672,vocab=128256",
        "--quant",
        "Q4_K_M",
        "--ctx",
        "8192",
        "--hardware",
        "2x GeForce RTX 5090",
        "--hardware",
        "GeForce RTX 5090",
    ]);
    // The same shape as Llama 3.1 70B: 80 × 8 × 128 × 2 × 2 = 327,680 bytes per token.
    assert_eq!(u(&r["contexts"][0]["kv_bytes"]), 327_680 * 8192);
    let q = &r["quantizations"][0]["hardware"];
    // ~40 GiB of weights: two 32 GiB cards hold it, one holds part of it.
    assert_eq!(q["2× GeForce RTX 5090"], "full", "{q}");
    assert!(
        q["GeForce RTX 5090"].as_str().unwrap().starts_with("ngl "),
        "{q}"
    );
}

#[test]
fn bad_input_is_named() {
    let cases: &[(&[&str], &str)] = &[
        (
            &["fit", "--arch", "llama-3.1-8b", "--ctx", "0"],
            "context of 0",
        ),
        (&["fit", "--arch", "llama-3.1-8b", "--ctk", "q3_k"], "q3_k"),
        (&["fit", "--arch", "llama-9"], "llama-9"),
        (&["fit", "--params", "layers=2,embd=64"], "heads"),
        (&["fit"], "--arch"),
        (
            &["fit", "--arch", "tiny", "--hardware", "Voodoo 2"],
            "Voodoo 2",
        ),
    ];
    for (args, needle) in cases {
        let out = tokbench(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(needle), "{args:?}: {}", stderr(&out));
    }
}

#[test]
fn a_gguf_without_the_needed_metadata_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("nometa.gguf");
    let mut w = tokbench_gguf::GgufWriter::new();
    w.add_metadata(
        "general.architecture",
        tokbench_gguf::Value::String("llama".into()),
    )
    .unwrap();
    let file = std::fs::File::create(&path).unwrap();
    w.begin(file).unwrap().finish().unwrap();
    let out = tokbench(&["fit", "--gguf", path.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("nometa.gguf") && stderr(&out).contains("block_count"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn predictions_sit_beside_measured_memory() {
    let tmp = tempfile::tempdir().unwrap();
    let suite = write_suite(
        tmp.path(),
        "s.toml",
        &quick_suite("\"Q8_0\"", "\"pp64\", \"pp64 @ d960\"", ""),
    );
    let db = tmp.path().join("r.db");
    run_ok(&["run", suite.to_str().unwrap(), "--db", db.to_str().unwrap()]);
    let out = run_ok(&["fit", "--db", db.to_str().unwrap(), "--format", "json"]);
    let rows: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rows.len(), 2);
    // Contexts as the engine sizes them: depth + prompt + generated + 1.
    assert_eq!(rows[0]["n_ctx"], 65);
    assert_eq!(rows[1]["n_ctx"], 1025);
    for r in &rows {
        let (pred, meas, weights) = (
            u(&r["predicted_bytes"]),
            u(&r["measured_bytes"]),
            u(&r["weights_bytes"]),
        );
        assert!(pred > weights && meas > weights, "{r}");
        let err = r["error_pct"].as_f64().unwrap();
        assert!((err - (pred as f64 - meas as f64) / meas as f64 * 100.0).abs() < 1e-9);
    }
    // llama.cpp's own account agrees with the prediction: the KV cache to the byte (its log
    // prints MiB with two decimals), the Q8_0 weights and the compute buffer within 1 %.
    for r in &rows {
        let a = &r["allocated"];
        assert!(a.is_object(), "llama.cpp's buffer sizes were recorded: {r}");
        let close = |pred: u64, alloc: u64, tol: f64| {
            let e = (pred as f64 - alloc as f64).abs() / alloc as f64;
            assert!(e <= tol, "{pred} vs {alloc} ({:.2}%): {r}", e * 100.0);
        };
        close(u(&r["kv_bytes"]), u(&a["kv_bytes"]), 0.001);
        close(u(&r["weights_bytes"]), u(&a["model_bytes"]), 0.01);
        close(u(&r["compute_bytes"]), u(&a["compute_bytes"]), 0.01);
        assert_eq!(u(&a["repack_bytes"]), 0, "Q8_0 is not repacked: {r}");
        // A CPU build has no GPU whose own memory readings could stand beside these.
        assert!(r.get("device").is_none(), "{r}");
    }
    let text = String::from_utf8(run_ok(&["fit", "--db", db.to_str().unwrap()]).stdout).unwrap();
    assert!(!text.contains("device used"), "{text}");
    // The tiny model's figures in MiB unless asked otherwise (in GiB they all read 0.06).
    assert!(text.contains("weights MiB pred/alloc"), "{text}");
    let text =
        String::from_utf8(run_ok(&["fit", "--db", db.to_str().unwrap(), "--units", "gib"]).stdout)
            .unwrap();
    assert!(text.contains("weights GiB pred/alloc"), "{text}");
    // The deeper context needs a larger KV cache: 1025 → 1280 tokens × 8192 bytes.
    assert_eq!(u(&rows[1]["kv_bytes"]), 1280 * 8192);
    assert_eq!(u(&rows[0]["kv_bytes"]), 256 * 8192);
}

/// The default layout fits a 120-column terminal whatever the catalog holds; `--wide`
/// keeps every hardware by name.
#[test]
fn the_default_layout_fits_120_columns_and_wide_names_everything() {
    for arch in ["tiny", "llama-3.1-8b", "llama-3.1-405b"] {
        let out = run_ok(&["fit", "--arch", arch, "--ctx", "4096,32768,131072"]);
        let text = String::from_utf8(out.stdout).unwrap();
        for line in text.lines() {
            assert!(line.chars().count() <= 120, "{arch}: {line}");
        }
        assert!(text.contains("smallest that fits"), "{text}");
        // The notes that say what `full` and `ngl N/M` mean come with the narrow layout too.
        assert!(
            text.contains("Note: weights include the token-embedding table"),
            "{text}"
        );
        assert!(text.contains("GeForce RTX 4090"), "{text}");
    }
    let out = run_ok(&["fit", "--arch", "llama-3.1-8b", "--wide"]);
    let text = String::from_utf8(out.stdout).unwrap();
    let q4 = text
        .lines()
        .find(|l| l.starts_with("Q4_K_M"))
        .expect("a Q4_K_M row");
    assert!(
        q4.contains("GeForce RTX 4090") && q4.contains("H100 SXM"),
        "{q4}"
    );
    assert!(text.lines().any(|l| l.chars().count() > 120));
}
