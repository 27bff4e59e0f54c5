//! Writes a synthetic F16 model and prints its summary:
//! `cargo run --release -p tokbench-gguf --example synth_write -- <preset> <out.gguf> [seed] [qwen2]`.
//! The optional `qwen2` switches the preset to the qwen2 architecture (with q/k/v biases), which
//! checks the qwen2 loader path on a small shape.

use std::path::PathBuf;
use std::process::ExitCode;

use tokbench_core::arch::ArchSpec;
use tokbench_gguf::synth::{self, SynthSpec};
use tokbench_gguf::{GgufFile, ModelInfo};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(preset), Some(out)) = (args.first(), args.get(1)) else {
        eprintln!("usage: synth_write <preset> <out.gguf> [seed] [qwen2]");
        return ExitCode::from(2);
    };
    let Some(arch) = ArchSpec::preset(preset) else {
        eprintln!("unknown preset {preset}");
        return ExitCode::from(2);
    };
    let mut arch = arch.clone();
    if args.get(3).map(String::as_str) == Some("qwen2") {
        arch.architecture = "qwen2".into();
        arch.qkv_bias = true;
    }
    let seed = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(0);
    let spec = SynthSpec { arch, seed };
    let path = PathBuf::from(out);
    let report = match synth::write_f16(&spec, &path) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("{report:#?}");
    match GgufFile::open(&path).and_then(|f| ModelInfo::from_gguf(&f)) {
        Ok(info) => println!("{info:#?}"),
        Err(e) => {
            eprintln!("error reading back: {e}");
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}
