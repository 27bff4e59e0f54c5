//! GGUF headers from anywhere (a downloaded model): `parse_bytes`, then the summary
//! `tokbench inspect`/`fit` derive from it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tokbench_gguf::{parse_bytes, ModelInfo};

fuzz_target!(|data: &[u8]| {
    let Ok(file) = parse_bytes(data) else {
        return;
    };
    for t in &file.tensors {
        let _ = (t.n_elements(), t.n_bytes(), t.row_len());
        let _ = file.tensor_file_range(t);
    }
    let _ = file.architecture();
    let _ = file.get_array_len("tokenizer.ggml.tokens");
    if let Ok(info) = ModelInfo::from_gguf(&file) {
        let _ = info.bits_per_weight();
        let _ = info.kv_bytes_per_token_f16();
        let _ = info.file_type_name();
        let _ = info.tied_embeddings();
        let _ = info.file_type.map(|f| f.to_string());
    }
});
