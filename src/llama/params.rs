//! [`ParamVec`] for a set of Candle tensors: the same Nexus and outer optimizers that run on the
//! synthetic tasks update a Llama model's parameters.
//!
//! The tensors are detached copies (no autograd graph is recorded on them), in the model's
//! fixed parameter order. Reductions are taken in f64.

use crate::error::{Error, Result};
use crate::params::ParamVec;
use candle_core::{DType, Tensor};

impl From<candle_core::Error> for Error {
    fn from(e: candle_core::Error) -> Self {
        Error::Candle(e.to_string())
    }
}

/// Model parameters (or a direction in parameter space) as detached tensors.
#[derive(Clone, Debug)]
pub struct TensorParams {
    /// One tensor per named parameter, in the model's order.
    pub tensors: Vec<Tensor>,
}

impl TensorParams {
    fn zip_check(&self, other: &Self) -> Result<()> {
        if self.tensors.len() != other.tensors.len() {
            return Err(Error::DimensionMismatch {
                expected: self.tensors.len(),
                got: other.tensors.len(),
            });
        }
        Ok(())
    }
    fn map2(
        &self,
        other: &Self,
        f: impl Fn(&Tensor, &Tensor) -> candle_core::Result<Tensor>,
    ) -> Result<Self> {
        self.zip_check(other)?;
        let tensors = self
            .tensors
            .iter()
            .zip(&other.tensors)
            .map(|(a, b)| f(a, b))
            .collect::<candle_core::Result<Vec<_>>>()?;
        Ok(Self { tensors })
    }
    /// Total number of scalar parameters.
    pub fn numel(&self) -> usize {
        self.tensors.iter().map(|t| t.elem_count()).sum()
    }
}

impl ParamVec for TensorParams {
    fn dot(&self, other: &Self) -> Result<f64> {
        self.zip_check(other)?;
        let mut s = 0.0;
        for (a, b) in self.tensors.iter().zip(&other.tensors) {
            s += (a.to_dtype(DType::F64)? * b.to_dtype(DType::F64)?)?
                .sum_all()?
                .to_scalar::<f64>()?;
        }
        Ok(s)
    }
    fn axpy(&mut self, alpha: f64, x: &Self) -> Result<()> {
        *self = self.map2(x, |a, b| a + b.affine(alpha, 0.0)?)?;
        Ok(())
    }
    fn scale(&mut self, alpha: f64) -> Result<()> {
        for t in &mut self.tensors {
            *t = t.affine(alpha, 0.0)?;
        }
        Ok(())
    }
    fn zeros_like(&self) -> Result<Self> {
        Ok(Self {
            tensors: self
                .tensors
                .iter()
                .map(|t| t.zeros_like())
                .collect::<candle_core::Result<_>>()?,
        })
    }
    fn mul_elem(&self, other: &Self) -> Result<Self> {
        self.map2(other, |a, b| a * b)
    }
    fn div_sqrt_eps(&self, denom: &Self, eps: f64) -> Result<Self> {
        self.map2(denom, |a, b| a / (b.sqrt()? + eps)?)
    }
    fn norm(&self) -> Result<f64> {
        // One f64 conversion per tensor instead of the two `dot(self, self)` would make.
        let mut s = 0.0;
        for t in &self.tensors {
            s += t
                .to_dtype(DType::F64)?
                .sqr()?
                .sum_all()?
                .to_scalar::<f64>()?;
        }
        Ok(s.sqrt())
    }
    fn all_finite(&self) -> Result<bool> {
        for t in &self.tensors {
            // NaN and infinity survive an f64 sum of absolute values; finite f32 values cannot overflow it.
            if !t
                .to_dtype(DType::F64)?
                .abs()?
                .sum_all()?
                .to_scalar::<f64>()?
                .is_finite()
            {
                return Ok(false);
            }
        }
        Ok(true)
    }
}
