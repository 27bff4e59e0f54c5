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
        // The IQ family, from quantization.md §3a.
        (GgmlType::IQ1_S, 256, 50),
        (GgmlType::IQ1_M, 256, 56),
        (GgmlType::IQ2_XXS, 256, 66),
        (GgmlType::IQ2_XS, 256, 74),
        (GgmlType::IQ2_S, 256, 82),
        (GgmlType::IQ3_XXS, 256, 98),
        (GgmlType::IQ3_S, 256, 110),
        (GgmlType::IQ4_XS, 256, 136),
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
        128_256 * 100 * 4 + 256 * 100 * 2 + 6 * 100 * 4096 * 4 + 2 * 100 * 1024 * 4 + 128_256 * 4
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
        offload: Default::default(),
        unset: Default::default(),
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

#[test]
fn iq_presets_follow_llama_cpp_recipes_on_llama_8b() {
    // Llama 3.1 8B: 32 layers, n_gqa 4, untied embeddings, rows of 4096 and 14336 (both
    // multiples of 256, so no fallback).
    let a = p("llama-3.1-8b");
    let t = |q, role, layer| tensor_type_for(q, role, layer, a);
    use TensorRole as R;
    // 1- and 2-bit presets: output Q5_K, token_embd Q2_K or IQ3_S, attn_v Q4_K (n_gqa >= 4),
    // ffn_down bumped in the first n/8 layers only.
    assert_eq!(t(QuantPreset::IQ2_XXS, R::Output, 0), GgmlType::Q5_K);
    assert_eq!(t(QuantPreset::IQ2_XXS, R::TokenEmbd, 0), GgmlType::Q2_K);
    assert_eq!(t(QuantPreset::IQ2_M, R::TokenEmbd, 0), GgmlType::IQ3_S);
    assert_eq!(t(QuantPreset::IQ1_S, R::AttnV, 5), GgmlType::Q4_K);
    assert_eq!(t(QuantPreset::IQ1_S, R::FfnDown, 3), GgmlType::Q2_K);
    assert_eq!(t(QuantPreset::IQ1_S, R::FfnDown, 4), GgmlType::IQ1_S);
    assert_eq!(t(QuantPreset::IQ1_M, R::AttnOutput, 9), GgmlType::IQ2_XXS);
    assert_eq!(t(QuantPreset::IQ2_S, R::FfnDown, 0), GgmlType::IQ3_S);
    assert_eq!(t(QuantPreset::IQ2_S, R::FfnUp, 9), GgmlType::IQ2_XS);
    assert_eq!(t(QuantPreset::IQ2_M, R::FfnUp, 9), GgmlType::IQ2_S);
    // IQ3: IQ3_XXS puts q and k at IQ2_S; IQ3_XS makes the middle layers' gate/up IQ3_XXS.
    assert_eq!(t(QuantPreset::IQ3_XXS, R::AttnQ, 1), GgmlType::IQ2_S);
    assert_eq!(t(QuantPreset::IQ3_XXS, R::Output, 0), GgmlType::Q5_K);
    assert_eq!(t(QuantPreset::IQ3_XS, R::FfnGate, 4), GgmlType::IQ3_XXS);
    assert_eq!(t(QuantPreset::IQ3_XS, R::FfnGate, 3), GgmlType::IQ3_S);
    assert_eq!(t(QuantPreset::IQ3_XS, R::FfnUp, 28), GgmlType::IQ3_S);
    assert_eq!(t(QuantPreset::IQ3_M, R::AttnV, 0), GgmlType::Q4_K);
    assert_eq!(t(QuantPreset::IQ3_M, R::FfnDown, 3), GgmlType::Q4_K);
    assert_eq!(t(QuantPreset::IQ3_M, R::Output, 0), GgmlType::Q6_K);
    assert_eq!(t(QuantPreset::IQ4_XS, R::AttnV, 0), GgmlType::Q5_K);
    // The importance matrix decides IQ3_XXS's attn_v on a model with n_gqa < 4 and the
    // first ffn_down layers of IQ4_XS.
    let with = |q, role, layer, m| tensor_type_with(q, role, layer, a, m);
    assert_eq!(
        with(QuantPreset::IQ4_XS, R::FfnDown, 0, false),
        GgmlType::Q5_K
    );
    assert_eq!(
        with(QuantPreset::IQ4_XS, R::FfnDown, 0, true),
        GgmlType::IQ4_XS
    );
    assert_eq!(
        with(QuantPreset::IQ3_XXS, R::FfnDown, 0, false),
        GgmlType::Q4_K
    );
    assert_eq!(
        with(QuantPreset::IQ3_XXS, R::FfnDown, 9, false),
        GgmlType::Q3_K
    );
    assert_eq!(
        with(QuantPreset::IQ3_XXS, R::FfnDown, 9, true),
        GgmlType::IQ3_XXS
    );
    // Q2_K_S: Q2_K, with attn_v Q4_K (n_gqa >= 4) and the first n/8 ffn_down Q4_K.
    assert_eq!(t(QuantPreset::Q2_K_S, R::AttnV, 7), GgmlType::Q4_K);
    assert_eq!(t(QuantPreset::Q2_K_S, R::FfnDown, 3), GgmlType::Q4_K);
    assert_eq!(t(QuantPreset::Q2_K_S, R::FfnDown, 4), GgmlType::Q2_K);
    assert_eq!(t(QuantPreset::Q2_K_S, R::AttnOutput, 4), GgmlType::Q2_K);
    // Every preset's sizes fall in its bits-per-weight order within the IQ family.
    let bpw = |q| weight_bytes(a, q).total_bytes as f64 * 8.0 / a.n_params() as f64;
    let order = [
        QuantPreset::IQ1_S,
        QuantPreset::IQ1_M,
        QuantPreset::IQ2_XXS,
        QuantPreset::IQ2_XS,
        QuantPreset::IQ2_S,
        QuantPreset::IQ2_M,
        QuantPreset::IQ3_XXS,
        QuantPreset::IQ3_XS,
        QuantPreset::IQ3_S,
        QuantPreset::IQ3_M,
        QuantPreset::IQ4_XS,
        QuantPreset::IQ4_NL,
    ];
    for w in order.windows(2) {
        assert!(
            bpw(w[0]) < bpw(w[1]),
            "{} {:.3} vs {} {:.3}",
            w[0],
            bpw(w[0]),
            w[1],
            bpw(w[1])
        );
    }
}

#[test]
fn iq_rows_not_divisible_by_256_fall_back_to_iq4_nl() {
    // Qwen2.5-72B's ffn rows (29568 = 115.5 × 256) cannot hold 256-weight blocks.
    use TensorRole as R;
    let a = p("qwen2.5-72b");
    assert_eq!(
        tensor_type_for(QuantPreset::IQ2_XXS, R::FfnDown, 40, a),
        GgmlType::IQ4_NL
    );
    assert_eq!(
        tensor_type_for(QuantPreset::IQ4_XS, R::FfnDown, 40, a),
        GgmlType::IQ4_NL
    );
    assert_eq!(
        tensor_type_for(QuantPreset::IQ4_XS, R::FfnUp, 40, a),
        GgmlType::IQ4_XS
    );
}

/// Published GGUF files of Llama 3.1 8B and 70B (same tensor shapes as Llama 3 and 3.3),
/// their exact sizes in bytes as the Git-LFS pointer on each Hugging Face commit page gives
/// them (copied 2026-12-06): (preset, file bytes, repository, commit). The IQ files were made
/// with an importance matrix (the repositories are named `-IMat-`, or their cards say so).
const PUBLISHED_8B: [(QuantPreset, u64, &str, &str); 13] = [
    // The K-quant file the header size is taken from.
    (
        QuantPreset::Q4_K_M,
        4_920_739_232,
        "bartowski/Meta-Llama-3.1-8B-Instruct-GGUF",
        "4f0c246f",
    ),
    (
        QuantPreset::Q2_K,
        3_179_136_416,
        "bartowski/Meta-Llama-3.1-8B-Instruct-GGUF",
        "60222762",
    ),
    (
        QuantPreset::IQ1_S,
        2_019_628_256,
        "legraphista/Meta-Llama-3.1-8B-Instruct-IMat-GGUF",
        "12f3922c",
    ),
    (
        QuantPreset::IQ1_M,
        2_161_972_448,
        "legraphista/Meta-Llama-3.1-8B-Instruct-IMat-GGUF",
        "76581d85",
    ),
    (
        QuantPreset::IQ2_XXS,
        2_399_212_768,
        "legraphista/Meta-Llama-3.1-8B-Instruct-IMat-GGUF",
        "2f0edaa0",
    ),
    (
        QuantPreset::IQ2_XS,
        2_605_782_240,
        "legraphista/Meta-Llama-3.1-8B-Instruct-IMat-GGUF",
        "1039c4f2",
    ),
    (
        QuantPreset::IQ2_S,
        2_758_488_992,
        "mmnga/Llama-3.1-8B-Instruct-gguf",
        "0f19d6c7",
    ),
    (
        QuantPreset::IQ2_M,
        2_948_281_248,
        "mmnga/Llama-3.1-8B-Instruct-gguf",
        "7878ed34",
    ),
    (
        QuantPreset::IQ3_XXS,
        3_274_912_672,
        "mmnga/Llama-3.1-8B-Instruct-gguf",
        "7ffb4d70",
    ),
    (
        QuantPreset::IQ3_XS,
        3_518_747_552,
        "mmnga/Llama-3.1-8B-Instruct-gguf",
        "fad1d660",
    ),
    (
        QuantPreset::IQ3_S,
        3_682_325_728,
        "legraphista/Meta-Llama-3.1-8B-Instruct-IMat-GGUF",
        "12e25530",
    ),
    (
        QuantPreset::IQ3_M,
        3_784_823_712,
        "mmnga/Llama-3.1-8B-Instruct-gguf",
        "978bf051",
    ),
    (
        QuantPreset::IQ4_NL,
        4_677_989_600,
        "legraphista/Meta-Llama-3.1-8B-Instruct-IMat-GGUF",
        "fb614786",
    ),
];

/// As [`PUBLISHED_8B`], for 70B (Llama 3.1, 3.3 and Nemotron 70B share the shapes).
const PUBLISHED_70B: [(QuantPreset, u64, &str, &str); 10] = [
    (
        QuantPreset::IQ1_S,
        15_343_487_936,
        "mmnga/Llama-3.3-70B-Instruct-gguf",
        "9f7347ce",
    ),
    (
        QuantPreset::IQ1_M,
        16_751_196_608,
        "legraphista/Meta-Llama-3.1-70B-Instruct-IMat-GGUF",
        "9add53c2",
    ),
    (
        QuantPreset::IQ2_XXS,
        19_097_385_408,
        "legraphista/Meta-Llama-3.1-70B-Instruct-IMat-GGUF",
        "61d98ff7",
    ),
    (
        QuantPreset::IQ2_XS,
        21_142_108_608,
        "legraphista/Meta-Llama-3.1-70B-Instruct-IMat-GGUF",
        "8569a651",
    ),
    (
        QuantPreset::IQ2_S,
        22_242_347_968,
        "mmnga/Llama-3.3-70B-Instruct-gguf",
        "4bea8770",
    ),
    (
        QuantPreset::IQ2_M,
        24_119_298_624,
        "bartowski/Meta-Llama-3.1-70B-Instruct-GGUF",
        "7713f1f6",
    ),
    (
        QuantPreset::IQ3_XXS,
        27_469_494_720,
        "legraphista/Meta-Llama-3.1-70B-Instruct-IMat-GGUF",
        "7022a20e",
    ),
    (
        QuantPreset::IQ3_XS,
        29_307_730_368,
        "legraphista/Meta-Llama-3.1-70B-Instruct-IMat-GGUF",
        "ad6b5b58",
    ),
    (
        QuantPreset::IQ3_S,
        30_912_056_352,
        "mmnga/Llama-3.1-Nemotron-70B-Instruct-HF-gguf",
        "4e094771",
    ),
    (
        QuantPreset::IQ4_NL,
        40_053_619_136,
        "legraphista/Meta-Llama-3.1-70B-Instruct-IMat-GGUF",
        "b32373ce",
    ),
];

/// `fit` against published files: the tensor bytes it predicts plus one header size (the
/// GGUF metadata and the 128k-token vocabulary, taken from the Q4_K_M file, whose recipe
/// is exact) come within 100 kB of every file: 4–5 kB for 8B and 21–27 kB for 70B here,
/// which is metadata (the importance matrix's keys, names). A single 8B `attn_v` in the
/// wrong type is 0.26 MB or more, one `ffn_down` 7 MB; a 70B one 29 MB.
#[test]
fn iq_sizes_match_published_files() {
    let a8 = p("llama-3.1-8b");
    let a70 = p("llama-3.1-70b");
    let (q, file, _, _) = PUBLISHED_8B[0];
    let header = file - weight_bytes(a8, q).total_bytes;
    println!("header (from {q}): {header} bytes");
    assert!(header > 1_000_000 && header < 20_000_000, "{header}");
    let mut off = Vec::new();
    println!("| model | preset | predicted bytes | published bytes | ratio |");
    for (arch, name, rows, slack) in [
        (a8, "8B", &PUBLISHED_8B[..], 100_000i64),
        (a70, "70B", &PUBLISHED_70B[..], 100_000),
    ] {
        for &(q, file, repo, commit) in rows {
            let predicted = weight_bytes(arch, q).total_bytes + header;
            let diff = predicted as i64 - file as i64;
            println!(
                "| {name} | {q} | {predicted} | {file} | {:.5} |",
                predicted as f64 / file as f64
            );
            if diff.abs() > slack {
                off.push(format!(
                    "{name} {q}: predicted {predicted}, {repo}@{commit} has {file} ({diff:+})"
                ));
            }
        }
    }
    assert!(off.is_empty(), "{off:#?}");
}
