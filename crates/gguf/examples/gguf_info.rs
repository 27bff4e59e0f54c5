//! Prints the header summary of GGUF files:
//! `cargo run -p tokbench-gguf --example gguf_info -- <file.gguf>...`.

use std::process::ExitCode;

use tokbench_gguf::{GgufFile, ModelInfo};

fn main() -> ExitCode {
    let mut status = ExitCode::SUCCESS;
    for path in std::env::args().skip(1) {
        match GgufFile::open(&path).and_then(|f| ModelInfo::from_gguf(&f).map(|i| (f, i))) {
            Ok((file, info)) => {
                println!(
                    "{path}: gguf v{}, {} metadata keys, {} tensors, data at {}",
                    file.version,
                    file.metadata.len(),
                    file.tensors.len(),
                    file.data_offset
                );
                println!("{info:#?}");
                println!(
                    "file type {}, {:.3} bits per weight",
                    info.file_type_name().unwrap_or("unknown"),
                    info.bits_per_weight()
                );
            }
            Err(e) => {
                let mut msg = format!("{path}: {e}");
                let mut source = std::error::Error::source(&e);
                while let Some(s) = source {
                    msg.push_str(&format!(": {s}"));
                    source = s.source();
                }
                eprintln!("{msg}");
                status = ExitCode::FAILURE;
            }
        }
    }
    status
}
