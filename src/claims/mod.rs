//! One module per claim of the paper (PEPit style). Each exposes a `check` function that
//! measures one instance and returns the measured and the claimed side, and a [`Claim`] that
//! runs `check` over a grid and assembles the report. The property tests in `theorems/` call the
//! same `check` functions, so a theorem's test and its report share one code path.

pub mod controls;
pub mod eq4;
pub mod eq8;
pub mod large_k;
pub mod mechanism;
pub mod thm_2_2;
pub mod thm_2_3;
pub mod thm_3_1;
pub mod thm_3_2;
pub mod thm_3_2_steps;
pub mod thm_8_1;
pub mod thm_8_2;
pub mod thm_8_3;

use crate::error::{Error, Result};
use crate::report::{ClaimReport, Instance};
use indicatif::ProgressBar;
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
    /// Stable id, e.g. `thm-2.2`.
    fn id(&self) -> &'static str;
    /// Runs the claim's grid and assembles its report.
    fn evaluate(&self, settings: &Settings, progress: &ProgressBar) -> Result<ClaimReport>;
}

/// Every claim, in the order of the paper, then the pipeline's controls.
pub fn registry() -> Vec<Box<dyn Claim>> {
    vec![
        Box::new(eq4::Eq4),
        Box::new(eq4::Remark21),
        Box::new(thm_2_2::Thm22),
        Box::new(thm_2_3::Thm23),
        Box::new(thm_3_1::Thm31Dot),
        Box::new(thm_3_1::Thm31Cos),
        Box::new(eq8::Eq8),
        Box::new(thm_3_2::Eq9),
        Box::new(thm_3_2::Thm32),
        Box::new(thm_3_2_steps::Thm32Steps),
        Box::new(thm_8_2::NexusK1),
        Box::new(thm_8_1::Thm81),
        Box::new(thm_8_2::Thm82),
        Box::new(thm_8_3::Thm83),
        Box::new(mechanism::Mechanism),
        Box::new(controls::Reptile { sign: 1.0 }),
        Box::new(controls::Reptile { sign: -1.0 }),
        Box::new(controls::DescentLemma { factor: 1.0 }),
        Box::new(controls::DescentLemma { factor: 2.0 }),
    ]
}

/// The claim with this id, or an error listing the known ids.
pub fn find(id: &str) -> Result<Box<dyn Claim>> {
    let all = registry();
    let known = all.iter().map(|c| c.id()).collect::<Vec<_>>().join(", ");
    all.into_iter()
        .find(|c| c.id() == id)
        .ok_or_else(|| Error::UnknownClaim(id.into(), known))
}

/// Evaluates `job` on every grid point in parallel, keeping the grid's order, and advances the
/// progress bar once per point. After a job fails, jobs not yet started are skipped; the error
/// returned is the first, in grid order, of the jobs that ran.
///
/// The parallel loop itself is [`for_each_index`], one non-generic function: a rayon pipeline
/// per call site (point and result types differ from claim to claim) was about a fifth of the
/// library's LLVM IR.
pub(crate) fn par_map<T, R, F>(grid: &[T], progress: &ProgressBar, job: F) -> Result<Vec<R>>
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
pub(crate) fn run_grid<T, F>(grid: &[T], progress: &ProgressBar, job: F) -> Result<Vec<Instance>>
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
pub(crate) fn stream(id: &str, parts: &[f64]) -> String {
    let mut s = id.to_string();
    for p in parts {
        s.push(':');
        s.push_str(&format!("{p}"));
    }
    s
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
                Err(Error::UnknownClaim("617".into(), String::new()))
            } else {
                Ok(i)
            }
        });
        assert!(matches!(failed, Err(Error::UnknownClaim(id, _)) if id == "617"));
    }
}
