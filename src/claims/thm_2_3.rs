//! Thm 2.3 (generalization of closeness beyond quadratics), claimed as an upper bound.
//!
//! **Claim** (Sec. 2.3, Eq. 6; proof Sec. 9.2). Directional curvature in
//! `[lambda_min, lambda_max]` along the segments `[x_L*, x*]`, `sigma^2 = E||x_L* - mu||^2`,
//! flatness independent of closeness. Then
//! `E_T[L_T(x_train*)] - C_train <= lambda_max ((lambda_max / lambda_min)^2 + 1) / (2K) sigma^2`.
//!
//! **What we measure.** The generalization gap averaged over draws of the K training tasks:
//! each draw gives `L_T(x_train*) - L_train(x_train*)` with `x_train*` the exact stationary point
//! of the draw and `T` a fresh task; the bound uses the family's global curvature constants.
//! `sigma^2` is exact where the family fixes the minima's law (`d spread^2`), else estimated from
//! the minimizers of every task drawn. The bound "holds" on an instance unless a one-sided test
//! rejects it, Holm-corrected over the reading's instances at family-wise level 0.001. On
//! isotropic laws the gap has a closed form ([`quadratic_law_gap`]: `a sigma^2 / K`), and the
//! bound is decided on it exactly (it holds with equality there, `kappa = 1`); the Monte Carlo
//! gap is tested against the closed form as a check of both.
//!
//! **Tightness** (`tightness` search, `thm-2.3-law`): on quadratic laws with spectra in
//! `[lambda_min, lambda_max]` the largest gap / bound found is `2/(kappa^2 + 1)`, attained by
//! isotropic tasks at `lambda_max`; the `kappa^2` factor is slack there.
//!
//! Also reported: the proof's Step 1 (Eq. 31, `E||x_train* - mu||^2 <= kappa^2 sigma^2 / K`),
//! and a probe that breaks the independence assumption: isotropic tasks whose curvature is
//! `lambda_max` when the minimum lies on one side of `mu` (first coordinate above `mu_1`) and
//! `lambda_min` otherwise.

use super::common::{family_code, run_grid, stationary_point, stream, Claim, Settings};
use crate::error::Result;
use crate::report::{
    ClaimKind, ClaimMeta, ClaimReport, Figure, Hypothesis, Instance, Reading, Role, Test,
};
use crate::stats::{mean_ci, CI_LEVEL};
use crate::tasks::{
    BoxedTask, CurvatureBounds, Family, IsotropicQuadratic, Objective, Task, TaskDistribution,
};
use indicatif::ProgressBar;
use nalgebra::DVector;
use rand::Rng;

/// The claim [`Thm23`] checks.
pub const THM_2_3: ClaimMeta = ClaimMeta {
    id: "thm-2.3",
    reference: "Thm 2.3, Eq. 6 (proof Sec. 9.2)",
    statement: "With directional curvature in [lambda_min, lambda_max] along the segments, sigma^2 = E||x_L* - mu||^2 and flatness independent of closeness: E_T[L_T(x_train*)] - C_train <= lambda_max ((lambda_max/lambda_min)^2 + 1) / (2K) sigma^2.",
    kind: ClaimKind::UpperBound,
};

/// The task law of one instance: a standard family, or the correlated-curvature probe.
#[derive(Clone, Copy, Debug)]
pub enum Law {
    /// A standard family (independent flatness and closeness).
    Family(Family),
    /// Isotropic tasks, curvature `hi` when `x*_1 > mu_1`, else `lo`: flatness depends on closeness.
    CorrelatedCurvature { lo: f64, hi: f64 },
}

impl Law {
    fn id(&self) -> &'static str {
        match self {
            Law::Family(f) => f.id(),
            Law::CorrelatedCurvature { .. } => "correlated-curvature",
        }
    }
}

/// One configuration.
#[derive(Clone, Copy, Debug)]
pub struct Thm23Params {
    /// Task law.
    pub law: Law,
    /// Dimension.
    pub d: usize,
    /// Number of training tasks.
    pub k: usize,
    /// Per-coordinate spread of the minima.
    pub spread: f64,
}

struct Sampler {
    dist: TaskDistribution,
    law: Law,
}

impl Sampler {
    fn new(p: &Thm23Params) -> Result<Self> {
        let family = match p.law {
            Law::Family(f) => f,
            Law::CorrelatedCurvature { lo, .. } => Family::Isotropic { a: lo },
        };
        Ok(Self {
            dist: TaskDistribution::new(family, p.d, p.spread)?,
            law: p.law,
        })
    }
    fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> Result<BoxedTask> {
        match self.law {
            Law::Family(_) => self.dist.sample(rng),
            Law::CorrelatedCurvature { lo, hi } => {
                let z = self.dist.displacement(rng);
                let a = if z[0] > 0.0 { hi } else { lo };
                Ok(Box::new(IsotropicQuadratic::new(
                    a,
                    &self.dist.center + z,
                    0.0,
                )?))
            }
        }
    }
    fn bounds(&self) -> CurvatureBounds {
        match self.law {
            Law::Family(_) => self.dist.bounds(),
            Law::CorrelatedCurvature { lo, hi } => CurvatureBounds {
                lambda_min: lo,
                lambda_max: hi,
                rho: 0.0,
                m3: 0.0,
            },
        }
    }
    fn is_quadratic(&self) -> bool {
        matches!(
            self.law,
            Law::Family(Family::Isotropic { .. } | Family::Anisotropic { .. })
                | Law::CorrelatedCurvature { .. }
        )
    }
    /// `E||x_L* - mu||^2` and `mu` when the law fixes them.
    fn exact_moments(&self) -> Option<(f64, DVector<f64>)> {
        match self.law {
            Law::Family(Family::Logistic { .. }) => None,
            _ => Some((
                self.dist.dim as f64 * self.dist.spread.powi(2),
                self.dist.center.clone(),
            )),
        }
    }
}

/// Measured and claimed sides of Eq. 6 and Eq. 31 for one configuration.
#[derive(Clone, Copy, Debug)]
pub struct Thm23Sides {
    /// Mean generalization gap and its interval.
    pub gap: crate::stats::MeanCi,
    /// Right side of Eq. 6.
    pub bound: f64,
    /// Mean of `||x_train* - mu||^2`.
    pub estimation_error: crate::stats::MeanCi,
    /// Right side of Eq. 31.
    pub estimation_bound: f64,
    /// `sigma^2` used.
    pub sigma2: f64,
    /// Mean training loss `E[C_train]`; for quadratic tasks of depth 0 it equals the proof's
    /// `Q_train` (Eq. 33).
    pub train_loss: crate::stats::MeanCi,
    /// The proof's lower bound on `Q_train` (Eq. 44), `1/2 (1 - 1/K) tr(H_bar Sigma)`, with
    /// `H_bar` the mean Hessian of the tasks drawn; `None` for non-quadratic laws, where the
    /// proof's `H_bar = E[hess L(xi)]` has no single evaluation point.
    pub eq44_bound: Option<f64>,
}

/// Runs `n_draws` draws of one configuration.
pub fn check<R: Rng + ?Sized>(p: &Thm23Params, n_draws: usize, rng: &mut R) -> Result<Thm23Sides> {
    let sampler = Sampler::new(p)?;
    let mut gaps = Vec::with_capacity(n_draws);
    let mut points = Vec::with_capacity(n_draws);
    let mut minima = Vec::new();
    let mut train_losses = Vec::with_capacity(n_draws);
    let mut hessian_sum = nalgebra::DMatrix::<f64>::zeros(p.d, p.d);
    let mut hessian_count = 0usize;
    for _ in 0..n_draws {
        let train = (0..p.k)
            .map(|_| sampler.sample(rng))
            .collect::<Result<Vec<_>>>()?;
        let x = stationary_point(&train)?;
        let c_train = train.iter().map(|t| t.loss(&x)).sum::<Result<f64>>()? / p.k as f64;
        let downstream = sampler.sample(rng)?;
        gaps.push(downstream.loss(&x)? - c_train);
        train_losses.push(c_train);
        for t in &train {
            hessian_sum += t.hessian(t.minimizer())?;
            hessian_count += 1;
        }
        minima.extend(train.iter().map(|t| t.minimizer().clone()));
        minima.push(downstream.minimizer().clone());
        points.push(x);
    }
    let (sigma2, mu) = sampler.exact_moments().unwrap_or_else(|| {
        let n = minima.len() as f64;
        let mean = minima.iter().fold(DVector::zeros(p.d), |acc, m| acc + m) / n;
        let var = minima
            .iter()
            .map(|m| (m - &mean).norm_squared())
            .sum::<f64>()
            / (n - 1.0);
        (var, mean)
    });
    let b = sampler.bounds();
    let kappa = b.lambda_max / b.lambda_min;
    let errors: Vec<f64> = points.iter().map(|x| (x - &mu).norm_squared()).collect();
    Ok(Thm23Sides {
        gap: mean_ci(&gaps, CI_LEVEL)?,
        bound: eq6_bound(b.lambda_min, b.lambda_max, p.k, sigma2),
        estimation_error: mean_ci(&errors, CI_LEVEL)?,
        estimation_bound: kappa * kappa * sigma2 / p.k as f64,
        sigma2,
        train_loss: mean_ci(&train_losses, CI_LEVEL)?,
        eq44_bound: sampler.is_quadratic().then(|| {
            // Sigma = spread^2 I for these laws, so tr(H_bar Sigma) = spread^2 tr(H_bar).
            let h_bar_trace = hessian_sum.trace() / hessian_count as f64;
            0.5 * (1.0 - 1.0 / p.k as f64) * p.spread * p.spread * h_bar_trace
        }),
    })
}

/// The generalization gap of a quadratic task law in closed form: Hessians drawn uniformly
/// from `support` (independently of the minima), minima `mu + eps` with `Cov(eps) = s2 I` (any
/// law), `K` training tasks. Given the Hessians, with `W_k = (sum_j H_j)^{-1} H_k`,
/// `x_train* - mu = sum_k W_k eps_k`, so
/// `E[L_T(x_train*)] = s2/2 (sum_k tr(W_k^T H_T W_k) + tr H_T)` and
/// `E[C_train] = s2/(2K) sum_k (sum_j tr(W_j^T H_k W_j) - 2 tr(H_k W_k) + tr H_k)`;
/// the gap is their difference, averaged over all `|support|^(K+1)` Hessian assignments.
/// For one isotropic Hessian `a I` it is `a d s2 / K = a sigma^2 / K`.
pub fn quadratic_law_gap(support: &[nalgebra::DMatrix<f64>], k: usize, s2: f64) -> Result<f64> {
    let m = support.len();
    crate::error::ensure(m >= 1 && k >= 1, "support", || {
        "a quadratic law needs at least one Hessian and one task".into()
    })?;
    let assignments = m.pow(k as u32 + 1);
    let mut total = 0.0;
    for code in 0..assignments {
        let pick = |t: usize| &support[(code / m.pow(t as u32)) % m];
        let h_t = pick(k);
        let train: Vec<&nalgebra::DMatrix<f64>> = (0..k).map(pick).collect();
        let sum = train.iter().fold(
            nalgebra::DMatrix::zeros(h_t.nrows(), h_t.ncols()),
            |acc, h| acc + *h,
        );
        let inv = sum
            .try_inverse()
            .ok_or_else(|| crate::Error::InvalidArgument {
                name: "support",
                reason: "the training Hessians' sum is singular".into(),
            })?;
        let w: Vec<nalgebra::DMatrix<f64>> = train.iter().map(|h| &inv * *h).collect();
        let quad = |h: &nalgebra::DMatrix<f64>| -> f64 {
            w.iter().map(|wk| (wk.transpose() * h * wk).trace()).sum()
        };
        let downstream = 0.5 * s2 * (quad(h_t) + h_t.trace());
        let c_train = train
            .iter()
            .zip(&w)
            .map(|(h, wk)| quad(h) - 2.0 * (*h * wk).trace() + h.trace())
            .sum::<f64>()
            * s2
            / (2.0 * k as f64);
        total += downstream - c_train;
    }
    Ok(total / assignments as f64)
}

/// The right side of Eq. 6: `lambda_max ((lambda_max / lambda_min)^2 + 1) / (2K) sigma^2`.
pub fn eq6_bound(lambda_min: f64, lambda_max: f64, k: usize, sigma2: f64) -> f64 {
    let kappa = lambda_max / lambda_min;
    lambda_max * (kappa * kappa + 1.0) / (2.0 * k as f64) * sigma2
}

/// Thm 2.3.
pub struct Thm23;

impl Claim for Thm23 {
    fn meta(&self) -> &'static ClaimMeta {
        &THM_2_3
    }
    fn evaluate(&self, settings: &Settings, progress: &ProgressBar) -> Result<ClaimReport> {
        let n_draws = if settings.quick { 400 } else { 2_000 };
        let laws: Vec<Law> = Family::standard()
            .into_iter()
            .map(Law::Family)
            .chain([Law::CorrelatedCurvature { lo: 0.5, hi: 2.0 }])
            .collect();
        let mut grid = Vec::new();
        for &law in &laws {
            for d in [2, 5] {
                for k in [2, 5, 10] {
                    for spread in [0.3, 1.0] {
                        grid.push(Thm23Params { law, d, k, spread });
                    }
                }
            }
        }
        let id = self.id();
        let instances = run_grid(&grid, progress, |p| {
            let code = match p.law {
                Law::Family(f) => family_code(f),
                Law::CorrelatedCurvature { .. } => 9.0,
            };
            let mut rng = crate::rng_for(
                settings.seed,
                &stream(id, &[code, p.d as f64, p.k as f64, p.spread]),
            );
            let s = check(p, n_draws, &mut rng)?;
            let prm = [
                ("d", p.d as f64),
                ("K", p.k as f64),
                ("spread", p.spread),
                ("sigma2", s.sigma2),
            ];
            let fam = p.law.id();
            let correlated = matches!(p.law, Law::CorrelatedCurvature { .. });
            let bound_variant = if correlated {
                "bound, flatness correlated with closeness"
            } else {
                "stated bound"
            };
            // Isotropic laws have a closed-form gap (`quadratic_law_gap`): the bound is decided
            // on it exactly, and the Monte Carlo gap is checked against it.
            let exact = match p.law {
                Law::Family(Family::Isotropic { a }) => Some(quadratic_law_gap(
                    &[nalgebra::DMatrix::identity(p.d, p.d) * a],
                    p.k,
                    p.spread * p.spread,
                )?),
                _ => None,
            };
            let stated = match exact {
                // Rounding: a few float64 operations on O(1) numbers.
                Some(gap) => Instance::new(
                    fam,
                    bound_variant,
                    &prm,
                    gap,
                    s.bound,
                    gap <= s.bound * (1.0 + 1e-12),
                ),
                None => Instance::tested(
                    fam,
                    bound_variant,
                    &prm,
                    s.bound,
                    Test::of(&s.gap, Hypothesis::AtMost { value: s.bound }),
                ),
            };
            let mut out = vec![
                stated,
                Instance::tested(
                    fam,
                    "proof step Eq. 31",
                    &prm,
                    s.estimation_bound,
                    Test::of(
                        &s.estimation_error,
                        Hypothesis::AtMost {
                            value: s.estimation_bound,
                        },
                    ),
                ),
            ];
            if let Some(gap) = exact {
                // The closed form against its Monte Carlo estimate (an independent check of the
                // formula). "Holds" needs the family-wise interval inside the margin, so the
                // margin is what 2,000 draws resolve, not a tolerance of the formula, which is
                // exact: the Bonferroni intervals measured at seed 20260409 are +-15% of the gap
                // at K = 2 and up to +-55% at K = 10 (the gap shrinks as 1/K, its spread does not).
                out.push(Instance::tested(
                    fam,
                    "closed-form gap = Monte Carlo gap (isotropic)",
                    &prm,
                    gap,
                    Test::of(
                        &s.gap,
                        Hypothesis::Equal {
                            value: gap,
                            margin: 0.6 * gap,
                        },
                    ),
                ));
            }
            if let Some(lower) = s.eq44_bound {
                // Eq. 44 claims Q_train >= lower; as a bound on the measured side: lower <= Q_train.
                out.push(Instance {
                    test: Some(Test::of(
                        &s.train_loss,
                        Hypothesis::AtLeast { value: lower },
                    )),
                    ..Instance::new(
                        fam,
                        "proof step Eq. 44",
                        &prm,
                        lower,
                        s.train_loss.mean,
                        false,
                    )
                });
            }
            Ok(out)
        })?;
        let mut report = ClaimReport::assemble(
            &THM_2_3,
            settings.seed,
            settings.quick,
            serde_json::json!({"d": [2, 5], "K": [2, 5, 10], "spread": [0.3, 1.0], "draws": n_draws, "ci_level": CI_LEVEL,
                "families": Family::standard(), "probe": "isotropic, curvature 2.0 if x*_1 > mu_1 else 0.5"}),
            vec![
                Reading::new("stated bound", "the gap averaged over training draws is at most the right side of Eq. 6 (family constants)", Role::Statement),
                Reading::new("proof step Eq. 31", "E||x_train* - mu||^2 <= kappa^2 sigma^2 / K", Role::Info),
                Reading::new("closed-form gap = Monte Carlo gap (isotropic)", "on isotropic laws the gap has a closed form (a sigma^2 / K for curvature a; `quadratic_law_gap`), on which the stated bound is decided exactly; here the Monte Carlo gap is tested against it (rejected by two-sided Holm: the formula fails; holds when the family-wise interval lies within 60% of the gap, what 2,000 draws resolve at K = 10)", Role::Info),
                Reading::new("proof step Eq. 44", "Q_train >= 1/2 (1 - 1/K) tr(H_bar Sigma), quadratic laws (Q_train = C_train there); measured = the lower bound, claimed = E[C_train] with its CI", Role::Info),
                Reading::new("bound, flatness correlated with closeness", "Eq. 6 on a law that breaks the independence assumption", Role::Info),
            ],
            instances,
            Figure::MeasuredVsClaimed,
        )?;
        for fam in laws.iter().map(|l| l.id()) {
            let r: Vec<f64> = report
                .instances
                .iter()
                .filter(|i| i.family == fam && !i.reading.starts_with("proof step"))
                .filter_map(|i| i.ratio)
                .collect();
            if let Some((lo, med, hi)) = crate::stats::min_median_max(&r) {
                report.findings.push(format!(
                    "{fam}: gap / bound in [{lo:.4}, {hi:.4}], median {med:.4}."
                ));
            }
        }
        let (ok, n) = report.count("proof step Eq. 31");
        report.findings.push(format!(
            "Proof step Eq. 31 held (not rejected after Holm correction) on {ok} of {n} instances."
        ));
        for fam in ["isotropic", "anisotropic", "correlated-curvature"] {
            let step: Vec<&Instance> = report
                .instances_of("proof step Eq. 44")
                .filter(|i| i.family == fam)
                .collect();
            let rejected = step.iter().filter(|i| !i.holds).count();
            let r: Vec<f64> = step.iter().filter_map(|i| i.ratio).collect();
            if let Some((lo, _, hi)) = crate::stats::min_median_max(&r) {
                report.findings.push(format!(
                    "Proof step Eq. 44 on {fam}: lower bound / E[Q_train] in [{lo:.4}, {hi:.4}], the step rejected (Holm, family-wise 0.001) on {rejected} of {} instances.",
                    step.len()
                ));
            }
        }
        report.findings.push("Eq. 44 replaces each task's Hessian by the mean Hessian inside Q_train (Eq. 40, 'by linearity of expectation'); x_train* depends on the H_k, so that step is not linear. Whenever the tasks' Hessians differ (here: non-commuting anisotropic Hessians, and curvatures that vary with the minimum) x_train* minimizes sum_k (x - x_k*)^T H_k (x - x_k*), which makes E[Q_train] smaller than the claimed lower bound. The theorem survives on every family measured because its kappa^2 + 1 factor leaves room.".into());
        Ok(report)
    }
}
