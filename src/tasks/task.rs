//! The traits every task implements ([`Objective`], [`Task`]), the curvature bounds they state
//! and the gradient-norm bounds over a ball.

use crate::error::Result;
use crate::params::ParamVec;
use nalgebra::{DMatrix, DVector};

/// A loss with a gradient over a parameter type: all that Nexus and the outer optimizers need.
pub trait Objective {
    /// The parameter type (a `DVector<f64>` here, a set of tensors in the Llama runs).
    type Param: ParamVec;
    /// `L(x)`.
    fn loss(&self, x: &Self::Param) -> Result<f64>;
    /// `grad L(x)`.
    fn gradient(&self, x: &Self::Param) -> Result<Self::Param>;
}

/// Global curvature constants of a task (or of every task of a family).
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct CurvatureBounds {
    /// Smallest directional curvature `inf_{x, ||u||=1} u^T H(x) u` (mu).
    pub lambda_min: f64,
    /// Largest directional curvature, equal to `sup_x ||H(x)||` for these convex tasks (L).
    pub lambda_max: f64,
    /// Lipschitz constant of the Hessian in spectral norm (rho).
    pub rho: f64,
    /// Bound on the third derivative over unit vectors (M_3).
    pub m3: f64,
}

impl CurvatureBounds {
    /// The bounds that hold for every task of both sets.
    pub fn hull(&self, other: &CurvatureBounds) -> CurvatureBounds {
        CurvatureBounds {
            lambda_min: self.lambda_min.min(other.lambda_min),
            lambda_max: self.lambda_max.max(other.lambda_max),
            rho: self.rho.max(other.rho),
            m3: self.m3.max(other.m3),
        }
    }
}

/// A task with exact derivatives up to third order over `R^d`.
pub trait Task: Objective<Param = DVector<f64>> + Send + Sync {
    /// Dimension `d` of the parameter space.
    fn dim(&self) -> usize;
    /// The exact Hessian `H(x)`.
    fn hessian(&self, x: &DVector<f64>) -> Result<DMatrix<f64>>;
    /// `H(x) v`; overridden where a cheaper product exists.
    fn hessian_vector(&self, x: &DVector<f64>, v: &DVector<f64>) -> Result<DVector<f64>> {
        Ok(self.hessian(x)? * v)
    }
    /// `grad L` at every column of `xs` (one point per column): the batched oracle with which
    /// the exact and Monte Carlo engines advance many points at once
    /// ([`crate::expectation`]). The default evaluates [`Objective::gradient`] column by
    /// column; the quadratic, logistic and separable families override it with matrix
    /// products ([`crate::linalg`]), equal to the column-wise values to float64 rounding
    /// (tested in `tests/derivatives.rs`).
    fn gradients(&self, xs: &DMatrix<f64>) -> Result<DMatrix<f64>> {
        let mut out = DMatrix::zeros(xs.nrows(), xs.ncols());
        for (j, x) in xs.column_iter().enumerate() {
            out.set_column(j, &self.gradient(&x.into_owned())?);
        }
        Ok(out)
    }
    /// The third-derivative contraction `D^3 L(x)[u, v, .]`, a vector.
    fn third_contract(
        &self,
        x: &DVector<f64>,
        u: &DVector<f64>,
        v: &DVector<f64>,
    ) -> Result<DVector<f64>>;
    /// The unique minimizer (closed form, or solved to float64 precision at construction).
    fn minimizer(&self) -> &DVector<f64>;
    /// The global curvature constants of this task.
    fn curvature(&self) -> CurvatureBounds;
}

/// The constants of Sec. 7.2 and 11.2 for one task over a ball `B(center, radius)`.
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct TaskConstants {
    /// Curvature constants (global).
    pub curvature: CurvatureBounds,
    /// Lower bound on `||grad L||` over the ball (0 when the ball holds the minimizer).
    pub g_min: f64,
    /// Upper bound on `||grad L||` over the ball.
    pub g_max: f64,
}

impl TaskConstants {
    /// Gradient bounds over a ball from the minimizer and the curvature bounds.
    ///
    /// For a strongly convex task, `grad L(x) = A (x - x*)` with `A = int_0^1 H(x* + t(x - x*)) dt`,
    /// whose spectrum lies in `[lambda_min, lambda_max]`, so
    /// `lambda_min ||x - x*|| <= ||grad L(x)|| <= lambda_max ||x - x*||`.
    pub fn over_ball<T: Task + ?Sized>(
        task: &T,
        center: &DVector<f64>,
        radius: f64,
    ) -> TaskConstants {
        let curvature = task.curvature();
        let dist = (center - task.minimizer()).norm();
        TaskConstants {
            curvature,
            g_min: curvature.lambda_min * (dist - radius).max(0.0),
            g_max: curvature.lambda_max * (dist + radius),
        }
    }
}

/// Forwards `Objective` and `Task` through a pointer type (`Box<T>`, `&T`).
macro_rules! forward_task {
    ($($ptr:ty),*) => {$(
        impl<T: Objective + ?Sized> Objective for $ptr {
            type Param = T::Param;
            fn loss(&self, x: &Self::Param) -> Result<f64> {
                (**self).loss(x)
            }
            fn gradient(&self, x: &Self::Param) -> Result<Self::Param> {
                (**self).gradient(x)
            }
        }

        impl<T: Task + ?Sized> Task for $ptr {
            fn dim(&self) -> usize {
                (**self).dim()
            }
            fn hessian(&self, x: &DVector<f64>) -> Result<DMatrix<f64>> {
                (**self).hessian(x)
            }
            fn hessian_vector(&self, x: &DVector<f64>, v: &DVector<f64>) -> Result<DVector<f64>> {
                (**self).hessian_vector(x, v)
            }
            fn gradients(&self, xs: &DMatrix<f64>) -> Result<DMatrix<f64>> {
                (**self).gradients(xs)
            }
            fn third_contract(&self, x: &DVector<f64>, u: &DVector<f64>, v: &DVector<f64>) -> Result<DVector<f64>> {
                (**self).third_contract(x, u, v)
            }
            fn minimizer(&self) -> &DVector<f64> {
                (**self).minimizer()
            }
            fn curvature(&self) -> CurvatureBounds {
                (**self).curvature()
            }
        }
    )*};
}

forward_task!(Box<T>, &T);

/// A boxed task of any family.
pub type BoxedTask = Box<dyn Task>;
