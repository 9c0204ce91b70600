//! A non-quadratic strongly convex family with a nonzero third derivative.
//!
//! `L(x) = sum_i phi_i(z_i) + c`, `z = Q (x - x*)` with `Q` orthogonal (the identity for the
//! separable case), and
//! `phi_i(z) = lambda_min z^2 / 2 + 4 (lambda_max - lambda_min) [softplus(z + b_i) - softplus(b_i) - s(b_i) z]`,
//! `s` the logistic function. Then `phi_i(0) = phi_i'(0) = 0`, so `x*` is the unique minimizer, and
//! `phi_i'' = lambda_min + 4 (lambda_max - lambda_min) s(1 - s)` lies in `(lambda_min, lambda_max]`
//! (the maximum is reached at `z = -b_i`). The offsets `b_i` make the third derivative at the
//! minimizer nonzero: `phi_i''' = 4 (lambda_max - lambda_min) s (1 - s)(1 - 2 s)`, bounded by
//! `4 (lambda_max - lambda_min) / (6 sqrt 3)`. Since the Hessian is `Q^T diag(phi'') Q`,
//! that bound is both `rho` and `M_3`.

use super::elementary::{sigmoid, softplus, LOGISTIC_THIRD_MAX};
use super::task::{CurvatureBounds, Objective, Task};
use crate::error::{ensure, Error, Result};
use nalgebra::{DMatrix, DVector};

/// See the module documentation.
#[derive(Clone, Debug)]
pub struct SoftplusSeparable {
    center: DVector<f64>,
    offsets: DVector<f64>,
    rotation: Option<DMatrix<f64>>,
    lambda_min: f64,
    lambda_max: f64,
    depth: f64,
}

impl SoftplusSeparable {
    /// `rotation`, when given, must be orthogonal; `offsets` are the `b_i`.
    pub fn new(
        center: DVector<f64>,
        offsets: DVector<f64>,
        rotation: Option<DMatrix<f64>>,
        lambda_min: f64,
        lambda_max: f64,
        depth: f64,
    ) -> Result<Self> {
        let d = center.len();
        ensure(offsets.len() == d, "offsets", || {
            format!("expected {d} entries, got {}", offsets.len())
        })?;
        ensure(
            lambda_min > 0.0 && lambda_max >= lambda_min && lambda_max.is_finite(),
            "curvature",
            || format!("need 0 < lambda_min <= lambda_max, got [{lambda_min}, {lambda_max}]"),
        )?;
        if let Some(q) = &rotation {
            let err = (q.transpose() * q - DMatrix::identity(d, d)).norm();
            ensure(
                q.nrows() == d && q.ncols() == d && err < 1e-10,
                "rotation",
                || format!("must be a {d}x{d} orthogonal matrix (||Q^T Q - I|| = {err:e})"),
            )?;
        }
        Ok(Self {
            center,
            offsets,
            rotation,
            lambda_min,
            lambda_max,
            depth,
        })
    }

    fn to_local(&self, x: &DVector<f64>) -> Result<DVector<f64>> {
        if x.len() != self.center.len() {
            return Err(Error::DimensionMismatch {
                expected: self.center.len(),
                got: x.len(),
            });
        }
        let dx = x - &self.center;
        Ok(match &self.rotation {
            Some(q) => q * dx,
            None => dx,
        })
    }
    fn to_global(&self, v: DVector<f64>) -> DVector<f64> {
        match &self.rotation {
            Some(q) => q.tr_mul(&v),
            None => v,
        }
    }
    fn rotate(&self, v: &DVector<f64>) -> DVector<f64> {
        match &self.rotation {
            Some(q) => q * v,
            None => v.clone(),
        }
    }
    fn excess(&self) -> f64 {
        4.0 * (self.lambda_max - self.lambda_min)
    }
    fn phi(&self, i: usize, z: f64) -> f64 {
        let b = self.offsets[i];
        0.5 * self.lambda_min * z * z
            + self.excess() * (softplus(z + b) - softplus(b) - sigmoid(b) * z)
    }
    fn dphi(&self, i: usize, z: f64) -> f64 {
        let b = self.offsets[i];
        self.lambda_min * z + self.excess() * (sigmoid(z + b) - sigmoid(b))
    }
    fn d2phi(&self, i: usize, z: f64) -> f64 {
        let s = sigmoid(z + self.offsets[i]);
        self.lambda_min + self.excess() * s * (1.0 - s)
    }
    fn d3phi(&self, i: usize, z: f64) -> f64 {
        let s = sigmoid(z + self.offsets[i]);
        self.excess() * s * (1.0 - s) * (1.0 - 2.0 * s)
    }
}

impl Objective for SoftplusSeparable {
    type Param = DVector<f64>;
    fn loss(&self, x: &DVector<f64>) -> Result<f64> {
        let z = self.to_local(x)?;
        Ok(z.iter()
            .enumerate()
            .map(|(i, &zi)| self.phi(i, zi))
            .sum::<f64>()
            + self.depth)
    }
    fn gradient(&self, x: &DVector<f64>) -> Result<DVector<f64>> {
        let z = self.to_local(x)?;
        let local = DVector::from_iterator(
            z.len(),
            z.iter().enumerate().map(|(i, &zi)| self.dphi(i, zi)),
        );
        Ok(self.to_global(local))
    }
}

impl Task for SoftplusSeparable {
    fn dim(&self) -> usize {
        self.center.len()
    }
    /// `Q^T phi'(Q (X - x* 1^T))`: two matrix products for all the points (none unrotated).
    fn gradients(&self, xs: &DMatrix<f64>) -> Result<DMatrix<f64>> {
        let dx = super::elementary::minus_center(xs, &self.center)?;
        let mut z = match &self.rotation {
            Some(q) => crate::linalg::matmul(q, &dx)?,
            None => dx,
        };
        for mut column in z.column_iter_mut() {
            for (i, zi) in column.iter_mut().enumerate() {
                *zi = self.dphi(i, *zi);
            }
        }
        match &self.rotation {
            Some(q) => crate::linalg::matmul_tn(q, &z),
            None => Ok(z),
        }
    }
    fn hessian(&self, x: &DVector<f64>) -> Result<DMatrix<f64>> {
        let z = self.to_local(x)?;
        let diag = DVector::from_iterator(
            z.len(),
            z.iter().enumerate().map(|(i, &zi)| self.d2phi(i, zi)),
        );
        let dm = DMatrix::from_diagonal(&diag);
        Ok(match &self.rotation {
            Some(q) => q.transpose() * dm * q,
            None => dm,
        })
    }
    fn hessian_vector(&self, x: &DVector<f64>, v: &DVector<f64>) -> Result<DVector<f64>> {
        let z = self.to_local(x)?;
        let qv = self.rotate(v);
        let local = DVector::from_iterator(
            z.len(),
            z.iter()
                .enumerate()
                .map(|(i, &zi)| self.d2phi(i, zi) * qv[i]),
        );
        Ok(self.to_global(local))
    }
    fn third_contract(
        &self,
        x: &DVector<f64>,
        u: &DVector<f64>,
        v: &DVector<f64>,
    ) -> Result<DVector<f64>> {
        let z = self.to_local(x)?;
        let (qu, qv) = (self.rotate(u), self.rotate(v));
        let local = DVector::from_iterator(
            z.len(),
            z.iter()
                .enumerate()
                .map(|(i, &zi)| self.d3phi(i, zi) * qu[i] * qv[i]),
        );
        Ok(self.to_global(local))
    }
    fn minimizer(&self) -> &DVector<f64> {
        &self.center
    }
    fn curvature(&self) -> CurvatureBounds {
        let third = self.excess() * LOGISTIC_THIRD_MAX;
        CurvatureBounds {
            lambda_min: self.lambda_min,
            lambda_max: self.lambda_max,
            rho: third,
            m3: third,
        }
    }
}
