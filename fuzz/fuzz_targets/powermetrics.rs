//! `powermetrics --format plist` output (macOS): a stream of NUL-separated plist documents,
//! one sample, and the report the sampler reduces a sample to.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tokbench_telemetry::parse::powermetrics::{next_document, parse_sample, parse_stream};
use tokbench_telemetry::powermetrics::parse_report;

fuzz_target!(|data: &[u8]| {
    if let Ok(stream) = parse_stream(data) {
        for s in &stream.samples {
            let _ = s.gpu.as_ref().map(|g| g.active_ratio());
        }
    }
    let _ = next_document(data);
    let _ = parse_sample(data);
    let _ = parse_report(data);
});
