//! The exact expectation of Nexus's pseudo-gradient at a point, over the random source
//! indices of one outer step, computed by running the project's own inner step
//! ([`crate::nexus::step_direction`]) along every index sequence.
//!
//! **Exact.** Sampling with replacement has `N^K` equally likely sequences (`N` sources, `K`
//! inner steps); without replacement, `N! / (N-K)!` ordered sequences. They are enumerated
//! depth-first over prefixes, so sequences sharing a prefix share its inner steps: the cost is
//! `N + N^2 + ... + N^K` gradient evaluations rather than `K N^K`. The first index's subtrees run
//! in parallel. The displacement is accumulated step by step, not as `start - end`, so it keeps
//! full float64 relative precision even when it is tiny against `||x||`.
//!
//! **Monte Carlo.** For larger `K`, sequences drawn with [`crate::nexus::sample_indices`]; the
//! estimate comes with a per-coordinate standard error.

use crate::error::{ensure, Result};
use crate::nexus::{sample_indices, step_direction, NexusConfig, Sampling};
use crate::stats::MeanCi;
use crate::tasks::Task;
use nalgebra::DVector;
use rand::Rng;
use rayon::prelude::*;

/// Largest `N^K` the exact engine accepts (about a second of work at d = 100).
pub const MAX_SEQUENCES: u64 = 50_000_000;

/// The exact expectation and the work it took.
#[derive(Clone, Debug)]
pub struct Exact {
    /// `E[pg]`.
    pub mean: DVector<f64>,
    /// Number of index sequences averaged.
    pub sequences: u64,
    /// Inner steps (gradient evaluations) performed.
    pub inner_steps: u64,
}

/// Number of ordered index sequences for `k` steps over `n` sources.
pub fn sequence_count(n: usize, k: usize, sampling: Sampling) -> u64 {
    match sampling {
        Sampling::WithReplacement => (n as u64).saturating_pow(k as u32),
        Sampling::WithoutReplacement => (0..k as u64).fold(1u64, |acc, i| {
            acc.saturating_mul((n as u64).saturating_sub(i))
        }),
    }
}

struct Walk<'a, T> {
    tasks: &'a [T],
    cfg: &'a NexusConfig,
}

impl<T: Task> Walk<'_, T> {
    /// Sum over all completions of the prefix of the final displacement; returns (sum, count, steps).
    fn subtree(
        &self,
        x: &DVector<f64>,
        disp: &DVector<f64>,
        depth: usize,
        used: &mut Vec<bool>,
    ) -> Result<(DVector<f64>, u64, u64)> {
        if depth == self.cfg.inner_steps {
            return Ok((disp.clone(), 1, 0));
        }
        let mut sum = DVector::zeros(x.len());
        let (mut count, mut steps) = (0u64, 0u64);
        for s in 0..self.tasks.len() {
            if self.cfg.sampling == Sampling::WithoutReplacement && used[s] {
                continue;
            }
            let dir = step_direction(&self.tasks[s].gradient(x)?, self.cfg)?;
            used[s] = true;
            let (sub, c, st) = self.subtree(&(x - &dir), &(disp + &dir), depth + 1, used)?;
            used[s] = false;
            sum += sub;
            count += c;
            steps += st + 1;
        }
        Ok((sum, count, steps))
    }
}

/// `E[pg]` at `x` by enumerating every index sequence.
pub fn exact<T: Task>(tasks: &[T], x: &DVector<f64>, cfg: &NexusConfig) -> Result<Exact> {
    cfg.validate()?;
    let n = tasks.len();
    ensure(n >= 1, "tasks", || "need at least one source".into())?;
    if cfg.sampling == Sampling::WithoutReplacement {
        ensure(cfg.inner_steps <= n, "K", || {
            format!("without replacement needs K <= {n}")
        })?;
    }
    let total = sequence_count(n, cfg.inner_steps, cfg.sampling);
    ensure(total <= MAX_SEQUENCES, "K", || {
        format!(
            "{total} sequences exceed the exact engine's limit {MAX_SEQUENCES}; use Monte Carlo"
        )
    })?;
    let walk = Walk { tasks, cfg };
    let zero = DVector::zeros(x.len());
    let branches: Vec<Result<(DVector<f64>, u64, u64)>> = (0..n)
        .into_par_iter()
        .map(|s| {
            let dir = step_direction(&tasks[s].gradient(x)?, cfg)?;
            let mut used = vec![false; n];
            used[s] = true;
            let (sum, c, st) = walk.subtree(&(x - &dir), &(&zero + &dir), 1, &mut used)?;
            Ok((sum, c, st + 1))
        })
        .collect();
    let mut sum = DVector::zeros(x.len());
    let (mut count, mut steps) = (0u64, 0u64);
    for b in branches {
        let (s, c, st) = b?;
        sum += s;
        count += c;
        steps += st;
    }
    Ok(Exact {
        mean: sum / count as f64,
        sequences: count,
        inner_steps: steps,
    })
}

/// A Monte Carlo estimate of `E[pg]` with per-coordinate intervals.
#[derive(Clone, Debug)]
pub struct MonteCarlo {
    /// Sample mean.
    pub mean: DVector<f64>,
    /// Per-coordinate mean and interval.
    pub coords: Vec<MeanCi>,
}

impl MonteCarlo {
    /// Whether every coordinate of `value` lies in its interval, widened by float64 rounding of
    /// the sums (1e-12 relative): when every sequence gives the same displacement the interval
    /// has zero width and the sample mean differs from the exact value by a few ulps.
    pub fn contains(&self, value: &DVector<f64>) -> bool {
        self.coords.iter().zip(value.iter()).all(|(ci, v)| {
            let slack = 1e-12 * (1.0 + v.abs());
            ci.lo - slack <= *v && *v <= ci.hi + slack
        })
    }
}

/// `E[pg]` at `x` from `samples` sequences; the per-coordinate intervals have level
/// `1 - (1 - level) / d` each (Bonferroni), so all `d` hold together with probability `level`.
pub fn monte_carlo<T: Task, R: Rng + ?Sized>(
    tasks: &[T],
    x: &DVector<f64>,
    cfg: &NexusConfig,
    samples: usize,
    level: f64,
    rng: &mut R,
) -> Result<MonteCarlo> {
    cfg.validate()?;
    let d = x.len();
    let mut draws: Vec<DVector<f64>> = Vec::with_capacity(samples);
    for _ in 0..samples {
        let idx = sample_indices(cfg, tasks.len(), rng)?;
        let (mut y, mut disp) = (x.clone(), DVector::zeros(d));
        for s in idx {
            let dir = step_direction(&tasks[s].gradient(&y)?, cfg)?;
            y -= &dir;
            disp += dir;
        }
        draws.push(disp);
    }
    let per_coord = 1.0 - (1.0 - level) / d as f64;
    let coords = (0..d)
        .map(|c| crate::stats::mean_ci(&draws.iter().map(|v| v[c]).collect::<Vec<_>>(), per_coord))
        .collect::<Result<Vec<_>>>()?;
    Ok(MonteCarlo {
        mean: DVector::from_iterator(d, coords.iter().map(|c| c.mean)),
        coords,
    })
}

/// Monte Carlo residuals of the expansions of `E[pg]`, with a per-sequence Taylor control
/// variate, for `K` inner steps over the tasks (the paper's setting has `K` = number of tasks,
/// but any `K` works), at every step size of `gammas`.
///
/// For one index sequence `s`, with `a_m = sum_{l<m} ghat_{s_l}` and `c_m = sum_{l<m} J_{s_l} a_l`
/// (all at the start point `x`), Taylor's theorem along the inner loop gives
/// `pg(s) = gamma T1 + gamma^2 T2 + gamma^3 T3 + O(gamma^4)` with
/// `T1 = sum_m ghat_{s_m}`, `T2 = -sum_m J_{s_m} a_m`,
/// `T3 = sum_m (J_{s_m} c_m + 1/2 D^2 ghat_{s_m}[a_m, a_m])`.
/// Their expectations are known exactly: `E[gamma T1 + gamma^2 T2]` is Eq. 81's expansion
/// ([`crate::expansion::eq81_expansion`]) and `E[T3]` is
/// [`crate::expansion::Third::derived`]. So `mean_s(pg - gamma T1 - gamma^2 T2)` estimates
/// `E[pg] - Eq. 81` with noise that shrinks with the residual itself (it is `O(gamma^3)` per
/// sequence), and `mean_s(pg - gamma T1 - gamma^2 T2 - gamma^3 T3)` estimates
/// `E[pg] - Eq. 81 - gamma^3 derived`. The same sequences are used at every `gamma` (common
/// random numbers), so the residual curves are smooth in `gamma` and their log-log slopes stay
/// measurable at any `K`. Each sequence runs the project's own inner step
/// ([`crate::nexus::step_direction`]), accumulating the displacement step by step.
#[derive(Clone, Debug)]
pub struct TaylorResiduals {
    /// Step sizes.
    pub gammas: Vec<f64>,
    /// Estimates of `E[pg] - Eq. 81` at each gamma.
    pub second: Vec<DVector<f64>>,
    /// Estimates of `E[pg] - Eq. 81 - gamma^3 derived` at each gamma.
    pub third: Vec<DVector<f64>>,
    /// Norm of the per-coordinate standard errors of `second` at each gamma.
    pub second_se: Vec<f64>,
    /// Sample mean of `T3` (its exact expectation is `Third::derived`).
    pub t3_mean: DVector<f64>,
    /// Per-coordinate standard errors of `t3_mean`.
    pub t3_se: DVector<f64>,
}

/// Running sums for a sample mean and its per-coordinate standard error.
struct Moments {
    sum: DVector<f64>,
    sq: DVector<f64>,
}

impl Moments {
    fn new(d: usize) -> Self {
        Self {
            sum: DVector::zeros(d),
            sq: DVector::zeros(d),
        }
    }
    fn push(&mut self, v: &DVector<f64>) {
        self.sum += v;
        self.sq += v.component_mul(v);
    }
    /// Mean and per-coordinate standard error over `n` samples.
    fn finish(&self, n: usize) -> (DVector<f64>, DVector<f64>) {
        let nf = n as f64;
        let mean = &self.sum / nf;
        let se = DVector::from_iterator(
            mean.len(),
            mean.iter().zip(self.sq.iter()).map(|(m, s)| {
                let var = ((s / nf - m * m) * nf / (nf - 1.0)).max(0.0);
                (var / nf).sqrt()
            }),
        );
        (mean, se)
    }
}

/// See [`TaylorResiduals`]. `samples` index sequences are drawn with replacement from `rng`.
pub fn taylor_monte_carlo<T: Task, R: Rng + ?Sized>(
    tasks: &[T],
    x: &DVector<f64>,
    inner_steps: usize,
    gammas: &[f64],
    samples: usize,
    rng: &mut R,
) -> Result<TaylorResiduals> {
    ensure(samples >= 2, "samples", || {
        format!("need at least 2 sequences, got {samples}")
    })?;
    let local = crate::expansion::Local::at(tasks, x)?;
    let third = crate::expansion::Third::new(tasks, x, &local);
    let d = x.len();
    let configs = gammas
        .iter()
        .map(|&g| NexusConfig::new(inner_steps, g))
        .collect::<Result<Vec<_>>>()?;
    let sampling = NexusConfig::new(inner_steps, 1.0)?;
    let mut second: Vec<Moments> = gammas.iter().map(|_| Moments::new(d)).collect();
    let mut third_m: Vec<Moments> = gammas.iter().map(|_| Moments::new(d)).collect();
    let mut t3_m = Moments::new(d);
    for _ in 0..samples {
        let idx = sample_indices(&sampling, tasks.len(), rng)?;
        let (mut t1, mut t2, mut t3) = (DVector::zeros(d), DVector::zeros(d), DVector::zeros(d));
        let (mut a, mut c) = (DVector::<f64>::zeros(d), DVector::<f64>::zeros(d));
        for &s in &idx {
            t1 += &local.ghat[s];
            t2 -= &local.j[s] * &a;
            t3 += &local.j[s] * &c + third.d2_ghat(s, &a, &a)? * 0.5;
            // c_{m+1} = c_m + J_{s_m} a_m, a_{m+1} = a_m + ghat_{s_m}.
            c += &local.j[s] * &a;
            a += &local.ghat[s];
        }
        t3_m.push(&t3);
        for (gi, (&gamma, cfg)) in gammas.iter().zip(&configs).enumerate() {
            let (mut y, mut disp) = (x.clone(), DVector::<f64>::zeros(d));
            for &s in &idx {
                let dir = step_direction(&tasks[s].gradient(&y)?, cfg)?;
                y -= &dir;
                disp += dir;
            }
            let r2 = disp - &t1 * gamma - &t2 * (gamma * gamma);
            let r3 = &r2 - &t3 * gamma.powi(3);
            second[gi].push(&r2);
            third_m[gi].push(&r3);
        }
    }
    let (second_mean, second_se): (Vec<_>, Vec<_>) = second
        .iter()
        .map(|mo| {
            let (mean, se) = mo.finish(samples);
            (mean, se.norm())
        })
        .unzip();
    let third_mean = third_m.iter().map(|mo| mo.finish(samples).0).collect();
    let (t3_mean, t3_se) = t3_m.finish(samples);
    Ok(TaylorResiduals {
        gammas: gammas.to_vec(),
        second: second_mean,
        third: third_mean,
        second_se,
        t3_mean,
        t3_se,
    })
}
