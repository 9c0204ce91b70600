//! L2-regularised logistic regression on one synthetic data source: a real model family.
//!
//! `L(w) = (1/n) sum_i softplus(-y_i x_i^T w) + (reg/2) ||w||^2`, labels `y_i in {-1, +1}`.
//! With `m_i = y_i x_i^T w` and `l(m) = softplus(-m)`: `l'' = s(m)(1 - s(m)) <= 1/4` and
//! `|l'''| <= 1/(6 sqrt 3)`, so (features on the sphere of radius `r`)
//! `lambda_min = reg`, `lambda_max <= reg + lambda_max(X^T X / n) / 4`,
//! `rho, M_3 <= r lambda_max(X^T X / n) / (6 sqrt 3)`.

use super::elementary::{sigmoid, softplus, LOGISTIC_THIRD_MAX};
use super::task::{CurvatureBounds, Objective, Task};
use crate::error::{ensure, Error, Result};
use nalgebra::{DMatrix, DVector};

/// See the module documentation.
#[derive(Clone, Debug)]
pub struct LogisticRegression {
    features: DMatrix<f64>,
    labels: DVector<f64>,
    reg: f64,
    minimizer: DVector<f64>,
    bounds: CurvatureBounds,
}

impl LogisticRegression {
    /// Builds the task from `n x d` features and `+-1` labels, and solves for its minimizer.
    pub fn new(features: DMatrix<f64>, labels: DVector<f64>, reg: f64) -> Result<Self> {
        let (n, d) = features.shape();
        ensure(n > 0 && d > 0, "features", || {
            "need at least one sample and one feature".into()
        })?;
        ensure(labels.len() == n, "labels", || {
            format!("expected {n} labels, got {}", labels.len())
        })?;
        ensure(
            labels.iter().all(|&y| y == 1.0 || y == -1.0),
            "labels",
            || "labels must be +1 or -1".into(),
        )?;
        ensure(reg > 0.0 && reg.is_finite(), "reg", || {
            format!("must be positive for strong convexity, got {reg}")
        })?;
        ensure(features.iter().all(|v| v.is_finite()), "features", || {
            "non-finite entry".into()
        })?;
        let gram = features.transpose() * &features / n as f64;
        let (_, gram_max) = super::solve::symmetric_extremes(&gram);
        let radius = features.row_iter().map(|r| r.norm()).fold(0.0, f64::max);
        let third = radius * gram_max * LOGISTIC_THIRD_MAX;
        let bounds = CurvatureBounds {
            lambda_min: reg,
            lambda_max: reg + gram_max / 4.0,
            rho: third,
            m3: third,
        };
        let mut task = Self {
            features,
            labels,
            reg,
            minimizer: DVector::zeros(d),
            bounds,
        };
        task.minimizer =
            super::solve::minimize_average(std::slice::from_ref(&task), &DVector::zeros(d))?;
        Ok(task)
    }

    fn margins(&self, w: &DVector<f64>) -> Result<DVector<f64>> {
        if w.len() != self.features.ncols() {
            return Err(Error::DimensionMismatch {
                expected: self.features.ncols(),
                got: w.len(),
            });
        }
        Ok((&self.features * w).component_mul(&self.labels))
    }
    fn n(&self) -> f64 {
        self.features.nrows() as f64
    }
}

impl Objective for LogisticRegression {
    type Param = DVector<f64>;
    fn loss(&self, w: &DVector<f64>) -> Result<f64> {
        let m = self.margins(w)?;
        Ok(m.iter().map(|&mi| softplus(-mi)).sum::<f64>() / self.n()
            + 0.5 * self.reg * w.norm_squared())
    }
    fn gradient(&self, w: &DVector<f64>) -> Result<DVector<f64>> {
        let m = self.margins(w)?;
        // d/dw softplus(-m_i) = -s(-m_i) y_i x_i
        let coef = DVector::from_iterator(
            m.len(),
            m.iter()
                .zip(self.labels.iter())
                .map(|(&mi, &y)| -sigmoid(-mi) * y),
        );
        Ok(self.features.tr_mul(&coef) / self.n() + w * self.reg)
    }
}

impl Task for LogisticRegression {
    fn dim(&self) -> usize {
        self.features.ncols()
    }
    fn hessian(&self, w: &DVector<f64>) -> Result<DMatrix<f64>> {
        let m = self.margins(w)?;
        let weights = DVector::from_iterator(
            m.len(),
            m.iter().map(|&mi| sigmoid(mi) * (1.0 - sigmoid(mi))),
        );
        let mut weighted = self.features.clone();
        for (mut row, wt) in weighted.row_iter_mut().zip(weights.iter()) {
            row *= *wt;
        }
        let d = self.dim();
        Ok(self.features.transpose() * weighted / self.n() + DMatrix::identity(d, d) * self.reg)
    }
    fn hessian_vector(&self, w: &DVector<f64>, v: &DVector<f64>) -> Result<DVector<f64>> {
        let m = self.margins(w)?;
        let xv = &self.features * v;
        let coef = DVector::from_iterator(
            m.len(),
            m.iter()
                .zip(xv.iter())
                .map(|(&mi, &p)| sigmoid(mi) * (1.0 - sigmoid(mi)) * p),
        );
        Ok(self.features.tr_mul(&coef) / self.n() + v * self.reg)
    }
    /// `X^T C / n + reg W` with `C_ij = -s(-m_ij) y_i` and margins `m = diag(y) X W`: two
    /// matrix products for all the points.
    fn gradients(&self, ws: &DMatrix<f64>) -> Result<DMatrix<f64>> {
        if ws.nrows() != self.features.ncols() {
            return Err(Error::DimensionMismatch {
                expected: self.features.ncols(),
                got: ws.nrows(),
            });
        }
        let mut coef = crate::linalg::matmul(&self.features, ws)?;
        for mut column in coef.column_iter_mut() {
            for (c, &y) in column.iter_mut().zip(self.labels.iter()) {
                *c = -sigmoid(-(*c * y)) * y;
            }
        }
        Ok(crate::linalg::matmul_tn(&self.features, &coef)? / self.n() + ws * self.reg)
    }
    fn third_contract(
        &self,
        w: &DVector<f64>,
        u: &DVector<f64>,
        v: &DVector<f64>,
    ) -> Result<DVector<f64>> {
        // D^3 L[u, v, .] = (1/n) sum_i l'''(m_i) y_i^3 (x_i.u)(x_i.v) x_i, with l'''(m) = s(1-s)(1-2s)
        // evaluated at s = s(m): d/dm [s(m)(1 - s(m))] and y^3 = y.
        let m = self.margins(w)?;
        let (xu, xv) = (&self.features * u, &self.features * v);
        let coef = DVector::from_iterator(
            m.len(),
            (0..m.len()).map(|i| {
                let s = sigmoid(m[i]);
                s * (1.0 - s) * (1.0 - 2.0 * s) * self.labels[i] * xu[i] * xv[i]
            }),
        );
        Ok(self.features.tr_mul(&coef) / self.n())
    }
    fn minimizer(&self) -> &DVector<f64> {
        &self.minimizer
    }
    fn curvature(&self) -> CurvatureBounds {
        self.bounds
    }
}
