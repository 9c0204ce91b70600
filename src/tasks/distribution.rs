//! Distributions over tasks: K training tasks and the downstream tasks are drawn i.i.d. from one
//! [`TaskDistribution`], whose `spread` sets how far apart the task minima are.

use super::elementary::LOGISTIC_THIRD_MAX;
use super::logistic::LogisticRegression;
use super::quadratic::{random_orthogonal, spd_with_spectrum, IsotropicQuadratic, Quadratic};
use super::separable::SoftplusSeparable;
use super::task::{BoxedTask, CurvatureBounds};
use crate::error::{ensure, Result};
use nalgebra::{DMatrix, DVector};
use rand::{Rng, RngExt};
use rand_distr::{Distribution, StandardNormal};

/// The task families of the toolkit.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub enum Family {
    /// `a/2 ||x - x*||^2` (Thm 2.2's setting).
    Isotropic { a: f64 },
    /// `1/2 (x - x*)^T H (x - x*)`, `H = Q diag(s) Q^T` with a fresh Haar `Q` per task and
    /// spectrum in `[mu, l]` containing both ends: Hessians of different tasks do not commute.
    Anisotropic { mu: f64, l: f64 },
    /// [`SoftplusSeparable`] with curvature in `[lambda_min, lambda_max]`, offsets `b_i ~ U[-1, 1]`,
    /// and (when `rotated`) a fresh random basis per task.
    NonQuadratic {
        lambda_min: f64,
        lambda_max: f64,
        rotated: bool,
    },
    /// [`LogisticRegression`] on `samples` points uniform on the sphere of radius `sqrt(d)`,
    /// labels from a teacher `w_k = 2 mu + spread * N(0, I)`.
    Logistic { samples: usize, reg: f64 },
}

impl Family {
    /// A short identifier used in reports.
    pub fn id(&self) -> &'static str {
        match self {
            Family::Isotropic { .. } => "isotropic",
            Family::Anisotropic { .. } => "anisotropic",
            Family::NonQuadratic { .. } => "nonquadratic",
            Family::Logistic { .. } => "logistic",
        }
    }
    /// The four default families used across the claims, with their standard constants.
    pub fn standard() -> [Family; 4] {
        [
            Family::Isotropic { a: 1.0 },
            Family::Anisotropic { mu: 0.5, l: 2.0 },
            Family::NonQuadratic {
                lambda_min: 0.5,
                lambda_max: 2.0,
                rotated: true,
            },
            Family::Logistic {
                samples: 64,
                reg: 0.1,
            },
        ]
    }
}

/// How the minimizer displacement `x* - mu` is drawn (per coordinate variance `spread^2`).
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub enum MinimaLaw {
    /// `spread * N(0, I)`.
    Gaussian,
    /// Independent `U[-sqrt(3) spread, sqrt(3) spread]` coordinates (same covariance).
    Uniform,
}

/// A distribution over tasks of one family in dimension `dim`.
#[derive(Clone, Debug)]
pub struct TaskDistribution {
    /// The family.
    pub family: Family,
    /// Dimension of the parameter space.
    pub dim: usize,
    /// Per-coordinate standard deviation of the minima (teachers, for logistic regression).
    pub spread: f64,
    /// Law of the displacements.
    pub law: MinimaLaw,
    /// Mean of the minima `mu` (of the teachers' halves for logistic regression).
    pub center: DVector<f64>,
}

impl TaskDistribution {
    /// A Gaussian distribution of minima around the default centre `mu_j = 1/sqrt(j + 1)`.
    pub fn new(family: Family, dim: usize, spread: f64) -> Result<Self> {
        ensure(dim >= 1, "dim", || "dimension must be at least 1".into())?;
        ensure(spread >= 0.0 && spread.is_finite(), "spread", || {
            format!("must be finite and >= 0, got {spread}")
        })?;
        match family {
            Family::Isotropic { a } => ensure(a > 0.0 && a.is_finite(), "a", || {
                format!("must be > 0, got {a}")
            })?,
            Family::Anisotropic { mu, l } => {
                ensure(mu > 0.0 && l >= mu && l.is_finite(), "spectrum", || {
                    format!("need 0 < mu <= L, got [{mu}, {l}]")
                })?
            }
            Family::NonQuadratic {
                lambda_min,
                lambda_max,
                ..
            } => ensure(
                lambda_min > 0.0 && lambda_max >= lambda_min && lambda_max.is_finite(),
                "curvature",
                || format!("need 0 < lambda_min <= lambda_max, got [{lambda_min}, {lambda_max}]"),
            )?,
            Family::Logistic { samples, reg } => {
                ensure(samples >= 1, "samples", || {
                    "need at least one sample per source".into()
                })?;
                ensure(reg > 0.0 && reg.is_finite(), "reg", || {
                    format!("must be > 0, got {reg}")
                })?
            }
        }
        let center = DVector::from_fn(dim, |j, _| 1.0 / ((j + 1) as f64).sqrt());
        Ok(Self {
            family,
            dim,
            spread,
            law: MinimaLaw::Gaussian,
            center,
        })
    }

    /// The same distribution with another law for the minima.
    pub fn with_law(mut self, law: MinimaLaw) -> Self {
        self.law = law;
        self
    }

    /// A draw of `x* - mu`.
    pub fn displacement<R: Rng + ?Sized>(&self, rng: &mut R) -> DVector<f64> {
        match self.law {
            MinimaLaw::Gaussian => DVector::from_fn(self.dim, |_, _| {
                self.spread * Distribution::<f64>::sample(&StandardNormal, rng)
            }),
            MinimaLaw::Uniform => {
                let half = 3f64.sqrt() * self.spread;
                DVector::from_fn(self.dim, |_, _| rng.random_range(-half..=half))
            }
        }
    }

    /// Curvature bounds valid for every task the distribution can produce.
    pub fn bounds(&self) -> CurvatureBounds {
        match self.family {
            Family::Isotropic { a } => CurvatureBounds {
                lambda_min: a,
                lambda_max: a,
                rho: 0.0,
                m3: 0.0,
            },
            Family::Anisotropic { mu, l } => CurvatureBounds {
                lambda_min: mu,
                lambda_max: l,
                rho: 0.0,
                m3: 0.0,
            },
            Family::NonQuadratic {
                lambda_min,
                lambda_max,
                ..
            } => {
                let third = 4.0 * (lambda_max - lambda_min) * LOGISTIC_THIRD_MAX;
                CurvatureBounds {
                    lambda_min,
                    lambda_max,
                    rho: third,
                    m3: third,
                }
            }
            Family::Logistic { reg, .. } => {
                // Features have norm sqrt(d), so lambda_max(X^T X / n) <= d.
                let d = self.dim as f64;
                let third = d.sqrt() * d * LOGISTIC_THIRD_MAX;
                CurvatureBounds {
                    lambda_min: reg,
                    lambda_max: reg + d / 4.0,
                    rho: third,
                    m3: third,
                }
            }
        }
    }

    /// Draws one task.
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> Result<BoxedTask> {
        let d = self.dim;
        Ok(match self.family {
            Family::Isotropic { a } => Box::new(IsotropicQuadratic::new(
                a,
                &self.center + self.displacement(rng),
                0.0,
            )?),
            Family::Anisotropic { mu, l } => {
                let h = spd_with_spectrum(d, mu, l, rng)?;
                Box::new(Quadratic::new(
                    h,
                    &self.center + self.displacement(rng),
                    0.0,
                )?)
            }
            Family::NonQuadratic {
                lambda_min,
                lambda_max,
                rotated,
            } => {
                let offsets = DVector::from_fn(d, |_, _| rng.random_range(-1.0..=1.0));
                let rotation = rotated.then(|| random_orthogonal(d, rng));
                let center = &self.center + self.displacement(rng);
                Box::new(SoftplusSeparable::new(
                    center, offsets, rotation, lambda_min, lambda_max, 0.0,
                )?)
            }
            Family::Logistic { samples, reg } => {
                let teacher = &self.center * 2.0 + self.displacement(rng);
                let radius = (d as f64).sqrt();
                let mut features = DMatrix::zeros(samples, d);
                let mut labels = DVector::zeros(samples);
                for i in 0..samples {
                    let g = DVector::<f64>::from_fn(d, |_, _| StandardNormal.sample(rng));
                    let x = &g * (radius / g.norm().max(f64::MIN_POSITIVE));
                    let p = super::elementary::sigmoid(x.dot(&teacher));
                    labels[i] = if rng.random::<f64>() < p { 1.0 } else { -1.0 };
                    features.row_mut(i).copy_from(&x.transpose());
                }
                Box::new(LogisticRegression::new(features, labels, reg)?)
            }
        })
    }

    /// Draws `count` i.i.d. tasks.
    pub fn sample_many<R: Rng + ?Sized>(
        &self,
        count: usize,
        rng: &mut R,
    ) -> Result<Vec<BoxedTask>> {
        (0..count).map(|_| self.sample(rng)).collect()
    }
}
