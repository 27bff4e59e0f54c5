#[test]
fn quantization_names_follow_llama_cpp() {
    assert_eq!(quant_of("llama ?B Q8_0"), "Q8_0");
    assert_eq!(quant_of("llama 8B Q4_K - Medium"), "Q4_K_M");
    assert_eq!(quant_of("llama 70B Q3_K - Small"), "Q3_K_S");
    assert_eq!(quant_of("qwen2 7B F16"), "F16");
    assert_eq!(accel_of(Some("CUDA")), "cuda");
    assert_eq!(accel_of(Some("CPU")), "cpu");
    assert_eq!(accel_of(Some("BLAS,CPU")), "cpu");
    assert_eq!(accel_of(Some("Metal,BLAS")), "metal");
    assert_eq!(accel_of(None), "cpu");
}

use super::*;

fn record(n_prompt: u32, n_gen: u32, n_depth: u32) -> String {
    format!(
        r#"{{"build_commit": "abc", "build_number": 1, "cpu_info": "cpu", "gpu_info": "",
        "model_filename": "m.gguf", "model_type": "llama 1B Q8_0", "model_size": 10,
        "model_n_params": 20, "n_batch": 2048, "n_ubatch": 512, "n_threads": 2,
        "type_k": "f16", "type_v": "f16", "n_gpu_layers": -1, "split_mode": "layer",
        "main_gpu": 0, "no_kv_offload": false, "tensor_split": "0.00",
        "n_prompt": {n_prompt}, "n_gen": {n_gen}, "n_depth": {n_depth},
        "test_time": "2026-01-01T00:00:00Z", "avg_ns": 100, "stddev_ns": 1,
        "avg_ts": 5.5, "stddev_ts": 0.1}}"#
    )
}

#[test]
fn labels_are_tokbench_labels() {
    let label = |p, g, d| parse_json(&format!("[{}]", record(p, g, d))).unwrap()[0].test_label();
    assert_eq!(label(512, 0, 0), "pp512");
    assert_eq!(label(0, 128, 0), "tg128");
    assert_eq!(label(512, 128, 0), "pp512+tg128");
    assert_eq!(label(512, 0, 4096), "pp512 @ d4096");
}

#[test]
fn line_index_positions() {
    let idx = LineIndex::new("ab\ncd\n");
    assert_eq!(idx.position(0), (1, 1));
    assert_eq!(idx.position(1), (1, 2));
    assert_eq!(idx.position(3), (2, 1));
    assert_eq!(idx.position(6), (3, 1));
}

#[test]
fn affinity_follows_sqlite() {
    assert_eq!(Affinity::of("INTEGER"), Affinity::Integer);
    assert_eq!(Affinity::of("TEXT"), Affinity::Text);
    assert_eq!(Affinity::of("REAL"), Affinity::Real);
    assert_eq!(Affinity::of("VARCHAR"), Affinity::Text);
    assert_eq!(Affinity::of(""), Affinity::Blob);
    assert_eq!(Affinity::of("DECIMAL"), Affinity::Numeric);
}

#[test]
fn iq_file_types_are_named_by_their_preset() {
    assert_eq!(quant_of("llama 8B IQ4_XS - 4.25 bpw"), "IQ4_XS");
    assert_eq!(quant_of("llama 70B IQ3_S mix - 3.66 bpw"), "IQ3_M");
    assert_eq!(quant_of("llama 8B IQ2_XXS - 2.0625 bpw"), "IQ2_XXS");
    assert_eq!(quant_of("llama 8B Q2_K - Small"), "Q2_K_S");
    assert_eq!(quant_of("llama 7B mostly Q4_0"), "Q4_0");
}

#[test]
fn fields_are_taken_by_name_in_any_order_once_and_a_later_sql_column_wins() {
    let field = |line| Field {
        line,
        value: Value::Sql(SqlValue::Null, Affinity::Text),
    };
    let mut f = Fields::new(1);
    for (name, line) in [("a", 1), ("b", 2), ("c", 3), ("b", 4)] {
        f.set(name.into(), field(line));
    }
    assert_eq!(f.slots.len(), 3, "b once");
    // Out of the written order, and from where the last search stopped.
    assert_eq!(f.take("c").map(|x| x.line), Some(3));
    assert_eq!(f.take("b").map(|x| x.line), Some(4));
    assert!(f.take("b").is_none(), "taken once");
    assert!(f.take("z").is_none());
    assert_eq!(f.take("a").map(|x| x.line), Some(1));
    assert!(f.take("a").is_none());
    assert!(Fields::new(1).take("a").is_none(), "nothing to take");
}

#[test]
fn unknown_fields_are_kept_whatever_their_order() {
    let with_extra = record(512, 0, 0).replace(
        "\"build_commit\"",
        "\"zeta\": [1, 2], \"alpha\": \"x\", \"build_commit\"",
    );
    let r = &parse_json(&format!("[{with_extra}]")).unwrap()[0];
    assert_eq!(
        r.extra.keys().collect::<Vec<_>>(),
        ["alpha", "zeta"],
        "{:?}",
        r.extra
    );
    assert_eq!(r.extra["zeta"], serde_json::json!([1, 2]));
    assert_eq!(r.n_prompt, 512);
    assert_eq!(r.build_commit, "abc");
}
