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
