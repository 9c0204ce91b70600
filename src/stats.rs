//! Small statistics: Student-t confidence intervals (statrs), log-log slopes, summaries.

use crate::error::{ensure, Result};
use statrs::distribution::{ContinuousCDF, StudentsT};

/// Two-sided confidence level used by every Monte Carlo verdict. With a few dozen instances per
/// claim, 99.9% keeps the chance of any false "fails" in a report near a few percent.
pub const CI_LEVEL: f64 = 0.999;

/// Sample mean with a two-sided Student-t confidence interval.
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct MeanCi {
    /// Sample mean.
    pub mean: f64,
    /// Standard error of the mean.
    pub std_err: f64,
    /// Lower end of the interval.
    pub lo: f64,
    /// Upper end of the interval.
    pub hi: f64,
    /// Number of samples.
    pub n: usize,
}

impl MeanCi {
    /// Whether `value` lies in the interval.
    pub fn contains(&self, value: f64) -> bool {
        self.lo <= value && value <= self.hi
    }
}

/// Mean and `level` confidence interval of i.i.d. samples.
pub fn mean_ci(samples: &[f64], level: f64) -> Result<MeanCi> {
    let n = samples.len();
    ensure(n >= 2, "samples", || {
        format!("need at least 2 samples for an interval, got {n}")
    })?;
    ensure(level > 0.0 && level < 1.0, "level", || {
        format!("must lie in (0, 1), got {level}")
    })?;
    let mean = samples.iter().sum::<f64>() / n as f64;
    let var = samples.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
    let std_err = (var / n as f64).sqrt();
    let t = StudentsT::new(0.0, 1.0, (n - 1) as f64)
        .map_err(|e| crate::Error::InvalidArgument {
            name: "samples",
            reason: e.to_string(),
        })?
        .inverse_cdf(0.5 + level / 2.0);
    Ok(MeanCi {
        mean,
        std_err,
        lo: mean - t * std_err,
        hi: mean + t * std_err,
        n,
    })
}

/// Least-squares slope of `ln |y|` against `ln x`.
pub fn loglog_slope(xs: &[f64], ys: &[f64]) -> Result<f64> {
    ensure(xs.len() == ys.len() && xs.len() >= 2, "points", || {
        "need at least two (x, y) pairs".into()
    })?;
    ensure(
        xs.iter().all(|&x| x > 0.0) && ys.iter().all(|&y| y != 0.0 && y.is_finite()),
        "points",
        || "log-log fit needs x > 0 and finite, nonzero y".into(),
    )?;
    let lx: Vec<f64> = xs.iter().map(|x| x.ln()).collect();
    let ly: Vec<f64> = ys.iter().map(|y| y.abs().ln()).collect();
    let n = lx.len() as f64;
    let (mx, my) = (lx.iter().sum::<f64>() / n, ly.iter().sum::<f64>() / n);
    let sxy: f64 = lx.iter().zip(&ly).map(|(x, y)| (x - mx) * (y - my)).sum();
    let sxx: f64 = lx.iter().map(|x| (x - mx).powi(2)).sum();
    Ok(sxy / sxx)
}

/// `n` points spaced evenly in log scale from `lo` to `hi`.
pub fn log_grid(lo: f64, hi: f64, n: usize) -> Vec<f64> {
    (0..n)
        .map(|i| (lo.ln() + (hi / lo).ln() * i as f64 / (n.max(2) - 1) as f64).exp())
        .collect()
}

/// Minimum, median and maximum of finite values (None when there are none).
pub fn min_median_max(values: &[f64]) -> Option<(f64, f64, f64)> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let mid = v.len() / 2;
    let median = if v.len() % 2 == 1 {
        v[mid]
    } else {
        0.5 * (v[mid - 1] + v[mid])
    };
    Some((v[0], median, v[v.len() - 1]))
}
