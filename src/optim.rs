//! Outer optimizers: SGD, AdamW and normalized-gradient Adam, each a small [`Optimizer`].
//!
//! They are written against [`ParamVec`], so the same code updates a `DVector<f64>` or a set of
//! tensors. Nexus hands them its pseudo-gradient in place of a gradient.

use crate::error::{ensure, Result};
use crate::params::{AdamUpdate, ParamVec};

/// One update rule: `params <- step(params, grad)`, with internal state.
pub trait Optimizer<P: ParamVec> {
    /// Applies one update with the given (pseudo-)gradient.
    fn step(&mut self, params: &mut P, grad: &P) -> Result<()>;
}

/// A boxed optimizer, so a run can pick its outer optimizer at run time.
impl<P: ParamVec, O: Optimizer<P> + ?Sized> Optimizer<P> for Box<O> {
    fn step(&mut self, params: &mut P, grad: &P) -> Result<()> {
        (**self).step(params, grad)
    }
}

/// Plain SGD: `x <- x - lr * g`.
#[derive(Clone, Debug)]
pub struct Sgd {
    lr: f64,
}

impl Sgd {
    /// `lr >= 0`.
    pub fn new(lr: f64) -> Result<Self> {
        ensure(lr >= 0.0 && lr.is_finite(), "lr", || {
            format!("must be finite and >= 0, got {lr}")
        })?;
        Ok(Self { lr })
    }
}

impl<P: ParamVec> Optimizer<P> for Sgd {
    fn step(&mut self, params: &mut P, grad: &P) -> Result<()> {
        params.axpy(-self.lr, grad)
    }
}

/// Hyperparameters of [`AdamW`].
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct AdamWConfig {
    /// Learning rate.
    pub lr: f64,
    /// First-moment decay.
    pub beta1: f64,
    /// Second-moment decay.
    pub beta2: f64,
    /// Denominator floor.
    pub eps: f64,
    /// Decoupled weight decay (multiplied by `lr`, as in PyTorch).
    pub weight_decay: f64,
}

impl Default for AdamWConfig {
    /// The paper's Table 6 values, with `lr = 1e-3`.
    fn default() -> Self {
        Self {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.95,
            eps: 1e-10,
            weight_decay: 0.2,
        }
    }
}

/// AdamW (Loshchilov and Hutter), bias-corrected:
/// `x <- x (1 - lr wd) - lr m_hat / (sqrt(v_hat) + eps)`.
#[derive(Clone, Debug)]
pub struct AdamW<P> {
    cfg: AdamWConfig,
    m: Option<P>,
    v: Option<P>,
    t: u64,
}

impl<P: ParamVec> AdamW<P> {
    /// Validates the hyperparameters.
    pub fn new(cfg: AdamWConfig) -> Result<Self> {
        ensure(cfg.lr >= 0.0 && cfg.lr.is_finite(), "lr", || {
            format!("must be finite and >= 0, got {}", cfg.lr)
        })?;
        for (name, b) in [("beta1", cfg.beta1), ("beta2", cfg.beta2)] {
            ensure((0.0..1.0).contains(&b), name, || {
                format!("must lie in [0, 1), got {b}")
            })?;
        }
        ensure(cfg.eps > 0.0 && cfg.eps.is_finite(), "eps", || {
            format!("must be > 0, got {}", cfg.eps)
        })?;
        ensure(
            cfg.weight_decay >= 0.0 && cfg.weight_decay.is_finite(),
            "weight_decay",
            || format!("must be >= 0, got {}", cfg.weight_decay),
        )?;
        Ok(Self {
            cfg,
            m: None,
            v: None,
            t: 0,
        })
    }
    /// Steps taken so far.
    pub fn steps(&self) -> u64 {
        self.t
    }
    /// Changes the learning rate (for schedules).
    pub fn set_lr(&mut self, lr: f64) -> Result<()> {
        ensure(lr >= 0.0 && lr.is_finite(), "lr", || {
            format!("must be finite and >= 0, got {lr}")
        })?;
        self.cfg.lr = lr;
        Ok(())
    }
    /// The moment estimates and the step count, for checkpoints.
    pub fn moments(&self) -> (Option<&P>, Option<&P>, u64) {
        (self.m.as_ref(), self.v.as_ref(), self.t)
    }
    /// Restores moments saved by [`AdamW::moments`].
    pub fn restore(&mut self, m: Option<P>, v: Option<P>, t: u64) {
        (self.m, self.v, self.t) = (m, v, t);
    }
}

impl<P: ParamVec> Optimizer<P> for AdamW<P> {
    fn step(&mut self, params: &mut P, grad: &P) -> Result<()> {
        let c = self.cfg;
        self.t += 1;
        let m = match &mut self.m {
            Some(m) => m,
            None => self.m.insert(grad.zeros_like()?),
        };
        let v = match &mut self.v {
            Some(v) => v,
            None => self.v.insert(grad.zeros_like()?),
        };
        // m_hat / (sqrt(v_hat) + eps) = (sqrt(bc2) / bc1) * m / (sqrt(v) + eps sqrt(bc2)).
        let bc1 = 1.0 - c.beta1.powi(self.t as i32);
        let bc2 = 1.0 - c.beta2.powi(self.t as i32);
        params.adam_update(
            m,
            v,
            grad,
            AdamUpdate {
                beta1: c.beta1,
                beta2: c.beta2,
                eps: c.eps * bc2.sqrt(),
                keep: 1.0 - c.lr * c.weight_decay,
                step: c.lr * bc2.sqrt() / bc1,
            },
        )
    }
}

/// Adam fed the normalized gradient `g / ||g||` (the paper's "NSGD" ablation, equal to Nexus
/// with K = 1). A zero gradient is passed through as zero.
#[derive(Clone, Debug)]
pub struct NormalizedAdam<P> {
    adam: AdamW<P>,
}

impl<P: ParamVec> NormalizedAdam<P> {
    /// Same hyperparameters as [`AdamW`].
    pub fn new(cfg: AdamWConfig) -> Result<Self> {
        Ok(Self {
            adam: AdamW::new(cfg)?,
        })
    }
    /// The Adam it feeds.
    pub fn adam_mut(&mut self) -> &mut AdamW<P> {
        &mut self.adam
    }
    /// The Adam it feeds.
    pub fn adam(&self) -> &AdamW<P> {
        &self.adam
    }
}

/// Scales `g` down to norm `max_norm` when it is longer; returns the norm before clipping.
pub fn clip_norm<P: ParamVec>(g: &mut P, max_norm: f64) -> Result<f64> {
    let norm = g.norm()?;
    if norm > max_norm {
        g.scale(max_norm / norm)?;
    }
    Ok(norm)
}

impl<P: ParamVec> Optimizer<P> for NormalizedAdam<P> {
    fn step(&mut self, params: &mut P, grad: &P) -> Result<()> {
        let norm = grad.norm()?;
        let mut unit = grad.clone();
        if norm > 0.0 {
            unit.scale(1.0 / norm)?;
        }
        self.adam.step(params, &unit)
    }
}
