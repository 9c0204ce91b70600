//! Elementary functions the task families share: centred displacements, the softplus and the
//! logistic function, and a bound on the logistic's third derivative.

use crate::error::Result;
use nalgebra::{DMatrix, DVector};

/// `xs - center` in every column: the displacements from a task's center, checked for
/// dimension.
pub(crate) fn minus_center(xs: &DMatrix<f64>, center: &DVector<f64>) -> Result<DMatrix<f64>> {
    if xs.nrows() != center.len() {
        return Err(crate::error::Error::DimensionMismatch {
            expected: center.len(),
            got: xs.nrows(),
        });
    }
    // One pass over slices (written once, not copied then updated): at the exact engine's
    // block sizes this was as costly as the matrix product that follows it.
    let (d, c) = (center.len(), center.as_slice());
    let mut dx = Vec::with_capacity(xs.len());
    for column in xs.as_slice().chunks_exact(d.max(1)) {
        dx.extend(column.iter().zip(c).map(|(x, c)| x - c));
    }
    Ok(DMatrix::from_vec(d, xs.ncols(), dx))
}

/// Numerically stable `log(1 + e^x)`.
pub(crate) fn softplus(x: f64) -> f64 {
    if x > 0.0 {
        x + (-x).exp().ln_1p()
    } else {
        x.exp().ln_1p()
    }
}

/// Numerically stable logistic function.
pub(crate) fn sigmoid(x: f64) -> f64 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

/// `max_z |s(z)(1 - s(z))(1 - 2 s(z))|` for the logistic `s`: attained where
/// `s = 1/2 +- 1/(2 sqrt 3)`, value `1 / (6 sqrt 3)`.
pub(crate) const LOGISTIC_THIRD_MAX: f64 = 0.096_225_044_864_937_63;
