//! The descriptive statistics every crate shares: mean, sample standard deviation, median
//! and quantiles (linear interpolation between order statistics, numpy's default and
//! vLLM's). One definition each; the report crate builds its inference (bootstrap,
//! Student t, Mann–Whitney) on these.

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
