//! Quadratic tasks: isotropic basins (the Thm 2.2 setting) and anisotropic quadratics with
//! random, mutually non-commuting Hessians of a prescribed spectrum.

use super::task::{CurvatureBounds, Objective, Task};
use crate::error::{ensure, Error, Result};
use nalgebra::{DMatrix, DVector};
use rand::Rng;
use rand_distr::{Distribution, StandardNormal};

fn check_dim(expected: usize, x: &DVector<f64>) -> Result<()> {
    if x.len() == expected {
        Ok(())
    } else {
        Err(Error::DimensionMismatch {
            expected,
            got: x.len(),
        })
    }
}

/// `L(x) = a/2 ||x - x*||^2 + c`.
#[derive(Clone, Debug)]
pub struct IsotropicQuadratic {
    a: f64,
    center: DVector<f64>,
    offset: f64,
}

impl IsotropicQuadratic {
    /// A basin of curvature `a > 0` centred at `center`, with depth `offset`.
    pub fn new(a: f64, center: DVector<f64>, offset: f64) -> Result<Self> {
        ensure(a > 0.0 && a.is_finite(), "a", || {
            format!("curvature must be positive and finite, got {a}")
        })?;
        ensure(center.iter().all(|v| v.is_finite()), "center", || {
            "non-finite entry".into()
        })?;
        Ok(Self { a, center, offset })
    }
    /// The curvature `a`.
    pub fn curvature_a(&self) -> f64 {
        self.a
    }
}

impl Objective for IsotropicQuadratic {
    type Param = DVector<f64>;
    fn loss(&self, x: &DVector<f64>) -> Result<f64> {
        check_dim(self.center.len(), x)?;
        Ok(0.5 * self.a * (x - &self.center).norm_squared() + self.offset)
    }
    fn gradient(&self, x: &DVector<f64>) -> Result<DVector<f64>> {
        check_dim(self.center.len(), x)?;
        Ok((x - &self.center) * self.a)
    }
}

impl Task for IsotropicQuadratic {
    fn dim(&self) -> usize {
        self.center.len()
    }
    fn hessian(&self, x: &DVector<f64>) -> Result<DMatrix<f64>> {
        check_dim(self.center.len(), x)?;
        Ok(DMatrix::identity(x.len(), x.len()) * self.a)
    }
    fn hessian_vector(&self, x: &DVector<f64>, v: &DVector<f64>) -> Result<DVector<f64>> {
        check_dim(self.center.len(), x)?;
        Ok(v * self.a)
    }
    fn gradients(&self, xs: &DMatrix<f64>) -> Result<DMatrix<f64>> {
        Ok(super::elementary::minus_center(xs, &self.center)? * self.a)
    }
    fn third_contract(
        &self,
        x: &DVector<f64>,
        _u: &DVector<f64>,
        _v: &DVector<f64>,
    ) -> Result<DVector<f64>> {
        check_dim(self.center.len(), x)?;
        Ok(DVector::zeros(x.len()))
    }
    fn minimizer(&self) -> &DVector<f64> {
        &self.center
    }
    fn curvature(&self) -> CurvatureBounds {
        CurvatureBounds {
            lambda_min: self.a,
            lambda_max: self.a,
            rho: 0.0,
            m3: 0.0,
        }
    }
}

/// `L(x) = 1/2 (x - x*)^T H (x - x*) + c` with `H` symmetric positive definite.
#[derive(Clone, Debug)]
pub struct Quadratic {
    hessian: DMatrix<f64>,
    center: DVector<f64>,
    offset: f64,
    bounds: CurvatureBounds,
}

impl Quadratic {
    /// Builds the task; the curvature bounds are the extreme eigenvalues of `hessian`.
    pub fn new(hessian: DMatrix<f64>, center: DVector<f64>, offset: f64) -> Result<Self> {
        let d = center.len();
        ensure(
            hessian.nrows() == d && hessian.ncols() == d,
            "hessian",
            || {
                format!(
                    "expected {d}x{d}, got {}x{}",
                    hessian.nrows(),
                    hessian.ncols()
                )
            },
        )?;
        let sym = (&hessian + hessian.transpose()) * 0.5;
        let (lo, hi) = super::solve::symmetric_extremes(&sym);
        ensure(lo > 0.0, "hessian", || {
            format!("must be positive definite, smallest eigenvalue {lo}")
        })?;
        Ok(Self {
            hessian: sym,
            center,
            offset,
            bounds: CurvatureBounds {
                lambda_min: lo,
                lambda_max: hi,
                rho: 0.0,
                m3: 0.0,
            },
        })
    }
}

impl Objective for Quadratic {
    type Param = DVector<f64>;
    fn loss(&self, x: &DVector<f64>) -> Result<f64> {
        check_dim(self.center.len(), x)?;
        let dx = x - &self.center;
        Ok(0.5 * dx.dot(&(&self.hessian * &dx)) + self.offset)
    }
    fn gradient(&self, x: &DVector<f64>) -> Result<DVector<f64>> {
        check_dim(self.center.len(), x)?;
        Ok(&self.hessian * (x - &self.center))
    }
}

impl Task for Quadratic {
    fn dim(&self) -> usize {
        self.center.len()
    }
    fn hessian(&self, x: &DVector<f64>) -> Result<DMatrix<f64>> {
        check_dim(self.center.len(), x)?;
        Ok(self.hessian.clone())
    }
    /// `H (X - x* 1^T)`: one matrix product for all the points, reading half of `H` where
    /// that pays (`H` is symmetric by construction).
    fn gradients(&self, xs: &DMatrix<f64>) -> Result<DMatrix<f64>> {
        crate::linalg::symmetric_matmul(
            &self.hessian,
            &super::elementary::minus_center(xs, &self.center)?,
        )
    }
    fn third_contract(
        &self,
        x: &DVector<f64>,
        _u: &DVector<f64>,
        _v: &DVector<f64>,
    ) -> Result<DVector<f64>> {
        check_dim(self.center.len(), x)?;
        Ok(DVector::zeros(x.len()))
    }
    fn minimizer(&self) -> &DVector<f64> {
        &self.center
    }
    fn curvature(&self) -> CurvatureBounds {
        self.bounds
    }
}

/// A Haar-distributed random orthogonal matrix (QR of a Gaussian matrix, signs fixed so the
/// distribution is uniform).
pub fn random_orthogonal<R: Rng + ?Sized>(d: usize, rng: &mut R) -> DMatrix<f64> {
    let g = DMatrix::<f64>::from_fn(d, d, |_, _| StandardNormal.sample(rng));
    let qr = g.qr();
    let (mut q, r) = (qr.q(), qr.r());
    for j in 0..d {
        if r[(j, j)] < 0.0 {
            q.column_mut(j).neg_mut();
        }
    }
    q
}

/// A random SPD matrix `Q diag(s) Q^T` whose spectrum contains both `mu` and `l` (for d >= 2)
/// and otherwise log-uniform values in between. For d = 1 the eigenvalue is log-uniform.
pub fn spd_with_spectrum<R: Rng + ?Sized>(
    d: usize,
    mu: f64,
    l: f64,
    rng: &mut R,
) -> Result<DMatrix<f64>> {
    ensure(mu > 0.0 && l >= mu && l.is_finite(), "spectrum", || {
        format!("need 0 < mu <= L, got [{mu}, {l}]")
    })?;
    let q = random_orthogonal(d, rng);
    let log_uniform = |rng: &mut R| -> f64 {
        let u: f64 = rand::RngExt::random(rng);
        (mu.ln() + u * (l / mu).ln()).exp()
    };
    let spectrum: Vec<f64> = (0..d)
        .map(|i| match (d, i) {
            (1, _) => log_uniform(rng),
            (_, 0) => mu,
            (_, 1) => l,
            _ => log_uniform(rng),
        })
        .collect();
    let s = DMatrix::from_diagonal(&DVector::from_vec(spectrum));
    let h = &q * s * q.transpose();
    Ok((&h + h.transpose()) * 0.5)
}
