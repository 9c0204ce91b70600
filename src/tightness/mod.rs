//! Worst-case search: how tight each bound is, found by maximizing measured / claimed over the
//! claim's own assumption class, not by sampling it.
//!
//! A [`Problem`] maps an unconstrained vector `z` to an instance of the class (a
//! [`QuadInstance`]: quadratic tasks, a point, a step size) and scores it with the claim's own
//! `check`. [`search`] runs argmin's Nelder-Mead from several seeded starts and keeps the best;
//! every evaluation goes through the same `ratio` a saved instance is re-checked with
//! ([`recheck`]). Problems with a known worst case also construct it in closed form
//! ([`Problem::closed_form`]), checked by the same `ratio`.
//!
//! Bounded quantities are mapped with `lo + (hi - lo) (1 + sin z) / 2`, which reaches both ends
//! at finite `z` (worst cases sit on the boundary of a spectrum interval more often than not).

pub mod problems;

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
}

impl<P: Problem + ?Sized> CostFunction for Negated<'_, P> {
    type Param = Vec<f64>;
    type Output = f64;
    fn cost(&self, z: &Vec<f64>) -> std::result::Result<f64, argmin::core::Error> {
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
    let (mut best, mut best_z, mut evaluations) = (f64::NEG_INFINITY, vec![0.0; n], 0usize);
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
        let res = Executor::new(Negated { problem }, solver)
            .configure(|s| s.max_iters(budget.iterations))
            .run()
            .map_err(|e| Error::Data(format!("{}: search failed: {e}", problem.key())))?;
        let state = res.state();
        evaluations += state.get_func_counts().values().sum::<u64>() as usize;
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
        evaluations,
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
        violated: worst.ratio > 1.0 + ROUNDING,
        sharp,
        sharpness,
        attained_at,
        slack: 1.0 / sharp,
        closed_form_ratio: closed_ratio,
        starts: worst.starts,
        evaluations: worst.evaluations,
        instance_file: instance_file.into(),
        rechecked,
    })
}

/// The problems whose key starts with one of `only` (all when empty); an error names a prefix
/// that selects none.
pub fn select(only: &[&str]) -> Result<Vec<Box<dyn Problem>>> {
    let all = problems::all();
    for o in only {
        if !all.iter().any(|p| p.key().starts_with(o)) {
            return Err(Error::InvalidArgument {
                name: "only",
                reason: format!(
                    "no problem's key starts with `{o}` (keys: {})",
                    all.iter().map(|p| p.key()).collect::<Vec<_>>().join(", ")
                ),
            });
        }
    }
    Ok(all
        .into_iter()
        .filter(|p| only.is_empty() || only.iter().any(|o| p.key().starts_with(o)))
        .collect())
}

/// Searches the selected problems and writes their worst instances
/// (`<staged>/tightness/<key>.json`), the table's rows (`<staged>/tightness/summary.json`, rows
/// of problems not searched now kept from `<out>`) and Thm 8.1's figure
/// (`<staged>/thm-8.1-sharp.png`); returns the rows. `reports` give each claim's typical ratio.
pub fn publish(
    staged: &std::path::Path,
    out: &std::path::Path,
    reports: &[crate::report::ClaimReport],
    budget: Budget,
    seed: u64,
    only: &[&str],
) -> Result<Vec<TightnessRow>> {
    let all_problems = problems::all();
    let selected = select(only)?;
    let typical = |claim: String| {
        reports
            .iter()
            .find(|r| r.id == claim)
            .and_then(|r| r.tightness.as_ref())
            .map(|t| t.median)
    };
    let bar = indicatif::ProgressBar::new(selected.len() as u64);
    let found = crate::claims::common::par_map(&selected, &bar, |p| {
        let started = std::time::Instant::now();
        let worst = search(p.as_ref(), budget, seed)?;
        Ok((worst, started.elapsed().as_secs_f64()))
    })?;
    bar.finish_and_clear();
    let mut rows: Vec<TightnessRow> = crate::report::tightness::load(out)?;
    for (p, (worst, seconds)) in selected.iter().zip(found) {
        let file = format!("tightness/{}.json", p.key());
        let mut text = serde_json::to_string_pretty(&worst)?;
        text.push('\n');
        let path = staged.join(&file);
        crate::fsio::write_atomic(&path, text.as_bytes())?;
        // Re-checked from the file as written, through the claim's own check.
        let rechecked = recheck(p.as_ref(), &crate::fsio::read_to_string(&path)?)?;
        let row = row(
            p.as_ref(),
            &worst,
            typical(p.claim().to_string()),
            &file,
            rechecked,
        )?;
        eprintln!(
            "{:>28}: worst found {:.6} (sharp {:.6}, {}), {:.0} s",
            p.key(),
            row.worst_found,
            row.sharp,
            row.sharpness.label(),
            seconds
        );
        rows.retain(|r| r.instance_file != row.instance_file);
        rows.push(row);
    }
    // Rows in the problems' order; rows of problems no longer defined are dropped.
    let order: Vec<String> = all_problems
        .iter()
        .map(|p| format!("tightness/{}.json", p.key()))
        .collect();
    rows.retain(|r| order.contains(&r.instance_file));
    rows.sort_by_key(|r| order.iter().position(|o| *o == r.instance_file));
    let mut text = serde_json::to_string_pretty(&rows)?;
    text.push('\n');
    crate::fsio::write_atomic(
        &staged.join(crate::report::tightness::SUMMARY),
        text.as_bytes(),
    )?;
    draw_thm81(&rows, &staged.join("thm-8.1-sharp.png"))?;
    draw_thm81(&rows, &staged.join("thm-8.1-sharp.png"))?;
    Ok(rows)
}

/// Thm 8.1's ratio against gamma: the tight rate over Eq. 15's factor, to the power T, for
/// T = 1, 2, 30 (closed form), and the search's worst at the searched gammas.
fn draw_thm81(rows: &[TightnessRow], path: &std::path::Path) -> Result<()> {
    let (mu, l) = (0.1, 1.0);
    let shares: Vec<f64> = (1..=100).map(|i| i as f64 / 100.0).collect();
    let mut series: Vec<crate::report::Series> = [1usize, 2, 30]
        .iter()
        .map(|&t| crate::report::Series {
            label: format!("sharp rate / Eq. 15, T = {t} (closed form)"),
            x: shares.clone(),
            y: shares
                .iter()
                .map(|s| {
                    let g = s * 2.0 / (l + mu);
                    crate::claims::thm_8_1::sharp_rate(mu, l, g, t)
                        / crate::claims::thm_8_1::bound(mu, l, g, t, 1.0)
                })
                .collect(),
            guide: false,
            band: None,
        })
        .collect();
    for t in [1usize, 2] {
        let pts: Vec<(f64, f64)> = rows
            .iter()
            .filter(|r| {
                r.instance_file
                    .starts_with(&format!("tightness/thm-8.1-t{t}-"))
            })
            .filter_map(|r| {
                let share: f64 = r
                    .instance_file
                    .rsplit("share")
                    .next()?
                    .trim_end_matches(".json")
                    .parse()
                    .ok()?;
                Some((share, r.worst_found))
            })
            .collect();
        if !pts.is_empty() {
            series.push(crate::report::Series {
                label: format!("worst found by the search, T = {t}"),
                x: pts.iter().map(|p| p.0).collect(),
                y: pts.iter().map(|p| p.1).collect(),
                guide: false,
                band: None,
            });
        }
    }
    crate::report::draw_curve_figure(
        &series,
        "gamma / (2/(L+mu))  (mu = 0.1, L = 1)",
        "worst E||x_T - x*||^2 / Eq. 15's bound",
        "thm-8.1: where the bound is attained (only at gamma = 2/(L+mu))",
        path,
    )
}
