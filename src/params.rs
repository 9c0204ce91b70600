//! The parameter abstraction Nexus and the outer optimizers are written against.
//!
//! Nexus only needs a vector space with an inner product plus the few element-wise maps
//! Adam uses. Every operation returns [`Result`] because tensor back ends (a set of Candle
//! tensors, for the Llama runs) can fail on device or shape errors. `DVector<f64>` implements
//! it for the synthetic tasks, which have exact derivatives.

use crate::error::{Error, Result};
use nalgebra::DVector;

/// A point in parameter space (or a direction in it): a vector space over `f64`.
pub trait ParamVec: Clone {
    /// Euclidean inner product `<self, other>`.
    fn dot(&self, other: &Self) -> Result<f64>;
    /// `self <- self + alpha * x`.
    fn axpy(&mut self, alpha: f64, x: &Self) -> Result<()>;
    /// `self <- alpha * self`.
    fn scale(&mut self, alpha: f64) -> Result<()>;
    /// The zero vector of the same shape.
    fn zeros_like(&self) -> Result<Self>;
    /// Element-wise `self * other`.
    fn mul_elem(&self, other: &Self) -> Result<Self>;
    /// Element-wise `self / (sqrt(denom) + eps)`: the Adam direction.
    fn div_sqrt_eps(&self, denom: &Self, eps: f64) -> Result<Self>;
    /// True when every entry is finite.
    fn all_finite(&self) -> Result<bool>;

    /// Euclidean norm.
    fn norm(&self) -> Result<f64> {
        Ok(self.dot(self)?.sqrt())
    }
    /// `self - other` as a new value.
    fn minus(&self, other: &Self) -> Result<Self> {
        let mut out = self.clone();
        out.axpy(-1.0, other)?;
        Ok(out)
    }
    /// One AdamW update of the moments and of `self` (the parameters), element-wise:
    /// `m <- b1 m + (1 - b1) g`, `v <- b2 v + (1 - b2) g^2`,
    /// `self <- keep * self - step * m / (sqrt(v) + eps)`.
    /// The definition is this composition of the operations above; a type may override it with
    /// a single pass over memory that gives the same values to rounding (for the Candle
    /// parameters, `tests/llama.rs` checks the two against each other).
    fn adam_update(&mut self, m: &mut Self, v: &mut Self, g: &Self, c: AdamUpdate) -> Result<()> {
        adam_update_by_ops(self, m, v, g, c)
    }
}

/// [`ParamVec::adam_update`]'s definition, as a composition of the other operations.
pub fn adam_update_by_ops<P: ParamVec>(
    p: &mut P,
    m: &mut P,
    v: &mut P,
    g: &P,
    c: AdamUpdate,
) -> Result<()> {
    m.scale(c.beta1)?;
    m.axpy(1.0 - c.beta1, g)?;
    v.scale(c.beta2)?;
    v.axpy(1.0 - c.beta2, &g.mul_elem(g)?)?;
    let direction = m.div_sqrt_eps(v, c.eps)?;
    p.scale(c.keep)?;
    p.axpy(-c.step, &direction)
}

/// The scalars of one [`ParamVec::adam_update`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamUpdate {
    /// First-moment decay.
    pub beta1: f64,
    /// Second-moment decay.
    pub beta2: f64,
    /// Denominator floor.
    pub eps: f64,
    /// Factor on the parameters before the step (`1 - lr * weight_decay`).
    pub keep: f64,
    /// Step length on `m / (sqrt(v) + eps)`.
    pub step: f64,
}

fn same_len(a: &DVector<f64>, b: &DVector<f64>) -> Result<()> {
    if a.len() == b.len() {
        Ok(())
    } else {
        Err(Error::DimensionMismatch {
            expected: a.len(),
            got: b.len(),
        })
    }
}

impl ParamVec for DVector<f64> {
    fn dot(&self, other: &Self) -> Result<f64> {
        same_len(self, other)?;
        Ok(nalgebra::Matrix::dot(self, other))
    }
    fn axpy(&mut self, alpha: f64, x: &Self) -> Result<()> {
        same_len(self, x)?;
        nalgebra::Matrix::axpy(self, alpha, x, 1.0);
        Ok(())
    }
    fn scale(&mut self, alpha: f64) -> Result<()> {
        self.scale_mut(alpha);
        Ok(())
    }
    fn zeros_like(&self) -> Result<Self> {
        Ok(DVector::zeros(self.len()))
    }
    fn mul_elem(&self, other: &Self) -> Result<Self> {
        same_len(self, other)?;
        Ok(self.component_mul(other))
    }
    fn div_sqrt_eps(&self, denom: &Self, eps: f64) -> Result<Self> {
        same_len(self, denom)?;
        Ok(self.zip_map(denom, |a, b| a / (b.sqrt() + eps)))
    }
    fn all_finite(&self) -> Result<bool> {
        Ok(self.iter().all(|x| x.is_finite()))
    }
}
