//! Thm 8.2 (implicit bias of NSGD) and Sec. 5.2 (Nexus with K = 1 has no second-order term).
//!
//! **Thm 8.2** (Sec. 8.2), claimed as an expansion with a cubic error: normalized SGD with step
//! `gamma` "implicitly minimizes `E_x[L(x)] - (gamma/8) E_{x,x' iid}[CosSim(grad L(x), grad L(x'))]`"
//! with error at most `(4/3) ((4L^2 + rho G_min)/G_min^2) gamma^3`; the proof reads two NSGD steps
//! as Nexus with K = 2 and applies Thm 3.2. We test that reading: over `N` sources, the expected
//! displacement of two NSGD steps is
//! `2 gamma (mean_x ghat_x - (gamma/8) grad E_{x,x'} S(x, x')) + E`, `||E|| <= (4/3)(...) gamma^3`.
//! The expansion that Algorithm 1 gives for two steps over `N` sources is
//! `2 gamma mean_x ghat_x - gamma^2 (1/N^2) sum_{i,j} J_i ghat_j`; for isotropic tasks that is
//! `2 gamma (mean ghat - (gamma/4) grad E_{x,x'} S)`, so the coefficient under the i.i.d. reading
//! is gamma/4, not gamma/8. Over distinct pairs (`x != x'`, what the proof's two distinct inner
//! steps compute) the same vector reads `(gamma/4)(1 - 1/N)`, which is gamma/8 at N = 2: the
//! report names both readings of the one measurement.
//!
//! **Sec. 5.2**, claimed as an identity: with K = 1 the regularizer coefficient `(K-1)/(4K)` is
//! zero, so Nexus is normalized-gradient descent with no implicit bias. Measured: the exact
//! `E[pg]` for one inner step over `N` sources against `gamma (1/N) sum_i ghat_i`, relative to
//! `gamma`; holds when every difference is at float64 rounding (1e-13 relative).

use super::common::{gamma_grid, run_grid, seeded_instance, Claim, GammaGrid, Settings, SLOPE_TOL};
use crate::error::Result;
use crate::expansion::{eq81_expansion, first_order, thm32_bound, thm32_constants, Local};
use crate::expectation::residual_curves;
use crate::report::{ClaimKind, ClaimMeta, ClaimReport, Figure, Instance, Reading, Role};
use crate::stats::loglog_slope;
use crate::tasks::{Family, Task};
use indicatif::ProgressBar;
use nalgebra::DVector;

/// The claim [`Thm82`] checks.
pub const THM_8_2: ClaimMeta = ClaimMeta {
    id: "thm-8.2",
    reference: "Thm 8.2, Eq. 17 (Sec. 8.2)",
    statement: "NSGD with step gamma implicitly minimizes E_x[L(x)] - (gamma/8) E_{x,x' iid}[CosSim(grad L(x), grad L(x'))], with error <= (4/3)((4L^2 + rho G_min)/G_min^2) gamma^3.",
    kind: ClaimKind::Order { power: 3.0 },
};

/// The claim [`NexusK1`] checks.
pub const SEC_5_2: ClaimMeta = ClaimMeta {
    id: "sec-5.2",
    reference: "Sec. 5.2",
    statement: "Nexus with K = 1 is normalized-gradient descent: the regularizer coefficient (K-1)/(4K) vanishes, E[pg] = gamma (1/N) sum_i ghat_i with no higher-order term.",
    kind: ClaimKind::Equality,
};

/// Float64 rounding allowance for the K = 1 identity, relative to `gamma`.
pub const K1_TOL: f64 = 1e-13;

/// `2 gamma mean ghat - 2 gamma (c gamma) grad E_{x,x'} S` with `grad E_{x,x'} S = (1/N^2) sum_{i != j} grad S_ij`.
fn nsgd_expansion(local: &Local, gamma: f64, coefficient: f64) -> DVector<f64> {
    let n = local.len() as f64;
    first_order(local, 2, gamma)
        - local.sum_cos_grad() * (2.0 * gamma * coefficient * gamma / (n * n))
}

/// Residual slopes for Thm 8.2: (stated gamma/8, gamma/4, Eq. 81 with K = 2) and whether the
/// stated residual stays below `(4/3)(...) gamma^3`.
pub fn check_nsgd<T: Task>(
    tasks: &[T],
    x: &DVector<f64>,
    gammas: &[f64],
) -> Result<([f64; 3], bool)> {
    let local = Local::at(tasks, x)?;
    let stated = |g: f64| nsgd_expansion(&local, g, 1.0 / 8.0);
    let quarter = |g: f64| nsgd_expansion(&local, g, 1.0 / 4.0);
    let eq81 = |g: f64| eq81_expansion(&local, 2, g);
    let curves = residual_curves(tasks, x, 2, gammas, &[&stated, &quarter, &eq81])?;
    let within = gammas.iter().zip(&curves[0]).all(|(&g, r)| {
        let (g_min, l, rho) = thm32_constants(tasks, x, 2, g);
        *r <= thm32_bound(g_min, l, rho, 2, g)
    });
    let slopes = [0, 1, 2].map(|i| loglog_slope(gammas, &curves[i]).unwrap_or(f64::NAN));
    Ok((slopes, within))
}

/// Largest `||E[pg] - gamma mean ghat|| / gamma` over `gammas` for one inner step.
pub fn check_k1<T: Task>(tasks: &[T], x: &DVector<f64>, gammas: &[f64]) -> Result<f64> {
    let local = Local::at(tasks, x)?;
    let first = |g: f64| first_order(&local, 1, g);
    let curve = residual_curves(tasks, x, 1, gammas, &[&first])?;
    Ok(curve[0]
        .iter()
        .zip(gammas)
        .map(|(r, g)| r / g)
        .fold(0.0, f64::max))
}

fn points(quick: bool) -> Vec<(Family, usize, usize, usize)> {
    let reps = if quick { 1 } else { 3 };
    let mut p = Vec::new();
    for family in Family::standard() {
        for d in [3, 10] {
            for n in [2, 4, 8] {
                for rep in 0..reps {
                    p.push((family, d, n, rep));
                }
            }
        }
    }
    p
}

/// Thm 8.2.
pub struct Thm82;

impl Claim for Thm82 {
    fn meta(&self) -> &'static ClaimMeta {
        &THM_8_2
    }
    fn evaluate(&self, settings: &Settings, progress: &ProgressBar) -> Result<ClaimReport> {
        let gammas = gamma_grid(GammaGrid::Exact);
        let pts = points(settings.quick);
        let instances = run_grid(&pts, progress, |&(family, d, n, rep)| {
            let (tasks, x, _) =
                seeded_instance(self.id(), settings.seed, family, d, n, &[rep as f64])?;
            let (s, within) = check_nsgd(&tasks, &x, &gammas)?;
            let prm = [("d", d as f64), ("N", n as f64), ("rep", rep as f64)];
            let ok = |v: f64| v >= 3.0 - SLOPE_TOL;
            Ok(vec![
                Instance::new(
                    family.id(),
                    "stated (gamma/8)",
                    &prm,
                    s[0],
                    3.0,
                    ok(s[0]) && within,
                ),
                Instance::new(family.id(), "gamma/4", &prm, s[1], 3.0, ok(s[1])),
                Instance::new(family.id(), "Eq. 81 form, K = 2", &prm, s[2], 3.0, ok(s[2])),
            ])
        })?;
        let mut report = ClaimReport::assemble(
            &THM_8_2,
            settings.seed,
            settings.quick,
            serde_json::json!({"gamma": [1e-4, 1e-2], "points": 9, "slope_tol": SLOPE_TOL, "d": [3, 10], "N": [2, 4, 8], "families": Family::standard(),
                "reading": "expected displacement of two NSGD steps = 2 gamma (mean ghat - c gamma grad E_{x,x'} S)"}),
            vec![
                Reading::new("stated (gamma/8)", "two-step displacement matches 2 gamma (mean ghat - (gamma/8) grad E_{x,x'} S) to O(gamma^3) and within the stated bound", Role::Statement),
                Reading::new("gamma/4", "the same with coefficient gamma/4 over i.i.d. pairs (what Algorithm 1 gives for isotropic tasks), which is the same vector as (gamma/4)(1 - 1/N) over distinct pairs x != x', and so gamma/8 over distinct pairs at N = 2 (the pairs the proof substitutes)", Role::Info),
                Reading::correction("Eq. 81 form, K = 2", "the two-step expansion that Eq. 77 + 81 give: residual slope >= 2.9", "E[x_0 - x_2] = 2 gamma mean_i ghat_i - gamma^2 (1/N^2) sum_{i,j} J_i ghat_j + O(gamma^3)"),
            ],
            instances,
            Figure::MeasuredVsClaimed,
        )?;
        report.proof_fault = Some("The proof reads two NSGD steps as Nexus with K = 2 and applies Thm 3.2, so it inherits Eq. 82's missing transpose; and Thm 3.2's coefficient (K-1)/(4K) = 1/8 at K = 2 multiplies grad sum_{i != j} S_ij over the two sampled steps, which under the i.i.d. (x, x') reading is 2 grad E_{x,x'} S up to the diagonal, so the coefficient of grad E_{x,x'} S is gamma/4 (what Algorithm 1 gives on isotropic tasks), not gamma/8.".into());
        report.findings.push("Two readings of the coefficient, one measurement: over i.i.d. pairs the S_ii = 1 terms are constant, so grad E_{x,x' iid} S = (1 - 1/N) grad E_{x != x'} S, and the isotropic expansion 2 gamma (mean ghat - (gamma/4) grad E_{x,x' iid} S) is 2 gamma (mean ghat - (gamma/4)(1 - 1/N) grad E_{x != x'} S). The statement's gamma/8 therefore holds for N = 2 if its expectation runs over distinct pairs (what the proof's substitution of K = 2 distinct inner steps computes), and (gamma/4)(1 - 1/N) is its general form; over i.i.d. pairs, as written, the coefficient is gamma/4. Both hold on isotropic tasks only (the `gamma/4` reading); off them the Eq. 81 form replaces the cosine gradient.".to_string());
        for name in ["stated (gamma/8)", "gamma/4"] {
            let fams: Vec<&str> = Family::standard()
                .iter()
                .map(|f| f.id())
                .filter(|f| {
                    report
                        .instances_of(name)
                        .filter(|i| i.family == *f)
                        .all(|i| i.holds)
                })
                .collect();
            report.findings.push(format!(
                "Reading `{name}` holds on: {}.",
                if fams.is_empty() {
                    "no family".into()
                } else {
                    fams.join(", ")
                }
            ));
        }
        Ok(report)
    }
}

/// Sec. 5.2: K = 1.
pub struct NexusK1;

impl Claim for NexusK1 {
    fn meta(&self) -> &'static ClaimMeta {
        &SEC_5_2
    }
    fn evaluate(&self, settings: &Settings, progress: &ProgressBar) -> Result<ClaimReport> {
        let gammas = gamma_grid(GammaGrid::Exact);
        let pts = points(settings.quick);
        let instances = run_grid(&pts, progress, |&(family, d, n, rep)| {
            let (tasks, x, _) =
                seeded_instance(self.id(), settings.seed, family, d, n, &[rep as f64])?;
            let worst = check_k1(&tasks, &x, &gammas)?;
            Ok(vec![Instance::new(
                family.id(),
                "no second-order term",
                &[("d", d as f64), ("N", n as f64), ("rep", rep as f64)],
                worst,
                K1_TOL,
                worst <= K1_TOL,
            )])
        })?;
        ClaimReport::assemble(
            &SEC_5_2,
            settings.seed,
            settings.quick,
            serde_json::json!({"gamma": [1e-4, 1e-2], "points": 9, "tol": K1_TOL, "d": [3, 10], "N": [2, 4, 8], "families": Family::standard()}),
            vec![Reading::new("no second-order term", "max over gamma of ||E[pg] - gamma mean ghat|| / gamma is at float64 rounding (<= 1e-13)", Role::Statement)],
            instances,
            Figure::MeasuredVsClaimed,
        )
    }
}
