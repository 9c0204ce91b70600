//! The search engine: instances, the problem trait, Nelder-Mead multistart, re-checks and
//! the table's rows.

use crate::error::{Error, Result};
use crate::report::tightness::{Sharpness, TightnessRow};
use argmin::core::{CostFunction, Executor, State};
use argmin::solver::neldermead::NelderMead;
use nalgebra::{DMatrix, DVector};
use rand::RngExt;
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};

/// An instance of a claim's assumption class over quadratic tasks
/// `L_k(x) = 1/2 (x - c_k)^T H_k (x - c_k)`, with the point and step the claim needs.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct QuadInstance {
    /// Hessians, row by row.
    pub hessians: Vec<Vec<Vec<f64>>>,
    /// Minimizers `c_k`.
    pub minima: Vec<Vec<f64>>,
    /// The point the claim is evaluated at (`x`, `x_0`, or a point in a ball), if it has one.
    pub point: Vec<f64>,
    /// A second point (Eq. 64's `y`), if any.
    pub other: Vec<f64>,
    /// A step size, if any.
    pub gamma: f64,
}

impl QuadInstance {
    pub fn hessian(&self, k: usize) -> DMatrix<f64> {
        let rows = &self.hessians[k];
        DMatrix::from_fn(rows.len(), rows.len(), |i, j| rows[i][j])
    }
    pub fn minimum(&self, k: usize) -> DVector<f64> {
        DVector::from_vec(self.minima[k].clone())
    }
    pub fn tasks(&self) -> Result<Vec<crate::tasks::Quadratic>> {
        (0..self.hessians.len())
            .map(|k| crate::tasks::Quadratic::new(self.hessian(k), self.minimum(k), 0.0))
            .collect()
    }
    pub fn point(&self) -> DVector<f64> {
        DVector::from_vec(self.point.clone())
    }
    pub fn other(&self) -> DVector<f64> {
        DVector::from_vec(self.other.clone())
    }
    /// Rows of a matrix, for [`QuadInstance::hessians`].
    pub fn rows(m: &DMatrix<f64>) -> Vec<Vec<f64>> {
        (0..m.nrows())
            .map(|i| (0..m.ncols()).map(|j| m[(i, j)]).collect())
            .collect()
    }
}

/// The value in `[lo, hi]` that `z` encodes (both ends reached at finite `z`).
pub fn bounded(z: f64, lo: f64, hi: f64) -> f64 {
    lo + (hi - lo) * 0.5 * (1.0 + z.sin())
}

/// `R(angle) diag(eigenvalues) R(angle)^T` in two dimensions.
pub fn spd2(l1: f64, l2: f64, angle: f64) -> DMatrix<f64> {
    let (c, s) = (angle.cos(), angle.sin());
    let r = DMatrix::from_row_slice(2, 2, &[c, -s, s, c]);
    &r * DMatrix::from_diagonal(&DVector::from_vec(vec![l1, l2])) * r.transpose()
}

/// A bound's known worst case, constructed.
pub struct ClosedForm {
    pub instance: QuadInstance,
    /// The sharp constant it attains.
    pub sharp: f64,
    pub sharpness: Sharpness,
    /// Where, in words.
    pub attained_at: String,
}

/// A claim's inequality over one assumption class, as a function of an unconstrained vector.
pub trait Problem: Sync {
    /// The claim's id.
    fn claim(&self) -> &'static str;
    /// The inequality and the class, in words.
    fn name(&self) -> String;
    /// A file-name-safe key.
    fn key(&self) -> String;
    /// Length of `z`.
    fn dim(&self) -> usize;
    /// The instance `z` encodes.
    fn decode(&self, z: &[f64]) -> Result<QuadInstance>;
    /// measured / claimed on an instance, through the claim's own `check`.
    fn ratio(&self, instance: &QuadInstance) -> Result<f64>;
    /// The known worst case, where there is one.
    fn closed_form(&self) -> Option<ClosedForm> {
        None
    }
    /// The reading of the claim's report whose median ratio is this bound's typical value
    /// (None: the report's deciding reading).
    fn typical_reading(&self) -> Option<&'static str> {
        None
    }
    /// Whether the ratio is measured over a claimed bound (a value above 1 is a
    /// counterexample), or a measured constant with no bound claimed.
    fn is_bound(&self) -> bool {
        true
    }
}

/// What a search found.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct WorstCase {
    pub claim: String,
    pub problem: String,
    pub ratio: f64,
    pub z: Vec<f64>,
    pub instance: QuadInstance,
    pub starts: usize,
    pub evaluations: usize,
    pub seed: u64,
}

/// The search's budget.
#[derive(Clone, Copy, Debug)]
pub struct Budget {
    pub starts: usize,
    /// Nelder-Mead iterations per start.
    pub iterations: u64,
}

impl Budget {
    /// The main job's budget: 12 starts of 3000 iterations (all problems in about 20 s on 2
    /// cores; the positive controls are recovered to 1e-6 at 3 starts already), or 3 of 300
    /// for `--quick`.
    pub fn default(quick: bool) -> Self {
        if quick {
            Self {
                starts: 3,
                iterations: 300,
            }
        } else {
            Self {
                starts: 12,
                iterations: 3000,
            }
        }
    }
}

struct Negated<'a, P: ?Sized> {
    problem: &'a P,
    /// Evaluations of the claim's check (argmin counts only the functions it wraps itself).
    evaluations: &'a std::sync::atomic::AtomicUsize,
}

impl<P: Problem + ?Sized> CostFunction for Negated<'_, P> {
    type Param = Vec<f64>;
    type Output = f64;
    fn cost(&self, z: &Vec<f64>) -> std::result::Result<f64, argmin::core::Error> {
        self.evaluations
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        // An instance the check cannot evaluate (a point on a minimizer, a singular system)
        // scores 0: it is not a worst case, and the simplex moves away from it.
        let r = self
            .problem
            .decode(z)
            .and_then(|i| self.problem.ratio(&i))
            .unwrap_or(0.0);
        Ok(if r.is_finite() { -r } else { 0.0 })
    }
}

/// Maximizes the problem's ratio: `budget.starts` Nelder-Mead runs from `N(0, 2^2)` starts
/// drawn from `seed` (the first from the closed form's neighbourhood is not used: every start
/// is random, so that recovering a known worst case tests the search), each with an initial
/// simplex of side 1 and `budget.iterations` iterations; returns the best.
pub fn search<P: Problem + ?Sized>(problem: &P, budget: Budget, seed: u64) -> Result<WorstCase> {
    let mut rng = crate::rng_for(seed, &format!("tightness:{}", problem.key()));
    let n = problem.dim();
    let (mut best, mut best_z) = (f64::NEG_INFINITY, vec![0.0; n]);
    let evaluations = std::sync::atomic::AtomicUsize::new(0);
    for _ in 0..budget.starts {
        let z0: Vec<f64> = (0..n)
            .map(|_| 2.0 * Distribution::<f64>::sample(&StandardNormal, &mut rng))
            .collect();
        let mut simplex = vec![z0.clone()];
        for i in 0..n {
            let mut v = z0.clone();
            v[i] += if rng.random::<bool>() { 1.0 } else { -1.0 };
            simplex.push(v);
        }
        let solver = NelderMead::new(simplex)
            .with_sd_tolerance(1e-13)
            .map_err(|e| Error::Data(format!("Nelder-Mead: {e}")))?;
        let res = Executor::new(
            Negated {
                problem,
                evaluations: &evaluations,
            },
            solver,
        )
        .configure(|s| s.max_iters(budget.iterations))
        .run()
        .map_err(|e| Error::Data(format!("{}: search failed: {e}", problem.key())))?;
        let state = res.state();
        let (cost, z) = (state.get_best_cost(), state.get_best_param().cloned());
        if let Some(z) = z {
            if -cost > best {
                best = -cost;
                best_z = z;
            }
        }
    }
    let instance = problem.decode(&best_z)?;
    // The kept value is the check's on the decoded instance, not the optimizer's memory of it.
    let ratio = problem.ratio(&instance)?;
    Ok(WorstCase {
        claim: problem.claim().into(),
        problem: problem.name(),
        ratio,
        z: best_z,
        instance,
        starts: budget.starts,
        evaluations: evaluations.into_inner(),
        seed,
    })
}

/// Re-checks a saved worst case: the claim's `check` on the instance as loaded from JSON.
pub fn recheck<P: Problem + ?Sized>(problem: &P, saved: &str) -> Result<f64> {
    let w: WorstCase = serde_json::from_str(saved)?;
    problem.ratio(&w.instance)
}

/// Ratios above `1 + ROUNDING` are counterexamples: the claims' checks compare float64 sums of
/// a few hundred terms, whose rounding is far below this.
pub const ROUNDING: f64 = 1e-9;

/// The row of the tightness report for one problem.
pub fn row<P: Problem + ?Sized>(
    problem: &P,
    worst: &WorstCase,
    typical: Option<f64>,
    instance_file: &str,
    rechecked: f64,
) -> Result<TightnessRow> {
    let closed = problem.closed_form();
    let closed_ratio = closed
        .as_ref()
        .map(|c| problem.ratio(&c.instance))
        .transpose()?;
    let (sharp, sharpness, attained_at) = match closed {
        Some(c) => (c.sharp, c.sharpness, c.attained_at),
        None => (
            worst.ratio,
            Sharpness::Searched,
            "the saved worst instance".into(),
        ),
    };
    Ok(TightnessRow {
        claim: problem.claim().into(),
        problem: problem.name(),
        typical,
        worst_found: worst.ratio,
        violated: problem.is_bound() && worst.ratio > 1.0 + ROUNDING,
        sharp,
        sharpness,
        attained_at,
        slack: if problem.is_bound() {
            1.0 / sharp
        } else {
            f64::NAN
        },
        closed_form_ratio: closed_ratio,
        starts: worst.starts,
        evaluations: worst.evaluations,
        instance_file: instance_file.into(),
        rechecked,
    })
}
