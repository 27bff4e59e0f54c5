//! `rocm-smi --json` and `amd-smi metric/static --json` output (AMD GPUs), through the
//! raw parsers and the reading the sampler takes from them.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tokbench_telemetry::parse::{amd_smi, rocm_smi};
use tokbench_telemetry::smi::{parse_output, SmiTool};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = rocm_smi::parse(text);
    let _ = amd_smi::parse_metric(text);
    let _ = amd_smi::parse_static(text);
    let _ = parse_output(SmiTool::RocmSmi, text);
    let _ = parse_output(SmiTool::AmdSmi, text);
});
