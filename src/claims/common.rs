//! What every claim module shares: the run's settings, the [`Claim`] trait, the parallel grid
//! runner, the random stream of a grid point, the instances several claims draw (a stationary
//! point, K tasks and a point away from their minima) and the grids and tolerances of the order
//! checks. A claim module imports from here, never from a sibling claim.

use crate::error::Result;
use crate::report::{ClaimMeta, ClaimReport, Instance};
use crate::stats::log_grid;
use crate::tasks::{minimize_average, BoxedTask, Family, Task, TaskDistribution};
use indicatif::ProgressBar;
use nalgebra::DVector;
use rand_distr::{Distribution, StandardNormal};
use rayon::prelude::*;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};

/// Run-wide settings.
#[derive(Clone, Copy, Debug)]
pub struct Settings {
    /// Master seed; every instance derives its own stream from it.
    pub seed: u64,
    /// A fast pass with smaller grids and Monte Carlo sizes.
    pub quick: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            seed: 20_260_409,
            quick: false,
        }
    }
}

/// The master seeds of a replication study: `master` first, then `n - 1` seeds hashed from it
/// (independent replications, never `master + i`).
pub fn replication_seeds(master: u64, n: usize) -> Vec<u64> {
    std::iter::once(master)
        .chain((1..n).map(|i| crate::stream_seed(master, &format!("replication:{i}"))))
        .collect()
}

/// A registered claim.
pub trait Claim: Sync {
    /// What the claim is (id, reference, statement, kind), written once in its module.
    fn meta(&self) -> &'static ClaimMeta;
    /// Stable id, e.g. `thm-2.2`.
    fn id(&self) -> &'static str {
        self.meta().id
    }
    /// Runs the claim's grid and assembles its report.
    fn evaluate(&self, settings: &Settings, progress: &ProgressBar) -> Result<ClaimReport>;
}

/// Evaluates `job` on every grid point in parallel, keeping the grid's order, and advances the
/// progress bar once per point. After a job fails, jobs not yet started are skipped; the error
/// returned is the first, in grid order, of the jobs that ran.
///
/// The parallel loop itself is [`for_each_index`], one non-generic function: a rayon pipeline
/// per call site (point and result types differ from claim to claim) was about a fifth of the
/// library's LLVM IR.
pub fn par_map<T, R, F>(grid: &[T], progress: &ProgressBar, job: F) -> Result<Vec<R>>
where
    T: Sync,
    R: Send,
    F: Fn(&T) -> Result<R> + Sync,
{
    progress.set_length(grid.len() as u64);
    progress.set_position(0);
    let slots: Vec<Mutex<Option<Result<R>>>> = grid.iter().map(|_| Mutex::new(None)).collect();
    let failed = AtomicBool::new(false);
    for_each_index(grid.len(), &|i| {
        if failed.load(Ordering::Relaxed) {
            return;
        }
        let out = job(&grid[i]);
        failed.fetch_or(out.is_err(), Ordering::Relaxed);
        progress.inc(1);
        *slots[i].lock().unwrap_or_else(PoisonError::into_inner) = Some(out);
    });
    let mut out = Vec::with_capacity(grid.len());
    for slot in slots {
        match slot.into_inner().unwrap_or_else(PoisonError::into_inner) {
            Some(result) => out.push(result?),
            // Skipped after a failure, whose error a later slot holds.
            None => continue,
        }
    }
    Ok(out)
}

/// `job(i)` for `i` in `0..n` on rayon's pool.
fn for_each_index(n: usize, job: &(dyn Fn(usize) + Sync)) {
    (0..n).into_par_iter().for_each(job);
}

/// [`par_map`] for jobs that each yield instances, flattened in grid order.
pub fn run_grid<T, F>(grid: &[T], progress: &ProgressBar, job: F) -> Result<Vec<Instance>>
where
    T: Sync,
    F: Fn(&T) -> Result<Vec<Instance>> + Sync,
{
    Ok(par_map(grid, progress, job)?
        .into_iter()
        .flatten()
        .collect())
}

/// A label for a grid point's random stream.
pub fn stream(id: &str, parts: &[f64]) -> String {
    let mut s = id.to_string();
    for p in parts {
        s.push(':');
        s.push_str(&format!("{p}"));
    }
    s
}

/// A number per task family, part of a grid point's stream label.
pub fn family_code(f: Family) -> f64 {
    match f {
        Family::Isotropic { .. } => 0.0,
        Family::Anisotropic { .. } => 1.0,
        Family::NonQuadratic { .. } => 2.0,
        Family::Logistic { .. } => 3.0,
    }
}

/// The exact stationary point of `L_train`, started from the mean of the task minimizers.
pub fn stationary_point<T: Task>(tasks: &[T]) -> Result<DVector<f64>> {
    let d = tasks.first().map(|t| t.dim()).unwrap_or(0);
    let mut start = DVector::zeros(d);
    for t in tasks {
        start += t.minimizer();
    }
    start /= tasks.len().max(1) as f64;
    minimize_average(tasks, &start)
}

/// Slope tolerance of the gamma^3 and gamma^4 order checks on the grids of [`gamma_grid`]: it
/// absorbs a next-order term up to 10% of the claimed one at the grid's largest step.
pub const SLOPE_TOL: f64 = 0.1;

/// The step sizes of an order check: 9 points over two decades.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GammaGrid {
    /// `gamma` in `[1e-4, 1e-2]`: the exact engine's small K.
    Exact,
    /// `K gamma` in `[5e-4, 5e-2]` for `K` inner steps, so the inner loop's reach `K gamma` is
    /// the same at every K (the Monte Carlo checks at large K).
    SameReach {
        /// Inner steps.
        k: usize,
    },
}

/// The step sizes of `grid`.
pub fn gamma_grid(grid: GammaGrid) -> Vec<f64> {
    match grid {
        GammaGrid::Exact => log_grid(1e-4, 1e-2, 9),
        GammaGrid::SameReach { k } => {
            let k = k as f64;
            log_grid(5e-4 / k, 5e-2 / k, 9)
        }
    }
}

/// K tasks and a point at distance about 2 from their centre, so every gradient is bounded
/// away from zero on `B(x, K gamma)`.
pub fn draw_instance<R: rand::Rng + ?Sized>(
    family: Family,
    d: usize,
    k: usize,
    rng: &mut R,
) -> Result<(Vec<BoxedTask>, DVector<f64>)> {
    let dist = TaskDistribution::new(family, d, 0.5)?;
    let tasks = dist.sample_many(k, rng)?;
    let dir = DVector::<f64>::from_fn(d, |_, _| Distribution::<f64>::sample(&StandardNormal, rng))
        .normalize();
    Ok((tasks, &dist.center + dir * 2.0))
}

/// The instance of a grid point: its own random stream (from the claim id, the family, `d`, `k`
/// and `extra`), K tasks and the point, and the stream for any further draws.
pub fn seeded_instance(
    id: &str,
    seed: u64,
    family: Family,
    d: usize,
    k: usize,
    extra: &[f64],
) -> Result<(Vec<BoxedTask>, DVector<f64>, rand::rngs::ChaCha8Rng)> {
    let mut parts = vec![family_code(family), d as f64, k as f64];
    parts.extend_from_slice(extra);
    let mut rng = crate::rng_for(seed, &stream(id, &parts));
    let (tasks, x) = draw_instance(family, d, k, &mut rng)?;
    Ok((tasks, x, rng))
}

/// The largest `residual / bound`.
pub fn max_ratio(residual: &[f64], bound: &[f64]) -> f64 {
    residual
        .iter()
        .zip(bound)
        .map(|(r, b)| r / b)
        .fold(0.0, f64::max)
}

/// Whether every `residual` is at most its `bound`.
pub fn within(residual: &[f64], bound: &[f64]) -> bool {
    residual.iter().zip(bound).all(|(r, b)| r <= b)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Results come back in grid order; a failing point's error is returned.
    #[test]
    fn par_map_keeps_order_and_returns_the_error() {
        let grid: Vec<usize> = (0..1000).collect();
        let progress = ProgressBar::hidden();
        let squares = par_map(&grid, &progress, |&i| Ok(i * i)).unwrap();
        assert_eq!(squares, grid.iter().map(|i| i * i).collect::<Vec<_>>());
        assert_eq!(progress.position(), 1000);
        let failed = par_map(&grid, &progress, |&i| {
            if i == 617 {
                Err(crate::error::Error::UnknownClaim(
                    "617".into(),
                    String::new(),
                ))
            } else {
                Ok(i)
            }
        });
        assert!(matches!(failed, Err(crate::error::Error::UnknownClaim(id, _)) if id == "617"));
    }
}
