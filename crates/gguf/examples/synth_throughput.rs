//! Prints how fast synthetic F16 weights are generated, without touching the disk:
//! `cargo run --release -p tokbench-gguf --example synth_throughput [preset] [seed]`.

use std::io::{self, Write};
use std::time::Instant;

use tokbench_core::arch::ArchSpec;
use tokbench_gguf::synth::{self, SynthSpec};

/// Counts bytes and discards them.
struct Sink(u64);

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let preset = args.next().unwrap_or_else(|| "small".into());
    let seed = args.next().and_then(|s| s.parse().ok()).unwrap_or(0);
    let Some(arch) = ArchSpec::preset(&preset) else {
        eprintln!("unknown preset {preset}");
        std::process::exit(2);
    };
    let spec = SynthSpec {
        arch: arch.clone(),
        seed,
    };
    let start = Instant::now();
    match synth::write_f16_to(&spec, Sink(0)) {
        Ok((sink, _)) => {
            let secs = start.elapsed().as_secs_f64();
            println!(
                "{preset}: {} bytes in {secs:.2} s = {:.0} MB/s",
                sink.0,
                sink.0 as f64 / secs / 1e6
            );
        }
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}
