//! The proof of Thm 3.2 (Sec. 11), step by step, each an inequality checked on its own.
//!
//! - **Eq. 64**: `||J_i(y)|| <= L_1 = L / G_min` on the ball `B(x, K gamma)`.
//! - **Eq. 67**: `||J_i(y) - J_i(z)|| <= L_2 ||y - z||`, `L_2 = (3 L^2 + rho G_min) / G_min^2`.
//! - **Eq. 69-70**: `||ghat_i(x + D) - ghat_i(x) - J_i(x) D|| <= (L_2 / 2) ||D||^2`.
//! - **Eq. 77-78**: for every index sequence (not only on average),
//!   `||pg - gamma sum_m ghat_{s_m} + gamma^2 sum_m sum_{l<m} J_{s_m} ghat_{s_l}|| <= (L_2 + L_1^2)/6 K^3 gamma^3`.
//!
//! Constants over `B(x, K gamma)` as in Thm 3.2's report; random points and directions inside
//! the ball. Float64 allowance: `1e-12` relative.

use super::common::{run_grid, seeded_instance, Claim, Settings};
use crate::error::Result;
use crate::expansion::{thm32_constants, Local};
use crate::nexus::{step_direction, NexusConfig};
use crate::report::{ClaimKind, ClaimMeta, ClaimReport, Figure, Instance, Reading, Role};
use crate::tasks::{Family, Task};
use indicatif::ProgressBar;
use nalgebra::DVector;
use rand::Rng;
use rand_distr::{Distribution, StandardNormal};

/// The claim [`Thm32Steps`] checks.
pub const THM_3_2_STEPS: ClaimMeta = ClaimMeta {
    id: "thm-3.2-steps",
    reference: "Sec. 11, Eq. 61-78 (proof of Thm 3.2)",
    statement: "The constants L_1 = L/G_min (Eq. 64) and L_2 = (3L^2 + rho G_min)/G_min^2 (Eq. 67), the Taylor step of the normalized gradient (Eq. 69-70) and the per-sequence expansion of the pseudo-gradient with its cubic bound (Eq. 77-78).",
    kind: ClaimKind::UpperBound,
};

/// Worst ratio (measured / bound) of each step at one point; a step holds when its ratio <= 1.
#[derive(Clone, Copy, Debug)]
pub struct StepRatios {
    /// Eq. 64.
    pub eq64: f64,
    /// Eq. 67.
    pub eq67: f64,
    /// Eq. 69-70.
    pub eq70: f64,
    /// Eq. 77-78, over all index sequences.
    pub eq78: f64,
}

fn in_ball<R: Rng + ?Sized>(x: &DVector<f64>, radius: f64, rng: &mut R) -> DVector<f64> {
    let dir = DVector::<f64>::from_fn(x.len(), |_, _| {
        Distribution::<f64>::sample(&StandardNormal, rng)
    })
    .normalize();
    let r: f64 = rand::RngExt::random::<f64>(rng);
    x + dir * (radius * r)
}

fn jacobian<T: Task>(task: &T, y: &DVector<f64>) -> Result<nalgebra::DMatrix<f64>> {
    Ok(Local::at(std::slice::from_ref(task), y)?.j.remove(0))
}

fn spectral(m: &nalgebra::DMatrix<f64>) -> f64 {
    m.singular_values().max()
}

/// The constants `L_1 = L / G_min` (Eq. 64) and `L_2 = (3 L^2 + rho G_min) / G_min^2` (Eq. 67)
/// over the ball `B(x, K gamma)`.
fn proof_constants<T: Task>(tasks: &[T], x: &DVector<f64>, gamma: f64) -> (f64, f64) {
    let (g_min, l, rho) = thm32_constants(tasks, x, tasks.len(), gamma);
    (l / g_min, (3.0 * l * l + rho * g_min) / (g_min * g_min))
}

/// Eq. 64's ratio `||J_i(y)|| / L_1` for task `task` at a point `y` of the ball (the worst-case
/// search's entry; [`check`] takes the same ratio at random points).
pub fn eq64_ratio<T: Task>(
    tasks: &[T],
    x: &DVector<f64>,
    gamma: f64,
    task: usize,
    y: &DVector<f64>,
) -> Result<f64> {
    let (l1, _) = proof_constants(tasks, x, gamma);
    Ok(spectral(&jacobian(&tasks[task], y)?) / l1)
}

/// Eq. 77-78's ratio over every index sequence: the largest
/// `||pg - gamma sum_m ghat_{s_m} + gamma^2 sum_{l<m} J_{s_m} ghat_{s_l}||` over the bound
/// `(L_2 + L_1^2)/6 K^3 gamma^3`.
pub fn eq78_ratio<T: Task>(tasks: &[T], x: &DVector<f64>, gamma: f64) -> Result<f64> {
    let k = tasks.len();
    let (l1, l2) = proof_constants(tasks, x, gamma);
    let local = Local::at(tasks, x)?;
    let cfg = NexusConfig::new(k, gamma)?;
    let bound = (l2 + l1 * l1) / 6.0 * (k as f64).powi(3) * gamma.powi(3);
    let mut worst: f64 = 0.0;
    for code in 0..k.pow(k as u32) {
        let seq: Vec<usize> = (0..k).map(|m| (code / k.pow(m as u32)) % k).collect();
        let (mut y, mut pg) = (x.clone(), DVector::zeros(x.len()));
        for &s in &seq {
            let dir = step_direction(&tasks[s].gradient(&y)?, &cfg)?;
            y -= &dir;
            pg += dir;
        }
        let mut expansion = DVector::zeros(x.len());
        for m in 0..k {
            expansion += &local.ghat[seq[m]] * gamma;
            for l_ in 0..m {
                expansion -= &local.j[seq[m]] * &local.ghat[seq[l_]] * (gamma * gamma);
            }
        }
        worst = worst.max((pg - expansion).norm() / bound);
    }
    Ok(worst)
}

/// Checks every step for `tasks` at `x` with step `gamma` (K = number of tasks).
pub fn check<T: Task, R: Rng + ?Sized>(
    tasks: &[T],
    x: &DVector<f64>,
    gamma: f64,
    probes: usize,
    rng: &mut R,
) -> Result<StepRatios> {
    let radius = tasks.len() as f64 * gamma;
    let (l1, l2) = proof_constants(tasks, x, gamma);
    let mut r = StepRatios {
        eq64: 0.0,
        eq67: 0.0,
        eq70: 0.0,
        eq78: 0.0,
    };
    for t in tasks {
        for _ in 0..probes {
            let (y, z) = (in_ball(x, radius, rng), in_ball(x, radius, rng));
            let (jy, jz) = (jacobian(t, &y)?, jacobian(t, &z)?);
            r.eq64 = r.eq64.max(spectral(&jy) / l1);
            r.eq67 = r.eq67.max(spectral(&(&jy - &jz)) / (l2 * (&y - &z).norm()));
            let delta = &z - x;
            let gx = t.gradient(x)?.normalize();
            let gz = t.gradient(&z)?.normalize();
            let lin = &gx + jacobian(t, x)? * &delta;
            r.eq70 = r
                .eq70
                .max((gz - lin).norm() / (0.5 * l2 * delta.norm_squared()));
        }
    }
    r.eq78 = eq78_ratio(tasks, x, gamma)?;
    Ok(r)
}

/// The proof steps of Thm 3.2.
pub struct Thm32Steps;

impl Claim for Thm32Steps {
    fn meta(&self) -> &'static ClaimMeta {
        &THM_3_2_STEPS
    }
    fn evaluate(&self, settings: &Settings, progress: &ProgressBar) -> Result<ClaimReport> {
        let reps = if settings.quick { 1 } else { 3 };
        let mut points = Vec::new();
        for family in Family::standard() {
            for d in [3, 10] {
                for k in [2, 3, 4] {
                    for gamma in [0.01, 0.1] {
                        for rep in 0..reps {
                            points.push((family, d, k, gamma, rep));
                        }
                    }
                }
            }
        }
        let slack = 1.0 + 1e-12;
        let instances = run_grid(&points, progress, |&(family, d, k, gamma, rep)| {
            let (tasks, x, mut rng) =
                seeded_instance(self.id(), settings.seed, family, d, k, &[gamma, rep as f64])?;
            let r = check(&tasks, &x, gamma, 8, &mut rng)?;
            let prm = [
                ("d", d as f64),
                ("K", k as f64),
                ("gamma", gamma),
                ("rep", rep as f64),
            ];
            let worst = r.eq64.max(r.eq67).max(r.eq70).max(r.eq78);
            Ok(vec![
                Instance::new(family.id(), "every step", &prm, worst, 1.0, worst <= slack),
                Instance::new(family.id(), "Eq. 64", &prm, r.eq64, 1.0, r.eq64 <= slack),
                Instance::new(family.id(), "Eq. 67", &prm, r.eq67, 1.0, r.eq67 <= slack),
                Instance::new(family.id(), "Eq. 69-70", &prm, r.eq70, 1.0, r.eq70 <= slack),
                Instance::new(family.id(), "Eq. 77-78", &prm, r.eq78, 1.0, r.eq78 <= slack),
            ])
        })?;
        let mut report = ClaimReport::assemble(
            &THM_3_2_STEPS,
            settings.seed,
            settings.quick,
            serde_json::json!({"d": [3, 10], "K": [2, 3, 4], "gamma": [0.01, 0.1], "reps": reps, "probes_per_task": 8, "families": Family::standard()}),
            vec![
                Reading::new("every step", "the worst ratio measured / bound over the four steps is at most 1", Role::Statement),
                Reading::new("Eq. 64", "spectral norm of J_i on the ball / (L / G_min)", Role::Info),
                Reading::new("Eq. 67", "Lipschitz quotient of J_i on the ball / L_2", Role::Info),
                Reading::new("Eq. 69-70", "Taylor remainder of ghat_i / (L_2/2 ||D||^2)", Role::Info),
                Reading::new("Eq. 77-78", "per-sequence residual of the pseudo-gradient expansion / ((L_2 + L_1^2)/6 K^3 gamma^3), worst over all K^K sequences", Role::Info),
            ],
            instances,
            Figure::MeasuredVsClaimed,
        )?;
        for v in ["Eq. 64", "Eq. 67", "Eq. 69-70", "Eq. 77-78"] {
            let r: Vec<f64> = report.instances_of(v).map(|i| i.measured).collect();
            if let Some((lo, med, hi)) = crate::stats::min_median_max(&r) {
                report.findings.push(format!(
                    "{v}: measured / bound in [{lo:.3e}, {hi:.3e}], median {med:.3e}."
                ));
            }
        }
        report.findings.push("Every step of Eq. 61-78 holds; the proof first breaks at Eq. 82 (see eq-9 and thm-3.2).".into());
        Ok(report)
    }
}
