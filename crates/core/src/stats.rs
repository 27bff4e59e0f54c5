//! The statistics every crate shares: mean, sample standard deviation, median and
//! quantiles (linear interpolation between order statistics, numpy's default and vLLM's),
//! and Student's t (for the engine's automatic repetitions and the gate's intervals). One
//! definition each; the report crate builds its inference (bootstrap, Mann–Whitney) on
//! these.

/// A figure whose repetitions' coefficient of variation (sd / mean) exceeds this is
/// *noisy*: stored with the flag, shown as such, never judged by `check` nor counted in a
/// baseline. One setting for all of them. Why 5%: a benchmark repeated on a quiet machine
/// scatters by 1 to 3%; past 5% something else was running, or the machine throttled.
pub const NOISY_CV: f64 = 0.05;

/// The mean of `values`; `None` when empty.
pub fn mean(values: &[f64]) -> Option<f64> {
    (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
}

/// The sample standard deviation (divisor `n − 1`) of `values` about `mean`; `None` below
/// two values.
pub fn sample_sd(values: &[f64], mean: f64) -> Option<f64> {
    if values.len() < 2 {
        return None;
    }
    let ss: f64 = values.iter().map(|v| (v - mean).powi(2)).sum();
    Some((ss / (values.len() - 1) as f64).sqrt())
}

/// The mean and sample sd of `values` (the sd needs two); `None` when empty.
pub fn mean_sd(values: &[f64]) -> Option<(f64, Option<f64>)> {
    let m = mean(values)?;
    Some((m, sample_sd(values, m)))
}

/// The mean and sample sd of the values that are present and finite, as a result row
/// stores them: `(None, None)` when there are none.
pub fn present_mean_sd(
    values: impl IntoIterator<Item = Option<f64>>,
) -> (Option<f64>, Option<f64>) {
    let v: Vec<f64> = values
        .into_iter()
        .flatten()
        .filter(|x| x.is_finite())
        .collect();
    match mean_sd(&v) {
        Some((m, sd)) => (Some(m), sd),
        None => (None, None),
    }
}

/// The median of a sorted, non-empty slice.
pub fn median_sorted(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}

/// The `q`-quantile (0–1, clamped) of a sorted, non-empty slice, interpolated linearly
/// between the order statistics at rank `q × (n − 1)` (R's type 7, numpy's default).
pub fn quantile_sorted(sorted: &[f64], q: f64) -> f64 {
    let h = (sorted.len() - 1) as f64 * q.clamp(0.0, 1.0);
    let lo = h.floor() as usize;
    let hi = h.ceil() as usize;
    sorted[lo] + (h - lo as f64) * (sorted[hi] - sorted[lo])
}

/// `ln Γ(x)` for `x > 0`: Lanczos (g = 7, 9 terms), about 15 significant digits.
fn ln_gamma(x: f64) -> f64 {
    const G: f64 = 7.0;
    const C: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        // Reflection: Γ(x) Γ(1 − x) = π / sin(πx).
        return (std::f64::consts::PI / (std::f64::consts::PI * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut sum = C[0];
    for (i, c) in C.iter().enumerate().skip(1) {
        sum += c / (x + i as f64);
    }
    let t = x + G + 0.5;
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + sum.ln()
}

/// The regularized incomplete beta function `I_x(a, b)`, given `x` and `y = 1 − x`
/// separately so that neither loses digits to cancellation.
fn reg_inc_beta(a: f64, b: f64, x: f64, y: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    if y <= 0.0 {
        return 1.0;
    }
    let ln_front = ln_gamma(a + b) - ln_gamma(a) - ln_gamma(b) + a * x.ln() + b * y.ln();
    let front = ln_front.exp();
    // The continued fraction converges fast on this side of the mean; use the symmetry
    // I_x(a, b) = 1 − I_y(b, a) on the other.
    if x < (a + 1.0) / (a + b + 2.0) {
        front * beta_cf(a, b, x) / a
    } else {
        1.0 - front * beta_cf(b, a, y) / b
    }
}

/// The continued fraction of the incomplete beta function (modified Lentz).
fn beta_cf(a: f64, b: f64, x: f64) -> f64 {
    const TINY: f64 = 1e-300;
    const EPS: f64 = 1e-15;
    let guard = |v: f64| if v.abs() < TINY { TINY } else { v };
    let (qab, qap, qam) = (a + b, a + 1.0, a - 1.0);
    let mut c = 1.0;
    let mut d = 1.0 / guard(1.0 - qab * x / qap);
    let mut h = d;
    for m in 1..=500 {
        let m = f64::from(m);
        let m2 = 2.0 * m;
        let aa = m * (b - m) * x / ((qam + m2) * (a + m2));
        d = 1.0 / guard(1.0 + aa * d);
        c = guard(1.0 + aa / c);
        h *= d * c;
        let aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2));
        d = 1.0 / guard(1.0 + aa * d);
        c = guard(1.0 + aa / c);
        let step = d * c;
        h *= step;
        if (step - 1.0).abs() < EPS {
            break;
        }
    }
    h
}

/// `P(T > t)` for `t ≥ 0`: `½ I_{df/(df+t²)}(df/2, ½)`.
fn t_upper_tail(t: f64, df: f64) -> f64 {
    let t2 = t * t;
    0.5 * reg_inc_beta(df / 2.0, 0.5, df / (df + t2), t2 / (df + t2))
}

fn t_pdf(t: f64, df: f64) -> f64 {
    let ln = ln_gamma((df + 1.0) / 2.0)
        - ln_gamma(df / 2.0)
        - 0.5 * (df * std::f64::consts::PI).ln()
        - (df + 1.0) / 2.0 * (t * t / df).ln_1p();
    ln.exp()
}

/// `P(T ≤ t)` for Student's t with `df` degrees of freedom (`df > 0`, need not be an
/// integer). NaN when `t` is NaN or `df` is not a positive finite number.
pub fn student_t_cdf(t: f64, df: f64) -> f64 {
    if t.is_nan() || !(df.is_finite() && df > 0.0) {
        return f64::NAN;
    }
    if t >= 0.0 {
        1.0 - t_upper_tail(t, df)
    } else {
        t_upper_tail(-t, df)
    }
}

/// The `p`-quantile of Student's t with `df` degrees of freedom: the `t` with
/// `P(T ≤ t) = p`. `t(0.995, 4) = 4.604`, `t(0.975, 10) = 2.228`.
///
/// NaN when `p` is not strictly between 0 and 1 or `df` is not a positive finite number.
/// Solved on the upper tail (so `p` near 1 keeps its digits) by Newton steps that fall back
/// to bisection whenever a step would leave the bracket; converges to about 12 digits.
pub fn student_t_quantile(p: f64, df: f64) -> f64 {
    if !(p > 0.0 && p < 1.0 && df.is_finite() && df > 0.0) {
        return f64::NAN;
    }
    if p < 0.5 {
        return -student_t_quantile(1.0 - p, df);
    }
    if p == 0.5 {
        return 0.0;
    }
    let q = 1.0 - p;
    // Bracket: tail(lo) ≥ q ≥ tail(hi).
    let mut lo = 0.0_f64;
    let mut hi = 1.0_f64;
    while t_upper_tail(hi, df) > q {
        lo = hi;
        hi *= 2.0;
        if !hi.is_finite() {
            return f64::INFINITY;
        }
    }
    let mut t = (lo + hi) / 2.0;
    for _ in 0..200 {
        let f = t_upper_tail(t, df) - q; // decreasing in t
        if f > 0.0 {
            lo = t;
        } else {
            hi = t;
        }
        let slope = t_pdf(t, df);
        let newton = t + f / slope;
        let next = if slope > 0.0 && newton > lo && newton < hi {
            newton
        } else {
            (lo + hi) / 2.0
        };
        if (next - t).abs() <= 1e-13 * next.abs().max(1e-300) || hi - lo <= 1e-15 * hi {
            return next;
        }
        t = next;
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_and_sample_sd() {
        let (m, sd) = mean_sd(&[2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]).unwrap();
        assert_eq!(m, 5.0);
        // Sum of squares 32, n − 1 = 7.
        assert!((sd.unwrap() - (32.0f64 / 7.0).sqrt()).abs() < 1e-12);
        assert_eq!(mean_sd(&[3.0]), Some((3.0, None)));
        assert_eq!(mean_sd(&[]), None);
        assert_eq!(
            present_mean_sd([None, Some(3.0), Some(f64::NAN)]),
            (Some(3.0), None)
        );
        assert_eq!(present_mean_sd([None]), (None, None));
    }

    #[test]
    fn quantiles_interpolate_like_numpy() {
        let v = [1.0, 2.0, 3.0, 4.0];
        // numpy.percentile([1,2,3,4], [50, 90, 99]) = 2.5, 3.7, 3.97
        assert!((quantile_sorted(&v, 0.5) - 2.5).abs() < 1e-12);
        assert!((quantile_sorted(&v, 0.9) - 3.7).abs() < 1e-12);
        assert!((quantile_sorted(&v, 0.99) - 3.97).abs() < 1e-12);
        assert_eq!(quantile_sorted(&[7.0], 0.99), 7.0);
        assert_eq!(median_sorted(&v), 2.5);
        assert_eq!(median_sorted(&[1.0, 5.0, 9.0]), 5.0);
    }
}
