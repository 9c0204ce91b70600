//! Thm 3.2, Eq. 81 and the third-order term at the paper's K (8 to 64 inner steps over as many
//! sources), where enumerating the `K^K` index sequences is out of reach: Monte Carlo over
//! sequences with a per-sequence Taylor control variate ([`crate::expectation::taylor_monte_carlo`]).
//!
//! Every residual below is `||E[pg] - expansion||` with `E[pg]` estimated as
//! `Eq. 81 + mean_s(pg - gamma T1 - gamma^2 T2)` (or, for third-order expansions,
//! `Eq. 81 + gamma^3 derived + mean_s(pg - gamma T1 - gamma^2 T2 - gamma^3 T3)`), so an expansion
//! differing from the truth at second order shows slope 2, one right to second order slope 3, and
//! one right to third order slope 4, at any K. Step sizes: `K gamma` in `[5e-4, 5e-2]` (9 points),
//! so the inner loop's reach `K gamma` is the same at every K and a fourth-order term stays
//! below the slope tolerance, as in the exact grids. The bound checks use an upper confidence
//! value, the residual plus 4 standard errors (norm of the per-coordinate errors).

use super::common::{gamma_grid, run_grid, seeded_instance, GammaGrid, Settings};
use crate::error::Result;
use crate::expansion::{
    eq81_expansion, thm32_bound, thm32_constants, thm32_stated, thm83_bound, Local, Third,
};
use crate::expectation::taylor_monte_carlo;
use crate::stats::loglog_slope;
use crate::tasks::Task;
use nalgebra::DVector;

/// The inner step counts beyond the exact engine's reach.
pub const LARGE_K: [usize; 4] = [8, 16, 32, 64];

/// Standard errors added to a residual before it is compared with a bound.
pub const UPPER_Z: f64 = 4.0;

/// Residual curves and slopes of every expansion at one instance.
#[derive(Clone, Debug)]
pub struct LargeKCurves {
    /// Step sizes.
    pub gammas: Vec<f64>,
    /// Thm 3.2 as stated.
    pub stated: Vec<f64>,
    /// Eq. 81's expansion.
    pub eq81: Vec<f64>,
    /// Eq. 81's residual plus [`UPPER_Z`] standard errors.
    pub eq81_upper: Vec<f64>,
    /// The stated residual plus [`UPPER_Z`] standard errors.
    pub stated_upper: Vec<f64>,
    /// Thm 8.3 as stated (Thm 3.2's expansion plus the stated third-order term).
    pub thm83_stated: Vec<f64>,
    /// Eq. 81 plus the stated third-order term.
    pub eq81_stated3: Vec<f64>,
    /// Eq. 81 plus the proof's Eq. 106 term.
    pub eq81_eq106: Vec<f64>,
    /// Eq. 81 plus the derived third-order term.
    pub eq81_derived: Vec<f64>,
    /// Thm 3.2's bound (Eq. 12) at each gamma.
    pub bound32: Vec<f64>,
    /// Thm 8.3's bound (Eq. 19) at each gamma.
    pub bound83: Vec<f64>,
    /// Largest `|mean T3 - derived| / se` over the coordinates: the Monte Carlo check of the
    /// derived term's expectation.
    pub t3_z: f64,
}

impl LargeKCurves {
    /// Log-log slope of a curve.
    pub fn slope(&self, curve: &[f64]) -> f64 {
        loglog_slope(&self.gammas, curve).unwrap_or(f64::NAN)
    }
}

/// Measures every expansion for `k` inner steps over `tasks` at `x` from `samples` sequences.
pub fn check<T: Task, R: rand::Rng + ?Sized>(
    tasks: &[T],
    x: &DVector<f64>,
    k: usize,
    samples: usize,
    rng: &mut R,
) -> Result<LargeKCurves> {
    let gammas = gamma_grid(GammaGrid::SameReach { k });
    let local = Local::at(tasks, x)?;
    let third = Third::new(tasks, x, &local);
    let (derived, stated3, eq106) = (third.derived(k)?, third.stated_thm83()?, third.eq106()?);
    let mc = taylor_monte_carlo(tasks, x, k, &gammas, samples, rng)?;
    let m3 = tasks.iter().map(|t| t.curvature().m3).fold(0.0, f64::max);
    let mut c = LargeKCurves {
        gammas: gammas.clone(),
        stated: vec![],
        eq81: vec![],
        eq81_upper: vec![],
        stated_upper: vec![],
        thm83_stated: vec![],
        eq81_stated3: vec![],
        eq81_eq106: vec![],
        eq81_derived: vec![],
        bound32: vec![],
        bound83: vec![],
        t3_z: (&mc.t3_mean - &derived)
            .iter()
            .zip(mc.t3_se.iter())
            .map(|(diff, se)| if *se > 0.0 { diff.abs() / se } else { 0.0 })
            .fold(0.0, f64::max),
    };
    for (gi, &g) in gammas.iter().enumerate() {
        let e81 = eq81_expansion(&local, k, g);
        // E[pg] - Eq. 81, and E[pg] - Eq. 81 - gamma^3 derived, as estimated.
        let (r2, r3) = (&mc.second[gi], &mc.third[gi]);
        let stated_gap = &e81 - thm32_stated(&local, g);
        let g3 = g.powi(3);
        c.stated.push((r2 + &stated_gap).norm());
        c.stated_upper
            .push((r2 + &stated_gap).norm() + UPPER_Z * mc.second_se[gi]);
        c.eq81.push(r2.norm());
        c.eq81_upper.push(r2.norm() + UPPER_Z * mc.second_se[gi]);
        c.thm83_stated
            .push((r2 + &stated_gap - &stated3 * g3).norm());
        c.eq81_stated3
            .push((r3 + (&derived - &stated3) * g3).norm());
        c.eq81_eq106.push((r3 + (&derived - &eq106) * g3).norm());
        c.eq81_derived.push(r3.norm());
        let (g_min, l, rho) = thm32_constants(tasks, x, k, g);
        c.bound32.push(thm32_bound(g_min, l, rho, k, g));
        c.bound83.push(thm83_bound(g_min, l, m3, k, g));
    }
    Ok(c)
}

/// Monte Carlo sequences per instance (the residual curves are smooth in gamma through common
/// random numbers, so a few hundred sequences already fix the slopes; more tighten the bound
/// checks and the check of `E[T3]`).
pub fn samples(quick: bool) -> usize {
    if quick {
        400
    } else {
        1000
    }
}

/// Runs [`check`] on every family, `d` in {3, 10} and K in [`LARGE_K`] (each with its own
/// hashed stream from the claim id, family, d, K and replicate) and turns each instance's curves
/// into report instances with `to_instances(family id, params, curves)`.
pub(crate) fn instances(
    id: &str,
    settings: &Settings,
    progress: &indicatif::ProgressBar,
    to_instances: impl Fn(&str, &[(&str, f64)], &LargeKCurves) -> Vec<crate::report::Instance> + Sync,
) -> Result<Vec<crate::report::Instance>> {
    let reps = if settings.quick { 1 } else { 2 };
    let n = samples(settings.quick);
    let mut points = Vec::new();
    for family in crate::tasks::Family::standard() {
        for d in [3, 10] {
            for k in LARGE_K {
                for rep in 0..reps {
                    points.push((family, d, k, rep));
                }
            }
        }
    }
    run_grid(&points, progress, |&(family, d, k, rep)| {
        let (tasks, x, mut rng) = seeded_instance(
            &format!("{id}:large-K"),
            settings.seed,
            family,
            d,
            k,
            &[rep as f64],
        )?;
        let curves = check(&tasks, &x, k, n, &mut rng)?;
        let prm = [
            ("d", d as f64),
            ("K", k as f64),
            ("rep", rep as f64),
            ("mc_sequences", n as f64),
        ];
        Ok(to_instances(family.id(), &prm, &curves))
    })
}
