//! `tokbench import`: llama-bench JSON, JSONL and SQL output, then each record as a result.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tokbench_core::llama_bench::{
    detect_format, parse_any, parse_json, parse_jsonl, parse_sql, LlamaBenchRecord,
};

fn derive(records: &[LlamaBenchRecord]) {
    for (i, r) in records.iter().enumerate() {
        let _ = r.test_label();
        let _ = r.cell_result(i);
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = detect_format(text);
    if let Ok(r) = parse_any(text) {
        derive(&r);
    }
    for parse in [parse_json, parse_jsonl, parse_sql] {
        if let Ok(r) = parse(text) {
            derive(&r);
        }
    }
});
