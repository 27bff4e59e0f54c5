//! `tokbench telemetry probe`: what this machine can measure, and for each metric it cannot,
//! why. `tokbench telemetry capture`: a short raw sample stream to a file, so real output
//! from machines tokbench's developers do not have can become test fixtures.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;

use crate::exit::{BadInput, ExitCode};
use crate::output::table;
use crate::Format;

fn kind_name(k: tokbench_telemetry::UnavailableKind) -> &'static str {
    use tokbench_telemetry::UnavailableKind as K;
    match k {
        K::NoDevice => "no device",
        K::LibraryMissing => "library missing",
        K::NotSupported => "not supported",
        K::NoPermission => "no permission",
        K::NotApplicable => "not applicable",
    }
}

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
pub fn command(cmd: &TelemetryCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        TelemetryCommand::Probe { format } => probe_command(*format),
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

fn probe_command(format: Format) -> anyhow::Result<ExitCode> {
    format.require(
        "telemetry probe",
        &[Format::Table, Format::Csv, Format::Json],
    )?;
    let reports = tokbench_telemetry::probe_all();
    if let Format::Json = format {
        outln!("{}", serde_json::to_string_pretty(&reports)?)?;
        return Ok(ExitCode::Ok);
    }
    let cols: Vec<String> = ["source", "metric", "status", "why not"]
        .map(String::from)
        .to_vec();
    let mut rows = Vec::new();
    for r in &reports {
        for (m, a) in &r.metrics {
            let (status, why) = match a {
                Ok(()) => ("ok".to_string(), String::new()),
                Err(u) => (kind_name(u.kind).to_string(), u.reason.clone()),
            };
            rows.push(vec![
                r.source.to_string(),
                m.name().to_string(),
                status,
                why,
            ]);
        }
    }
    match format {
        Format::Csv => out!("{}", crate::output::csv(&cols, &rows))?,
        _ => out!("{}", table(&cols, &rows))?,
    }
    for r in &reports {
        for (k, v) in &r.environment {
            outln!("{} {k}: {v}", r.source)?;
        }
    }
    Ok(ExitCode::Ok)
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
