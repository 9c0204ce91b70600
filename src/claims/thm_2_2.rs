//! Thm 2.2 (generalization of closeness, quadratic basins), claimed as an equality.
//!
//! **Claim** (Sec. 2.3, Eq. 5). Tasks `L(x) = a/2 ||x - x_L*||^2 + c_B` with
//! `x_L* ~ P(mu_B, sigma_B^2 I)`; K training tasks and a downstream task `T` i.i.d. from `P`.
//! "For any converged `x_train*` with training loss `C_train`",
//! `E_T[L_T(x_train*)] = C_train + (a/K) sigma_B^2`.
//!
//! **What we measure.** `x_train*` is the exact stationary point of the K sampled tasks (solved by
//! Newton's method, not by the closed form the proof uses) and `C_train = L_train(x_train*)`.
//! - *As written*, conditioned on one draw of the training tasks: the exact
//!   `E_T[L_T(x_train*)] - C_train = a/2 (||x_train* - mu||^2 + d sigma^2) - C_train` (the
//!   downstream task integrated out from the law's mean and covariance), compared with the
//!   claimed value to rounding; a Monte Carlo mean over downstream tasks checks that value.
//! - *Averaged over draws*: the mean over draws of that exact conditional gap (a
//!   Rao-Blackwellised estimator), with as many draws as a family-wise interval of half-width 5%
//!   of the trace value needs (an identity is decided to within [`MARGIN`], see
//!   [`crate::report::verdict`]).
//!
//! The statement is about one draw ("for any converged `x_train*`"); averaging over draws changes
//! the quantity claimed, so the averaged readings are not restrictions of the statement's
//! setting but a different identity: the verdict is "fails as stated; corrected form holds",
//! with the corrected form averaged over draws and with `tr(Sigma)`. The stated formula on the
//! averaged gap (per coordinate; in dimension 1) is reported as informative.
//!
//! The proof's own algebra gives, in expectation over draws, `(a/2)(1/K + 1 - (K-1)/K) tr(Sigma)
//! = (a/K) tr(Sigma)`, and `tr(sigma^2 I) = d sigma^2`: we test both `a sigma^2 / K` (as
//! written) and `a d sigma^2 / K`. `P` is Gaussian or uniform with the same covariance (the claim
//! names only the mean and covariance).

use super::common::{run_grid, stationary_point, stream, Claim, Settings};
use crate::error::{ensure, Result};
use crate::report::{
    ClaimKind, ClaimMeta, ClaimReport, Figure, Hypothesis, Instance, Reading, Role, Test,
};
use crate::stats::{mean_ci, MeanCi, CI_LEVEL};
use crate::tasks::{Family, MinimaLaw, Objective, TaskDistribution};
use indicatif::ProgressBar;
use rand::Rng;

/// The claim [`Thm22`] checks.
pub const THM_2_2: ClaimMeta = ClaimMeta {
    id: "thm-2.2",
    reference: "Thm 2.2, Eq. 5 (proof Sec. 9.1)",
    statement: "Quadratic basins a/2 ||x - x_L*||^2 + c_B, x_L* ~ P(mu_B, sigma_B^2 I), K training tasks and T i.i.d.: for any converged x_train* with training loss C_train, E_T[L_T(x_train*)] = C_train + (a/K) sigma_B^2.",
    kind: ClaimKind::Equality,
};

/// One configuration of Thm 2.2.
#[derive(Clone, Copy, Debug)]
pub struct Thm22Params {
    /// Curvature `a > 0`.
    pub a: f64,
    /// Per-coordinate standard deviation `sigma_B` of the minima.
    pub sigma: f64,
    /// Dimension.
    pub d: usize,
    /// Number of training tasks.
    pub k: usize,
    /// Law of the minima.
    pub law: MinimaLaw,
}

impl Thm22Params {
    fn distribution(&self) -> Result<TaskDistribution> {
        ensure(self.k >= 1, "K", || {
            "need at least one training task".into()
        })?;
        Ok(
            TaskDistribution::new(Family::Isotropic { a: self.a }, self.d, self.sigma)?
                .with_law(self.law),
        )
    }
    /// Right side as written: `a sigma^2 / K`.
    pub fn claimed_as_written(&self) -> f64 {
        self.a * self.sigma * self.sigma / self.k as f64
    }
    /// Right side with the total variance `tr(Sigma) = d sigma^2`.
    pub fn claimed_trace(&self) -> f64 {
        self.claimed_as_written() * self.d as f64
    }
}

/// One draw of the training tasks: the distribution, `x_train*` and `C_train`.
fn draw_training<R: Rng + ?Sized>(
    p: &Thm22Params,
    rng: &mut R,
) -> Result<(TaskDistribution, nalgebra::DVector<f64>, f64)> {
    let dist = p.distribution()?;
    let train = dist.sample_many(p.k, rng)?;
    let x = stationary_point(&train)?;
    let c_train = train.iter().map(|t| t.loss(&x)).sum::<Result<f64>>()? / p.k as f64;
    Ok((dist, x, c_train))
}

/// The exact `E_T[L_T(x)] - C_train` given one draw: `a/2 (||x - mu||^2 + d sigma^2) - C_train`,
/// from `E||x - x_T*||^2 = ||x - mu||^2 + tr Sigma` for any law with mean `mu` and covariance
/// `sigma^2 I` (the tasks have depth 0).
fn exact_conditional(
    p: &Thm22Params,
    dist: &TaskDistribution,
    x: &nalgebra::DVector<f64>,
    c_train: f64,
) -> f64 {
    0.5 * p.a * ((x - &dist.center).norm_squared() + p.d as f64 * p.sigma * p.sigma) - c_train
}

/// Conditioned on one draw of the training tasks: Monte Carlo over `n_tasks` downstream tasks,
/// and the exact conditional expectation ([`exact_conditional`]), which validates the Monte
/// Carlo estimate.
pub fn conditional_gap<R: Rng + ?Sized>(
    p: &Thm22Params,
    n_tasks: usize,
    rng: &mut R,
) -> Result<(MeanCi, f64)> {
    let (dist, x, c_train) = draw_training(p, rng)?;
    let samples = (0..n_tasks)
        .map(|_| Ok(dist.sample(rng)?.loss(&x)? - c_train))
        .collect::<Result<Vec<f64>>>()?;
    let exact = exact_conditional(p, &dist, &x, c_train);
    Ok((mean_ci(&samples, CI_LEVEL)?, exact))
}

/// Averaged over `n_draws` draws of the training tasks: each draw contributes its exact
/// conditional gap (a Rao-Blackwellised sample: the downstream task is integrated out exactly,
/// so only the training draw is random).
pub fn averaged_gap<R: Rng + ?Sized>(
    p: &Thm22Params,
    n_draws: usize,
    rng: &mut R,
) -> Result<MeanCi> {
    let samples = (0..n_draws)
        .map(|_| {
            let (dist, x, c_train) = draw_training(p, rng)?;
            Ok(exact_conditional(p, &dist, &x, c_train))
        })
        .collect::<Result<Vec<f64>>>()?;
    mean_ci(&samples, CI_LEVEL)
}

/// Relative margin within which an identity measured by Monte Carlo must be pinned down to be
/// decided `holds` (10%: the per-coordinate and trace readings differ by the factor d >= 2).
pub const MARGIN: f64 = 0.1;

/// Draws for the averaged readings: a pilot of `pilot` draws gives the standard deviation of the
/// per-draw gap; the run then takes enough draws for a family-wise interval (`m` instances) of
/// half-width `MARGIN / 2` times the trace value, at least `pilot` and at most `cap`.
pub fn draws_needed(p: &Thm22Params, pilot: &MeanCi, m: usize, cap: usize) -> usize {
    let sd = pilot.std_err * (pilot.n as f64).sqrt();
    let z = statrs::distribution::Normal::standard();
    let q = statrs::distribution::ContinuousCDF::inverse_cdf(
        &z,
        1.0 - (1.0 - CI_LEVEL) / (2.0 * m as f64),
    );
    let half = 0.5 * MARGIN * p.claimed_trace();
    ((q * sd / half).powi(2).ceil() as usize).clamp(pilot.n, cap)
}

/// The readings of one configuration; `m` is the number of configurations (for the draws'
/// family-wise sizing) and `pilot`, `cap` bound the draws of the averaged readings.
pub fn check<R: Rng + ?Sized>(
    p: &Thm22Params,
    n_tasks: usize,
    (pilot, cap, m): (usize, usize, usize),
    rng: &mut R,
) -> Result<Vec<Instance>> {
    let prm = [
        ("a", p.a),
        ("sigma", p.sigma),
        ("d", p.d as f64),
        ("K", p.k as f64),
        (
            "uniform_law",
            f64::from(u8::from(p.law == MinimaLaw::Uniform)),
        ),
    ];
    let fam = "isotropic";
    let (one, exact) = conditional_gap(p, n_tasks, rng)?;
    let first = averaged_gap(p, pilot, rng)?;
    let n_draws = draws_needed(p, &first, m, cap);
    let avg = if n_draws > pilot {
        averaged_gap(p, n_draws, rng)?
    } else {
        first
    };
    let equal = |ci: &MeanCi, value: f64, scale: f64| {
        Test::of(
            ci,
            Hypothesis::Equal {
                value,
                margin: MARGIN * scale,
            },
        )
    };
    // Conditioned on the draw the gap is a number: the statement is compared with it exactly
    // (float64 rounding of a few operations on O(1) values: 1e-9 relative).
    let written = p.claimed_as_written();
    let mut out = vec![
        Instance::new(
            fam,
            "one draw, as written",
            &prm,
            exact,
            written,
            (exact - written).abs() <= 1e-9 * written.abs().max(exact.abs()),
        ),
        Instance::tested(
            fam,
            "one draw, Monte Carlo against the exact value",
            &prm,
            exact,
            equal(&one, exact, written.max(exact.abs())),
        ),
        Instance::tested(
            fam,
            "averaged, sigma^2 per coordinate",
            &prm,
            written,
            equal(&avg, written, written),
        ),
        Instance::tested(
            fam,
            "averaged, sigma^2 = tr(Sigma)",
            &prm,
            p.claimed_trace(),
            equal(&avg, p.claimed_trace(), p.claimed_trace()),
        ),
    ];
    if p.d == 1 {
        out.push(Instance::tested(
            fam,
            "averaged, d = 1",
            &prm,
            written,
            equal(&avg, written, written),
        ));
    }
    Ok(out)
}

/// Thm 2.2.
pub struct Thm22;

impl Claim for Thm22 {
    fn meta(&self) -> &'static ClaimMeta {
        &THM_2_2
    }
    fn evaluate(&self, settings: &Settings, progress: &ProgressBar) -> Result<ClaimReport> {
        let (n_tasks, pilot, cap) = if settings.quick {
            (2_000, 2_000, 200_000)
        } else {
            (8_000, 4_000, 400_000)
        };
        let mut grid = Vec::new();
        for law in [MinimaLaw::Gaussian, MinimaLaw::Uniform] {
            for a in [0.5, 2.0] {
                for sigma in [0.1, 1.0] {
                    for d in [1, 2, 10] {
                        for k in [2, 5, 20] {
                            grid.push(Thm22Params {
                                a,
                                sigma,
                                d,
                                k,
                                law,
                            });
                        }
                    }
                }
            }
        }
        let id = self.id();
        let m = grid.len();
        let instances = run_grid(&grid, progress, |p| {
            let law = f64::from(u8::from(p.law == MinimaLaw::Uniform));
            let mut rng = crate::rng_for(
                settings.seed,
                &stream(id, &[p.a, p.sigma, p.d as f64, p.k as f64, law]),
            );
            check(p, n_tasks, (pilot, cap, m), &mut rng)
        })?;
        let mut report = ClaimReport::assemble(
            &THM_2_2,
            settings.seed,
            settings.quick,
            serde_json::json!({"a": [0.5, 2.0], "sigma": [0.1, 1.0], "d": [1, 2, 10], "K": [2, 5, 20],
                "laws": ["gaussian", "uniform"], "downstream_tasks_per_draw": n_tasks, "pilot_draws": pilot, "max_draws": cap, "margin": MARGIN, "ci_level": CI_LEVEL}),
            vec![
                Reading::new("one draw, as written", "conditioned on one draw of the K training tasks, the exact E_T[L_T(x_train*)] - C_train = a/2 (||x_train* - mu||^2 + d sigma^2) - C_train equals a sigma^2 / K (to 1e-9 relative)", Role::Statement),
                Reading::new("one draw, Monte Carlo against the exact value", "check of the exact conditional value: a Monte Carlo mean over downstream tasks matches it within 10%", Role::Info),
                Reading::new("averaged, sigma^2 per coordinate", "the stated formula against the gap averaged over draws of the training tasks (a different quantity from the statement's, hence informative): the mean gap equals a sigma^2 / K (sigma^2 the per-coordinate variance, as in P(mu, sigma^2 I))", Role::Info),
                Reading::new("averaged, d = 1", "the stated formula a sigma^2 / K against the gap averaged over draws of the training tasks, in dimension 1 (where sigma^2 is the total variance); informative, as above", Role::Info),
                Reading::correction("averaged, sigma^2 = tr(Sigma)", "averaged over draws of the training tasks, the mean gap equals a d sigma^2 / K: sigma^2 read as the total variance tr(Sigma) = E||x_L* - mu||^2, as Thm 2.3 defines it", "E_train E_T[L_T(x_train*)] = E_train[C_train] + (a/K) tr(Sigma), tr(Sigma) = d sigma_B^2"),
            ],
            instances,
            Figure::MeasuredVsClaimed,
        )?;
        report.proof_fault = Some("The proof (Sec. 9.1) takes expectations over the draw of the training tasks (E||x_train* - mu||^2 = tr(Sigma) / K and E[C_train] = (a/2)(K-1) tr(Sigma) / K), so it proves the identity on average over training sets, not 'for any converged x_train*'; and its algebra yields tr(Sigma) = d sigma_B^2 where the statement writes sigma_B^2.".into());
        let one: Vec<&Instance> = report.instances_of("one draw, as written").collect();
        let ratios: Vec<f64> = one.iter().filter_map(|i| i.ratio).collect();
        if let Some((lo, med, hi)) = crate::stats::min_median_max(&ratios) {
            let (ok, n) = report.count("one draw, as written");
            report.findings.push(format!(
                "Conditioned on one draw, the gap is a random quantity: its exact value / (a sigma^2 / K) ranged over [{lo:.3}, {hi:.3}] (median {med:.3}); it equalled a sigma^2/K in {ok} of {n} configurations."
            ));
        }
        for d in [1.0, 2.0, 10.0] {
            let r: Vec<f64> = report
                .instances_of("averaged, sigma^2 per coordinate")
                .filter(|i| i.params["d"] == d)
                .filter_map(|i| i.ratio)
                .collect();
            if let Some((lo, med, hi)) = crate::stats::min_median_max(&r) {
                report.findings.push(format!(
                    "Averaged over draws, d = {d}: measured / (a sigma^2 / K) in [{lo:.3}, {hi:.3}], median {med:.3} — the stated right side is off by the factor d."
                ));
            }
        }
        Ok(report)
    }
}
