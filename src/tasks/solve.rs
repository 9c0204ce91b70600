//! Dense linear-algebra helpers and the Newton solver for stationary points.

use super::task::Task;
use crate::error::{Error, Result};
use nalgebra::{DMatrix, DVector, SymmetricEigen};

/// Smallest and largest eigenvalue of a symmetric matrix.
pub fn symmetric_extremes(m: &DMatrix<f64>) -> (f64, f64) {
    let eig = SymmetricEigen::new(m.clone());
    let lo = eig
        .eigenvalues
        .iter()
        .copied()
        .fold(f64::INFINITY, f64::min);
    let hi = eig
        .eigenvalues
        .iter()
        .copied()
        .fold(f64::NEG_INFINITY, f64::max);
    (lo, hi)
}

/// Spectral norm of a symmetric matrix.
pub fn spectral_norm(m: &DMatrix<f64>) -> f64 {
    let (lo, hi) = symmetric_extremes(m);
    lo.abs().max(hi.abs())
}

/// Solves `sum_k grad L_k(x) = 0` for strongly convex tasks by damped Newton steps.
///
/// Stops when `||(1/K) sum_k grad L_k|| <= 1e-13 * max(1, ||(1/K) sum_k grad L_k(x0)||)`, a
/// residual near float64 rounding for these well-conditioned problems; an error otherwise.
pub fn minimize_average<T: Task>(tasks: &[T], x0: &DVector<f64>) -> Result<DVector<f64>> {
    const MAX_ITERS: usize = 200;
    let k = tasks.len() as f64;
    let value = |x: &DVector<f64>| -> Result<f64> {
        tasks
            .iter()
            .map(|t| t.loss(x))
            .sum::<Result<f64>>()
            .map(|s| s / k)
    };
    let grad = |x: &DVector<f64>| -> Result<DVector<f64>> {
        let mut g = DVector::zeros(x.len());
        for t in tasks {
            g += t.gradient(x)?;
        }
        Ok(g / k)
    };
    let mut x = x0.clone();
    let mut g = grad(&x)?;
    let tol = 1e-13 * g.norm().max(1.0);
    let mut f = value(&x)?;
    for _ in 0..MAX_ITERS {
        if g.norm() <= tol {
            return Ok(x);
        }
        let mut h = DMatrix::zeros(x.len(), x.len());
        for t in tasks {
            h += t.hessian(&x)?;
        }
        h /= k;
        let step = h
            .cholesky()
            .ok_or(Error::NonFinite(
                "Newton system (Hessian not positive definite)",
            ))?
            .solve(&g);
        // Armijo backtracking keeps the iteration globally convergent on non-quadratic tasks.
        // Near the solution the decrease in f drowns in rounding, so a full step that halves the
        // gradient norm is accepted too (Newton's local quadratic convergence).
        let full = &x - &step;
        let (f_full, g_full) = (value(&full)?, grad(&full)?);
        let slope = g.dot(&step);
        if f_full <= f - 1e-4 * slope || g_full.norm() <= 0.5 * g.norm() {
            x = full;
            f = f_full;
            g = g_full;
        } else {
            let mut t = 0.5;
            loop {
                let candidate = &x - &step * t;
                let fc = value(&candidate)?;
                if fc <= f - 1e-4 * t * slope || t < 1e-12 {
                    x = candidate;
                    f = fc;
                    break;
                }
                t *= 0.5;
            }
            g = grad(&x)?;
        }
        if !f.is_finite() || !g.iter().all(|v| v.is_finite()) {
            return Err(Error::NonFinite("Newton iterate"));
        }
    }
    if g.norm() <= tol {
        return Ok(x);
    }
    Err(Error::NoConvergence {
        solver: "Newton",
        iterations: MAX_ITERS,
        residual: g.norm(),
    })
}
