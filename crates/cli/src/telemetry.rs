//! `tokbench telemetry probe`: what this machine can measure, and for each metric it cannot,
//! why. `tokbench telemetry capture`: a short raw sample stream to a file, so real output
//! from machines tokbench's developers do not have can become test fixtures.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;

use crate::exit::{BadInput, ExitCode};
use crate::output::table;
use crate::Format;

/// `tokbench telemetry`'s subcommands.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum TelemetryCommand {
    /// Every metric of every source, available or with the reason it is not.
    Probe {
        #[arg(short = 'o', long, value_enum, default_value = "table")]
        format: Format,
    },
    /// Record raw samples for a while into a JSON file (a fixture from another machine).
    #[command(
        after_help = "Example:\n  tokbench telemetry capture --seconds 30 --pid $(pgrep llama-server) --out h200.json"
    )]
    Capture(Recording),
    /// Record every NVML call tokbench makes, over time, as a file that
    /// TOKBENCH_NVML_REPLAY plays back (a test fixture from a machine with an NVIDIA GPU;
    /// the process is written as "backend" among the GPU's processes).
    #[command(
        after_help = "Example:\n  tokbench telemetry nvml-record --seconds 30 --pid $(pgrep llama-server) --out h200.json\n  TOKBENCH_NVML_REPLAY=h200.json tokbench run …"
    )]
    NvmlRecord(Recording),
}

/// What `telemetry capture` and `telemetry nvml-record` record, for how long.
#[derive(Debug, Clone, clap::Args)]
pub struct Recording {
    #[arg(long)]
    out: std::path::PathBuf,
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    #[arg(long, default_value_t = 100)]
    interval_ms: u64,
    /// Follow this process tree's memory (and its device memory).
    #[arg(long)]
    pid: Option<u32>,
}

/// `tokbench telemetry …`.
pub async fn command(cmd: &TelemetryCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        TelemetryCommand::Probe { format } => probe_command(*format).await,
        TelemetryCommand::Capture(r) => capture_command(r),
        TelemetryCommand::NvmlRecord(r) => nvml_record_command(r),
    }
}

impl Recording {
    fn check(&self) -> Result<(), BadInput> {
        let seconds = self.seconds;
        if !(seconds.is_finite() && seconds > 0.0 && seconds <= 3600.0) {
            return Err(BadInput(format!(
                "--seconds {seconds}: give 0 < seconds ≤ 3600"
            )));
        }
        if self.interval_ms == 0 {
            return Err(BadInput("--interval-ms must be at least 1".into()));
        }
        Ok(())
    }
}

fn nvml_record_command(r: &Recording) -> anyhow::Result<ExitCode> {
    use tokbench_telemetry::nvml_replay::Recorder;
    r.check()?;
    let Recording {
        out,
        seconds,
        interval_ms,
        pid,
    } = r;
    let (seconds, interval_ms, pid) = (*seconds, *interval_ms, *pid);
    let mut api = tokbench_telemetry::nvml::api()
        .map_err(|u| anyhow::anyhow!("cannot record NVML: {}", u.reason))?;
    let replayed =
        std::env::var_os(tokbench_telemetry::nvml::REPLAY_ENV).is_some_and(|v| !v.is_empty());
    let pids: Vec<u32> = pid.into_iter().collect();
    let t0 = tokbench_telemetry::monotonic_ns();
    api.before_sample(t0, &pids);
    let mut rec = Recorder::start(api.as_ref(), if replayed { "replayed" } else { "recorded" });
    let every = Duration::from_millis(interval_ms);
    let until = std::time::Instant::now() + Duration::from_secs_f64(seconds);
    let mut n = 0usize;
    loop {
        let t = tokbench_telemetry::monotonic_ns();
        api.before_sample(t, &pids);
        rec.read(api.as_ref(), t, pid);
        n += 1;
        let next = std::time::Instant::now() + every;
        if next > until {
            break;
        }
        std::thread::sleep(every);
    }
    let mut doc = rec.finish();
    doc["tokbench_version"] = env!("CARGO_PKG_VERSION").into();
    doc["interval_ms"] = interval_ms.into();
    std::fs::write(out, serde_json::to_string(&doc)? + "\n")
        .with_context(|| format!("cannot write {}", out.display()))?;
    eprintln!(
        "telemetry: {n} NVML readings over {seconds} s written to {} (TOKBENCH_NVML_REPLAY={} plays them back)",
        out.display(),
        out.display()
    );
    Ok(ExitCode::Ok)
}

async fn probe_command(format: Format) -> anyhow::Result<ExitCode> {
    format.require(
        "telemetry probe",
        &[Format::Table, Format::Csv, Format::Json],
    )?;
    // The sources, then each accelerator the engine's llama.cpp sees, in one shape.
    let mut reports: Vec<serde_json::Value> = tokbench_telemetry::probe_all()
        .iter()
        .map(serde_json::to_value)
        .collect::<Result<_, _>>()?;
    let engine = crate::run::own_engine()?;
    match tokbench_runner::probe_engine_devices(&engine).await {
        Ok(devices) => reports.extend(device_reports(&devices)),
        Err(e) => eprintln!(
            "telemetry: the engine's devices are not listed: the engine does not start: {e}"
        ),
    }
    if let Format::Json = format {
        outln!("{}", serde_json::to_string_pretty(&reports)?)?;
        return Ok(ExitCode::Ok);
    }
    let cols: Vec<String> = ["source", "metric", "status", "why not"]
        .map(String::from)
        .to_vec();
    let text = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_string();
    let mut rows = Vec::new();
    let mut environment = Vec::new();
    for r in &reports {
        let source = text(&r["source"]);
        for (metric, status) in r["metrics"].as_object().into_iter().flatten() {
            let (status, why) = match status.as_str() {
                Some(s) => (s.to_string(), String::new()),
                None => (
                    text(&status["kind"]).replace('_', " "),
                    text(&status["reason"]),
                ),
            };
            rows.push(vec![source.clone(), metric.clone(), status, why]);
        }
        for (k, v) in r["environment"].as_object().into_iter().flatten() {
            environment.push(format!("{source} {k}: {}", v.as_str().unwrap_or_default()));
        }
    }
    match format {
        Format::Csv => out!("{}", crate::output::csv(&cols, &rows))?,
        _ => out!("{}", table(&cols, &rows))?,
    }
    for line in environment {
        outln!("{line}")?;
    }
    Ok(ExitCode::Ok)
}

/// What telemetry measures of each accelerator the engine's llama.cpp sees, in the
/// sources' shape (`source`, `metrics`, `environment`): the device buffers llama.cpp
/// reports (model, KV, compute; from a llama-bench's or server's log likewise) always;
/// process memory and power only where a vendor library reads them, which for NVIDIA
/// GPUs is the `nvml` source.
fn device_reports(devices: &[tokbench_runner::EngineDevice]) -> Vec<serde_json::Value> {
    use serde_json::json;
    let no = |kind: &str, reason: String| json!({ "kind": kind, "reason": reason });
    devices
        .iter()
        .filter(|d| !d.backend.eq_ignore_ascii_case("CPU"))
        .map(|d| {
            let backend = d.backend.as_str();
            let vendor = d.description.to_ascii_lowercase();
            // An NVIDIA or AMD GPU, through whatever API: its vendor's source reads it.
            let by_vendor = if vendor.contains("nvidia") || backend.eq_ignore_ascii_case("cuda") {
                Some("nvml")
            } else if vendor.contains("amd")
                || vendor.contains("radeon")
                || ["rocm", "hip"].iter().any(|b| backend.eq_ignore_ascii_case(b))
            {
                Some("amdgpu")
            } else {
                None
            };
            let (memory, power) = match backend.to_ascii_lowercase().as_str() {
                _ if by_vendor.is_some() => {
                    let why = format!(
                        "measured by the {} source (its rows above)",
                        by_vendor.unwrap_or_default()
                    );
                    (no("not_applicable", why.clone()), no("not_applicable", why))
                }
                "vulkan" => (
                    no(
                        "not_supported",
                        "Vulkan tells only the process that allocates (VK_EXT_memory_budget, where the driver has it) how much it uses, so no sampling from outside sees the engine's, llama-bench's or a server's use over time: the engine reports its own at load and in each test (engine_device_used_bytes), and llama.cpp's buffer sizes per device are stored for every backend".into(),
                    ),
                    no(
                        "not_supported",
                        format!("no vendor library reads this device's power ({}); NVML covers NVIDIA GPUs only", d.description),
                    ),
                ),
                "metal" => (
                    no(
                        "not_supported",
                        "Metal's per-process GPU memory is not read: llama.cpp's buffer sizes per device are stored instead".into(),
                    ),
                    no(
                        "not_supported",
                        "macOS gives GPU power only to root (powermetrics)".into(),
                    ),
                ),
                _ => (
                    no(
                        "not_supported",
                        format!("no library reads a {backend} device's memory use: llama.cpp's buffer sizes per device are stored instead"),
                    ),
                    no(
                        "not_supported",
                        format!("no library reads a {backend} device's power"),
                    ),
                ),
            };
            // The engine reads its device's own account of free memory before the load,
            // after it and during each test (`placement_json.device_memory`): what the
            // engine took, where the device shows it.
            let engine_usage = match d.reports_no_usage() {
                Some(false) => json!("ok"),
                Some(true) => no(
                    "not_supported",
                    format!(
                        "{} reports all {} bytes free whatever is allocated ({}): no reading shows what a process uses; llama.cpp's buffer sizes per device are stored instead",
                        d.name,
                        d.memory_total,
                        if backend.eq_ignore_ascii_case("vulkan") {
                            "its Vulkan driver has no VK_EXT_memory_budget"
                        } else {
                            "its backend tracks no usage"
                        }
                    ),
                ),
                None => no(
                    "not_supported",
                    "the engine did not say what the device had free (an older engine)".into(),
                ),
            };
            let mut environment = json!({
                "description": d.description,
                "memory_total_bytes": d.memory_total.to_string(),
            });
            if let Some(free) = d.memory_free {
                environment["memory_free_bytes"] = free.to_string().into();
            }
            json!({
                "source": format!("llama.cpp {}", d.name),
                "metrics": {
                    "device_buffer_bytes": "ok",
                    "engine_device_used_bytes": engine_usage,
                    "vram_used_bytes": memory,
                    "power_w": power,
                },
                "environment": environment,
            })
        })
        .collect()
}

fn capture_command(r: &Recording) -> anyhow::Result<ExitCode> {
    r.check()?;
    let Recording {
        out,
        seconds,
        interval_ms,
        pid,
    } = r;
    let (seconds, interval_ms, pid) = (*seconds, *interval_ms, *pid);
    let detected = tokbench_telemetry::detect();
    let reports = serde_json::to_value(&detected.reports)?;
    let pids = Arc::new(Mutex::new(pid.into_iter().collect::<Vec<u32>>()));
    let sampler = tokbench_telemetry::Sampler::start(
        detected.sources,
        Duration::from_millis(interval_ms),
        pids,
    );
    std::thread::sleep(Duration::from_secs_f64(seconds));
    let samples = sampler.stop();
    let t0 = samples.first().map(|s| s.t_ns).unwrap_or(0);
    let rows: Vec<serde_json::Value> = samples
        .iter()
        .map(|s| {
            serde_json::json!({
                "t_ms": (s.t_ns - t0) as f64 / 1e6,
                "metric": s.metric.name(),
                "value": s.value,
                "source": s.source,
            })
        })
        .collect();
    let doc = serde_json::json!({
        "tokbench_version": env!("CARGO_PKG_VERSION"),
        "interval_ms": interval_ms,
        "seconds": seconds,
        "pid": pid,
        "sources": reports,
        "samples": rows,
    });
    std::fs::write(out, serde_json::to_string_pretty(&doc)?)
        .with_context(|| format!("cannot write {}", out.display()))?;
    eprintln!(
        "telemetry: {} samples over {seconds} s written to {}",
        samples.len(),
        out.display()
    );
    Ok(ExitCode::Ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_accelerator_says_what_it_measures_and_the_cpu_is_left_to_the_sources() {
        let devices: Vec<_> = [
            "CPU:CPU:Intel(R) Xeon(R):25274019840",
            "Vulkan:Vulkan0:llvmpipe (LLVM 15.0.6, 256 bits):2147483648",
            "CUDA:CUDA0:NVIDIA H200:150754820096",
            "Vulkan:Vulkan1:NVIDIA GeForce RTX 3090:25769803776",
        ]
        .iter()
        .map(|s| tokbench_runner::EngineDevice::parse(s).unwrap())
        .collect();
        let r = device_reports(&devices);
        assert_eq!(r.len(), 3, "{r:?}");
        assert_eq!(r[0]["source"], "llama.cpp Vulkan0");
        assert_eq!(r[0]["metrics"]["device_buffer_bytes"], "ok");
        assert_eq!(r[0]["metrics"]["power_w"]["kind"], "not_supported");
        assert!(r[0]["metrics"]["power_w"]["reason"]
            .as_str()
            .unwrap()
            .contains("llvmpipe"));
        assert!(r[0]["metrics"]["vram_used_bytes"]["reason"]
            .as_str()
            .unwrap()
            .contains("VK_EXT_memory_budget"));
        assert_eq!(r[0]["environment"]["memory_total_bytes"], "2147483648");
        // Whether the engine's own readings show its use depends on what the device
        // reported free: not known from these strings alone.
        assert!(r[0]["metrics"]["engine_device_used_bytes"]["reason"]
            .as_str()
            .unwrap()
            .contains("older engine"));
        assert_eq!(r[1]["metrics"]["power_w"]["kind"], "not_applicable");
        // An NVIDIA GPU through Vulkan is NVML's to measure.
        assert!(r[2]["metrics"]["power_w"]["reason"]
            .as_str()
            .unwrap()
            .contains("nvml"));
        let mut lavapipe = devices[1].clone();
        lavapipe.memory_free = Some(lavapipe.memory_total);
        let mut rtx = devices[3].clone();
        rtx.memory_free = Some(24_000_000_000);
        let seen = device_reports(&[lavapipe, rtx]);
        let why = &seen[0]["metrics"]["engine_device_used_bytes"];
        assert_eq!(why["kind"], "not_supported", "{why}");
        assert!(why["reason"]
            .as_str()
            .unwrap()
            .contains("no VK_EXT_memory_budget"));
        assert_eq!(seen[0]["environment"]["memory_free_bytes"], "2147483648");
        assert_eq!(seen[1]["metrics"]["engine_device_used_bytes"], "ok");
    }
}
