//! The sampler thread's CPU cost: runs every source this machine has (procfs on this
//! process's tree; a synthetic RAPL tree where the kernel has none; NVML where a driver
//! is) for a few seconds at 100 ms and at 10 ms, and prints the process's CPU time
//! (`getrusage(RUSAGE_SELF)`; the main thread sleeps meanwhile, so that is the sampler's)
//! as a percentage of one core.
//!
//! `cargo run --release -p tokbench-telemetry --example sampler_cost [seconds]`

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokbench_telemetry::rapl::RaplSource;
use tokbench_telemetry::{detect, Sampler, Source};

fn cpu_time() -> Duration {
    // SAFETY: `ru` is a valid, writable rusage; RUSAGE_SELF always succeeds.
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut ru);
        ru
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

fn main() {
    let secs: u64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    // Where the kernel has no RAPL, a synthetic powercap tree (plain files) stands in, so
    // the cost of its reads is still counted.
    let fake_rapl = tempfile::tempdir().expect("temp dir");
    for pkg in ["intel-rapl:0", "intel-rapl:1"] {
        let d = fake_rapl.path().join(pkg);
        std::fs::create_dir_all(&d).expect("mkdir");
        std::fs::write(d.join("name"), "package-0\n").expect("write");
        std::fs::write(d.join("energy_uj"), "123456789\n").expect("write");
        std::fs::write(d.join("max_energy_range_uj"), "262143328850\n").expect("write");
    }
    let pids = Arc::new(Mutex::new(vec![std::process::id()]));
    for interval_ms in [100u64, 10] {
        let mut d = detect();
        if !d.sources.iter().any(|s| s.name() == "rapl") {
            let mut rapl: Box<dyn Source> = Box::new(RaplSource::new(
                fake_rapl.path(),
                Arc::new(tokbench_telemetry::fs::RealFs),
            ));
            rapl.probe();
            d.sources.push(rapl);
            println!(
                "(no RAPL here: a synthetic 2-package powercap tree in {:?})",
                fake_rapl.path()
            );
        }
        let names: Vec<&str> = d.sources.iter().map(|s| s.name()).collect();
        let cpu0 = cpu_time();
        let t0 = Instant::now();
        let sampler = Sampler::start(
            d.sources,
            Duration::from_millis(interval_ms),
            Arc::clone(&pids),
        );
        std::thread::sleep(Duration::from_secs(secs));
        let ticks = sampler.ticks();
        let samples = sampler.stop();
        let wall = t0.elapsed();
        let cpu = cpu_time() - cpu0;
        println!(
            "interval {interval_ms:>3} ms, sources {names:?}: {ticks} ticks, {} samples, \
             cpu {:.1} ms over {:.2} s = {:.3}% of one core, {:.1} us per tick",
            samples.len(),
            cpu.as_secs_f64() * 1e3,
            wall.as_secs_f64(),
            100.0 * cpu.as_secs_f64() / wall.as_secs_f64(),
            cpu.as_secs_f64() * 1e6 / ticks.max(1) as f64,
        );
    }
}
