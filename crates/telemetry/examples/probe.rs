//! Prints what this machine can measure and why not: `cargo run -p tokbench-telemetry
//! --example probe`.

fn main() {
    for r in tokbench_telemetry::probe_all() {
        for line in r.lines() {
            println!("{line}");
        }
        for (k, v) in &r.environment {
            println!("    {k} = {v}");
        }
    }
}
