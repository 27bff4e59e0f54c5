//! The statistics under `tokbench check` and `tokbench compare`, as pure functions of
//! slices of numbers: no I/O, no clock, and randomness only from a caller's seed.
//!
//! This module owns:
//! - [`summarize`]: the median, mean, sample sd, CV and MAD of a result's repetitions;
//! - [`student_t_quantile`] (and [`student_t_cdf`]), re-exported from `tokbench_core::stats`
//!   (the engine's automatic repetitions need them too), checked here against table values;
//! - [`mann_whitney_u`]: the two-sample rank test, exact (a permutation count that handles
//!   ties) for up to [`MW_EXACT_MAX_N`] values in all, else the normal approximation with
//!   tie and continuity corrections;
//! - [`bootstrap_ratio_ci`]: a percentile bootstrap interval of `median(b) / median(a)`,
//!   the same bytes for the same seed (ChaCha8).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use tokbench_core::stats::{self, median_sorted, quantile_sorted};

/// A result's repetitions in a few numbers.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// The number of repetitions.
    pub n: usize,
    /// The middle value; the mean of the two middle values for an even `n`.
    pub median: f64,
    pub mean: f64,
    /// The sample standard deviation (divisor `n − 1`); `None` for one value.
    pub sd: Option<f64>,
    /// `sd / |mean|`; `None` for one value or a zero mean.
    pub cv: Option<f64>,
    /// The median absolute deviation from the median, unscaled (multiply by 1.4826 to
    /// estimate the sd of normal data).
    pub mad: f64,
}

/// Summarizes repetitions. `None` when `values` is empty or holds a NaN or an infinity.
pub fn summarize(values: &[f64]) -> Option<Summary> {
    if values.is_empty() || values.iter().any(|v| !v.is_finite()) {
        return None;
    }
    let n = values.len();
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let median = median_sorted(&sorted);
    let (mean, sd) = mean_sd(values);
    let cv = sd.filter(|_| mean != 0.0).map(|sd| sd / mean.abs());
    let mut deviations: Vec<f64> = sorted.iter().map(|v| (v - median).abs()).collect();
    deviations.sort_by(f64::total_cmp);
    let mad = median_sorted(&deviations);
    Some(Summary {
        n,
        median,
        mean,
        sd,
        cv,
        mad,
    })
}

/// The median of `values`; `None` when empty or when a value is NaN or infinite.
pub fn median(values: &[f64]) -> Option<f64> {
    if values.is_empty() || values.iter().any(|v| !v.is_finite()) {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    Some(median_sorted(&sorted))
}

/// The sample mean and sd (divisor `n − 1`) of non-empty `values`; the sd is `None` below
/// two values.
pub(crate) fn mean_sd(values: &[f64]) -> (f64, Option<f64>) {
    stats::mean_sd(values).unwrap_or((f64::NAN, None))
}

// ---------------------------------------------------------------------------------------
// Student's t
// ---------------------------------------------------------------------------------------

pub use tokbench_core::stats::{student_t_cdf, student_t_quantile};

/// `erfc(x)`, fractional error below 1.2e-7 everywhere (Chebyshev fit, Numerical Recipes'
/// `erfcc`): ample for a p-value.
fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let r = t * poly.exp();
    if x >= 0.0 {
        r
    } else {
        2.0 - r
    }
}

// ---------------------------------------------------------------------------------------
// Mann–Whitney U
// ---------------------------------------------------------------------------------------

/// Up to this many values in both samples together, [`mann_whitney_u`] counts the exact
/// permutation distribution; above it, the normal approximation is within a few percent of
/// the exact p-value anyway.
pub const MW_EXACT_MAX_N: usize = 40;

/// How [`mann_whitney_u`] found its p-value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MwMethod {
    /// Every split of the pooled ranks counted (ties kept as midranks): the p-value is exact
    /// given the ties.
    Exact,
    /// Normal approximation with the tie correction of the variance and a continuity
    /// correction of 0.5.
    Normal,
}

/// A Mann–Whitney U test of two samples.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MannWhitney {
    /// U of the first sample: the pairs `(aᵢ, bⱼ)` with `aᵢ > bⱼ`, ties counting ½.
    /// `n_a·n_b − u` is U of the second sample.
    pub u: f64,
    /// Two-sided: the probability, with no difference between the samples, of a rank sum at
    /// least as far from its mean as the one observed.
    pub p_two_sided: f64,
    pub method: MwMethod,
}

/// The Mann–Whitney U test of `a` against `b`: [`MwMethod::Exact`] for up to
/// [`MW_EXACT_MAX_N`] values in all, else [`MwMethod::Normal`].
///
/// `None` when a sample is empty or holds a NaN or an infinity.
pub fn mann_whitney_u(a: &[f64], b: &[f64]) -> Option<MannWhitney> {
    let ranks = MidRanks::new(a, b)?;
    let na = a.len() as f64;
    let u = ranks.rank_sum_a2 as f64 / 2.0 - na * (na + 1.0) / 2.0;
    if a.len() + b.len() <= MW_EXACT_MAX_N {
        Some(MannWhitney {
            u,
            p_two_sided: ranks.exact_p(),
            method: MwMethod::Exact,
        })
    } else {
        Some(MannWhitney {
            u,
            p_two_sided: ranks.normal_p(u),
            method: MwMethod::Normal,
        })
    }
}

/// The smallest two-sided p-value [`mann_whitney_u`] can return for samples of `n_a` and
/// `n_b` distinct values: `2 / C(n_a + n_b, n_a)`, capped at 1. Below two values a side,
/// or with `n_a = n_b = 3` (0.1), no test can reach p < 0.05.
pub fn mann_whitney_min_p(n_a: usize, n_b: usize) -> f64 {
    if n_a == 0 || n_b == 0 {
        return 1.0;
    }
    let (k, n) = (n_a.min(n_b), n_a + n_b);
    let mut c = 1.0_f64;
    for i in 0..k {
        c = c * (n - i) as f64 / (i + 1) as f64;
    }
    (2.0 / c).min(1.0)
}

/// The pooled sample ranked, each rank doubled so that midranks stay integers.
struct MidRanks {
    /// Doubled midranks, those of `a` first.
    doubled: Vec<u64>,
    n_a: usize,
    /// The doubled rank sum of `a`.
    rank_sum_a2: u64,
    /// Σ (t³ − t) over groups of `t` tied values.
    ties: f64,
}

impl MidRanks {
    fn new(a: &[f64], b: &[f64]) -> Option<Self> {
        if a.is_empty() || b.is_empty() || a.iter().chain(b).any(|v| !v.is_finite()) {
            return None;
        }
        let pooled: Vec<f64> = a.iter().chain(b).copied().collect();
        let mut order: Vec<usize> = (0..pooled.len()).collect();
        order.sort_by(|&i, &j| pooled[i].total_cmp(&pooled[j]));
        let mut doubled = vec![0u64; pooled.len()];
        let mut ties = 0.0;
        let mut start = 0;
        while start < order.len() {
            let mut end = start + 1;
            while end < order.len() && pooled[order[end]] == pooled[order[start]] {
                end += 1;
            }
            // Positions start..end hold ranks start+1 ..= end; twice their mean:
            let rank2 = (start + 1 + end) as u64;
            for &i in &order[start..end] {
                doubled[i] = rank2;
            }
            let t = (end - start) as f64;
            ties += t * t * t - t;
            start = end;
        }
        let rank_sum_a2 = doubled[..a.len()].iter().sum();
        Some(Self {
            doubled,
            n_a: a.len(),
            rank_sum_a2,
            ties,
        })
    }

    /// The share of all `C(N, n_a)` splits whose doubled rank sum is at least as far from
    /// its mean `n_a (N + 1)` as the observed one. Counts are exact in f64 up to
    /// C(40, 20) ≈ 1.4e11.
    fn exact_p(&self) -> f64 {
        let n = self.doubled.len();
        let max_sum = (n * (n + 1)) as u64; // twice the sum of all ranks
        let width = max_sum as usize + 1;
        let k = self.n_a;
        // ways[j][s]: subsets of j items with doubled rank sum s.
        let mut ways = vec![vec![0.0_f64; width]; k + 1];
        ways[0][0] = 1.0;
        for (item, &r) in self.doubled.iter().enumerate() {
            let r = r as usize;
            for j in (1..=k.min(item + 1)).rev() {
                let (below, here) = ways.split_at_mut(j);
                let from = &below[j - 1];
                let to = &mut here[0];
                for s in (r..width).rev() {
                    if from[s - r] != 0.0 {
                        to[s] += from[s - r];
                    }
                }
            }
        }
        let centre = (k * (n + 1)) as i64;
        let observed = (self.rank_sum_a2 as i64 - centre).abs();
        let (mut extreme, mut total) = (0.0, 0.0);
        for (s, &count) in ways[k].iter().enumerate() {
            total += count;
            if (s as i64 - centre).abs() >= observed {
                extreme += count;
            }
        }
        (extreme / total).min(1.0)
    }

    fn normal_p(&self, u: f64) -> f64 {
        let n_a = self.n_a as f64;
        let n_b = (self.doubled.len() - self.n_a) as f64;
        let n = n_a + n_b;
        let mean = n_a * n_b / 2.0;
        let var = n_a * n_b / 12.0 * ((n + 1.0) - self.ties / (n * (n - 1.0)));
        if var <= 0.0 {
            return 1.0; // every value tied: no evidence of a difference
        }
        let z = ((u - mean).abs() - 0.5).max(0.0) / var.sqrt();
        erfc(z / std::f64::consts::SQRT_2).min(1.0)
    }
}

// ---------------------------------------------------------------------------------------
// Bootstrap
// ---------------------------------------------------------------------------------------

/// A percentile bootstrap interval of `median(b) / median(a)` at `level` (e.g. 0.95):
/// each of `resamples` rounds draws both samples again with replacement, each on its own,
/// and takes the ratio of the medians; the interval is the `(1 − level)/2` and
/// `(1 + level)/2` quantiles of those ratios. The same inputs and `seed` give the same
/// interval (ChaCha8).
///
/// `None` when a sample is empty or holds a value that is not positive and finite, when
/// `level` is not strictly between 0 and 1, or when `resamples` is 0. With one value a
/// side the interval is that side's value alone: callers should not read it as a CI.
pub fn bootstrap_ratio_ci(
    a: &[f64],
    b: &[f64],
    level: f64,
    resamples: usize,
    seed: u64,
) -> Option<(f64, f64)> {
    let positive = |s: &[f64]| !s.is_empty() && s.iter().all(|v| v.is_finite() && *v > 0.0);
    if !(positive(a) && positive(b) && level > 0.0 && level < 1.0 && resamples > 0) {
        return None;
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut scratch_a = vec![0.0; a.len()];
    let mut scratch_b = vec![0.0; b.len()];
    let mut ratios = Vec::with_capacity(resamples);
    for _ in 0..resamples {
        let ma = resampled_median(a, &mut scratch_a, &mut rng);
        let mb = resampled_median(b, &mut scratch_b, &mut rng);
        ratios.push(mb / ma);
    }
    ratios.sort_by(f64::total_cmp);
    let tail = (1.0 - level) / 2.0;
    Some((
        quantile_sorted(&ratios, tail),
        quantile_sorted(&ratios, 1.0 - tail),
    ))
}

fn resampled_median(values: &[f64], scratch: &mut [f64], rng: &mut ChaCha8Rng) -> f64 {
    for slot in scratch.iter_mut() {
        *slot = values[rng.gen_range(0..values.len())];
    }
    scratch.sort_by(f64::total_cmp);
    median_sorted(scratch)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol * b.abs().max(1.0)
    }

    #[test]
    fn summary_of_known_values() {
        let s = summarize(&[2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]).unwrap();
        assert_eq!(s.n, 8);
        assert_eq!(s.median, 4.5);
        assert_eq!(s.mean, 5.0);
        // Σ(x − 5)² = 32; sample variance 32 / 7.
        assert!(close(s.sd.unwrap(), (32.0_f64 / 7.0).sqrt(), 1e-12));
        assert!(close(s.cv.unwrap(), (32.0_f64 / 7.0).sqrt() / 5.0, 1e-12));
        // |x − 4.5| = 2.5 .5 .5 .5 .5 .5 2.5 4.5 → median 0.5.
        assert_eq!(s.mad, 0.5);
    }

    #[test]
    fn summary_of_one_value_and_of_bad_input() {
        let s = summarize(&[3.0]).unwrap();
        assert_eq!(
            (s.n, s.median, s.mean, s.sd, s.cv, s.mad),
            (1, 3.0, 3.0, None, None, 0.0)
        );
        assert_eq!(summarize(&[]), None);
        assert_eq!(summarize(&[1.0, f64::NAN]), None);
        assert_eq!(summarize(&[1.0, f64::INFINITY]), None);
        assert_eq!(summarize(&[0.0, 0.0]).unwrap().cv, None);
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[]), None);
    }

    #[test]
    fn t_quantile_matches_tables() {
        // Printed tables (3 decimals) …
        assert!((student_t_quantile(0.995, 4.0) - 4.604).abs() < 5e-4);
        assert!((student_t_quantile(0.995, 29.0) - 2.756).abs() < 5e-4);
        assert!((student_t_quantile(0.975, 10.0) - 2.228).abs() < 5e-4);
        // … and more digits (scipy.stats.t.ppf 1.17).
        let cases = [
            (0.995, 4.0, 4.604_094_871_349_992),
            (0.995, 29.0, 2.756_385_903_670_605),
            (0.975, 10.0, 2.228_138_851_986_274),
            (0.975, 1.0, 12.706_204_736_174_694),
            (0.995, 1.0, 63.656_741_162_871_526),
            (0.9, 2.0, 1.885_618_083_164_127_2),
            (0.999_999, 1.0, 318_309.886_173_590_26),
            (0.995, 1000.0, 2.580_754_698_065_951),
            (0.6, 3.0, 0.276_670_662_332_689_8),
            (0.995, 0.5, 4_113.964_588_804_174),
            (0.995, 2.5, 7.163_728_138_948_783),
        ];
        for (p, df, want) in cases {
            let got = student_t_quantile(p, df);
            assert!(close(got, want, 1e-9), "t({p}, {df}) = {got}, want {want}");
            assert!(close(student_t_quantile(1.0 - p, df), -want, 1e-6));
            assert!(close(student_t_cdf(want, df), p, 1e-10));
        }
        assert_eq!(student_t_quantile(0.5, 7.0), 0.0);
        for (p, df) in [
            (0.0, 5.0),
            (1.0, 5.0),
            (f64::NAN, 5.0),
            (0.9, 0.0),
            (0.9, -1.0),
        ] {
            assert!(student_t_quantile(p, df).is_nan());
        }
    }

    #[test]
    fn erfc_is_accurate_enough_for_p_values() {
        // erfc(1) = 0.157299207050285, erfc(2) = 0.004677734981047266, erfc(−1) = 1.8427.
        assert!(close(erfc(1.0), 0.157_299_207_050_285, 2e-7));
        assert!(close(erfc(2.0), 0.004_677_734_981_047_266, 2e-7));
        assert!(close(erfc(-1.0), 1.842_700_792_949_715, 2e-7));
        assert!(close(erfc(0.0), 1.0, 2e-7));
    }

    #[test]
    fn mann_whitney_textbook_example() {
        // Conover's diagnosis ages, as in scipy's mannwhitneyu documentation:
        // U = 17, exact p = 0.1111, asymptotic p = 0.11134688653314041.
        let males = [19.0, 22.0, 16.0, 29.0, 24.0];
        let females = [20.0, 11.0, 17.0, 12.0];
        let mw = mann_whitney_u(&males, &females).unwrap();
        assert_eq!(mw.u, 17.0);
        assert_eq!(mw.method, MwMethod::Exact);
        assert!(
            close(mw.p_two_sided, 1.0 / 9.0, 1e-12),
            "{}",
            mw.p_two_sided
        );
        let ranks = MidRanks::new(&males, &females).unwrap();
        assert!(close(ranks.normal_p(17.0), 0.111_346_886_533_140_41, 1e-6));
        // U of the other side, same p.
        let back = mann_whitney_u(&females, &males).unwrap();
        assert_eq!(back.u, 20.0 - 17.0);
        assert!(close(back.p_two_sided, mw.p_two_sided, 1e-12));
    }

    #[test]
    fn mann_whitney_with_ties() {
        let a = [1.0, 2.0, 2.0, 3.0, 3.0, 3.0, 4.0];
        let b = [3.0, 4.0, 4.0, 5.0, 5.0, 6.0];
        let mw = mann_whitney_u(&a, &b).unwrap();
        assert_eq!(mw.u, 3.5);
        // Exact given the ties: 17 of the C(13, 7) = 1716 splits of the midranks lie at
        // least as far from the mean (counted by brute force in Python).
        assert!(
            close(mw.p_two_sided, 17.0 / 1716.0, 1e-12),
            "{}",
            mw.p_two_sided
        );
        // scipy.stats.mannwhitneyu(a, b, method="asymptotic"): 0.012999854364387305.
        let ranks = MidRanks::new(&a, &b).unwrap();
        assert!(close(ranks.normal_p(3.5), 0.012_999_854_364_387_305, 1e-6));
    }

    #[test]
    fn mann_whitney_edges() {
        assert!(mann_whitney_u(&[], &[1.0]).is_none());
        assert!(mann_whitney_u(&[f64::NAN], &[1.0]).is_none());
        let same = mann_whitney_u(&[5.0, 5.0, 5.0], &[5.0, 5.0]).unwrap();
        assert_eq!(same.p_two_sided, 1.0);
        // Completely separated 5 vs 5: the exact p is 2 / C(10, 5) = 2 / 252.
        let a = [1.0, 2.0, 3.0, 4.0, 5.0];
        let b = [6.0, 7.0, 8.0, 9.0, 10.0];
        let mw = mann_whitney_u(&a, &b).unwrap();
        assert_eq!(mw.u, 0.0);
        assert!(close(mw.p_two_sided, 2.0 / 252.0, 1e-12));
        assert!(close(mann_whitney_min_p(5, 5), 2.0 / 252.0, 1e-12));
        assert_eq!(mann_whitney_min_p(3, 3), 0.1);
        assert_eq!(mann_whitney_min_p(1, 9), 0.2);
        assert_eq!(mann_whitney_min_p(0, 9), 1.0);
        // Large samples go through the normal approximation.
        let a: Vec<f64> = (0..30).map(f64::from).collect();
        let b: Vec<f64> = (0..30).map(|i| f64::from(i) + 0.5).collect();
        let mw = mann_whitney_u(&a, &b).unwrap();
        assert_eq!(mw.method, MwMethod::Normal);
        assert!(mw.p_two_sided > 0.5);
    }

    #[test]
    fn bootstrap_is_deterministic_and_covers_the_ratio() {
        let a = [100.0, 101.0, 99.0, 100.5, 99.5, 100.2, 99.8];
        let b = [90.0, 91.0, 89.0, 90.5, 89.5, 90.2, 89.8];
        let ci = bootstrap_ratio_ci(&a, &b, 0.95, 2000, 7).unwrap();
        assert_eq!(ci, bootstrap_ratio_ci(&a, &b, 0.95, 2000, 7).unwrap());
        assert!(ci.0 <= 0.9 && 0.9 <= ci.1, "{ci:?}");
        assert!(ci.1 < 0.92 && ci.0 > 0.88, "{ci:?}");
        let other = bootstrap_ratio_ci(&a, &b, 0.95, 2000, 8).unwrap();
        assert_ne!(ci, other);
        assert_eq!(
            bootstrap_ratio_ci(&[2.0], &[3.0], 0.95, 100, 1),
            Some((1.5, 1.5))
        );
        assert_eq!(bootstrap_ratio_ci(&[], &b, 0.95, 100, 1), None);
        assert_eq!(bootstrap_ratio_ci(&a, &[0.0], 0.95, 100, 1), None);
        assert_eq!(bootstrap_ratio_ci(&a, &b, 1.0, 100, 1), None);
        assert_eq!(bootstrap_ratio_ci(&a, &b, 0.95, 0, 1), None);
    }
}
