//! Nexus, Algorithm 1 of the paper, written once and generic over the parameter type and the
//! outer optimizer.
//!
//! One outer step from `x_{t-1}`:
//! ```text
//! x_{t,0} = x_{t-1}
//! for m = 1..K:  s_m ~ Uniform{1..N};  x_{t,m} = x_{t,m-1} - gamma * g_{s_m}(x_{t,m-1}) / ||g_{s_m}(x_{t,m-1})||
//! pg_t = x_{t,0} - x_{t,K}
//! x_t  = Opt_outer(x_{t-1}, pg_t)
//! ```
//! Nexus-Dot (Sec. 5.3) drops the normalization. The paper samples with replacement; sampling
//! without replacement (a random permutation prefix) is offered for comparison.
//!
//! **Zero-gradient rule.** The paper assumes `||g|| >= G_min > 0`. When a sampled source's
//! gradient is exactly zero the point is stationary for that source and `g / ||g||` is
//! undefined; Nexus then takes no inner step for that index (the step is the zero vector). No
//! division by zero can occur.

use crate::error::{ensure, Error, Result};
use crate::optim::Optimizer;
use crate::params::ParamVec;
use crate::tasks::Objective;
use rand::{Rng, RngExt};

/// Normalized inner steps (Nexus) or raw gradient steps (Nexus-Dot).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum InnerStep {
    /// `x <- x - gamma g / ||g||`.
    Normalized,
    /// `x <- x - gamma g`.
    Raw,
}

/// How the K source indices of an outer step are drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum Sampling {
    /// i.i.d. uniform, as in Algorithm 1.
    WithReplacement,
    /// The first K entries of a uniform random permutation (needs K <= number of sources).
    WithoutReplacement,
}

/// The inner loop's settings.
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct NexusConfig {
    /// Number of inner steps K (>= 1).
    pub inner_steps: usize,
    /// Inner step size gamma (> 0).
    pub inner_lr: f64,
    /// Normalized (Nexus) or raw (Nexus-Dot).
    pub inner_step: InnerStep,
    /// Index sampling.
    pub sampling: Sampling,
}

impl NexusConfig {
    /// The paper's Nexus with K inner steps of size gamma, sampling with replacement.
    pub fn new(inner_steps: usize, inner_lr: f64) -> Result<Self> {
        let cfg = Self {
            inner_steps,
            inner_lr,
            inner_step: InnerStep::Normalized,
            sampling: Sampling::WithReplacement,
        };
        cfg.validate()?;
        Ok(cfg)
    }
    /// Checks K >= 1 and gamma > 0 finite.
    pub fn validate(&self) -> Result<()> {
        ensure(self.inner_steps >= 1, "K", || {
            "the number of inner steps must be at least 1".into()
        })?;
        ensure(
            self.inner_lr > 0.0 && self.inner_lr.is_finite(),
            "gamma",
            || {
                format!(
                    "the inner step size must be finite and > 0, got {}",
                    self.inner_lr
                )
            },
        )
    }
}

/// Gradients of N data sources at a point: the only oracle Nexus needs.
pub trait SourceGradients<P> {
    /// Number of sources N.
    fn num_sources(&self) -> usize;
    /// Gradient of source `source` at `x` (for mini-batch sources, of its next batch).
    fn gradient(&mut self, source: usize, x: &P) -> Result<P>;
}

impl<T: Objective> SourceGradients<T::Param> for [T] {
    fn num_sources(&self) -> usize {
        self.len()
    }
    fn gradient(&mut self, source: usize, x: &T::Param) -> Result<T::Param> {
        let n = self.len();
        self.get(source)
            .ok_or_else(|| Error::InvalidArgument {
                name: "source",
                reason: format!("index {source} out of range 0..{n}"),
            })?
            .gradient(x)
    }
}

impl<T: Objective> SourceGradients<T::Param> for Vec<T> {
    fn num_sources(&self) -> usize {
        self.len()
    }
    fn gradient(&mut self, source: usize, x: &T::Param) -> Result<T::Param> {
        self.as_mut_slice().gradient(source, x)
    }
}

/// The one definition of an inner step: the factor `c` with which `x <- x - c g`, namely
/// `gamma / ||g||` (Nexus) or `gamma` (Nexus-Dot), and `0` for a zero gradient (the
/// zero-gradient rule of the module docs). The exact engine ([`step_direction`]) and training
/// ([`inner_step`]) both go through it.
pub fn step_scale<P: ParamVec>(g: &P, cfg: &NexusConfig) -> Result<f64> {
    step_scale_from_norm(|| g.norm(), cfg)
}

/// [`step_scale`] with `||g||` supplied by `norm` (called only for the normalized step): the
/// same rule for the batched engines ([`crate::expectation`]), which hold gradients as the
/// columns of a matrix.
pub fn step_scale_from_norm(norm: impl FnOnce() -> Result<f64>, cfg: &NexusConfig) -> Result<f64> {
    match cfg.inner_step {
        InnerStep::Raw => Ok(cfg.inner_lr),
        InnerStep::Normalized => {
            let norm = norm()?;
            if !norm.is_finite() {
                return Err(Error::NonFinite("inner gradient"));
            }
            Ok(if norm == 0.0 {
                0.0
            } else {
                cfg.inner_lr / norm
            })
        }
    }
}

/// The displacement `step_scale(g) * g` one inner step subtracts.
pub fn step_direction<P: ParamVec>(g: &P, cfg: &NexusConfig) -> Result<P> {
    let c = step_scale(g, cfg)?;
    if c == 0.0 {
        return g.zeros_like();
    }
    let mut dir = g.clone();
    dir.scale(c)?;
    Ok(dir)
}

/// One inner step `x <- x - step_scale(g) * g`, as a single `axpy` (the same floating-point
/// result as subtracting [`step_direction`], without its temporary copy).
pub fn inner_step<P: ParamVec>(x: &mut P, g: &P, cfg: &NexusConfig) -> Result<()> {
    let c = step_scale(g, cfg)?;
    if c == 0.0 {
        return Ok(());
    }
    x.axpy(-c, g)
}

/// Runs the inner loop from `start` along a given index sequence and returns its end point.
pub fn inner_trajectory<P: ParamVec, S: SourceGradients<P> + ?Sized>(
    sources: &mut S,
    start: &P,
    indices: &[usize],
    cfg: &NexusConfig,
) -> Result<P> {
    let mut x = start.clone();
    for &s in indices {
        let g = sources.gradient(s, &x)?;
        inner_step(&mut x, &g, cfg)?;
    }
    Ok(x)
}

/// The pseudo-gradient `start - end` of the inner loop along `indices`.
pub fn pseudo_gradient<P: ParamVec, S: SourceGradients<P> + ?Sized>(
    sources: &mut S,
    start: &P,
    indices: &[usize],
    cfg: &NexusConfig,
) -> Result<P> {
    let end = inner_trajectory(sources, start, indices, cfg)?;
    let pg = start.minus(&end)?;
    if !pg.all_finite()? {
        return Err(Error::NonFinite("pseudo-gradient"));
    }
    Ok(pg)
}

/// The first-order part of the pseudo-gradient along `indices`: the sum of the steps each
/// source would take at the start point, `gamma sum_s ghat_s(x)` for normalized inner steps
/// (`gamma sum_s g_s(x)` for raw ones). The pseudo-gradient departs from it by the inner loop's
/// higher-order terms, the correction the paper's Thm 3.2 attributes Nexus's effect to.
pub fn first_order_part<P: ParamVec, S: SourceGradients<P> + ?Sized>(
    sources: &mut S,
    start: &P,
    indices: &[usize],
    cfg: &NexusConfig,
) -> Result<P> {
    let mut first = start.zeros_like()?;
    for &s in indices {
        first.axpy(1.0, &step_direction(&sources.gradient(s, start)?, cfg)?)?;
    }
    Ok(first)
}

/// How far one pseudo-gradient departs from its first-order part ([`first_order_part`]): the
/// relative size of the correction and the cosine between the two. A correction of relative
/// size near 0 (cosine near 1) means the step was normalized SGD fed to the outer optimizer, and
/// the mechanism the paper proposes had nothing to act with.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CorrectionStrength {
    /// `||pg - first|| / ||first||`.
    pub relative: f64,
    /// `cos(pg, first)`.
    pub cosine: f64,
}

impl CorrectionStrength {
    /// The strength of `pg` against its first-order part `first`.
    pub fn of<P: ParamVec>(pg: &P, first: &P) -> Result<Self> {
        let first_norm = first.norm()?;
        let relative = pg.minus(first)?.norm()? / first_norm;
        let cosine = pg.dot(first)? / (pg.norm()? * first_norm);
        Ok(Self { relative, cosine })
    }
}

/// Draws the K source indices of one outer step.
pub fn sample_indices<R: Rng + ?Sized>(
    cfg: &NexusConfig,
    num_sources: usize,
    rng: &mut R,
) -> Result<Vec<usize>> {
    ensure(num_sources >= 1, "sources", || {
        "need at least one data source".into()
    })?;
    Ok(match cfg.sampling {
        Sampling::WithReplacement => (0..cfg.inner_steps)
            .map(|_| rng.random_range(0..num_sources))
            .collect(),
        Sampling::WithoutReplacement => {
            ensure(cfg.inner_steps <= num_sources, "K", || {
                format!(
                    "sampling without replacement needs K <= {num_sources} sources, got K = {}",
                    cfg.inner_steps
                )
            })?;
            let mut all: Vec<usize> = (0..num_sources).collect();
            // Partial Fisher-Yates: the first K entries are a uniform K-permutation.
            for i in 0..cfg.inner_steps {
                let j = rng.random_range(i..num_sources);
                all.swap(i, j);
            }
            all.truncate(cfg.inner_steps);
            all
        }
    })
}

/// Nexus: the inner loop as a gradient approximator feeding an outer optimizer.
#[derive(Clone, Debug)]
pub struct Nexus<O> {
    cfg: NexusConfig,
    outer: O,
}

impl<O> Nexus<O> {
    /// Validates the configuration.
    pub fn new(cfg: NexusConfig, outer: O) -> Result<Self> {
        cfg.validate()?;
        Ok(Self { cfg, outer })
    }
    /// The inner-loop settings.
    pub fn config(&self) -> &NexusConfig {
        &self.cfg
    }

    /// One outer step along given indices; returns the pseudo-gradient it used.
    pub fn step_with<P, S>(
        &mut self,
        params: &mut P,
        sources: &mut S,
        indices: &[usize],
    ) -> Result<P>
    where
        P: ParamVec,
        S: SourceGradients<P> + ?Sized,
        O: Optimizer<P>,
    {
        if !params.all_finite()? {
            return Err(Error::NonFinite("parameters"));
        }
        let pg = pseudo_gradient(sources, params, indices, &self.cfg)?;
        self.outer.step(params, &pg)?;
        Ok(pg)
    }

    /// One outer step with freshly sampled indices.
    pub fn step<P, S, R>(&mut self, params: &mut P, sources: &mut S, rng: &mut R) -> Result<P>
    where
        P: ParamVec,
        S: SourceGradients<P> + ?Sized,
        O: Optimizer<P>,
        R: Rng + ?Sized,
    {
        let indices = sample_indices(&self.cfg, sources.num_sources(), rng)?;
        self.step_with(params, sources, &indices)
    }
}
