//! Muon (Jordan et al., 2024) for the model's hidden weight matrices: heavy-ball momentum with
//! Nesterov look-ahead, orthogonalised by five Newton-Schulz iterations, step scaled by
//! `sqrt(max(1, rows / cols))`; every other tensor (embeddings, output head, norms) gets AdamW.
//! It takes any (pseudo-)gradient, so `muon+nexus` is Nexus's displacement fed to Muon.

use super::params::TensorParams;
use crate::error::Result;
use crate::optim::{AdamW, AdamWConfig, Optimizer};
use candle_core::{DType, Tensor};

/// Newton-Schulz quintic coefficients from the Muon reference implementation.
const NS: (f64, f64, f64) = (3.4445, -4.7750, 2.0315);

/// Muon on the tensors flagged in `matrix`, AdamW on the rest.
pub struct Muon {
    lr: f64,
    momentum: f64,
    matrix: Vec<bool>,
    buffers: Option<Vec<Tensor>>,
    adam: AdamW<TensorParams>,
}

impl Muon {
    /// `matrix[i]` marks the tensors Muon updates (2-D hidden weights).
    pub fn new(lr: f64, momentum: f64, matrix: Vec<bool>, adam: AdamWConfig) -> Result<Self> {
        crate::error::ensure(lr >= 0.0 && lr.is_finite(), "lr", || {
            format!("must be finite and >= 0, got {lr}")
        })?;
        Ok(Self {
            lr,
            momentum,
            matrix,
            buffers: None,
            adam: AdamW::new(adam)?,
        })
    }
    /// The AdamW used for the other tensors.
    pub fn adam_mut(&mut self) -> &mut AdamW<TensorParams> {
        &mut self.adam
    }
    /// The AdamW used for the other tensors.
    pub fn adam(&self) -> &AdamW<TensorParams> {
        &self.adam
    }
    /// Sets Muon's learning rate (the AdamW part keeps its own).
    pub fn set_lr(&mut self, lr: f64) {
        self.lr = lr;
    }
    /// Momentum buffers, for checkpoints.
    pub fn buffers(&self) -> Option<&Vec<Tensor>> {
        self.buffers.as_ref()
    }
    /// Restores momentum buffers.
    pub fn restore_buffers(&mut self, b: Option<Vec<Tensor>>) {
        self.buffers = b;
    }
}

/// `G / ||G||` pushed towards the nearest semi-orthogonal matrix.
fn newton_schulz(g: &Tensor) -> Result<Tensor> {
    let (rows, cols) = g.dims2()?;
    let norm = g
        .to_dtype(DType::F64)?
        .sqr()?
        .sum_all()?
        .sqrt()?
        .to_scalar::<f64>()?;
    let mut x = (g / (norm + 1e-7))?;
    let tall = rows > cols;
    if tall {
        x = x.t()?.contiguous()?;
    }
    let (a, b, c) = NS;
    for _ in 0..5 {
        let gram = x.matmul(&x.t()?)?;
        let poly = ((&gram * b)? + (gram.matmul(&gram)? * c)?)?;
        x = ((&x * a)? + poly.matmul(&x)?)?;
    }
    Ok(if tall { x.t()?.contiguous()? } else { x })
}

impl Optimizer<TensorParams> for Muon {
    fn step(&mut self, params: &mut TensorParams, grad: &TensorParams) -> Result<()> {
        let buffers = match &mut self.buffers {
            Some(b) => b,
            None => self.buffers.insert(
                grad.tensors
                    .iter()
                    .map(|t| t.zeros_like())
                    .collect::<candle_core::Result<_>>()?,
            ),
        };
        // AdamW on the non-matrix tensors: run it on copies in which the matrix entries are zero
        // gradients and then keep only its non-matrix results.
        let masked = TensorParams {
            tensors: grad
                .tensors
                .iter()
                .zip(&self.matrix)
                .map(|(g, &m)| if m { g.zeros_like() } else { Ok(g.clone()) })
                .collect::<candle_core::Result<_>>()?,
        };
        let mut adam_params = params.clone();
        self.adam.step(&mut adam_params, &masked)?;
        let tensors = params
            .tensors
            .iter_mut()
            .zip(&grad.tensors)
            .zip(buffers.iter_mut())
            .zip(&self.matrix);
        for (i, (((p, g), buf), &is_matrix)) in tensors.enumerate() {
            if !is_matrix {
                *p = adam_params.tensors[i].clone();
                continue;
            }
            *buf = ((&*buf * self.momentum)? + g)?;
            let nesterov = (g + (&*buf * self.momentum)?)?;
            let update = newton_schulz(&nesterov)?;
            let (rows, cols) = update.dims2()?;
            let scale = (rows as f64 / cols as f64).max(1.0).sqrt();
            *p = (&*p - (update * (self.lr * scale))?)?;
        }
        Ok(())
    }
}
