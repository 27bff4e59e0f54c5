//! The regression gate behind `tokbench check`: one result judged against its series'
//! history, as a pure function of numbers (the caller reads the store and the clock).
//!
//! This module owns the policy:
//! - a result is its repetitions' median; a result whose repetitions' CV exceeds
//!   [`GateConfig::noisy_cv`] is *noisy*: it is never judged and never enters a baseline;
//! - the baseline is the newest [`GateConfig::baseline_max`] usable results of the series
//!   within [`GateConfig::window_days`], after its latest change point; with fewer than
//!   [`GateConfig::baseline_min`] the verdict is [`VerdictKind::Insufficient`];
//! - the test works on `ln(value)`: a one-sided Student-t prediction interval for one new
//!   result, `mean ± t(confidence, n − 1) · sd · √(1 + 1/n)`, *and* a practical floor (the
//!   result must also be at least 5% worse than the baseline's geometric mean for speeds and
//!   latencies, 3% for memory). Both breached in the bad direction: [`VerdictKind::Suspect`];
//!   in the good direction: [`VerdictKind::Improvement`], reported, never fatal;
//! - [`confirm`]: a suspect re-measured at once (twice, same machine) is a
//!   [`VerdictKind::Regression`] only if every re-measurement is a suspect too;
//! - a [`Verdict`] carries everything that decided it (baseline n and which results, log
//!   mean and sd, the t quantile, the limits, the floor, the configuration), so a stored
//!   verdict can be audited without re-reading the history.

use std::fmt;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::stats::{mean_sd, student_t_quantile, Summary};

/// Which way a metric improves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    HigherIsBetter,
    LowerIsBetter,
}

/// What a metric measures, which picks its practical floor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MetricKind {
    /// Tokens per second ([`GateConfig::floor_speed`]).
    Throughput,
    /// Milliseconds ([`GateConfig::floor_speed`] too).
    Latency,
    /// Bytes ([`GateConfig::floor_memory`]).
    Memory,
}

/// A gated metric; its name is the result field's ([`Metric::name`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    PrefillTps,
    DecodeTps,
    TtftMs,
    RssPeakBytes,
    VramPeakBytes,
}

impl Metric {
    pub const ALL: [Metric; 5] = [
        Metric::PrefillTps,
        Metric::DecodeTps,
        Metric::TtftMs,
        Metric::RssPeakBytes,
        Metric::VramPeakBytes,
    ];

    /// The field name in results and in the store: `decode_tps`, `ttft_ms`, …
    pub fn name(self) -> &'static str {
        match self {
            Metric::PrefillTps => "prefill_tps",
            Metric::DecodeTps => "decode_tps",
            Metric::TtftMs => "ttft_ms",
            Metric::RssPeakBytes => "rss_peak_bytes",
            Metric::VramPeakBytes => "vram_peak_bytes",
        }
    }

    /// The metric called `name` ([`Metric::name`]), if any.
    pub fn from_name(name: &str) -> Option<Metric> {
        Metric::ALL.into_iter().find(|m| m.name() == name)
    }

    pub fn kind(self) -> MetricKind {
        match self {
            Metric::PrefillTps | Metric::DecodeTps => MetricKind::Throughput,
            Metric::TtftMs => MetricKind::Latency,
            Metric::RssPeakBytes | Metric::VramPeakBytes => MetricKind::Memory,
        }
    }

    pub fn direction(self) -> Direction {
        match self.kind() {
            MetricKind::Throughput => Direction::HigherIsBetter,
            MetricKind::Latency | MetricKind::Memory => Direction::LowerIsBetter,
        }
    }
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The gate's settings. [`GateConfig::validate`] before use: [`judge`] answers
/// [`VerdictKind::Invalid`] to a configuration that fails it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GateConfig {
    /// At most this many results, the newest, form the baseline (30).
    pub baseline_max: usize,
    /// Fewer usable results than this: [`VerdictKind::Insufficient`] (5; at least 2, the
    /// fewest that have an sd).
    pub baseline_min: usize,
    /// Results older than this, relative to the judged one, are left out (90).
    pub window_days: f64,
    /// One-sided level of the prediction interval (0.995: a steady series breaches it on
    /// about one night in 200, before the floor and the confirmation runs).
    pub confidence: f64,
    /// A result whose repetitions' CV exceeds this is noisy ([`NOISY_CV`](tokbench_core::stats::NOISY_CV), 0.05). Why 5%: a result whose
    /// own repetitions scatter by more than the 5% floor cannot resolve a 5% change, and
    /// its median is unlikely to be a quiet machine's number; it is also the threshold the
    /// notes on Bencher, asv and conbench converge on for "noisy".
    pub noisy_cv: f64,
    /// Practical floor for throughput and latency, a fraction (0.05: 5% worse).
    pub floor_speed: f64,
    /// Practical floor for memory, a fraction (0.03).
    pub floor_memory: f64,
}

impl Default for GateConfig {
    fn default() -> Self {
        Self {
            baseline_max: 30,
            baseline_min: 5,
            window_days: 90.0,
            confidence: 0.995,
            noisy_cv: tokbench_core::stats::NOISY_CV,
            floor_speed: 0.05,
            floor_memory: 0.03,
        }
    }
}

/// Why a [`GateConfig`] cannot be used.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum GateConfigError {
    #[error("baseline_min must be at least 2, got {0}")]
    BaselineMin(usize),
    #[error("baseline_max ({max}) must be at least baseline_min ({min})")]
    BaselineMax { max: usize, min: usize },
    #[error("window_days must be a positive number, got {0}")]
    WindowDays(f64),
    #[error("confidence must lie strictly between 0.5 and 1, got {0}")]
    Confidence(f64),
    #[error("noisy_cv must be a positive number, got {0}")]
    NoisyCv(f64),
    #[error("{name} must lie in [0, 1), got {value}")]
    Floor { name: &'static str, value: f64 },
}

impl GateConfig {
    /// The practical floor of `metric`, a fraction.
    pub fn floor(&self, metric: Metric) -> f64 {
        match metric.kind() {
            MetricKind::Throughput | MetricKind::Latency => self.floor_speed,
            MetricKind::Memory => self.floor_memory,
        }
    }

    /// Checks every setting's range.
    pub fn validate(&self) -> Result<(), GateConfigError> {
        let GateConfig {
            baseline_max,
            baseline_min,
            window_days,
            confidence,
            noisy_cv,
            floor_speed,
            floor_memory,
        } = *self;
        if baseline_min < 2 {
            return Err(GateConfigError::BaselineMin(baseline_min));
        }
        if baseline_max < baseline_min {
            return Err(GateConfigError::BaselineMax {
                max: baseline_max,
                min: baseline_min,
            });
        }
        if !(window_days.is_finite() && window_days > 0.0) {
            return Err(GateConfigError::WindowDays(window_days));
        }
        if !(confidence > 0.5 && confidence < 1.0) {
            return Err(GateConfigError::Confidence(confidence));
        }
        if !(noisy_cv.is_finite() && noisy_cv > 0.0) {
            return Err(GateConfigError::NoisyCv(noisy_cv));
        }
        for (name, value) in [("floor_speed", floor_speed), ("floor_memory", floor_memory)] {
            if !(0.0..1.0).contains(&value) {
                return Err(GateConfigError::Floor { name, value });
            }
        }
        Ok(())
    }
}

/// One result of a series as the gate sees it.
///
/// Change points: the caller marks every result of the series that predates the series'
/// latest change point with `before_change_point`; [`judge`] leaves them out, so the
/// baseline restarts from the results after it (and is `insufficient` until there are
/// [`GateConfig::baseline_min`] of them). A flag rather than a time, because a change point
/// belongs to a run, and run order, not the clock, says which side a result is on.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Observation {
    /// The result's value: the median of its repetitions, in the metric's unit.
    pub value: f64,
    /// The CV of its repetitions; `None` when unknown (one repetition): not noisy.
    pub cv: Option<f64>,
    /// Days before the judged result (≥ 0); ignored for the judged result itself.
    pub age_days: f64,
    /// True if and only if the result predates the series' latest change point.
    pub before_change_point: bool,
}

impl Observation {
    /// A result of known value and age, CV unknown, after any change point.
    pub fn new(value: f64, age_days: f64) -> Self {
        Self {
            value,
            cv: None,
            age_days,
            before_change_point: false,
        }
    }

    /// The result summarized by `summary`: its median, its CV.
    pub fn from_summary(summary: &Summary, age_days: f64) -> Self {
        Self {
            value: summary.median,
            cv: summary.cv,
            age_days,
            before_change_point: false,
        }
    }

    /// Returns true if and only if the result's CV is known and exceeds `noisy_cv` (a NaN
    /// CV counts as noisy).
    pub fn is_noisy(&self, noisy_cv: f64) -> bool {
        self.cv.is_some_and(|cv| cv.is_nan() || cv > noisy_cv)
    }

    /// Returns true if and only if the value is a positive finite number (it has a log).
    fn has_log(&self) -> bool {
        self.value.is_finite() && self.value > 0.0
    }
}

/// The gate's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VerdictKind {
    /// Within the limits.
    Ok,
    /// Better than the baseline beyond the interval and the floor: reported, never fatal.
    Improvement,
    /// Worse beyond the interval and the floor: re-measure, then [`confirm`].
    Suspect,
    /// A suspect whose re-measurements were all suspects ([`confirm`] only): fails the gate.
    Regression,
    /// A suspect that a re-measurement did not confirm ([`confirm`] only): logged, passes.
    Transient,
    /// The result's repetitions are too spread out to judge: never gates.
    Noisy,
    /// Fewer than [`GateConfig::baseline_min`] usable results in the baseline: never fails.
    Insufficient,
    /// The value is not a positive finite number, or the configuration is invalid. Never
    /// fails here: a result with no usable value is the runner's failure, a bad
    /// configuration the loader's ([`GateConfig::validate`]).
    Invalid,
}

impl VerdictKind {
    /// Returns true if and only if this verdict fails the gate: a confirmed
    /// [`VerdictKind::Regression`].
    pub fn fails(self) -> bool {
        self == VerdictKind::Regression
    }
}

/// History entries left out of the baseline, by reason (each counted once, in this order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Excluded {
    /// Value not a positive finite number, or age not a finite number ≥ 0.
    pub invalid: usize,
    pub before_change_point: usize,
    pub noisy: usize,
    pub outside_window: usize,
    /// Usable but older than the newest [`GateConfig::baseline_max`].
    pub beyond_max: usize,
}

/// A judged result with everything that decided it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    pub kind: VerdictKind,
    pub metric: Metric,
    pub direction: Direction,
    /// The judged value and its CV.
    pub value: f64,
    pub cv: Option<f64>,
    /// Results in the baseline, and their positions in the `history` slice, newest first,
    /// so that the caller can store which results they were.
    pub baseline_n: usize,
    pub baseline_indices: Vec<usize>,
    pub excluded: Excluded,
    /// Mean and sample sd of `ln(value)` over the baseline (the sd needs 2 results).
    pub baseline_mean_log: Option<f64>,
    pub baseline_sd_log: Option<f64>,
    /// `exp(baseline_mean_log)`: the baseline's geometric mean, in the metric's unit.
    pub baseline: Option<f64>,
    /// `t(confidence, baseline_n − 1)`, when the baseline is large enough to judge.
    pub t_quantile: Option<f64>,
    /// The prediction interval for one new result, in the metric's unit: `exp(mean ∓ h)`,
    /// `h = t · sd · √(1 + 1/n)`; each bound is one-sided at `confidence`.
    pub interval_low: Option<f64>,
    pub interval_high: Option<f64>,
    /// The practical floor used, a fraction.
    pub floor: f64,
    /// The value at or beyond which the result is a suspect: the farther of the interval
    /// bound and `baseline · (1 ∓ floor)` on the bad side.
    pub limit: Option<f64>,
    /// The same on the good side, for [`VerdictKind::Improvement`].
    pub improvement_limit: Option<f64>,
    /// `value / baseline`.
    pub ratio: Option<f64>,
    /// The settings the verdict was made under.
    pub config: GateConfig,
    /// One sentence for people.
    pub reason: String,
}

/// Judges `current` against `history` (the series' earlier ok results, any order, the
/// judged one not among them) for `metric`. See the module docs for the policy.
///
/// The baseline is the newest (smallest `age_days`, input order among equals)
/// `baseline_max` of the history entries that have a positive finite value and a finite
/// age ≥ 0, are not `before_change_point`, are not noisy and lie within `window_days`.
/// A baseline with zero spread (memory figures often repeat to the byte) is judged by the
/// floor alone, never skipped.
pub fn judge(
    current: &Observation,
    history: &[Observation],
    metric: Metric,
    cfg: &GateConfig,
) -> Verdict {
    let direction = metric.direction();
    let floor = cfg.floor(metric);

    let mut excluded = Excluded::default();
    let mut usable: Vec<usize> = Vec::new();
    for (i, o) in history.iter().enumerate() {
        if !(o.has_log() && o.age_days.is_finite() && o.age_days >= 0.0) {
            excluded.invalid += 1;
        } else if o.before_change_point {
            excluded.before_change_point += 1;
        } else if o.is_noisy(cfg.noisy_cv) {
            excluded.noisy += 1;
        } else if o.age_days > cfg.window_days {
            excluded.outside_window += 1;
        } else {
            usable.push(i);
        }
    }
    usable.sort_by(|&i, &j| history[i].age_days.total_cmp(&history[j].age_days));
    if usable.len() > cfg.baseline_max {
        excluded.beyond_max = usable.len() - cfg.baseline_max;
        usable.truncate(cfg.baseline_max);
    }

    let logs: Vec<f64> = usable.iter().map(|&i| history[i].value.ln()).collect();
    let n = logs.len();
    let (mean_log, sd_log) = if n == 0 {
        (None, None)
    } else {
        let (m, s) = mean_sd(&logs);
        (Some(m), s)
    };
    let baseline = mean_log.map(f64::exp);
    let ratio = baseline
        .filter(|_| current.has_log())
        .map(|b| current.value / b);

    let config_error = cfg.validate().err();
    let enough = n >= cfg.baseline_min.max(2);
    let mut t_quantile = None;
    let mut interval = None;
    let mut limits = None;
    if let (true, None, Some(m), Some(s), Some(b)) =
        (enough, &config_error, mean_log, sd_log, baseline)
    {
        let t = student_t_quantile(cfg.confidence, (n - 1) as f64);
        let h = t * s * (1.0 + 1.0 / n as f64).sqrt();
        let (low, high) = ((m - h).exp(), (m + h).exp());
        let (down, up) = (b * (1.0 - floor), b * (1.0 + floor));
        t_quantile = Some(t);
        interval = Some((low, high));
        limits = Some(match direction {
            // (bad side, good side)
            Direction::HigherIsBetter => (low.min(down), high.max(up)),
            Direction::LowerIsBetter => (high.max(up), low.min(down)),
        });
    }

    let v = current.value;
    let worse = |limit: f64| match direction {
        Direction::HigherIsBetter => v <= limit,
        Direction::LowerIsBetter => v >= limit,
    };
    let better = |limit: f64| match direction {
        Direction::HigherIsBetter => v >= limit,
        Direction::LowerIsBetter => v <= limit,
    };
    let versus = |b: f64| {
        format!(
            "{metric} {} is {:+.1}% against the baseline {} (geometric mean of {n})",
            num(v),
            (v / b - 1.0) * 100.0,
            num(b)
        )
    };
    let (kind, reason) = if let Some(e) = config_error {
        (
            VerdictKind::Invalid,
            format!("invalid gate configuration: {e}"),
        )
    } else if !current.has_log() {
        (
            VerdictKind::Invalid,
            format!("{metric} {v} is not a positive finite number"),
        )
    } else if current.is_noisy(cfg.noisy_cv) {
        let cv = current.cv.unwrap_or(f64::NAN);
        (
            VerdictKind::Noisy,
            format!(
                "{metric} repetitions have a CV of {:.1}%, above {:.1}%: a noisy result never gates",
                cv * 100.0,
                cfg.noisy_cv * 100.0
            ),
        )
    } else if let (Some((bad, good)), Some(b)) = (limits, baseline) {
        let conf = cfg.confidence;
        let floor_pct = floor * 100.0;
        if worse(bad) {
            (
                VerdictKind::Suspect,
                format!(
                    "{}: at or beyond the limit {} (the {conf} prediction interval and the {floor_pct:.1}% floor); suspect until re-measured",
                    versus(b),
                    num(bad)
                ),
            )
        } else if better(good) {
            (
                VerdictKind::Improvement,
                format!(
                    "{}: at or beyond the improvement limit {} (the {conf} prediction interval and the {floor_pct:.1}% floor)",
                    versus(b),
                    num(good)
                ),
            )
        } else {
            (
                VerdictKind::Ok,
                format!("{}: within the limit {}", versus(b), num(bad)),
            )
        }
    } else {
        (
            VerdictKind::Insufficient,
            format!(
                "{n} usable results in the baseline, {} needed: not judged",
                cfg.baseline_min.max(2)
            ),
        )
    };

    Verdict {
        kind,
        metric,
        direction,
        value: v,
        cv: current.cv,
        baseline_n: n,
        baseline_indices: usable,
        excluded,
        baseline_mean_log: mean_log,
        baseline_sd_log: sd_log,
        baseline,
        t_quantile,
        interval_low: interval.map(|i| i.0),
        interval_high: interval.map(|i| i.1),
        floor,
        limit: limits.map(|l| l.0),
        improvement_limit: limits.map(|l| l.1),
        ratio,
        config: *cfg,
        reason,
    }
}

/// How many re-measurements the harness takes of a suspect, at once, on the same machine.
pub const CONFIRM_RUNS: usize = 2;

/// The final word on `first` after its re-measurements, each judged by [`judge`] against
/// the same history as `first` (neither `first` nor each other among it).
///
/// Policy:
/// - anything but a [`VerdictKind::Suspect`] stands as it is;
/// - a suspect with no re-measurement stays [`VerdictKind::Suspect`]: unconfirmed, which
///   does not fail the gate (the caller may escalate after consecutive nights);
/// - a suspect is a [`VerdictKind::Regression`] if and only if every re-measurement (the
///   harness takes [`CONFIRM_RUNS`]) is a suspect of the same metric too; a re-measurement
///   that is ok, noisy, insufficient, an improvement or another metric's makes it
///   [`VerdictKind::Transient`].
///
/// Requiring every re-measurement to breach both the interval and the floor makes a
/// confirmed false alarm on steady noise about 0.005³ per series and night when the runs
/// are independent; correlated slowness of one machine (heat, clocks) weakens that, which
/// is what the floor guards against.
pub fn confirm(first: &Verdict, remeasured: &[Verdict]) -> VerdictKind {
    if first.kind != VerdictKind::Suspect {
        return first.kind;
    }
    if remeasured.is_empty() {
        return VerdictKind::Suspect;
    }
    let all_suspect = remeasured
        .iter()
        .all(|r| r.kind == VerdictKind::Suspect && r.metric == first.metric);
    if all_suspect {
        VerdictKind::Regression
    } else {
        VerdictKind::Transient
    }
}

/// A value with 4 significant digits for reasons (bytes without a decimal point).
fn num(v: f64) -> String {
    if v.abs() >= 1000.0 {
        format!("{v:.0}")
    } else {
        format!(
            "{:.1$}",
            v,
            (3 - v.abs().log10().floor().max(-3.0) as i32).max(0) as usize
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn steady(values: &[f64]) -> Vec<Observation> {
        values
            .iter()
            .enumerate()
            .map(|(i, &v)| Observation::new(v, (i + 1) as f64))
            .collect()
    }

    /// Ten results around 100 with a log sd of about 1%.
    fn history() -> Vec<Observation> {
        steady(&[
            100.0, 101.0, 99.0, 100.5, 99.5, 100.2, 99.8, 101.2, 98.8, 100.0,
        ])
    }

    #[test]
    fn metric_names_directions_floors() {
        let cfg = GateConfig::default();
        for m in Metric::ALL {
            assert_eq!(Metric::from_name(m.name()), Some(m));
            assert_eq!(
                serde_json::to_string(&m).unwrap(),
                format!("\"{}\"", m.name())
            );
        }
        assert_eq!(Metric::from_name("tps"), None);
        assert_eq!(Metric::DecodeTps.direction(), Direction::HigherIsBetter);
        assert_eq!(Metric::PrefillTps.direction(), Direction::HigherIsBetter);
        assert_eq!(Metric::TtftMs.direction(), Direction::LowerIsBetter);
        assert_eq!(Metric::VramPeakBytes.direction(), Direction::LowerIsBetter);
        assert_eq!(cfg.floor(Metric::DecodeTps), 0.05);
        assert_eq!(cfg.floor(Metric::TtftMs), 0.05);
        assert_eq!(cfg.floor(Metric::RssPeakBytes), 0.03);
        assert_eq!(cfg.validate(), Ok(()));
    }

    #[test]
    fn config_validation() {
        let bad = |f: fn(&mut GateConfig)| {
            let mut c = GateConfig::default();
            f(&mut c);
            c.validate().unwrap_err()
        };
        assert_eq!(bad(|c| c.baseline_min = 1), GateConfigError::BaselineMin(1));
        assert!(matches!(
            bad(|c| c.baseline_max = 3),
            GateConfigError::BaselineMax { .. }
        ));
        assert!(matches!(
            bad(|c| c.confidence = 1.0),
            GateConfigError::Confidence(_)
        ));
        assert!(matches!(
            bad(|c| c.window_days = f64::NAN),
            GateConfigError::WindowDays(_)
        ));
        assert!(matches!(
            bad(|c| c.noisy_cv = 0.0),
            GateConfigError::NoisyCv(_)
        ));
        assert!(matches!(
            bad(|c| c.floor_memory = -0.1),
            GateConfigError::Floor { .. }
        ));
        let c = GateConfig {
            confidence: 2.0,
            ..GateConfig::default()
        };
        let v = judge(
            &Observation::new(50.0, 0.0),
            &history(),
            Metric::DecodeTps,
            &c,
        );
        assert_eq!(v.kind, VerdictKind::Invalid);
        assert!(v.reason.contains("confidence"), "{}", v.reason);
    }

    #[test]
    fn verdict_carries_its_inputs() {
        let cfg = GateConfig::default();
        let h = history();
        let v = judge(&Observation::new(100.3, 0.0), &h, Metric::DecodeTps, &cfg);
        assert_eq!(v.kind, VerdictKind::Ok);
        assert_eq!(v.baseline_n, 10);
        assert_eq!(v.baseline_indices, (0..10).collect::<Vec<_>>());
        let logs: Vec<f64> = h.iter().map(|o| o.value.ln()).collect();
        let (m, s) = mean_sd(&logs);
        assert_eq!(v.baseline_mean_log, Some(m));
        assert_eq!(v.baseline_sd_log, s);
        let t = student_t_quantile(0.995, 9.0);
        assert_eq!(v.t_quantile, Some(t));
        let hw = t * s.unwrap() * (1.1_f64).sqrt();
        assert!((v.interval_low.unwrap() - (m - hw).exp()).abs() < 1e-9);
        assert!((v.interval_high.unwrap() - (m + hw).exp()).abs() < 1e-9);
        // The interval (≈ ±2.7%) is narrower than the floor: the floor sets both limits.
        assert!((v.limit.unwrap() - m.exp() * 0.95).abs() < 1e-9);
        assert!((v.improvement_limit.unwrap() - m.exp() * 1.05).abs() < 1e-9);
        assert!((v.ratio.unwrap() - 100.3 / m.exp()).abs() < 1e-12);
        assert_eq!(v.floor, 0.05);
        assert_eq!(v.config, cfg);
        let json = serde_json::to_string(&v).unwrap();
        // serde_json may round the last bit of a float; the verdict reads back otherwise whole.
        let back: Verdict = serde_json::from_str(&json).unwrap();
        assert_eq!(
            (back.kind, back.baseline_n, &back.reason),
            (v.kind, v.baseline_n, &v.reason)
        );
        assert_eq!(back.baseline_indices, v.baseline_indices);
        assert!((back.limit.unwrap() - v.limit.unwrap()).abs() < 1e-9);
        assert!(json.contains("\"kind\":\"ok\""), "{json}");
    }

    #[test]
    fn both_interval_and_floor_are_needed() {
        let cfg = GateConfig::default();
        let h = history();
        // 4% slower: beyond the interval's ≈2.7%, short of the 5% floor.
        let v = judge(&Observation::new(96.0, 0.0), &h, Metric::DecodeTps, &cfg);
        assert!(v.interval_low.unwrap() > 96.0);
        assert_eq!(v.kind, VerdictKind::Ok, "{}", v.reason);
        // 6% slower: both.
        let v = judge(&Observation::new(94.0, 0.0), &h, Metric::DecodeTps, &cfg);
        assert_eq!(v.kind, VerdictKind::Suspect, "{}", v.reason);
        assert_eq!(
            v.reason,
            "decode_tps 94.00 is -6.0% against the baseline 100.00 (geometric mean of 10): \
             at or beyond the limit 95.00 (the 0.995 prediction interval and the 5.0% floor); \
             suspect until re-measured"
        );
        // A wide history: 8% slower is past the floor, inside the interval.
        let wide = steady(&[100.0, 110.0, 90.0, 105.0, 95.0, 108.0, 92.0]);
        let v = judge(&Observation::new(92.0, 0.0), &wide, Metric::DecodeTps, &cfg);
        assert_eq!(v.kind, VerdictKind::Ok, "{}", v.reason);
        assert!(v.limit.unwrap() < v.baseline.unwrap() * 0.95);
    }

    #[test]
    fn improvements_and_lower_is_better() {
        let cfg = GateConfig::default();
        let h = history();
        let v = judge(&Observation::new(110.0, 0.0), &h, Metric::DecodeTps, &cfg);
        assert_eq!(v.kind, VerdictKind::Improvement);
        assert!(!confirm(&v, &[]).fails());
        // For a latency the same numbers read the other way.
        let v = judge(&Observation::new(110.0, 0.0), &h, Metric::TtftMs, &cfg);
        assert_eq!(v.kind, VerdictKind::Suspect, "{}", v.reason);
        assert!(v.limit.unwrap() > v.baseline.unwrap());
        let v = judge(&Observation::new(90.0, 0.0), &h, Metric::TtftMs, &cfg);
        assert_eq!(v.kind, VerdictKind::Improvement);
    }

    #[test]
    fn zero_spread_memory_is_judged_by_the_floor() {
        let cfg = GateConfig::default();
        let h = steady(&[4e9; 8]);
        let v = judge(
            &Observation::new(4.1e9, 0.0),
            &h,
            Metric::VramPeakBytes,
            &cfg,
        );
        assert_eq!(v.baseline_sd_log, Some(0.0));
        assert_eq!(v.kind, VerdictKind::Ok, "{}", v.reason); // +2.5% < 3%
        let v = judge(
            &Observation::new(4.2e9, 0.0),
            &h,
            Metric::VramPeakBytes,
            &cfg,
        );
        assert_eq!(v.kind, VerdictKind::Suspect, "{}", v.reason); // +5%
        assert!((v.limit.unwrap() - 4.12e9).abs() < 1.0);
    }

    #[test]
    fn noisy_results_never_gate_and_leave_the_baseline() {
        let cfg = GateConfig::default();
        let mut current = Observation::new(50.0, 0.0);
        current.cv = Some(0.08);
        let v = judge(&current, &history(), Metric::DecodeTps, &cfg);
        assert_eq!(v.kind, VerdictKind::Noisy);
        assert_eq!(v.baseline_n, 10); // the baseline is still recorded
        current.cv = Some(0.04);
        assert_eq!(
            judge(&current, &history(), Metric::DecodeTps, &cfg).kind,
            VerdictKind::Suspect
        );

        let mut h = history();
        for o in h.iter_mut().take(6) {
            o.cv = Some(0.2);
        }
        let v = judge(&Observation::new(100.0, 0.0), &h, Metric::DecodeTps, &cfg);
        assert_eq!(v.kind, VerdictKind::Insufficient, "{}", v.reason);
        assert_eq!(v.excluded.noisy, 6);
        assert_eq!(v.baseline_n, 4);
        assert!(!v.kind.fails());
    }

    #[test]
    fn window_max_and_order() {
        let cfg = GateConfig::default();
        // 40 results, given oldest first; the newest 30 within 90 days form the baseline.
        let h: Vec<Observation> = (0..40)
            .map(|i| Observation::new(100.0 + f64::from(i % 3), f64::from(40 - i)))
            .collect();
        let v = judge(&Observation::new(100.0, 0.0), &h, Metric::DecodeTps, &cfg);
        assert_eq!(v.baseline_n, 30);
        assert_eq!(v.excluded.beyond_max, 10);
        assert_eq!(v.baseline_indices[0], 39);
        assert_eq!(v.baseline_indices[29], 10);
        // Old results fall out of the window.
        let h: Vec<Observation> = (0..10)
            .map(|i| Observation::new(100.0, 85.0 + f64::from(i)))
            .collect();
        let v = judge(&Observation::new(100.0, 0.0), &h, Metric::DecodeTps, &cfg);
        assert_eq!(v.excluded.outside_window, 4);
        assert_eq!(v.baseline_n, 6);
        // Bad entries are counted, not used.
        let mut h = history();
        h[0].value = f64::NAN;
        h[1].value = 0.0;
        h[2].age_days = -1.0;
        let v = judge(&Observation::new(100.0, 0.0), &h, Metric::DecodeTps, &cfg);
        assert_eq!(v.excluded.invalid, 3);
        assert_eq!(v.baseline_n, 7);
    }

    #[test]
    fn change_point_restarts_the_baseline() {
        let cfg = GateConfig::default();
        let mut h = history();
        for o in &mut h {
            o.before_change_point = true;
        }
        let v = judge(&Observation::new(90.0, 0.0), &h, Metric::DecodeTps, &cfg);
        assert_eq!(v.kind, VerdictKind::Insufficient);
        assert_eq!(v.excluded.before_change_point, 10);
        assert_eq!(v.baseline_n, 0);
        assert_eq!(v.ratio, None);
    }

    #[test]
    fn invalid_current_value() {
        let cfg = GateConfig::default();
        for value in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            let v = judge(
                &Observation::new(value, 0.0),
                &history(),
                Metric::DecodeTps,
                &cfg,
            );
            assert_eq!(v.kind, VerdictKind::Invalid);
            assert!(!v.kind.fails());
        }
    }

    #[test]
    fn confirmation_policy() {
        let cfg = GateConfig::default();
        let h = history();
        let at = |value: f64| judge(&Observation::new(value, 0.0), &h, Metric::DecodeTps, &cfg);
        let first = at(90.0);
        assert_eq!(first.kind, VerdictKind::Suspect);
        assert_eq!(
            confirm(&first, &[at(91.0), at(89.0)]),
            VerdictKind::Regression
        );
        assert!(confirm(&first, &[at(91.0), at(89.0)]).fails());
        assert_eq!(
            confirm(&first, &[at(91.0), at(99.0)]),
            VerdictKind::Transient
        );
        assert_eq!(confirm(&first, &[]), VerdictKind::Suspect);
        let mut noisy = Observation::new(90.0, 0.0);
        noisy.cv = Some(0.1);
        let noisy = judge(&noisy, &h, Metric::DecodeTps, &cfg);
        assert_eq!(confirm(&first, &[at(90.0), noisy]), VerdictKind::Transient);
        let other = judge(&Observation::new(110.0, 0.0), &h, Metric::TtftMs, &cfg);
        assert_eq!(other.kind, VerdictKind::Suspect);
        assert_eq!(confirm(&first, &[at(90.0), other]), VerdictKind::Transient);
        let ok = at(100.0);
        assert_eq!(
            confirm(&ok, &[first.clone(), first.clone()]),
            VerdictKind::Ok
        );
        for kind in [
            VerdictKind::Ok,
            VerdictKind::Improvement,
            VerdictKind::Suspect,
            VerdictKind::Transient,
            VerdictKind::Noisy,
            VerdictKind::Insufficient,
            VerdictKind::Invalid,
        ] {
            assert!(!kind.fails());
        }
    }

    #[test]
    fn numbers_in_reasons() {
        assert_eq!(num(100.0), "100.0");
        assert_eq!(num(12.3456), "12.35");
        assert_eq!(num(0.5), "0.5000");
        assert_eq!(num(4.2e9), "4200000000");
    }
}
