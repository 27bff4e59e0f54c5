//! `tokbench compare A B`: two sets of repetitions of one series, side by side. A is the
//! reference; every ratio is B / A.
//!
//! This module owns the mark ([`Mark`]) and what it rests on ([`Basis`]):
//! - [`Mark::Noisy`] when either side's repetitions have a CV above
//!   [`CompareConfig::noisy_cv`], unless the change is far outside that noise: the two
//!   sides' ranges do not overlap and their medians lie further apart than either side's
//!   range (a 17× slowdown on a busy machine is worse, not noisy; [`Comparison::noisy`]
//!   still says the repetitions scattered);
//! - [`Mark::Better`] / [`Mark::Worse`] when the change is statistically *and* practically
//!   significant: the bootstrap interval of the median ratio excludes 1, the Mann–Whitney
//!   p-value is below [`CompareConfig::alpha`], and the ratio is past the floor
//!   (5% for speeds and latencies, 3% for memory, as in the gate) on the same side;
//! - [`Mark::Same`] otherwise.
//!
//! Small samples, decided (asv's rule: test only where the test can speak):
//! - both sides ≥ 2 values but too few for Mann–Whitney to ever reach `alpha` (3 vs 3 can
//!   do no better than p = 0.1; see [`mann_whitney_min_p`]): the interval and the floor
//!   decide ([`Basis::Interval`]); the p-value is still reported;
//! - a side with one value (no spread, no interval, no test): the floor alone decides
//!   ([`Basis::Floor`]), and the interval and p-value are `None`, so a reader sees that the
//!   mark rests on one number.

use serde::{Deserialize, Serialize};

use crate::gate::{Direction, Metric, MetricKind};
use crate::stats::{bootstrap_ratio_ci, mann_whitney_min_p, mann_whitney_u, summarize};

/// Settings of [`compare`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CompareConfig {
    /// Level of the bootstrap interval (0.95).
    pub confidence: f64,
    /// Bootstrap rounds (10,000: the interval's ends move by well under 0.1% between seeds
    /// for a handful of repetitions).
    pub resamples: usize,
    /// The bootstrap's seed: the same input gives the same output.
    pub seed: u64,
    /// Mann–Whitney significance level (0.05).
    pub alpha: f64,
    /// A side whose repetitions' CV exceeds this is noisy (0.05, as in the gate).
    pub noisy_cv: f64,
    /// Practical floors, fractions: throughput and latency (0.05), memory (0.03).
    pub floor_speed: f64,
    pub floor_memory: f64,
}

/// The default bootstrap seed ("tokbench" in ASCII).
pub const DEFAULT_SEED: u64 = 0x746f_6b62_656e_6368;

impl Default for CompareConfig {
    fn default() -> Self {
        Self {
            confidence: 0.95,
            resamples: 10_000,
            seed: DEFAULT_SEED,
            alpha: 0.05,
            noisy_cv: tokbench_core::stats::NOISY_CV,
            floor_speed: 0.05,
            floor_memory: 0.03,
        }
    }
}

impl CompareConfig {
    /// The practical floor of `metric`, a fraction.
    pub fn floor(&self, metric: Metric) -> f64 {
        match metric.kind() {
            MetricKind::Throughput | MetricKind::Latency => self.floor_speed,
            MetricKind::Memory => self.floor_memory,
        }
    }
}

/// B against A.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mark {
    Better,
    Worse,
    Same,
    /// A side's repetitions scatter too much to tell.
    Noisy,
}

/// What a [`Mark`] of better, worse or same rests on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Basis {
    /// The bootstrap interval, the Mann–Whitney test and the floor.
    IntervalAndTest,
    /// The interval and the floor: too few repetitions for the test to reach `alpha`.
    Interval,
    /// The floor alone: a side has one value.
    Floor,
}

/// One series compared.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    pub metric: Metric,
    pub direction: Direction,
    pub n_a: usize,
    pub n_b: usize,
    pub median_a: f64,
    pub median_b: f64,
    /// CV of each side's repetitions; `None` for one value.
    pub cv_a: Option<f64>,
    pub cv_b: Option<f64>,
    /// `median_b / median_a`.
    pub ratio: f64,
    /// Bootstrap interval of the ratio at `confidence`; `None` when a side has one value.
    pub ci_low: Option<f64>,
    pub ci_high: Option<f64>,
    pub confidence: f64,
    /// Two-sided Mann–Whitney p-value; `None` when a side has one value.
    pub p_value: Option<f64>,
    /// The practical floor used, a fraction.
    pub floor: f64,
    pub basis: Basis,
    pub mark: Mark,
    /// A side's CV is above [`CompareConfig::noisy_cv`] (the mark is [`Mark::Noisy`] unless
    /// the change is far outside the noise).
    pub noisy: bool,
}

/// Compares repetitions `b` against the reference `a` for `metric` (module docs for the
/// rules). Deterministic: the bootstrap draws from `cfg.seed`.
///
/// `None` when a side is empty or holds a value that is not a positive finite number.
pub fn compare(a: &[f64], b: &[f64], metric: Metric, cfg: &CompareConfig) -> Option<Comparison> {
    let positive = |s: &[f64]| s.iter().all(|v| v.is_finite() && *v > 0.0);
    if !positive(a) || !positive(b) {
        return None;
    }
    let sa = summarize(a)?;
    let sb = summarize(b)?;
    let direction = metric.direction();
    let floor = cfg.floor(metric);
    let ratio = sb.median / sa.median;

    let two_each = sa.n >= 2 && sb.n >= 2;
    let ci = if two_each {
        bootstrap_ratio_ci(a, b, cfg.confidence, cfg.resamples, cfg.seed)
    } else {
        None
    };
    let p_value = if two_each {
        mann_whitney_u(a, b).map(|mw| mw.p_two_sided)
    } else {
        None
    };
    let testable = two_each && mann_whitney_min_p(sa.n, sb.n) < cfg.alpha;
    let basis = if !two_each {
        Basis::Floor
    } else if testable {
        Basis::IntervalAndTest
    } else {
        Basis::Interval
    };

    // Which way B moved, if the evidence says it moved at all: +1 higher, −1 lower.
    let moved: i8 = match (basis, ci, p_value) {
        (Basis::Floor, _, _) => ratio_side(ratio, floor),
        (_, Some((lo, hi)), p) => {
            let significant = basis == Basis::Interval || p.is_some_and(|p| p < cfg.alpha);
            let side = if lo > 1.0 {
                1
            } else if hi < 1.0 {
                -1
            } else {
                0
            };
            if significant && side == ratio_side(ratio, floor) {
                side
            } else {
                0
            }
        }
        (_, None, _) => 0,
    };

    let noisy = [sa.cv, sb.cv]
        .into_iter()
        .flatten()
        .any(|cv| cv.is_nan() || cv > cfg.noisy_cv);
    let mark = if noisy && !(moved != 0 && far_outside(a, b, sa.median, sb.median)) {
        Mark::Noisy
    } else {
        match (moved, direction) {
            (0, _) => Mark::Same,
            (1, Direction::HigherIsBetter) | (-1, Direction::LowerIsBetter) => Mark::Better,
            _ => Mark::Worse,
        }
    };

    Some(Comparison {
        noisy,
        metric,
        direction,
        n_a: sa.n,
        n_b: sb.n,
        median_a: sa.median,
        median_b: sb.median,
        cv_a: sa.cv,
        cv_b: sb.cv,
        ratio,
        ci_low: ci.map(|c| c.0),
        ci_high: ci.map(|c| c.1),
        confidence: cfg.confidence,
        p_value,
        floor,
        basis,
        mark,
    })
}

/// +1 when `ratio` is at least `1 + floor`, −1 when at most `1 − floor`, else 0.
fn ratio_side(ratio: f64, floor: f64) -> i8 {
    if ratio >= 1.0 + floor {
        1
    } else if ratio <= 1.0 - floor {
        -1
    } else {
        0
    }
}

/// The two samples do not overlap, and their medians are further apart than either
/// sample's range: a change no amount of this scatter explains.
fn far_outside(a: &[f64], b: &[f64], median_a: f64, median_b: f64) -> bool {
    let range = |s: &[f64]| {
        let lo = s.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = s.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        (lo, hi)
    };
    let (lo_a, hi_a) = range(a);
    let (lo_b, hi_b) = range(b);
    let disjoint = hi_a < lo_b || hi_b < lo_a;
    let gap = (median_b - median_a).abs();
    disjoint && gap > (hi_a - lo_a) && gap > (hi_b - lo_b)
}

/// The fewest repetitions per side with which the Mann–Whitney test can reach `alpha` at
/// all (4 for 0.05): with fewer, [`Basis::Interval`] decides.
pub fn repetitions_for_test(alpha: f64) -> usize {
    (2..=1000)
        .find(|&n| mann_whitney_min_p(n, n) < alpha)
        .unwrap_or(1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: [f64; 8] = [100.0, 100.6, 99.4, 100.3, 99.7, 100.9, 99.1, 100.0];

    fn scaled(s: &[f64], k: f64) -> Vec<f64> {
        s.iter().map(|v| v * k).collect()
    }

    #[test]
    fn slower_decode_is_worse_and_slower_latency_is_worse() {
        let cfg = CompareConfig::default();
        let b = scaled(&A, 0.9);
        let c = compare(&A, &b, Metric::DecodeTps, &cfg).unwrap();
        assert_eq!(c.mark, Mark::Worse, "{c:?}");
        assert_eq!(c.basis, Basis::IntervalAndTest);
        assert!((c.ratio - 0.9).abs() < 1e-12);
        assert!(c.ci_high.unwrap() < 1.0 && c.ci_low.unwrap() <= 0.9);
        assert!(c.p_value.unwrap() < 0.001);
        // The same numbers as latencies: B is faster, so better.
        let c = compare(&A, &b, Metric::TtftMs, &cfg).unwrap();
        assert_eq!(c.mark, Mark::Better);
        let c = compare(&A, &scaled(&A, 1.1), Metric::TtftMs, &cfg).unwrap();
        assert_eq!(c.mark, Mark::Worse);
        let c = compare(&A, &scaled(&A, 1.1), Metric::DecodeTps, &cfg).unwrap();
        assert_eq!(c.mark, Mark::Better);
    }

    #[test]
    fn significant_but_small_is_same() {
        let cfg = CompareConfig::default();
        // 3% slower: the interval excludes 1 and p is tiny, but it is short of the 5% floor.
        let c = compare(&A, &scaled(&A, 0.97), Metric::DecodeTps, &cfg).unwrap();
        assert!(c.ci_high.unwrap() < 1.0 && c.p_value.unwrap() < 0.01);
        assert_eq!(c.mark, Mark::Same);
        // For memory the floor is 3%: 4% more bytes is worse.
        let c = compare(&A, &scaled(&A, 1.04), Metric::RssPeakBytes, &cfg).unwrap();
        assert_eq!(c.mark, Mark::Worse);
        // The same distribution is the same.
        let c = compare(&A, &A, Metric::DecodeTps, &cfg).unwrap();
        assert_eq!(c.mark, Mark::Same);
        assert_eq!(c.ratio, 1.0);
    }

    #[test]
    fn noisy_side() {
        let cfg = CompareConfig::default();
        let b = [80.0, 95.0, 70.0, 90.0, 85.0];
        let c = compare(&A, &b, Metric::DecodeTps, &cfg).unwrap();
        assert!(c.cv_b.unwrap() > 0.05);
        assert_eq!(c.mark, Mark::Noisy);
        assert!(c.noisy);
    }

    #[test]
    fn a_change_far_outside_the_noise_is_marked_with_three_repetitions() {
        let cfg = CompareConfig::default();
        // A busy machine: B scatters (CV far above 5%) but runs 17× slower.
        let a = [600.0, 610.0, 590.0];
        let b = [35.0, 12.0, 60.0];
        let c = compare(&a, &b, Metric::DecodeTps, &cfg).unwrap();
        assert!(c.noisy && c.cv_b.unwrap() > 0.05);
        assert_eq!(c.basis, Basis::Interval);
        assert_eq!(c.mark, Mark::Worse);
        assert!(c.ratio < 0.1);
        // Scatter that overlaps the change stays noisy.
        let b = [300.0, 620.0, 100.0];
        assert_eq!(
            compare(&a, &b, Metric::DecodeTps, &cfg).unwrap().mark,
            Mark::Noisy
        );
        assert_eq!(repetitions_for_test(0.05), 4);
    }

    #[test]
    fn small_samples() {
        let cfg = CompareConfig::default();
        // One value a side: the floor alone, no interval or p-value.
        let c = compare(&[100.0], &[90.0], Metric::DecodeTps, &cfg).unwrap();
        assert_eq!((c.basis, c.mark), (Basis::Floor, Mark::Worse));
        assert_eq!((c.ci_low, c.ci_high, c.p_value), (None, None, None));
        let c = compare(&A, &[98.0], Metric::DecodeTps, &cfg).unwrap();
        assert_eq!((c.basis, c.mark), (Basis::Floor, Mark::Same));
        // Three a side: Mann–Whitney cannot reach 0.05, the interval decides.
        let a = [100.0, 100.5, 99.5];
        let c = compare(&a, &scaled(&a, 0.9), Metric::DecodeTps, &cfg).unwrap();
        assert_eq!(c.basis, Basis::Interval);
        assert!((c.p_value.unwrap() - 0.1).abs() < 1e-12);
        assert_eq!(c.mark, Mark::Worse);
        // Four a side can: 2 / C(8, 4) = 0.029.
        let a = [100.0, 100.5, 99.5, 100.2];
        let c = compare(&a, &scaled(&a, 0.9), Metric::DecodeTps, &cfg).unwrap();
        assert_eq!(c.basis, Basis::IntervalAndTest);
        assert_eq!(c.mark, Mark::Worse);
    }

    #[test]
    fn bad_input_and_determinism() {
        let cfg = CompareConfig::default();
        assert!(compare(&[], &A, Metric::DecodeTps, &cfg).is_none());
        assert!(compare(&A, &[0.0, 1.0], Metric::DecodeTps, &cfg).is_none());
        assert!(compare(&A, &[f64::NAN], Metric::DecodeTps, &cfg).is_none());
        let b = scaled(&A, 0.95);
        let one = compare(&A, &b, Metric::DecodeTps, &cfg).unwrap();
        let two = compare(&A, &b, Metric::DecodeTps, &cfg).unwrap();
        assert_eq!(one, two);
        let json = serde_json::to_string(&one).unwrap();
        assert!(json.contains("\"mark\":"), "{json}");
    }
}
