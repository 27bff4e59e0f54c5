//! Telemetry around the engine: one sampler for the whole run, following the engine child
//! currently running, and per cell the phase windows the engine reports (warm-up, each
//! repetition's prefill and decode, on the system's monotonic clock) turned into per-phase
//! figures and raw samples for the store.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokbench_core::record::{CellTelemetry, PhaseFigures, TelemetrySample};
use tokbench_telemetry::phase::summarize_by_phase;
use tokbench_telemetry::{Phase, PhaseSummary, PhaseWindow, Sampler};

/// The run's sampler and what this machine cannot measure.
pub struct RunTelemetry {
    sampler: Sampler,
    /// Every source's probe report (availability and environment), as JSON.
    reports: serde_json::Value,
    pids: Arc<Mutex<Vec<u32>>>,
    /// `power_w: nvml: no device (…)`, one line per metric no source can read.
    unavailable: Vec<String>,
    /// Whether some source reads the machine rather than the backend's processes.
    watches_machine: bool,
}

impl std::fmt::Debug for RunTelemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunTelemetry")
            .field("unavailable", &self.unavailable)
            .finish_non_exhaustive()
    }
}

impl RunTelemetry {
    /// Detects every source this machine has and starts sampling every `interval`.
    pub fn start(interval: Duration) -> RunTelemetry {
        let detected = tokbench_telemetry::detect();
        let mut available = std::collections::BTreeSet::new();
        let mut watches_machine = false;
        for r in &detected.reports {
            for (m, a) in &r.metrics {
                if a.is_ok() {
                    available.insert(m.name());
                    watches_machine |= m.is_machine_wide();
                }
            }
        }
        let mut unavailable = Vec::new();
        for r in &detected.reports {
            for (m, a) in &r.metrics {
                if let Err(why) = a {
                    if !available.contains(m.name()) {
                        unavailable.push(format!("{}: {}: {why}", m.name(), r.source));
                    }
                }
            }
        }
        let reports = serde_json::to_value(&detected.reports).unwrap_or_default();
        let pids = Arc::new(Mutex::new(Vec::new()));
        let sampler = Sampler::start(detected.sources, interval, Arc::clone(&pids));
        RunTelemetry {
            sampler,
            reports,
            pids,
            unavailable,
            watches_machine,
        }
    }

    /// Whether anything is left to watch once the backend has exited: some source reads
    /// the machine or its devices (power, device memory, clocks), not only the backend's
    /// processes. Without one, the idle after a model's last cell is not waited for.
    pub fn watches_machine(&self) -> bool {
        self.watches_machine
    }

    /// The sources' reports: `[{"source", "metrics", "environment"}]`.
    pub fn environment_json(&self) -> String {
        self.reports.to_string()
    }

    /// The engine child to follow (its whole process tree), or none.
    pub fn follow(&self, pid: Option<u32>) {
        *self
            .pids
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = pid.into_iter().collect();
    }

    /// What telemetry saw from `start_ns` to now, split by `windows`. Takes the samples out
    /// of the sampler: cells run one after another, so what came before `start_ns` is
    /// between cells and no later cell needs it, and the buffer stays one cell long.
    pub fn cell(&self, start_ns: u64, windows: &[PhaseWindow]) -> CellTelemetry {
        let mut samples = self.sampler.drain();
        samples.retain(|s| s.t_ns >= start_ns);
        let phases = summarize_by_phase(&samples, windows)
            .iter()
            .map(figures)
            .collect();
        let samples = samples
            .iter()
            .map(|s| TelemetrySample {
                t_ms: s.t_ns.saturating_sub(start_ns) as f64 / 1e6,
                phase: tokbench_telemetry::phase::phase_at(windows, s.t_ns)
                    .map_or("other", Phase::name)
                    .to_string(),
                metric: s.metric.name().to_string(),
                value: s.value,
                source: s.source.to_string(),
            })
            .collect();
        CellTelemetry {
            phases,
            samples,
            unavailable: self.unavailable.clone(),
        }
    }

    /// Stops the sampler (bounded wait).
    pub fn stop(self) {
        self.sampler.stop();
    }
}

fn figures(s: &PhaseSummary) -> PhaseFigures {
    let head = s.headline();
    let mut flags = Vec::new();
    if s.too_short {
        flags.push("too_short".to_string());
    }
    if s.energy.iter().any(|e| e.disagreement) {
        flags.push("counter_and_integral_disagree".to_string());
    }
    if s.energy.iter().any(|e| e.degraded) {
        flags.push("sample_gap".to_string());
    }
    let bytes = |v: Option<f64>| v.filter(|b| b.is_finite() && *b >= 0.0).map(|b| b as u64);
    PhaseFigures {
        phase: s.phase.name().to_string(),
        n_samples: u32::try_from(s.n_samples).unwrap_or(u32::MAX),
        max_gap_ms: s.max_gap_ns.map(|g| g as f64 / 1e6),
        power_avg_w: head.and_then(|e| e.avg_power_w),
        power_peak_w: head.and_then(|e| e.peak_power_w),
        energy_j: head.and_then(|e| e.energy_j),
        energy_method: head.and_then(|e| e.method).map(|m| m.name().to_string()),
        tokens: s.tokens,
        tokens_per_joule: head.and_then(|e| e.tokens_per_joule),
        vram_steady_bytes: bytes(s.vram_steady_bytes),
        vram_peak_bytes: bytes(s.vram_peak_bytes),
        vram_proc_peak_bytes: bytes(s.vram_proc_peak_bytes),
        rss_peak_bytes: bytes(s.rss_peak_bytes),
        flags,
    }
}

/// A phase window from an engine `[start, end]` pair.
pub fn window(phase: Phase, ns: Option<[u64; 2]>, tokens: Option<u64>) -> Option<PhaseWindow> {
    let [start_ns, end_ns] = ns?;
    (end_ns >= start_ns).then_some(PhaseWindow {
        phase,
        start_ns,
        end_ns,
        tokens,
    })
}
