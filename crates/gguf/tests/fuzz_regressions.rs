//! Inputs the `gguf` fuzz target (fuzz/fuzz_targets/gguf.rs) or its review found that
//! panicked; each must now give a result or an error.

use tokbench_gguf::{parse_bytes, GgmlType, GgufWriter, ModelInfo, Value};

/// A header whose sizes multiply past u64: `kv_bytes_per_token_f16` overflowed (a panic
/// with overflow checks, a wrapped small figure without).
#[test]
fn kv_bytes_per_token_saturates_for_absurd_sizes() {
    let mut w = GgufWriter::new();
    for (k, v) in [
        ("general.architecture", Value::String("llama".into())),
        ("llama.block_count", Value::U32(u32::MAX)),
        ("llama.embedding_length", Value::U32(64)),
        ("llama.attention.head_count", Value::U32(4)),
        ("llama.attention.head_count_kv", Value::U32(u32::MAX)),
        ("llama.attention.key_length", Value::U32(u32::MAX)),
        ("llama.context_length", Value::U32(128)),
        ("llama.feed_forward_length", Value::U32(256)),
        ("llama.vocab_size", Value::U32(300)),
    ] {
        w.add_metadata(k, v).unwrap();
    }
    w.add_tensor("output_norm.weight", &[64], GgmlType::F32)
        .unwrap();
    let mut data = w.begin(Vec::new()).unwrap();
    data.write_data(&[0u8; 256]).unwrap();
    let bytes = data.finish().unwrap();

    let info = ModelInfo::from_gguf(&parse_bytes(&bytes).unwrap()).unwrap();
    assert_eq!(info.kv_bytes_per_token_f16(), u64::MAX);
}
