//! The exact expectation of Nexus's pseudo-gradient at a point, over the random source
//! indices of one outer step, computed by running the project's own inner step
//! ([`crate::nexus::step_direction`]) along every index sequence.
//!
//! **Exact.** Sampling with replacement has `N^K` equally likely sequences (`N` sources, `K`
//! inner steps); without replacement, `N! / (N-K)!` ordered sequences. They form a tree whose
//! nodes are prefixes, so sequences sharing a prefix share its inner steps: the cost is
//! `N + N^2 + ... + N^K` gradient evaluations rather than `K N^K`. The tree is walked level by
//! level: the nodes of one depth are the columns of a matrix, and each source advances all the
//! nodes that may take it next with one batched gradient call ([`Task::gradients`], a matrix
//! product for the quadratic, logistic and separable families), so a level costs one matrix
//! product per source instead of one matrix-vector product per node. When the deepest level
//! would exceed [`FRONTIER_BYTES`], the nodes are split into groups walked separately (in
//! parallel), so memory stays bounded. The displacement is accumulated step by step, not as
//! `start - end`, so it keeps full float64 relative precision even when it is tiny against
//! `||x||`; the leaves are summed per node, then pairwise, in an order that does not depend on
//! thread scheduling.
//!
//! **Monte Carlo.** For larger `K`, sequences drawn with [`crate::nexus::sample_indices`], run in
//! blocks the same way (at each inner step, the sequences whose next index is `s` take one
//! batched step on source `s`); the estimate comes with a per-coordinate standard error.

use crate::error::{ensure, Result};
use crate::nexus::{sample_indices, step_scale_from_norm, InnerStep, NexusConfig, Sampling};
use crate::stats::MeanCi;
use crate::tasks::Task;
use nalgebra::{DMatrix, DVector};
use rand::Rng;
use rayon::prelude::*;
use std::borrow::Cow;

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

/// Bytes one level of the walk may hold per matrix: subtrees whose deepest level would exceed
/// it are walked separately (in parallel), so memory stays bounded at any `K`.
pub const FRONTIER_BYTES: usize = 16 << 20;

/// Columns per block: the unit of work (one batched gradient call) and of parallelism. A block
/// of points and its gradients stay in the core's cache at d = 100 (2 x 200 KB), so the passes
/// around the matrix product (norms, the step) cost little next to it.
const BLOCK: usize = 256;

/// Nodes of the index tree, one per column: the point reached, the displacement accumulated
/// along the way (step by step, for precision), and for sampling without replacement the
/// sources already used (bit `s`).
#[derive(Clone)]
struct Block {
    x: DMatrix<f64>,
    disp: DMatrix<f64>,
    used: Vec<u64>,
}

impl Block {
    fn width(&self) -> usize {
        self.used.len()
    }
    fn range(&self, start: usize, len: usize) -> Block {
        Block {
            x: self.x.columns(start, len).into_owned(),
            disp: self.disp.columns(start, len).into_owned(),
            used: self.used[start..start + len].to_vec(),
        }
    }
    fn select(&self, cols: &[usize]) -> Block {
        Block {
            x: self.x.select_columns(cols),
            disp: self.disp.select_columns(cols),
            used: cols.iter().map(|&j| self.used[j]).collect(),
        }
    }
    /// The blocks side by side; a single block is kept as it is, not copied.
    fn joined(mut parts: Vec<Block>) -> Block {
        if parts.len() == 1 {
            return parts.pop().expect("one part");
        }
        let d = parts[0].x.nrows();
        let m = parts.iter().map(Block::width).sum();
        let mut out = Block {
            x: DMatrix::zeros(d, m),
            disp: DMatrix::zeros(d, m),
            used: Vec::with_capacity(m),
        };
        let mut at = 0;
        for p in parts {
            let w = p.width();
            out.x.columns_mut(at, w).copy_from(&p.x);
            out.disp.columns_mut(at, w).copy_from(&p.disp);
            out.used.extend_from_slice(&p.used);
            at += w;
        }
        out
    }
}

/// The nodes of one depth, in blocks of at most [`BLOCK`] columns.
struct Frontier {
    blocks: Vec<Block>,
}

impl Frontier {
    fn width(&self) -> usize {
        self.blocks.iter().map(Block::width).sum()
    }
    /// Consecutive blocks joined up to [`BLOCK`] columns, so that levels grown from narrow
    /// blocks (the first levels) still make matrix products of full width.
    fn merged(blocks: Vec<Block>) -> Frontier {
        let mut out = Vec::new();
        let mut pending: Vec<Block> = Vec::new();
        let mut width = 0;
        for b in blocks {
            if b.width() >= BLOCK {
                out.push(b);
                continue;
            }
            if width + b.width() > BLOCK {
                out.push(Block::joined(std::mem::take(&mut pending)));
                width = 0;
            }
            width += b.width();
            pending.push(b);
        }
        if !pending.is_empty() {
            out.push(Block::joined(pending));
        }
        Frontier { blocks: out }
    }
    /// The nodes in groups of at most `per_group` columns.
    fn split(&self, per_group: usize) -> Vec<Frontier> {
        let mut groups = vec![Frontier { blocks: Vec::new() }];
        let mut room = per_group;
        for b in &self.blocks {
            let mut start = 0;
            while start < b.width() {
                if room == 0 {
                    groups.push(Frontier { blocks: Vec::new() });
                    room = per_group;
                }
                let len = room.min(b.width() - start);
                let last = groups.len() - 1;
                groups[last].blocks.push(b.range(start, len));
                start += len;
                room -= len;
            }
        }
        groups
    }
}

/// Sum over leaves of the final displacement, number of leaves, gradient evaluations.
type Totals = (DVector<f64>, u64, u64);

struct Walk<'a, T> {
    tasks: &'a [T],
    cfg: &'a NexusConfig,
    /// Most columns one level may hold.
    capacity: usize,
}

impl<T: Task> Walk<'_, T> {
    /// Children per node at `depth` (that many sources are still available).
    fn branching(&self, depth: usize) -> usize {
        match self.cfg.sampling {
            Sampling::WithReplacement => self.tasks.len(),
            Sampling::WithoutReplacement => self.tasks.len() - depth,
        }
    }

    /// Nodes at the last depth `K - 1` below one node at `depth`.
    fn growth(&self, depth: usize) -> usize {
        (depth..self.cfg.inner_steps - 1)
            .map(|m| self.branching(m))
            .fold(1usize, |a, b| a.saturating_mul(b))
    }

    /// The nodes of `b` that may take source `s` next: all of them with replacement.
    fn eligible<'b>(&self, b: &'b Block, s: usize) -> Cow<'b, Block> {
        match self.cfg.sampling {
            Sampling::WithReplacement => Cow::Borrowed(b),
            Sampling::WithoutReplacement => {
                let cols: Vec<usize> = (0..b.width())
                    .filter(|&j| b.used[j] & (1 << s) == 0)
                    .collect();
                Cow::Owned(b.select(&cols))
            }
        }
    }

    /// The totals below the nodes of `f`, which sit at `depth`: level by level, every level
    /// advanced by one batched gradient call per block and source, all of them in parallel;
    /// the nodes are split into groups walked separately when a level would outgrow the
    /// memory budget.
    fn walk(&self, f: Frontier, depth: usize) -> Result<Totals> {
        let d = self.tasks[0].dim();
        let (m, growth) = (f.width(), self.growth(depth));
        if m > 1 && m.saturating_mul(growth) > self.capacity {
            let groups = f.split((self.capacity / growth).max(1));
            drop(f);
            // Collected in order and summed in order: the result does not depend on how rayon
            // schedules the groups.
            let parts: Vec<Result<Totals>> = groups
                .into_par_iter()
                .map(|g| self.walk(g, depth))
                .collect();
            return sum_totals(d, parts);
        }
        if depth + 1 == self.cfg.inner_steps {
            return self.last_level(&f);
        }
        let children = self.advance(&f)?;
        let steps = children.width() as u64;
        drop(f);
        let (sum, count, below) = self.walk(children, depth + 1)?;
        Ok((sum, count, below + steps))
    }

    /// The (block, source) pairs of a level, the unit of parallel work.
    fn items(&self, f: &Frontier) -> Vec<(usize, usize)> {
        (0..f.blocks.len())
            .flat_map(|b| (0..self.tasks.len()).map(move |s| (b, s)))
            .collect()
    }

    /// Every node of `f` takes one inner step on every source it may use: the next level.
    fn advance(&self, f: &Frontier) -> Result<Frontier> {
        let children = self
            .items(f)
            .into_par_iter()
            .map(|(b, s)| -> Result<Option<Block>> {
                let parents = self.eligible(&f.blocks[b], s);
                if parents.width() == 0 {
                    return Ok(None);
                }
                let g = self.tasks[s].gradients(&parents.x)?;
                let (d, m) = g.shape();
                // The children written once from the parents (not copied, then updated).
                let (mut x, mut disp) = (Vec::with_capacity(d * m), Vec::with_capacity(d * m));
                let columns = g
                    .as_slice()
                    .chunks_exact(d)
                    .zip(parents.x.as_slice().chunks_exact(d))
                    .zip(parents.disp.as_slice().chunks_exact(d));
                for ((gj, xj), dj) in columns {
                    let c = column_scale(gj, self.cfg)?;
                    // The arithmetic of `step_direction`: dir = c g, then x - dir, disp + dir.
                    x.extend(xj.iter().zip(gj).map(|(x, &g)| x - c * g));
                    disp.extend(dj.iter().zip(gj).map(|(disp, &g)| disp + c * g));
                }
                Ok(Some(Block {
                    x: DMatrix::from_vec(d, m, x),
                    disp: DMatrix::from_vec(d, m, disp),
                    used: parents.used.iter().map(|u| u | (1 << s)).collect(),
                }))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Frontier::merged(children.into_iter().flatten().collect()))
    }

    /// The last inner step of every sequence below `f`: the sum of the final displacements
    /// `disp + dir` over the leaves, per (block, source) then in order across them.
    fn last_level(&self, f: &Frontier) -> Result<Totals> {
        let d = self.tasks[0].dim();
        let parts = self
            .items(f)
            .into_par_iter()
            .map(|(b, s)| -> Result<Totals> {
                let parents = self.eligible(&f.blocks[b], s);
                let mut sum = DVector::zeros(d);
                if parents.width() == 0 {
                    return Ok((sum, 0, 0));
                }
                let g = self.tasks[s].gradients(&parents.x)?;
                let columns = g
                    .as_slice()
                    .chunks_exact(d)
                    .zip(parents.disp.as_slice().chunks_exact(d));
                for (gj, dj) in columns {
                    let c = column_scale(gj, self.cfg)?;
                    for ((acc, &disp), &g) in sum.as_mut_slice().iter_mut().zip(dj).zip(gj) {
                        *acc += disp + c * g;
                    }
                }
                let n = g.ncols() as u64;
                Ok((sum, n, n))
            })
            .collect::<Vec<_>>();
        sum_totals(d, parts)
    }
}

/// The step scale of one gradient held as a matrix column: [`step_scale_from_norm`] with
/// `||g||` summed as nalgebra sums a vector's (what `ParamVec::norm` uses), so that a column
/// gets the scale the same gradient gets as a vector.
fn column_scale(g: &[f64], cfg: &NexusConfig) -> Result<f64> {
    step_scale_from_norm(|| Ok(sum_of_squares(g).sqrt()), cfg)
}

/// `g . g` in the order nalgebra's `dot` sums a dynamic vector (eight running sums over the
/// entries `i mod 8`, combined as `(s0 + s4) + (s1 + s5) + ...`, then the tail one by one), so
/// the result is bit-for-bit the same; on a slice the eight sums are one vector register, where
/// nalgebra's indexed loop was a tenth of the engine's time (`perf`, K = 6, d = 100).
fn sum_of_squares(g: &[f64]) -> f64 {
    let mut acc = [0.0f64; 8];
    let chunks = g.chunks_exact(8);
    let tail = chunks.remainder();
    for c in chunks {
        for k in 0..8 {
            acc[k] += c[k] * c[k];
        }
    }
    let mut res = 0.0;
    res += acc[0] + acc[4];
    res += acc[1] + acc[5];
    res += acc[2] + acc[6];
    res += acc[3] + acc[7];
    for &v in tail {
        res += v * v;
    }
    res
}

/// `c_j g_j` for every column `x_j` of `xs`: the directions one inner step on `task` subtracts
/// ([`crate::nexus::step_scale_from_norm`], the rule of [`crate::nexus::step_direction`]).
fn directions<T: Task>(task: &T, xs: &DMatrix<f64>, cfg: &NexusConfig) -> Result<DMatrix<f64>> {
    let mut g = task.gradients(xs)?;
    let d = g.nrows().max(1);
    for column in g.as_mut_slice().chunks_exact_mut(d) {
        let c = column_scale(column, cfg)?;
        column.iter_mut().for_each(|v| *v *= c);
    }
    Ok(g)
}

/// The totals of the parts added in order, pairwise (rounding error growing with the log of
/// their number).
fn sum_totals(d: usize, parts: Vec<Result<Totals>>) -> Result<Totals> {
    let parts = parts.into_iter().collect::<Result<Vec<_>>>()?;
    fn pairwise(p: &[Totals], d: usize) -> Totals {
        match p.len() {
            0 => (DVector::zeros(d), 0, 0),
            1 => p[0].clone(),
            n => {
                let (a, b) = (pairwise(&p[..n / 2], d), pairwise(&p[n / 2..], d));
                (a.0 + b.0, a.1 + b.1, a.2 + b.2)
            }
        }
    }
    Ok(pairwise(&parts, d))
}

/// `E[pg]` at `x` by enumerating every index sequence.
pub fn exact<T: Task>(tasks: &[T], x: &DVector<f64>, cfg: &NexusConfig) -> Result<Exact> {
    exact_within(tasks, x, cfg, FRONTIER_BYTES)
}

/// [`exact`] with at most `frontier_bytes` per level matrix (at least one column): the same
/// expectation to float64 rounding, walked in more, smaller subtrees when the budget is small.
pub fn exact_within<T: Task>(
    tasks: &[T],
    x: &DVector<f64>,
    cfg: &NexusConfig,
    frontier_bytes: usize,
) -> Result<Exact> {
    cfg.validate()?;
    let n = tasks.len();
    ensure(n >= 1, "tasks", || "need at least one source".into())?;
    if cfg.sampling == Sampling::WithoutReplacement {
        ensure(cfg.inner_steps <= n, "K", || {
            format!("without replacement needs K <= {n}")
        })?;
        ensure(n <= 64, "tasks", || {
            format!("sampling without replacement is enumerated for at most 64 sources, got {n}")
        })?;
    }
    let total = sequence_count(n, cfg.inner_steps, cfg.sampling);
    ensure(total <= MAX_SEQUENCES, "K", || {
        format!(
            "{total} sequences exceed the exact engine's limit {MAX_SEQUENCES}; use Monte Carlo"
        )
    })?;
    let root = Frontier {
        blocks: vec![Block {
            x: DMatrix::from_column_slice(x.len(), 1, x.as_slice()),
            disp: DMatrix::zeros(x.len(), 1),
            used: vec![0],
        }],
    };
    let walk = Walk {
        tasks,
        cfg,
        capacity: (frontier_bytes / (8 * x.len().max(1))).max(1),
    };
    let (sum, count, steps) = walk.walk(root, 0)?;
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

/// The displacement of each sequence of `sequences` from `x` (one column each), all sequences
/// advanced together: at inner step `m`, the columns whose `m`-th index is `s` take one batched
/// step on source `s`.
fn run_sequences<T: Task>(
    tasks: &[T],
    x: &DVector<f64>,
    sequences: &[Vec<usize>],
    cfg: &NexusConfig,
) -> Result<DMatrix<f64>> {
    let (d, n) = (x.len(), sequences.len());
    let mut points = DMatrix::from_fn(d, n, |i, _| x[i]);
    let mut disp = DMatrix::zeros(d, n);
    for m in 0..cfg.inner_steps {
        let next: Vec<usize> = sequences.iter().map(|q| q[m]).collect();
        for (s, task) in tasks.iter().enumerate() {
            let cols: Vec<usize> = (0..n).filter(|&j| next[j] == s).collect();
            if cols.is_empty() {
                continue;
            }
            let dir = directions(task, &points.select_columns(&cols), cfg)?;
            for (i, &j) in cols.iter().enumerate() {
                let mut p = points.column_mut(j);
                p -= dir.column(i);
                let mut q = disp.column_mut(j);
                q += dir.column(i);
            }
        }
    }
    Ok(disp)
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
    // All sequences are drawn first, in order, so the draws are those of a sequence-by-sequence
    // loop; they then run in blocks, every inner step one batched gradient call per source.
    let sequences = (0..samples)
        .map(|_| sample_indices(cfg, tasks.len(), rng))
        .collect::<Result<Vec<_>>>()?;
    let block = (FRONTIER_BYTES / (8 * d.max(1))).max(1);
    let mut draws: Vec<DVector<f64>> = Vec::with_capacity(samples);
    for chunk in sequences.chunks(block) {
        let disp = run_sequences(tasks, x, chunk, cfg)?;
        draws.extend(disp.column_iter().map(|c| c.into_owned()));
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
/// measurable at any `K`. Each sequence runs the project's own inner step (the rule of
/// [`crate::nexus::step_direction`], batched over sequences as in [`monte_carlo`]),
/// accumulating the displacement step by step.
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
    // All sequences are drawn first, in order (the draws of a sequence-by-sequence loop); they
    // then run in blocks, as in `monte_carlo`, one batched gradient call per source and step.
    let sequences = (0..samples)
        .map(|_| sample_indices(&sampling, tasks.len(), rng))
        .collect::<Result<Vec<_>>>()?;
    let block = (FRONTIER_BYTES / (8 * d.max(1))).max(1);
    for chunk in sequences.chunks(block) {
        let mut terms = Vec::with_capacity(chunk.len());
        for idx in chunk {
            let (mut t1, mut t2, mut t3) =
                (DVector::zeros(d), DVector::zeros(d), DVector::zeros(d));
            let (mut a, mut c) = (DVector::<f64>::zeros(d), DVector::<f64>::zeros(d));
            for &s in idx {
                let ja = &local.j[s] * &a;
                t1 += &local.ghat[s];
                t2 -= &ja;
                t3 += &local.j[s] * &c + third.d2_ghat(s, &a, &a)? * 0.5;
                // c_{m+1} = c_m + J_{s_m} a_m, a_{m+1} = a_m + ghat_{s_m}.
                c += ja;
                a += &local.ghat[s];
            }
            t3_m.push(&t3);
            terms.push((t1, t2, t3));
        }
        for (gi, (&gamma, cfg)) in gammas.iter().zip(&configs).enumerate() {
            let disp = run_sequences(tasks, x, chunk, cfg)?;
            for (column, (t1, t2, t3)) in disp.column_iter().zip(&terms) {
                let r2 = column - t1 * gamma - t2 * (gamma * gamma);
                let r3 = &r2 - t3 * gamma.powi(3);
                second[gi].push(&r2);
                third_m[gi].push(&r3);
            }
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

/// Residual norms `||E[pg](gamma) - expansion(gamma)||` over `gammas` for several expansions,
/// with `E[pg]` exact (all index sequences, [`exact`]) for `inner_steps`
/// normalized steps over the given tasks. Returns one curve per expansion.
pub fn residual_curves<T: Task>(
    tasks: &[T],
    x: &DVector<f64>,
    inner_steps: usize,
    gammas: &[f64],
    expansions: &[&dyn Fn(f64) -> DVector<f64>],
) -> Result<Vec<Vec<f64>>> {
    residual_curves_for(
        tasks,
        x,
        inner_steps,
        InnerStep::Normalized,
        gammas,
        expansions,
    )
}

/// [`residual_curves`] for either kind of inner step (raw steps: Nexus-Dot, or Reptile's SGD).
pub fn residual_curves_for<T: Task>(
    tasks: &[T],
    x: &DVector<f64>,
    inner_steps: usize,
    inner_step: InnerStep,
    gammas: &[f64],
    expansions: &[&dyn Fn(f64) -> DVector<f64>],
) -> Result<Vec<Vec<f64>>> {
    let mut out = vec![Vec::with_capacity(gammas.len()); expansions.len()];
    for &gamma in gammas {
        let cfg = NexusConfig {
            inner_step,
            ..NexusConfig::new(inner_steps, gamma)?
        };
        let e = exact(tasks, x, &cfg)?.mean;
        for (curve, f) in out.iter_mut().zip(expansions) {
            curve.push((&e - f(gamma)).norm());
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::RngExt;

    /// The slice sum of squares is nalgebra's `dot` bit for bit, at every length up to a few
    /// chunks of eight and at the engine's dimensions, so a column's step is a vector's step.
    #[test]
    fn sum_of_squares_is_nalgebras_dot() {
        let mut rng = crate::rng_for(3, "sum-of-squares");
        for n in (0..40).chain([100, 1000, 1003]) {
            let v = DVector::<f64>::from_fn(n, |_, _| rng.random_range(-1e3..1e3));
            assert_eq!(
                sum_of_squares(v.as_slice()).to_bits(),
                v.dot(&v).to_bits(),
                "n = {n}"
            );
        }
    }
}
