//! Controls of the pipeline: results known to be true, run through the same engine, slope fits
//! and verdict code as the paper's claims and expected to come out `holds`; and the same results
//! with a deliberate error, expected to come out `fails`. A reader sees that the pipeline can say
//! both.
//!
//! **Reptile's second-order expansion** (Nichol, Achiam and Schulman 2018, "On First-Order
//! Meta-Learning Algorithms", Sec. 5): `K` plain SGD steps of size `alpha` over sources drawn
//! uniformly with replacement from `N` have expected displacement
//! `E[x_0 - x_K] = alpha (K/N) sum_i g_i - alpha^2 K(K-1)/(2 N^2) sum_{i,j} H_i g_j + O(alpha^3)`
//! (each ordered pair of steps `l < m` contributes `H_{s_m} g_{s_l}`). Measured with the exact
//! engine on Nexus-Dot's raw inner steps: the residual's log-log slope over `alpha` in
//! `[1e-4, 1e-2]` must be at least `3 - 0.1`, as for Thm 3.2. Negative control: the same with
//! the second-order term's sign flipped (residual slope 2).
//!
//! **The descent lemma** (e.g. Nesterov, "Lectures on Convex Optimization", Thm 2.1.5 and Eq.
//! 2.2.19): for an `L`-smooth `f`, one gradient step of size `1/L` decreases `f` by at least
//! `||grad f||^2 / (2L)`. Measured at random points of every family with the family's own `L`;
//! exact (isotropic quadratics with curvature `L` attain it). Negative control: the decrease
//! claimed as `||grad f||^2 / L`, twice the true constant.

use super::common::{
    family_code, gamma_grid, run_grid, seeded_instance, stream, Claim, GammaGrid, Settings,
    SLOPE_TOL,
};
use crate::error::Result;
use crate::expectation::residual_curves_for;
use crate::nexus::InnerStep;
use crate::report::{
    ClaimKind, ClaimMeta, ClaimReport, Figure, Instance, Reading, Role, Series, Verdict,
};
use crate::stats::loglog_slope;
use crate::tasks::{Family, Task, TaskDistribution};
use indicatif::ProgressBar;
use nalgebra::DVector;
use rand_distr::{Distribution, StandardNormal};

/// The positive Reptile control: the true expansion.
pub const CTL_REPTILE: ClaimMeta = ClaimMeta {
    id: "ctl-reptile",
    reference: "Nichol, Achiam and Schulman 2018, Sec. 5 (control)",
    statement: "K SGD steps over N sources sampled with replacement: E[x_0 - x_K] = alpha (K/N) sum_i g_i - alpha^2 K(K-1)/(2N^2) sum_(i,j) H_i g_j + O(alpha^3).",
    kind: ClaimKind::Order { power: 3.0 },
};

/// The negative Reptile control: the second-order sign flipped.
pub const CTL_REPTILE_WRONG_SIGN: ClaimMeta = ClaimMeta {
    id: "ctl-reptile-wrong-sign",
    reference: CTL_REPTILE.reference,
    statement: "K SGD steps over N sources sampled with replacement: E[x_0 - x_K] = alpha (K/N) sum_i g_i + (deliberately wrong sign) alpha^2 K(K-1)/(2N^2) sum_(i,j) H_i g_j + O(alpha^3).",
    kind: CTL_REPTILE.kind,
};

/// The positive descent-lemma control.
pub const CTL_DESCENT: ClaimMeta = ClaimMeta {
    id: "ctl-descent",
    reference: "Descent lemma, Nesterov (2004) Thm 2.1.5 (control)",
    statement: "For L-smooth f, f(x) - f(x - grad f(x)/L) >= ||grad f(x)||^2 / (2L).",
    kind: ClaimKind::UpperBound,
};

/// The negative descent-lemma control: the guaranteed decrease doubled.
pub const CTL_DESCENT_WRONG_CONSTANT: ClaimMeta = ClaimMeta {
    id: "ctl-descent-wrong-constant",
    reference: CTL_DESCENT.reference,
    statement: "For L-smooth f, f(x) - f(x - grad f(x)/L) >= 2 ||grad f(x)||^2 / (2L) (deliberately wrong constant).",
    kind: CTL_DESCENT.kind,
};

/// Reptile's expansion with the second-order term multiplied by `sign` (`+1` is the true one).
pub fn reptile_expansion<T: Task>(
    tasks: &[T],
    x: &DVector<f64>,
    k: usize,
    alpha: f64,
    sign: f64,
) -> Result<DVector<f64>> {
    let n = tasks.len() as f64;
    let kf = k as f64;
    let g: Vec<DVector<f64>> = tasks.iter().map(|t| t.gradient(x)).collect::<Result<_>>()?;
    let gsum = g.iter().fold(DVector::zeros(x.len()), |a, v| a + v);
    let mut second = DVector::zeros(x.len());
    for t in tasks {
        second += t.hessian_vector(x, &gsum)?;
    }
    Ok(gsum * (alpha * kf / n) - second * (sign * alpha * alpha * kf * (kf - 1.0) / (2.0 * n * n)))
}

/// `||E[x_0 - x_K] - expansion||` over `gammas` (raw inner steps, K = number of tasks), with the
/// second-order term's sign `sign`.
pub fn reptile_residuals<T: Task>(
    tasks: &[T],
    x: &DVector<f64>,
    gammas: &[f64],
    sign: f64,
) -> Result<Vec<f64>> {
    let k = tasks.len();
    let expansion = |a: f64| {
        reptile_expansion(tasks, x, k, a, sign)
            .unwrap_or_else(|_| DVector::from_element(x.len(), f64::NAN))
    };
    let mut curves = residual_curves_for(tasks, x, k, InnerStep::Raw, gammas, &[&expansion])?;
    Ok(curves.remove(0))
}

/// Reptile's expansion, true (`sign = +1`, a positive control) or with the second-order sign
/// flipped (`sign = -1`, a negative control).
pub struct Reptile {
    /// `+1` for the true expansion, `-1` for the deliberate error.
    pub sign: f64,
}

impl Claim for Reptile {
    fn meta(&self) -> &'static ClaimMeta {
        if self.sign > 0.0 {
            &CTL_REPTILE
        } else {
            &CTL_REPTILE_WRONG_SIGN
        }
    }
    fn evaluate(&self, settings: &Settings, progress: &ProgressBar) -> Result<ClaimReport> {
        let reps = if settings.quick { 1 } else { 2 };
        let mut points = Vec::new();
        for family in Family::standard() {
            for d in [3, 10] {
                // K = 2 is left out: on quadratics two SGD steps are exactly second order in
                // alpha, so the residual is rounding and has no slope to fit.
                for k in [3, 4, 5] {
                    for rep in 0..reps {
                        points.push((family, d, k, rep));
                    }
                }
            }
        }
        let gammas = gamma_grid(GammaGrid::Exact);
        let id = self.id();
        let name = if self.sign > 0.0 {
            "Reptile expansion"
        } else {
            "Reptile expansion, second-order sign flipped"
        };
        let instances = run_grid(&points, progress, |&(family, d, k, rep)| {
            let (tasks, x, _) = seeded_instance(id, settings.seed, family, d, k, &[rep as f64])?;
            let slope = loglog_slope(&gammas, &reptile_residuals(&tasks, &x, &gammas, self.sign)?)?;
            Ok(vec![Instance::new(
                family.id(),
                name,
                &[("d", d as f64), ("K", k as f64), ("rep", rep as f64)],
                slope,
                3.0,
                slope >= 3.0 - SLOPE_TOL,
            )])
        })?;
        let expected = if self.sign > 0.0 {
            Verdict::Holds
        } else {
            Verdict::Fails
        };
        let mut series = Vec::new();
        for family in Family::standard() {
            let (tasks, x, _) = seeded_instance(id, settings.seed, family, 10, 3, &[0.0])?;
            series.push(Series {
                label: format!("{} (d = 10, K = 3)", family.id()),
                x: gammas.clone(),
                y: reptile_residuals(&tasks, &x, &gammas, self.sign)?,
                guide: false,
                band: None,
            });
        }
        let last = series[series.len() - 1].y[gammas.len() - 1];
        for power in [2, 3] {
            series.push(Series {
                label: format!("slope {power}"),
                x: gammas.clone(),
                y: gammas
                    .iter()
                    .map(|g| last * (g / gammas[gammas.len() - 1]).powi(power))
                    .collect(),
                guide: true,
                band: None,
            });
        }
        let report = ClaimReport::assemble(
            self.meta(),
            settings.seed,
            settings.quick,
            serde_json::json!({"gamma": [1e-4, 1e-2], "points": 9, "slope_tol": SLOPE_TOL, "d": [3, 10], "K": [3, 4, 5], "reps": reps, "families": Family::standard(), "sign": self.sign}),
            vec![Reading::new(name, "residual of the expansion against the exact expectation (raw inner steps) has log-log slope >= 3 - 0.1", Role::Statement)],
            instances,
            Figure::Curves {
                x_label: "alpha".into(),
                y_label: "||E[x_0 - x_K] - expansion||".into(),
                series,
            },
        )?;
        Ok(report.as_control(expected))
    }
}

/// The descent lemma with its true constant `1/(2L)` (a positive control) or a constant twice
/// too large (a negative control).
pub struct DescentLemma {
    /// Whether the guaranteed decrease is doubled (the deliberate error).
    pub wrong_constant: bool,
}

impl DescentLemma {
    /// Multiplier of the true guaranteed decrease `||g||^2 / (2L)`: 1, or 2 for the error.
    pub fn factor(&self) -> f64 {
        if self.wrong_constant {
            2.0
        } else {
            1.0
        }
    }
}

/// `(guaranteed decrease ||g||^2 / (2L) * factor, actual decrease f(x) - f(x - g/L))` at `x`.
pub fn descent_sides<T: Task>(task: &T, x: &DVector<f64>, factor: f64) -> Result<(f64, f64)> {
    let l = task.curvature().lambda_max;
    let g = task.gradient(x)?;
    let after = task.loss(&(x - &g / l))?;
    Ok((factor * g.norm_squared() / (2.0 * l), task.loss(x)? - after))
}

impl Claim for DescentLemma {
    fn meta(&self) -> &'static ClaimMeta {
        if !self.wrong_constant {
            &CTL_DESCENT
        } else {
            &CTL_DESCENT_WRONG_CONSTANT
        }
    }
    fn evaluate(&self, settings: &Settings, progress: &ProgressBar) -> Result<ClaimReport> {
        let reps = if settings.quick { 4 } else { 12 };
        let mut points = Vec::new();
        for family in Family::standard() {
            for d in [2, 10] {
                for rep in 0..reps {
                    points.push((family, d, rep));
                }
            }
        }
        let id = self.id();
        let name = if self.factor() == 1.0 {
            "decrease >= ||g||^2 / (2L)"
        } else {
            "decrease >= ||g||^2 / L"
        };
        let instances = run_grid(&points, progress, |&(family, d, rep)| {
            let mut rng = crate::rng_for(
                settings.seed,
                &stream(id, &[family_code(family), d as f64, rep as f64]),
            );
            let dist = TaskDistribution::new(family, d, 1.0)?;
            let task = dist.sample(&mut rng)?;
            let x = &dist.center
                + DVector::<f64>::from_fn(d, |_, _| {
                    Distribution::<f64>::sample(&StandardNormal, &mut rng)
                }) * 2.0;
            let (guaranteed, actual) = descent_sides(&task, &x, self.factor())?;
            // Rounding of two loss evaluations of size O(f(x)): 1e-12 of f(x).
            let slack = 1e-12 * (1.0 + task.loss(&x)?.abs());
            Ok(vec![Instance::new(
                family.id(),
                name,
                &[("d", d as f64), ("rep", rep as f64)],
                guaranteed,
                actual,
                guaranteed <= actual + slack,
            )])
        })?;
        let expected = if self.factor() == 1.0 {
            Verdict::Holds
        } else {
            Verdict::Fails
        };
        let report = ClaimReport::assemble(
            self.meta(),
            settings.seed,
            settings.quick,
            serde_json::json!({"d": [2, 10], "reps": reps, "families": Family::standard(), "factor": self.factor(), "point": "centre + 2 N(0, I)"}),
            vec![Reading::new(name, "measured = the guaranteed decrease, claimed = the actual decrease of one 1/L gradient step (family's L)", Role::Statement)],
            instances,
            Figure::MeasuredVsClaimed,
        )?;
        Ok(report.as_control(expected))
    }
}
