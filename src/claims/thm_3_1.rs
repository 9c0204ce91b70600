//! Thm 3.1 (gradient similarity upper-bounds closeness): two inequalities, each claimed as an
//! upper bound, reported separately (`thm-3.1-dot`, `thm-3.1-cos`).
//!
//! **Claim** (Sec. 3.1, Eq. 7; proof Sec. 10). At `x` with `sum_k grad L_k(x) = 0`,
//! `(1/K) sum_k ||x - x_k*||^2 <= 1/(K lambda^2) sum_{i != j} (-g_i . g_j)
//!                               <= G^2/(K lambda^2) sum_{i != j} (1 - S_ij)`,
//! with `lambda = min_k inf_{xi in [x, x_k*]} u_k^T H_k(xi) u_k`, `u_k` the unit vector along
//! `x - x_k*`, and `G = max_k ||g_k(x)||`.
//!
//! **What we measure.** `x` is the exact stationary point of K tasks (Newton, residual near
//! float64 rounding); `x_k*` the tasks' exact minimizers. `lambda` is the minimum over a grid on
//! each segment, which can only over-estimate the infimum: the middle side we test is never
//! larger than the paper's, so a pass here implies a pass with the exact `lambda`.
//! Tolerance: `1e-10` relative, for the Newton residual (the identity
//! `sum_{i != j} -g_i.g_j = sum_k ||g_k||^2 - ||sum_k g_k||^2` is exact only at `sum g = 0`).
//!
//! A probe breaks the stationarity assumption: the same inequalities at a perturbed point.

use super::common::{family_code, run_grid, stationary_point, stream, Claim, Settings};
use crate::error::{ensure, Result};
use crate::report::{ClaimKind, ClaimMeta, ClaimReport, Figure, Instance, Reading, Role};
use crate::tasks::{Family, Task, TaskDistribution};
use indicatif::ProgressBar;
use nalgebra::DVector;
use rand_distr::{Distribution, StandardNormal};

/// The claim [`Thm31Dot`] checks.
pub const THM_3_1_DOT: ClaimMeta = ClaimMeta {
    id: "thm-3.1-dot",
    reference: "Thm 3.1, Eq. 7 first inequality (proof Sec. 10, Eq. 46-54)",
    statement: "At x with sum_k grad L_k(x) = 0: (1/K) sum_k ||x - x_k*||^2 <= 1/(K lambda^2) sum_{i != j} (-grad L_i . grad L_j).",
    kind: ClaimKind::UpperBound,
};

/// The claim [`Thm31Cos`] checks.
pub const THM_3_1_COS: ClaimMeta = ClaimMeta {
    id: "thm-3.1-cos",
    reference: "Thm 3.1, Eq. 7 second inequality (proof Sec. 10, Eq. 55-58)",
    statement: "1/(K lambda^2) sum_{i != j} (-grad L_i . grad L_j) <= G^2/(K lambda^2) sum_{i != j} (1 - CosSim(grad L_i, grad L_j)), G = max_k ||grad L_k||.",
    kind: ClaimKind::UpperBound,
};

/// Points per segment for the directional-curvature infimum.
pub const SEGMENT_GRID: usize = 33;
/// Relative tolerance for the Newton residual.
pub const REL_TOL: f64 = 1e-10;

/// The three sides of Eq. 7 at one point.
#[derive(Clone, Copy, Debug)]
pub struct Thm31Sides {
    /// `(1/K) sum_k ||x - x_k*||^2`.
    pub closeness: f64,
    /// `1/(K lambda^2) sum_{i != j} (-g_i . g_j)`.
    pub dot_bound: f64,
    /// `G^2/(K lambda^2) sum_{i != j} (1 - S_ij)`.
    pub cos_bound: f64,
    /// The directional-curvature constant used.
    pub lambda: f64,
    /// `||(1/K) sum_k g_k(x)||`.
    pub stationarity: f64,
}

/// Evaluates Eq. 7 at `x` for `tasks`.
pub fn check<T: Task>(tasks: &[T], x: &DVector<f64>) -> Result<Thm31Sides> {
    ensure(tasks.len() >= 2, "K", || {
        "Thm 3.1 needs at least two tasks".into()
    })?;
    let k = tasks.len() as f64;
    let grads = tasks
        .iter()
        .map(|t| t.gradient(x))
        .collect::<Result<Vec<_>>>()?;
    let mut lambda = f64::INFINITY;
    let mut closeness = 0.0;
    for t in tasks {
        let delta = x - t.minimizer();
        let dist = delta.norm();
        closeness += dist * dist / k;
        if dist == 0.0 {
            continue;
        }
        let u = &delta / dist;
        for i in 0..SEGMENT_GRID {
            let s = i as f64 / (SEGMENT_GRID - 1) as f64;
            let xi = t.minimizer() + &delta * s;
            lambda = lambda.min(u.dot(&t.hessian_vector(&xi, &u)?));
        }
    }
    let g_max = grads.iter().map(|g| g.norm()).fold(0.0, f64::max);
    let (mut dot_sum, mut cos_sum) = (0.0, 0.0);
    for (i, gi) in grads.iter().enumerate() {
        for (j, gj) in grads.iter().enumerate() {
            if i != j {
                dot_sum -= gi.dot(gj);
                let denom = gi.norm() * gj.norm();
                // S_ij is undefined for a zero gradient; 1 - S_ij <= 2 keeps the bound valid.
                cos_sum += if denom > 0.0 {
                    1.0 - gi.dot(gj) / denom
                } else {
                    2.0
                };
            }
        }
    }
    let sum = grads.iter().fold(DVector::zeros(x.len()), |acc, g| acc + g);
    Ok(Thm31Sides {
        closeness,
        dot_bound: dot_sum / (k * lambda * lambda),
        cos_bound: g_max * g_max * cos_sum / (k * lambda * lambda),
        lambda,
        stationarity: sum.norm() / k,
    })
}

/// Whether `lhs <= rhs` up to [`REL_TOL`].
pub fn le(lhs: f64, rhs: f64) -> bool {
    lhs <= rhs + REL_TOL * rhs.abs().max(lhs.abs())
}

struct Point {
    family: Family,
    d: usize,
    k: usize,
    spread: f64,
    rep: usize,
}

fn grid(quick: bool) -> Vec<Point> {
    let reps = if quick { 1 } else { 3 };
    let mut g = Vec::new();
    for family in Family::standard() {
        for d in [2, 10] {
            for k in [2, 5, 10] {
                for spread in [0.3, 1.5] {
                    for rep in 0..reps {
                        g.push(Point {
                            family,
                            d,
                            k,
                            spread,
                            rep,
                        });
                    }
                }
            }
        }
    }
    g
}

/// Sides at the stationary point and at a perturbed (non-stationary) point.
fn sides(seed: u64, p: &Point) -> Result<(Thm31Sides, Thm31Sides)> {
    let dist = TaskDistribution::new(p.family, p.d, p.spread)?;
    let code = family_code(p.family);
    // Both claims share one stream per point so they see the same tasks.
    let mut rng = crate::rng_for(
        seed,
        &stream(
            "thm-3.1",
            &[code, p.d as f64, p.k as f64, p.spread, p.rep as f64],
        ),
    );
    let tasks = dist.sample_many(p.k, &mut rng)?;
    let x = stationary_point(&tasks)?;
    let direction = DVector::<f64>::from_fn(p.d, |_, _| StandardNormal.sample(&mut rng));
    let moved = &x + direction * (0.5 * p.spread);
    Ok((check(&tasks, &x)?, check(&tasks, &moved)?))
}

fn point_params(p: &Point) -> Vec<(&'static str, f64)> {
    vec![
        ("d", p.d as f64),
        ("K", p.k as f64),
        ("spread", p.spread),
        ("rep", p.rep as f64),
    ]
}

fn settings_json(quick: bool) -> serde_json::Value {
    serde_json::json!({"d": [2, 10], "K": [2, 5, 10], "spread": [0.3, 1.5], "reps": if quick {1} else {3},
        "segment_grid": SEGMENT_GRID, "rel_tol": REL_TOL, "families": Family::standard(),
        "probe": "the point moved by 0.5 * spread * N(0, I) from the stationary point"})
}

/// First inequality of Eq. 7.
pub struct Thm31Dot;

impl Claim for Thm31Dot {
    fn meta(&self) -> &'static ClaimMeta {
        &THM_3_1_DOT
    }
    fn evaluate(&self, settings: &Settings, progress: &ProgressBar) -> Result<ClaimReport> {
        let points = grid(settings.quick);
        let instances = run_grid(&points, progress, |p| {
            let (at, off) = sides(settings.seed, p)?;
            let prm = point_params(p);
            let fam = p.family.id();
            Ok(vec![
                Instance::new(
                    fam,
                    "stated (stationary point)",
                    &prm,
                    at.closeness,
                    at.dot_bound,
                    le(at.closeness, at.dot_bound),
                ),
                Instance::new(
                    fam,
                    "non-stationary point",
                    &prm,
                    off.closeness,
                    off.dot_bound,
                    le(off.closeness, off.dot_bound),
                ),
            ])
        })?;
        let mut report = ClaimReport::assemble(
            &THM_3_1_DOT,
            settings.seed,
            settings.quick,
            settings_json(settings.quick),
            vec![
                Reading::new(
                    "stated (stationary point)",
                    "closeness <= dot-product bound at the exact stationary point of L_train",
                    Role::Statement,
                ),
                Reading::new(
                    "non-stationary point",
                    "the same inequality away from stationarity (assumption broken)",
                    Role::Info,
                ),
            ],
            instances,
            Figure::MeasuredVsClaimed,
        )?;
        let iso: Vec<f64> = report
            .instances_of("stated (stationary point)")
            .filter(|i| i.family == "isotropic")
            .filter_map(|i| i.ratio)
            .map(|r| (r - 1.0).abs())
            .collect();
        if let Some((_, _, worst)) = crate::stats::min_median_max(&iso) {
            report.findings.push(format!("Isotropic tasks of equal curvature make the first inequality an equality: |ratio - 1| <= {worst:.2e}."));
        }
        let (ok, n) = report.count("non-stationary point");
        report.findings.push(format!("Away from stationarity the inequality held on {ok} of {n} instances: the stationarity assumption is needed."));
        report.findings.push("Proof step Eq. 46 applies the mean value theorem to the vector-valued gradient, which has no single intermediate point in general; the integral form grad L_k(x) = (int_0^1 H_k) (x - x_k*) gives the same Eq. 49 with lambda as defined, so the theorem stands.".into());
        Ok(report)
    }
}

/// Second inequality of Eq. 7.
pub struct Thm31Cos;

impl Claim for Thm31Cos {
    fn meta(&self) -> &'static ClaimMeta {
        &THM_3_1_COS
    }
    fn evaluate(&self, settings: &Settings, progress: &ProgressBar) -> Result<ClaimReport> {
        let points = grid(settings.quick);
        let instances = run_grid(&points, progress, |p| {
            let (at, _) = sides(settings.seed, p)?;
            let prm = point_params(p);
            Ok(vec![Instance::new(
                p.family.id(),
                "stated (stationary point)",
                &prm,
                at.dot_bound,
                at.cos_bound,
                le(at.dot_bound, at.cos_bound),
            )])
        })?;
        let mut report = ClaimReport::assemble(
            &THM_3_1_COS,
            settings.seed,
            settings.quick,
            settings_json(settings.quick),
            vec![Reading::new(
                "stated (stationary point)",
                "dot-product bound <= cosine bound at the exact stationary point",
                Role::Statement,
            )],
            instances,
            Figure::MeasuredVsClaimed,
        )?;
        let k2: Vec<f64> = report
            .instances
            .iter()
            .filter(|i| i.params["K"] == 2.0)
            .filter_map(|i| i.ratio)
            .collect();
        if let Some((lo, _, hi)) = crate::stats::min_median_max(&k2) {
            report.findings.push(format!(
                "The second inequality is never tight: its slack per pair is at least ||g_i|| ||g_j||. With K = 2 stationarity forces g_1 = -g_2, so the ratio is exactly 1/2 (measured [{lo:.6}, {hi:.6}])."
            ));
        }
        Ok(report)
    }
}
