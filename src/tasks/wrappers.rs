//! Tasks built from other tasks: a positive multiple of the loss, a rotated copy, and a tilted
//! copy whose minimizer is moved to a chosen point. They keep exact derivatives.

use super::task::{CurvatureBounds, Objective, Task};
use crate::error::{ensure, Result};
use nalgebra::{DMatrix, DVector};

/// `c L(x)` with `c > 0`.
pub struct Scaled<T> {
    inner: T,
    factor: f64,
}

impl<T: Task> Scaled<T> {
    /// Scales `inner` by `factor > 0`.
    pub fn new(inner: T, factor: f64) -> Result<Self> {
        ensure(factor > 0.0 && factor.is_finite(), "factor", || {
            format!("must be finite and > 0, got {factor}")
        })?;
        Ok(Self { inner, factor })
    }
}

impl<T: Task> Objective for Scaled<T> {
    type Param = DVector<f64>;
    fn loss(&self, x: &DVector<f64>) -> Result<f64> {
        Ok(self.factor * self.inner.loss(x)?)
    }
    fn gradient(&self, x: &DVector<f64>) -> Result<DVector<f64>> {
        Ok(self.inner.gradient(x)? * self.factor)
    }
}

impl<T: Task> Task for Scaled<T> {
    fn dim(&self) -> usize {
        self.inner.dim()
    }
    fn gradients(&self, xs: &DMatrix<f64>) -> Result<DMatrix<f64>> {
        Ok(self.inner.gradients(xs)? * self.factor)
    }
    fn hessian(&self, x: &DVector<f64>) -> Result<DMatrix<f64>> {
        Ok(self.inner.hessian(x)? * self.factor)
    }
    fn hessian_vector(&self, x: &DVector<f64>, v: &DVector<f64>) -> Result<DVector<f64>> {
        Ok(self.inner.hessian_vector(x, v)? * self.factor)
    }
    fn third_contract(
        &self,
        x: &DVector<f64>,
        u: &DVector<f64>,
        v: &DVector<f64>,
    ) -> Result<DVector<f64>> {
        Ok(self.inner.third_contract(x, u, v)? * self.factor)
    }
    fn minimizer(&self) -> &DVector<f64> {
        self.inner.minimizer()
    }
    fn curvature(&self) -> CurvatureBounds {
        let c = self.inner.curvature();
        let f = self.factor;
        CurvatureBounds {
            lambda_min: c.lambda_min * f,
            lambda_max: c.lambda_max * f,
            rho: c.rho * f,
            m3: c.m3 * f,
        }
    }
}

/// `L(R^T x)` for an orthogonal `R`: the task carried along by the rotation `x -> R x`.
pub struct Rotated<T> {
    inner: T,
    rotation: DMatrix<f64>,
    minimizer: DVector<f64>,
}

impl<T: Task> Rotated<T> {
    /// Rotates `inner` by the orthogonal matrix `rotation`.
    pub fn new(inner: T, rotation: DMatrix<f64>) -> Result<Self> {
        let d = inner.dim();
        let err = (rotation.transpose() * &rotation - DMatrix::identity(d, d)).norm();
        ensure(
            rotation.shape() == (d, d) && err < 1e-10,
            "rotation",
            || format!("must be {d}x{d} orthogonal"),
        )?;
        let minimizer = &rotation * inner.minimizer();
        Ok(Self {
            inner,
            rotation,
            minimizer,
        })
    }
    fn back(&self, x: &DVector<f64>) -> DVector<f64> {
        self.rotation.tr_mul(x)
    }
}

impl<T: Task> Objective for Rotated<T> {
    type Param = DVector<f64>;
    fn loss(&self, x: &DVector<f64>) -> Result<f64> {
        self.inner.loss(&self.back(x))
    }
    fn gradient(&self, x: &DVector<f64>) -> Result<DVector<f64>> {
        Ok(&self.rotation * self.inner.gradient(&self.back(x))?)
    }
}

impl<T: Task> Task for Rotated<T> {
    fn dim(&self) -> usize {
        self.inner.dim()
    }
    fn gradients(&self, xs: &DMatrix<f64>) -> Result<DMatrix<f64>> {
        let back = crate::linalg::matmul_tn(&self.rotation, xs)?;
        crate::linalg::matmul(&self.rotation, &self.inner.gradients(&back)?)
    }
    fn hessian(&self, x: &DVector<f64>) -> Result<DMatrix<f64>> {
        Ok(&self.rotation * self.inner.hessian(&self.back(x))? * self.rotation.transpose())
    }
    fn third_contract(
        &self,
        x: &DVector<f64>,
        u: &DVector<f64>,
        v: &DVector<f64>,
    ) -> Result<DVector<f64>> {
        Ok(&self.rotation
            * self
                .inner
                .third_contract(&self.back(x), &self.back(u), &self.back(v))?)
    }
    fn minimizer(&self) -> &DVector<f64> {
        &self.minimizer
    }
    fn curvature(&self) -> CurvatureBounds {
        self.inner.curvature()
    }
}

/// `L(x) - c^T x` with `c = grad L(target)`: same Hessian, minimizer moved to `target`.
pub struct Tilted<T> {
    inner: T,
    tilt: DVector<f64>,
    target: DVector<f64>,
}

impl<T: Task> Tilted<T> {
    /// Tilts `inner` so that its unique minimizer is `target`.
    pub fn new(inner: T, target: DVector<f64>) -> Result<Self> {
        let tilt = inner.gradient(&target)?;
        Ok(Self {
            inner,
            tilt,
            target,
        })
    }
}

impl<T: Task> Objective for Tilted<T> {
    type Param = DVector<f64>;
    fn loss(&self, x: &DVector<f64>) -> Result<f64> {
        Ok(self.inner.loss(x)? - self.tilt.dot(x))
    }
    fn gradient(&self, x: &DVector<f64>) -> Result<DVector<f64>> {
        Ok(self.inner.gradient(x)? - &self.tilt)
    }
}

impl<T: Task> Task for Tilted<T> {
    fn dim(&self) -> usize {
        self.inner.dim()
    }
    fn gradients(&self, xs: &DMatrix<f64>) -> Result<DMatrix<f64>> {
        let mut g = self.inner.gradients(xs)?;
        for mut column in g.column_iter_mut() {
            column -= &self.tilt;
        }
        Ok(g)
    }
    fn hessian(&self, x: &DVector<f64>) -> Result<DMatrix<f64>> {
        self.inner.hessian(x)
    }
    fn hessian_vector(&self, x: &DVector<f64>, v: &DVector<f64>) -> Result<DVector<f64>> {
        self.inner.hessian_vector(x, v)
    }
    fn third_contract(
        &self,
        x: &DVector<f64>,
        u: &DVector<f64>,
        v: &DVector<f64>,
    ) -> Result<DVector<f64>> {
        self.inner.third_contract(x, u, v)
    }
    fn minimizer(&self) -> &DVector<f64> {
        &self.target
    }
    fn curvature(&self) -> CurvatureBounds {
        self.inner.curvature()
    }
}
