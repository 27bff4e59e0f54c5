//! Phase windows and what the hardware did inside them: average and peak power, energy,
//! tokens per joule, device and process memory, sample coverage. Pure functions over
//! samples, so every rule here is tested with made-up timelines.
//!
//! Rules, in one place:
//!
//! - **Clipping.** A window is `[start_ns, end_ns]`. A series' value at an edge is linearly
//!   interpolated between the samples around it. Where the series has no sample on one side
//!   of the edge, but one within its median sampling interval on the other side, the value
//!   is extended: power is held at the nearest sample; an energy counter is extrapolated
//!   along the slope of its nearest two samples. Farther than that, the edge is uncovered
//!   and energy is unknown (`None`), never zero.
//! - **Energy.** Per source: the counter difference at the edges (`energy_j`, `cpu_energy_j`)
//!   when the source has a counter covering both edges and it did not go backwards;
//!   otherwise the trapezoidal integral of `power_w` over the window. Both are kept; the
//!   used one is [`EnergyMethod`]. A counter read again before it updated adds nothing:
//!   only the first reading of each value counts. Where a window is shorter than 20 of
//!   the counter's update periods (the median gap between its changes) and power was
//!   sampled, the integral is used: the counter's steps would dominate its difference.
//! - **Disagreement.** When both exist and differ by more than 10% of the larger one.
//! - **Average power** = energy ÷ duration (so average power, energy and tokens per joule
//!   come from one triple and agree). **Peak power** = the largest `power_w` sample inside
//!   the window, or, for a counter-only source (RAPL), the largest rate between two
//!   consecutive counter readings that overlap the window.
//! - **Too short.** A window (or a phase's set of windows) is too short to trust when fewer
//!   than 2 samples of the series fall inside it, or it lasts less than 2 of the series'
//!   median sampling intervals. **Degraded** when the largest gap between samples
//!   (counting the window edges) exceeds 2 median intervals.
//! - **Memory.** Device memory steady = median of `vram_used_bytes` inside the windows,
//!   peak = maximum; process memory peaks are maxima of `vram_proc_bytes`, `rss_bytes` and
//!   `rss_hwm_bytes` inside the windows. Where two sources give the same memory metric, the
//!   one that appears first in the samples is used.

use std::collections::BTreeMap;

use crate::metric::{Metric, Sample};

/// A stretch of a test, as the runner marks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Before the model loads: the machine's idle draw.
    IdleBefore,
    Load,
    /// Not scored.
    Warmup,
    Prefill,
    Decode,
    /// After the work, model still loaded: active idle.
    IdleAfter,
}

impl Phase {
    pub const ALL: [Phase; 6] = [
        Phase::IdleBefore,
        Phase::Load,
        Phase::Warmup,
        Phase::Prefill,
        Phase::Decode,
        Phase::IdleAfter,
    ];

    /// Stable name, for `telemetry_sample.phase` and reports.
    pub fn name(self) -> &'static str {
        match self {
            Phase::IdleBefore => "idle_before",
            Phase::Load => "load",
            Phase::Warmup => "warmup",
            Phase::Prefill => "prefill",
            Phase::Decode => "decode",
            Phase::IdleAfter => "idle_after",
        }
    }

    pub fn from_name(name: &str) -> Option<Phase> {
        Phase::ALL.into_iter().find(|p| p.name() == name)
    }
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One marked window, in `CLOCK_MONOTONIC` nanoseconds (see [`crate::clock`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct PhaseWindow {
    pub phase: Phase,
    pub start_ns: u64,
    pub end_ns: u64,
    /// Tokens processed in the window (prompt tokens for prefill, generated for decode).
    pub tokens: Option<u64>,
}

impl PhaseWindow {
    pub fn duration_ns(&self) -> u64 {
        self.end_ns.saturating_sub(self.start_ns)
    }

    /// Returns true if and only if `t_ns` lies in the window (edges included).
    pub fn contains(&self, t_ns: u64) -> bool {
        self.start_ns <= t_ns && t_ns <= self.end_ns
    }
}

/// The phase whose window holds `t_ns`, the first one listed if windows overlap; `None`
/// between windows.
pub fn phase_at(windows: &[PhaseWindow], t_ns: u64) -> Option<Phase> {
    windows.iter().find(|w| w.contains(t_ns)).map(|w| w.phase)
}

/// How a window's energy was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EnergyMethod {
    /// Difference of a hardware energy counter at the window edges.
    Counter,
    /// Trapezoidal integral of sampled power.
    Integrated,
}

impl EnergyMethod {
    pub fn name(self) -> &'static str {
        match self {
            EnergyMethod::Counter => "counter",
            EnergyMethod::Integrated => "integrated",
        }
    }
}

/// What is being powered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Domain {
    /// A GPU (NVML, amdgpu) or the SoC (powermetrics): `power_w`, `energy_j`.
    Device,
    /// The CPU package (RAPL): `cpu_energy_j`.
    CpuPackage,
}

/// Power and energy from one source over a phase's windows.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct EnergySummary {
    pub source: &'static str,
    pub domain: Domain,
    /// The energy used: the counter's where it covers every window, else the integral.
    pub energy_j: Option<f64>,
    pub method: Option<EnergyMethod>,
    pub counter_energy_j: Option<f64>,
    pub integrated_energy_j: Option<f64>,
    /// Counter and integral both exist and differ by more than 10% of the larger.
    pub disagreement: bool,
    /// `energy_j` ÷ duration.
    pub avg_power_w: Option<f64>,
    pub peak_power_w: Option<f64>,
    /// Tokens ÷ `energy_j`; `None` without tokens or energy. tok/s per 100 W is 100 × this.
    pub tokens_per_joule: Option<f64>,
    /// Samples of this source's series (power, else counter) inside the windows.
    pub n_samples: usize,
    /// Largest gap between those samples, window edges counted.
    pub max_gap_ns: Option<u64>,
    pub too_short: bool,
    pub degraded: bool,
}

/// Everything measured over one phase (one window, or all the windows of a phase).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PhaseSummary {
    pub phase: Phase,
    pub windows: usize,
    pub duration_ns: u64,
    /// Sum over windows; `None` if any window lacks a count.
    pub tokens: Option<u64>,
    /// One entry per source with power or energy: devices first, then CPU packages, each in
    /// the order the sources first appear in the samples.
    pub energy: Vec<EnergySummary>,
    pub vram_steady_bytes: Option<f64>,
    pub vram_peak_bytes: Option<f64>,
    pub vram_proc_peak_bytes: Option<f64>,
    pub rss_peak_bytes: Option<f64>,
    pub rss_hwm_bytes: Option<f64>,
    /// Samples of the most-sampled series inside the windows (≈ sampler ticks).
    pub n_samples: usize,
    /// Largest gap in that series, window edges counted.
    pub max_gap_ns: Option<u64>,
    /// The [`PhaseSummary::headline`] series is too short to trust (see the module rules);
    /// true when there is no series at all.
    pub too_short: bool,
}

impl PhaseSummary {
    /// The energy figure to lead with: a device measured by its energy counter, else a
    /// device with any energy, else the first entry (the CPU package).
    pub fn headline(&self) -> Option<&EnergySummary> {
        headline_of(&self.energy)
    }
}

fn headline_of(energy: &[EnergySummary]) -> Option<&EnergySummary> {
    let device = |e: &&EnergySummary| e.domain == Domain::Device;
    energy
        .iter()
        .filter(device)
        .find(|e| e.method == Some(EnergyMethod::Counter))
        .or_else(|| energy.iter().filter(device).find(|e| e.energy_j.is_some()))
        .or_else(|| energy.first())
}

/// A time series of one metric from one source, sorted by time.
#[derive(Debug, Clone, Default)]
struct Series {
    t: Vec<u64>,
    v: Vec<f64>,
}

impl Series {
    fn len(&self) -> usize {
        self.t.len()
    }

    fn median_gap(&self) -> Option<u64> {
        if self.t.len() < 2 {
            return None;
        }
        let mut gaps: Vec<u64> = self.t.windows(2).map(|w| w[1] - w[0]).collect();
        gaps.sort_unstable();
        Some(gaps[gaps.len() / 2])
    }

    fn lerp(&self, i: usize, j: usize, t: u64) -> f64 {
        let (t0, t1) = (self.t[i] as f64, self.t[j] as f64);
        if t1 == t0 {
            return self.v[j];
        }
        self.v[i] + (self.v[j] - self.v[i]) * (t as f64 - t0) / (t1 - t0)
    }

    /// The value at `t`: interpolated inside, extended within `tol` outside (held, or along
    /// the nearest slope when `linear`), else `None`.
    fn value_at(&self, t: u64, tol: u64, linear: bool) -> Option<f64> {
        let n = self.len();
        if n == 0 {
            return None;
        }
        let i = self.t.partition_point(|&x| x < t);
        if i < n && self.t[i] == t {
            return Some(self.v[i]);
        }
        if i > 0 && i < n {
            return Some(self.lerp(i - 1, i, t));
        }
        let (near, other) = if i == 0 {
            (0, 1)
        } else {
            (n - 1, n.wrapping_sub(2))
        };
        if self.t[near].abs_diff(t) > tol {
            return None;
        }
        if linear && n >= 2 {
            Some(self.lerp(other.min(near), other.max(near), t))
        } else {
            Some(self.v[near])
        }
    }

    /// Indices of the samples inside `[a, b]`.
    fn inside(&self, a: u64, b: u64) -> std::ops::Range<usize> {
        let lo = self.t.partition_point(|&x| x < a);
        let hi = self.t.partition_point(|&x| x <= b);
        lo..hi.max(lo)
    }

    /// Trapezoidal integral over `[a, b]` in value·seconds.
    fn integrate(&self, a: u64, b: u64, tol: u64) -> Option<f64> {
        let va = self.value_at(a, tol, false)?;
        let vb = self.value_at(b, tol, false)?;
        let mut pts: Vec<(u64, f64)> = vec![(a, va)];
        for k in self.inside(a, b) {
            if self.t[k] > a && self.t[k] < b {
                pts.push((self.t[k], self.v[k]));
            }
        }
        pts.push((b, vb));
        Some(
            pts.windows(2)
                .map(|w| (w[1].0 - w[0].0) as f64 * 1e-9 * (w[0].1 + w[1].1) / 2.0)
                .sum(),
        )
    }

    /// Counter difference over `[a, b]`; `None` when an edge is uncovered or the counter
    /// went backwards (a driver reload, a reset).
    fn counter_delta(&self, a: u64, b: u64, tol: u64) -> Option<f64> {
        let va = self.value_at(a, tol, true)?;
        let vb = self.value_at(b, tol, true)?;
        let r = self.inside(a, b);
        let mut prev = va;
        for k in r {
            if self.v[k] < prev - 1e-9 {
                return None;
            }
            prev = self.v[k];
        }
        (vb >= prev - 1e-9).then_some(vb - va)
    }

    fn max_in(&self, a: u64, b: u64) -> Option<f64> {
        self.v[self.inside(a, b)].iter().copied().reduce(f64::max)
    }

    /// The largest rate (per second) between consecutive samples overlapping `[a, b]`.
    fn peak_rate(&self, a: u64, b: u64) -> Option<f64> {
        self.t
            .windows(2)
            .zip(self.v.windows(2))
            .filter(|(t, _)| t[1] > a && t[0] < b && t[1] > t[0])
            .map(|(t, v)| (v[1] - v[0]) / ((t[1] - t[0]) as f64 * 1e-9))
            .reduce(f64::max)
    }

    /// Largest gap in `[a, t_1, …, t_n, b]`.
    fn max_gap(&self, a: u64, b: u64) -> u64 {
        let mut prev = a;
        let mut gap = 0;
        for k in self.inside(a, b) {
            gap = gap.max(self.t[k] - prev);
            prev = self.t[k];
        }
        gap.max(b.saturating_sub(prev))
    }
}

/// Samples grouped by (source, metric), each sorted by time, plus the order sources first
/// appear in.
struct Timeline {
    series: BTreeMap<(&'static str, Metric), Series>,
    order: Vec<&'static str>,
}

impl Timeline {
    fn new(samples: &[Sample]) -> Timeline {
        let mut series: BTreeMap<(&'static str, Metric), Series> = BTreeMap::new();
        let mut order: Vec<&'static str> = Vec::new();
        let mut sorted: Vec<&Sample> = samples.iter().filter(|s| s.value.is_finite()).collect();
        sorted.sort_by_key(|s| s.t_ns);
        for s in &sorted {
            if !order.contains(&s.source) {
                order.push(s.source);
            }
            let e = series.entry((s.source, s.metric)).or_default();
            // An energy counter read again before it updated says nothing new: only the
            // first reading of each value is kept, the nearest to when the counter moved.
            // Kept, the repeats would make a staircase whose edges, interpolated, put a
            // whole update's joules into a window that saw part of it (NVML's counter
            // moves about every 100 ms; read at 50 ms, a 200 ms window came out at 791 W
            // on a 700 W card).
            if s.metric.is_energy_counter() && e.v.last() == Some(&s.value) {
                continue;
            }
            e.t.push(s.t_ns);
            e.v.push(s.value);
        }
        Timeline { series, order }
    }

    fn get(&self, source: &'static str, metric: Metric) -> Option<&Series> {
        self.series.get(&(source, metric)).filter(|s| s.len() > 0)
    }

    /// The first source (in order of appearance) that has `metric`.
    fn first_with(&self, metric: Metric) -> Option<&Series> {
        self.order.iter().find_map(|src| self.get(src, metric))
    }
}

/// One summary per window, in the order given.
pub fn summarize(samples: &[Sample], windows: &[PhaseWindow]) -> Vec<PhaseSummary> {
    let tl = Timeline::new(samples);
    windows
        .iter()
        .map(|w| summarize_windows(&tl, std::slice::from_ref(w)))
        .collect()
}

/// One summary over several windows of the same phase (one per repetition): energy and
/// tokens are summed, duration too, peaks are maxima. `None` when `windows` is empty. The
/// summary carries the first window's phase.
pub fn summarize_phase(samples: &[Sample], windows: &[PhaseWindow]) -> Option<PhaseSummary> {
    if windows.is_empty() {
        return None;
    }
    Some(summarize_windows(&Timeline::new(samples), windows))
}

/// Windows grouped by phase, one summary per phase present, in [`Phase::ALL`] order.
pub fn summarize_by_phase(samples: &[Sample], windows: &[PhaseWindow]) -> Vec<PhaseSummary> {
    let tl = Timeline::new(samples);
    Phase::ALL
        .iter()
        .filter_map(|p| {
            let ws: Vec<PhaseWindow> = windows.iter().filter(|w| w.phase == *p).copied().collect();
            (!ws.is_empty()).then(|| summarize_windows(&tl, &ws))
        })
        .collect()
}

fn too_short(series: &Series, n_inside: usize, duration_ns: u64) -> bool {
    let Some(gap) = series.median_gap() else {
        return true;
    };
    n_inside < 2 || duration_ns < 2 * gap
}

/// The fewest counter steps a window must span for the counter's difference to be used
/// where power was sampled too: at most a step off at each edge, 20 steps bound the error
/// to 10% and make it a few percent in practice. Two were not enough: on the replayed H200
/// (counter stepping every 100 ms, read every 50 ms) decode windows of about 0.4 s came out
/// at 725 W on a card whose power never passed 692 W. For NVML's counter this is 2 s;
/// RAPL's steps every millisecond or so.
const COUNTER_MIN_STEPS: u64 = 20;

fn energy_of(
    source: &'static str,
    domain: Domain,
    power: Option<&Series>,
    counter: Option<&Series>,
    windows: &[PhaseWindow],
    tokens: Option<u64>,
) -> EnergySummary {
    let duration_ns: u64 = windows.iter().map(PhaseWindow::duration_ns).sum();
    let sum_over = |f: &dyn Fn(&PhaseWindow) -> Option<f64>| -> Option<f64> {
        windows.iter().map(f).sum::<Option<f64>>()
    };
    let counter_energy_j = counter.and_then(|c| {
        let tol = c.median_gap().unwrap_or(0);
        sum_over(&|w| c.counter_delta(w.start_ns, w.end_ns, tol))
    });
    let integrated_energy_j = power.and_then(|p| {
        let tol = p.median_gap().unwrap_or(0);
        sum_over(&|w| p.integrate(w.start_ns, w.end_ns, tol))
    });
    // A counter moves in steps (its update period: the median gap between its changes),
    // and when each step happened is known only to within a reading: each edge of a
    // window can be off by up to a step. Over fewer than COUNTER_MIN_STEPS steps that
    // error is too large a share, and sampled power, where there is some, says more.
    let coarse = counter.and_then(Series::median_gap).is_some_and(|period| {
        windows
            .iter()
            .any(|w| w.duration_ns() < COUNTER_MIN_STEPS * period)
    });
    let counter_used = counter_energy_j.filter(|_| !(coarse && integrated_energy_j.is_some()));
    let (energy_j, method) = match (counter_used, integrated_energy_j) {
        (Some(c), _) => (Some(c), Some(EnergyMethod::Counter)),
        (None, Some(i)) => (Some(i), Some(EnergyMethod::Integrated)),
        (None, None) => (None, None),
    };
    let disagreement = match (counter_used, integrated_energy_j) {
        (Some(c), Some(i)) => (c - i).abs() > 0.10 * c.abs().max(i.abs()),
        _ => false,
    };
    let peak_power_w = match (power, counter) {
        (Some(p), _) => windows
            .iter()
            .filter_map(|w| {
                p.max_in(w.start_ns, w.end_ns).or_else(|| {
                    let tol = p.median_gap().unwrap_or(0);
                    let a = p.value_at(w.start_ns, tol, false);
                    let b = p.value_at(w.end_ns, tol, false);
                    a.into_iter().chain(b).reduce(f64::max)
                })
            })
            .reduce(f64::max),
        (None, Some(c)) => windows
            .iter()
            .filter_map(|w| c.peak_rate(w.start_ns, w.end_ns))
            .reduce(f64::max),
        (None, None) => None,
    };
    let avg_power_w = energy_j
        .filter(|_| duration_ns > 0)
        .map(|e| e / (duration_ns as f64 * 1e-9));
    let tokens_per_joule = match (tokens, energy_j) {
        (Some(t), Some(e)) if e > 0.0 => Some(t as f64 / e),
        _ => None,
    };
    let (n_samples, max_gap_ns, too_short_, degraded) = match power.or(counter) {
        Some(s) => {
            let n: usize = windows
                .iter()
                .map(|w| s.inside(w.start_ns, w.end_ns).len())
                .sum();
            let gap = windows
                .iter()
                .map(|w| s.max_gap(w.start_ns, w.end_ns))
                .max();
            let degraded = match (s.median_gap(), gap) {
                (Some(m), Some(g)) => g > 2 * m,
                _ => true,
            };
            (n, gap, too_short(s, n, duration_ns), degraded)
        }
        None => (0, None, true, true),
    };
    EnergySummary {
        source,
        domain,
        energy_j,
        method,
        counter_energy_j,
        integrated_energy_j,
        disagreement,
        avg_power_w,
        peak_power_w,
        tokens_per_joule,
        n_samples,
        max_gap_ns,
        too_short: too_short_,
        degraded,
    }
}

fn summarize_windows(tl: &Timeline, windows: &[PhaseWindow]) -> PhaseSummary {
    // A window that ends before it starts is taken as empty.
    let windows: Vec<PhaseWindow> = windows
        .iter()
        .map(|w| PhaseWindow {
            end_ns: w.end_ns.max(w.start_ns),
            ..*w
        })
        .collect();
    let windows = windows.as_slice();
    let duration_ns: u64 = windows.iter().map(PhaseWindow::duration_ns).sum();
    let tokens: Option<u64> = windows.iter().map(|w| w.tokens).sum();

    let mut energy = Vec::new();
    for domain in [Domain::Device, Domain::CpuPackage] {
        for &src in &tl.order {
            let (power, counter) = match domain {
                Domain::Device => (tl.get(src, Metric::PowerW), tl.get(src, Metric::EnergyJ)),
                Domain::CpuPackage => (None, tl.get(src, Metric::CpuEnergyJ)),
            };
            if power.is_none() && counter.is_none() {
                continue;
            }
            energy.push(energy_of(src, domain, power, counter, windows, tokens));
        }
    }

    let values_in = |metric: Metric| -> Vec<f64> {
        tl.first_with(metric)
            .map(|s| {
                windows
                    .iter()
                    .flat_map(|w| s.v[s.inside(w.start_ns, w.end_ns)].iter().copied())
                    .collect()
            })
            .unwrap_or_default()
    };
    let max_of = |metric: Metric| values_in(metric).into_iter().reduce(f64::max);
    let mut vram = values_in(Metric::VramUsedBytes);
    vram.sort_by(f64::total_cmp);
    let vram_steady_bytes = (!vram.is_empty()).then(|| tokbench_core::stats::median_sorted(&vram));

    // Coverage of the most-sampled series.
    let busiest = tl.series.values().max_by_key(|s| {
        windows
            .iter()
            .map(|w| s.inside(w.start_ns, w.end_ns).len())
            .sum::<usize>()
    });
    let (n_samples, max_gap_ns) = match busiest {
        Some(s) => (
            windows
                .iter()
                .map(|w| s.inside(w.start_ns, w.end_ns).len())
                .sum(),
            windows
                .iter()
                .map(|w| s.max_gap(w.start_ns, w.end_ns))
                .max(),
        ),
        None => (0, None),
    };
    let too_short = headline_of(&energy).map(|e| e.too_short).unwrap_or(true);

    PhaseSummary {
        phase: windows[0].phase,
        windows: windows.len(),
        duration_ns,
        tokens,
        energy,
        vram_steady_bytes,
        vram_peak_bytes: vram.last().copied(),
        vram_proc_peak_bytes: max_of(Metric::VramProcBytes),
        rss_peak_bytes: max_of(Metric::RssBytes),
        rss_hwm_bytes: max_of(Metric::RssHwmBytes),
        n_samples,
        max_gap_ns,
        too_short,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{Clock, ManualClock};

    const MS: u64 = 1_000_000;
    const S: u64 = 1_000_000_000;

    fn s(t_ns: u64, metric: Metric, value: f64, source: &'static str) -> Sample {
        Sample {
            t_ns,
            metric,
            value,
            source,
        }
    }

    fn w(phase: Phase, a: u64, b: u64, tokens: Option<u64>) -> PhaseWindow {
        PhaseWindow {
            phase,
            start_ns: a,
            end_ns: b,
            tokens,
        }
    }

    /// A fake GPU driven by an injected clock: power steps from 100 W to 300 W at
    /// `step_ns`; the counter integrates the true power exactly.
    fn gpu_timeline(clock: &ManualClock, until_ns: u64, step_ns: u64, period: u64) -> Vec<Sample> {
        let mut out = Vec::new();
        let mut energy = 0.0;
        let mut last = clock.now_ns();
        let power_at = |t: u64| if t < step_ns { 100.0 } else { 300.0 };
        while clock.now_ns() <= until_ns {
            let t = clock.now_ns();
            // Exact energy since `last`, splitting at the step.
            let mid = step_ns.clamp(last, t);
            energy += (mid - last) as f64 * 1e-9 * power_at(last)
                + (t - mid) as f64 * 1e-9 * power_at(t.max(step_ns));
            last = t;
            out.push(s(t, Metric::PowerW, power_at(t), "nvml"));
            out.push(s(t, Metric::EnergyJ, 5000.0 + energy, "nvml"));
            out.push(s(t, Metric::VramUsedBytes, (t / S) as f64, "nvml"));
            clock.advance(period);
        }
        out
    }

    /// NVML's counter moves every 100 ms while the sampler reads every 50 ms: every other
    /// reading repeats the last. A short window must not take a whole step's joules for
    /// part of one (it came out at 791 W on a 700 W card), and a long one keeps the counter.
    #[test]
    fn a_counter_that_updates_slower_than_it_is_read_is_not_taken_for_a_staircase() {
        let watts = 665.0;
        let mut samples = Vec::new();
        for k in 0..=100u64 {
            let t = k * 50 * MS;
            // The counter as of its last 100 ms update.
            let updated = t / (100 * MS) * (100 * MS);
            samples.push(s(t, Metric::PowerW, watts, "nvml"));
            samples.push(s(
                t,
                Metric::EnergyJ,
                1e6 + watts * updated as f64 * 1e-9,
                "nvml",
            ));
        }
        let short = summarize(&samples, &[w(Phase::Prefill, 1_020 * MS, 1_170 * MS, None)]);
        let e = short[0].headline().unwrap();
        assert_eq!(e.method, Some(EnergyMethod::Integrated), "{e:?}");
        assert!((e.avg_power_w.unwrap() - watts).abs() < 1.0, "{e:?}");
        // A 0.4 s window, 4 steps: still the integral.
        let mid = summarize(&samples, &[w(Phase::Decode, 1_020 * MS, 1_420 * MS, None)]);
        let e = mid[0].headline().unwrap();
        assert_eq!(e.method, Some(EnergyMethod::Integrated), "{e:?}");
        let long = summarize(&samples, &[w(Phase::Decode, 520 * MS, 4_520 * MS, None)]);
        let e = long[0].headline().unwrap();
        assert_eq!(e.method, Some(EnergyMethod::Counter), "{e:?}");
        assert!(
            (e.avg_power_w.unwrap() - watts).abs() / watts < 0.03,
            "{e:?}"
        );
    }

    #[test]
    fn counter_energy_at_the_edges_is_interpolated() {
        let clock = ManualClock::new(0);
        let samples = gpu_timeline(&clock, 10 * S, 5 * S, 100 * MS);
        // Window 2.05 s .. 4.05 s, inside the 100 W part: 200 J.
        let sum = &summarize(
            &samples,
            &[w(Phase::Prefill, 2050 * MS, 4050 * MS, Some(400))],
        )[0];
        let e = sum.headline().unwrap();
        assert_eq!(e.source, "nvml");
        assert_eq!(e.method, Some(EnergyMethod::Counter));
        assert!((e.energy_j.unwrap() - 200.0).abs() < 1e-6, "{e:?}");
        assert!((e.integrated_energy_j.unwrap() - 200.0).abs() < 1e-6);
        assert!(!e.disagreement);
        assert!((e.avg_power_w.unwrap() - 100.0).abs() < 1e-6);
        assert_eq!(e.peak_power_w, Some(100.0));
        assert!((e.tokens_per_joule.unwrap() - 2.0).abs() < 1e-9);
        assert_eq!(e.n_samples, 20);
        assert_eq!(e.max_gap_ns, Some(100 * MS));
        assert!(!e.too_short && !e.degraded);
        assert!(!sum.too_short);
    }

    #[test]
    fn integration_clips_at_window_edges_across_a_step() {
        let clock = ManualClock::new(0);
        let samples: Vec<Sample> = gpu_timeline(&clock, 10 * S, 5 * S, 100 * MS)
            .into_iter()
            .filter(|s| s.metric != Metric::EnergyJ)
            .collect();
        // 4 s .. 6 s: 1 s at 100 W, 1 s at 300 W = 400 J, except the trapezoid across the
        // step (4.9 s → 5.0 s ramps 100 → 300), which adds 10 J.
        let sum = &summarize(&samples, &[w(Phase::Decode, 4 * S, 6 * S, Some(100))])[0];
        let e = sum.headline().unwrap();
        assert_eq!(e.method, Some(EnergyMethod::Integrated));
        assert_eq!(e.counter_energy_j, None);
        assert!((e.energy_j.unwrap() - 410.0).abs() < 1e-6, "{e:?}");
        assert_eq!(e.peak_power_w, Some(300.0));
        // Mid-interval edges: 4.05 s .. 4.25 s at 100 W = 20 J exactly.
        let sum = &summarize(&samples, &[w(Phase::Decode, 4050 * MS, 4250 * MS, None)])[0];
        let e = sum.headline().unwrap();
        assert!((e.energy_j.unwrap() - 20.0).abs() < 1e-6, "{e:?}");
        assert_eq!(e.tokens_per_joule, None);
    }

    #[test]
    fn disagreement_over_ten_percent_is_flagged() {
        let clock = ManualClock::new(0);
        let mut samples = gpu_timeline(&clock, 10 * S, 20 * S, 100 * MS);
        // The power readings run 15% high (a 1 s average lagging, a bad sensor).
        for x in samples.iter_mut().filter(|s| s.metric == Metric::PowerW) {
            x.value *= 1.15;
        }
        let e = summarize(&samples, &[w(Phase::Decode, S, 9 * S, None)])[0]
            .headline()
            .cloned()
            .unwrap();
        assert_eq!(e.method, Some(EnergyMethod::Counter));
        assert!((e.energy_j.unwrap() - 800.0).abs() < 1e-6);
        assert!(e.disagreement, "{e:?}");
        // 5% high stays quiet.
        for x in samples.iter_mut().filter(|s| s.metric == Metric::PowerW) {
            x.value = x.value / 1.15 * 1.05;
        }
        let e = summarize(&samples, &[w(Phase::Decode, S, 9 * S, None)])[0]
            .headline()
            .cloned()
            .unwrap();
        assert!(!e.disagreement, "{e:?}");
    }

    #[test]
    fn short_windows_are_flagged_and_uncovered_ones_unknown() {
        let clock = ManualClock::new(0);
        let samples = gpu_timeline(&clock, 2 * S, 20 * S, 100 * MS);
        // 150 ms: one sample inside, under two intervals.
        let e = summarize(
            &samples,
            &[w(Phase::Prefill, 1020 * MS, 1170 * MS, Some(10))],
        )[0]
        .headline()
        .cloned()
        .unwrap();
        assert!(e.too_short);
        assert!(e.energy_j.is_some());
        // A window far past the last sample: no energy, not zero.
        let sum = &summarize(&samples, &[w(Phase::IdleAfter, 5 * S, 6 * S, None)])[0];
        let e = sum.headline().unwrap();
        assert_eq!(e.energy_j, None);
        assert_eq!(e.avg_power_w, None);
        assert!(e.too_short);
        assert_eq!(sum.vram_peak_bytes, None);
        // A gap of 1 s in the middle of a window marks it degraded.
        let gappy: Vec<Sample> = samples
            .iter()
            .copied()
            .filter(|x| !(800 * MS..1800 * MS).contains(&x.t_ns))
            .collect();
        let e = summarize(&gappy, &[w(Phase::Decode, 200 * MS, 1900 * MS, None)])[0]
            .headline()
            .cloned()
            .unwrap();
        assert!(e.degraded);
        assert_eq!(e.max_gap_ns, Some(1100 * MS));
    }

    #[test]
    fn edge_a_little_before_the_first_sample_is_extended() {
        let clock = ManualClock::new(1000 * MS);
        let samples = gpu_timeline(&clock, 3 * S, 20 * S, 100 * MS);
        // Starts 30 ms before the sampler's first tick: held/extrapolated within one interval.
        // 2 s: the 20 counter steps a counter's difference needs.
        let e = summarize(&samples, &[w(Phase::IdleBefore, 970 * MS, 2970 * MS, None)])[0]
            .headline()
            .cloned()
            .unwrap();
        assert_eq!(e.method, Some(EnergyMethod::Counter));
        assert!((e.energy_j.unwrap() - 200.0).abs() < 1e-6, "{e:?}");
        assert!((e.integrated_energy_j.unwrap() - 200.0).abs() < 1e-6);
        // 300 ms before: uncovered.
        let e = summarize(&samples, &[w(Phase::IdleBefore, 700 * MS, 1970 * MS, None)])[0]
            .headline()
            .cloned()
            .unwrap();
        assert_eq!(e.energy_j, None);
    }

    #[test]
    fn a_counter_that_goes_backwards_falls_back_to_integration() {
        let clock = ManualClock::new(0);
        let mut samples = gpu_timeline(&clock, 4 * S, 20 * S, 100 * MS);
        for x in samples
            .iter_mut()
            .filter(|x| x.metric == Metric::EnergyJ && x.t_ns >= 2 * S)
        {
            x.value -= 4000.0; // driver reloaded
        }
        let e = summarize(&samples, &[w(Phase::Decode, S, 3 * S, None)])[0]
            .headline()
            .cloned()
            .unwrap();
        assert_eq!(e.counter_energy_j, None);
        assert_eq!(e.method, Some(EnergyMethod::Integrated));
        assert!((e.energy_j.unwrap() - 200.0).abs() < 1e-6);
    }

    #[test]
    fn repetitions_sum_energy_and_tokens() {
        let clock = ManualClock::new(0);
        let mut samples = gpu_timeline(&clock, 10 * S, 5 * S, 100 * MS);
        // RAPL-like CPU counter: 50 W steady, read every 100 ms.
        for k in 0..=100u64 {
            samples.push(s(k * 100 * MS, Metric::CpuEnergyJ, k as f64 * 5.0, "rapl"));
        }
        samples.push(s(3 * S, Metric::RssBytes, 7e9, "procfs"));
        samples.push(s(7 * S, Metric::RssBytes, 9e9, "procfs"));
        let windows = [
            w(Phase::Decode, S, 2 * S, Some(50)),         // 100 J
            w(Phase::Decode, 6 * S, 7 * S, Some(50)),     // 300 J
            w(Phase::Prefill, 3 * S, 3500 * MS, Some(9)), // another phase
        ];
        let sum = summarize_phase(&samples, &windows[..2]).unwrap();
        assert_eq!(sum.phase, Phase::Decode);
        assert_eq!(sum.windows, 2);
        assert_eq!(sum.tokens, Some(100));
        assert_eq!(sum.duration_ns, 2 * S);
        let gpu = &sum.energy[0];
        assert_eq!(gpu.domain, Domain::Device);
        assert!((gpu.energy_j.unwrap() - 400.0).abs() < 1e-6);
        assert!((gpu.avg_power_w.unwrap() - 200.0).abs() < 1e-6);
        assert_eq!(gpu.peak_power_w, Some(300.0));
        assert!((gpu.tokens_per_joule.unwrap() - 0.25).abs() < 1e-9);
        let cpu = &sum.energy[1];
        assert_eq!((cpu.source, cpu.domain), ("rapl", Domain::CpuPackage));
        assert!((cpu.energy_j.unwrap() - 100.0).abs() < 1e-6);
        assert!((cpu.peak_power_w.unwrap() - 50.0).abs() < 1e-6);
        assert_eq!(cpu.integrated_energy_j, None);
        assert_eq!(sum.rss_peak_bytes, Some(9e9));

        let by = summarize_by_phase(&samples, &windows);
        assert_eq!(
            by.iter().map(|p| p.phase).collect::<Vec<_>>(),
            vec![Phase::Prefill, Phase::Decode]
        );
        assert_eq!(by[1], sum);
        assert_eq!(summarize_phase(&samples, &[]), None);
    }

    #[test]
    fn vram_steady_is_the_median_and_peak_the_max() {
        let samples: Vec<Sample> = [1.0, 5.0, 2.0, 2.0, 9.0, 2.0]
            .iter()
            .enumerate()
            .map(|(i, v)| s(i as u64 * 100 * MS, Metric::VramUsedBytes, *v, "amdgpu"))
            .chain([s(200 * MS, Metric::VramProcBytes, 3.0, "amdgpu")])
            .collect();
        let sum = &summarize(&samples, &[w(Phase::Load, 0, S, None)])[0];
        assert_eq!(sum.vram_steady_bytes, Some(2.0));
        assert_eq!(sum.vram_peak_bytes, Some(9.0));
        assert_eq!(sum.vram_proc_peak_bytes, Some(3.0));
        assert!(sum.energy.is_empty());
        assert!(sum.too_short);
        assert_eq!(sum.n_samples, 6);
        assert_eq!(sum.max_gap_ns, Some(500 * MS));
    }

    #[test]
    fn a_reversed_window_is_empty_not_a_panic() {
        let clock = ManualClock::new(0);
        let samples = gpu_timeline(&clock, 3 * S, 20 * S, 100 * MS);
        let sum = &summarize(&samples, &[w(Phase::Decode, 2 * S, S, Some(5))])[0];
        assert_eq!(sum.duration_ns, 0);
        let e = sum.headline().unwrap();
        assert_eq!(e.energy_j, Some(0.0));
        assert_eq!(e.avg_power_w, None);
        assert_eq!(e.tokens_per_joule, None);
        assert!(e.too_short);
    }

    #[test]
    fn summaries_serialise_with_stable_names() {
        let clock = ManualClock::new(0);
        let samples = gpu_timeline(&clock, 3 * S, 20 * S, 100 * MS);
        let sum = summarize_phase(&samples, &[w(Phase::IdleBefore, S, 3 * S, Some(3))]).unwrap();
        let json = serde_json::to_value(&sum).unwrap();
        assert_eq!(json["phase"], "idle_before");
        assert_eq!(json["energy"][0]["method"], "counter");
        assert_eq!(json["energy"][0]["domain"], "device");
        assert_eq!(json["energy"][0]["source"], "nvml");
        assert!(json["rss_peak_bytes"].is_null());
        let one = serde_json::to_value(samples[0]).unwrap();
        assert_eq!(one["metric"], "power_w");
    }

    #[test]
    fn phase_names_round_trip_and_phase_at_finds_windows() {
        for p in Phase::ALL {
            assert_eq!(Phase::from_name(p.name()), Some(p));
        }
        let ws = [w(Phase::Load, 10, 20, None), w(Phase::Decode, 30, 40, None)];
        assert_eq!(phase_at(&ws, 15), Some(Phase::Load));
        assert_eq!(phase_at(&ws, 25), None);
        assert_eq!(phase_at(&ws, 40), Some(Phase::Decode));
    }
}
