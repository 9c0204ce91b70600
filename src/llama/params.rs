//! [`ParamVec`] for a set of Candle tensors: the same Nexus and outer optimizers that run on the
//! synthetic tasks update a Llama model's parameters.
//!
//! The tensors are detached copies (no autograd graph is recorded on them), in the model's
//! fixed parameter order. Reductions are taken in f64.
//!
//! On the CPU, in f32 and f64, every operation is one pass over the tensors' memory (the
//! `cpu` module below): no f64 copy of the parameters for a norm, no temporary per
//! intermediate of an AdamW update. Elsewhere the same operations run as Candle ops. Both give
//! the same values: each element goes through the same floating-point operations in the same
//! order (`tests/llama.rs` checks them against each other).

use crate::error::{Error, Result};
use crate::params::{adam_update_by_ops, AdamUpdate, ParamVec};
use candle_core::{DType, Tensor};

/// Single-pass versions of the operations for contiguous f32 and f64 tensors on the CPU;
/// `None` where they do not apply.
mod cpu {
    use crate::params::AdamUpdate;
    use candle_core::{DType, Storage, StorageRef, Tensor, WithDType};
    use num_traits::Float;

    struct Data<'a> {
        storage: StorageRef<'a>,
        start: usize,
        end: usize,
    }

    fn data(t: &Tensor) -> Option<Data<'_>> {
        let (storage, layout) = t.storage_and_layout();
        let (start, end) = layout.contiguous_offsets()?;
        matches!(&*storage, Storage::Cpu(_)).then_some(Data {
            storage,
            start,
            end,
        })
    }

    impl Data<'_> {
        fn slice<T: WithDType>(&self) -> Option<&[T]> {
            match &*self.storage {
                Storage::Cpu(c) => c.as_slice::<T>().ok().map(|s| &s[self.start..self.end]),
                _ => None,
            }
        }
    }

    fn float_dtype(ts: &[&Tensor]) -> Option<DType> {
        let d = ts.first()?.dtype();
        let same = ts
            .iter()
            .all(|t| t.dtype() == d && t.shape() == ts[0].shape());
        (same && matches!(d, DType::F32 | DType::F64)).then_some(d)
    }

    fn tensor<T: WithDType>(v: Vec<T>, like: &Tensor) -> Option<Tensor> {
        Tensor::from_vec(v, like.shape(), like.device()).ok()
    }

    /// `sum f(a_i, b_i)` in f64, over eight interleaved partial sums added in a fixed order
    /// at the end (the same result on every run; the lanes let the loop vectorise).
    pub fn reduce2(a: &Tensor, b: &Tensor, f: impl Fn(f64, f64) -> f64) -> Option<f64> {
        fn go<T: WithDType>(a: &[T], b: &[T], f: impl Fn(f64, f64) -> f64) -> f64 {
            let mut lanes = [0.0f64; 8];
            let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
            let (ra, rb) = (ca.remainder(), cb.remainder());
            for (x, y) in ca.zip(cb) {
                for k in 0..8 {
                    lanes[k] += f(x[k].to_f64(), y[k].to_f64());
                }
            }
            let tail = ra
                .iter()
                .zip(rb)
                .fold(0.0, |s, (x, y)| s + f(x.to_f64(), y.to_f64()));
            lanes.iter().sum::<f64>() + tail
        }
        let (da, db) = (data(a)?, data(b)?);
        match float_dtype(&[a, b])? {
            DType::F32 => Some(go(da.slice::<f32>()?, db.slice::<f32>()?, f)),
            _ => Some(go(da.slice::<f64>()?, db.slice::<f64>()?, f)),
        }
    }

    /// `a + alpha b` (Candle: `a + b.affine(alpha, 0)`).
    pub fn axpy(a: &Tensor, alpha: f64, b: &Tensor) -> Option<Tensor> {
        fn go<T: WithDType + Float>(a: &[T], alpha: f64, b: &[T]) -> Vec<T> {
            let (al, zero) = (T::from_f64(alpha), T::from_f64(0.0));
            a.iter()
                .zip(b)
                .map(|(&x, &y)| x + (y * al + zero))
                .collect()
        }
        let (da, db) = (data(a)?, data(b)?);
        match float_dtype(&[a, b])? {
            DType::F32 => tensor(go(da.slice::<f32>()?, alpha, db.slice::<f32>()?), a),
            _ => tensor(go(da.slice::<f64>()?, alpha, db.slice::<f64>()?), a),
        }
    }

    /// `alpha a` (Candle: `a.affine(alpha, 0)`).
    pub fn scale(a: &Tensor, alpha: f64) -> Option<Tensor> {
        fn go<T: WithDType + Float>(a: &[T], alpha: f64) -> Vec<T> {
            let (al, zero) = (T::from_f64(alpha), T::from_f64(0.0));
            a.iter().map(|&x| x * al + zero).collect()
        }
        let da = data(a)?;
        match float_dtype(&[a])? {
            DType::F32 => tensor(go(da.slice::<f32>()?, alpha), a),
            _ => tensor(go(da.slice::<f64>()?, alpha), a),
        }
    }

    /// [`crate::params::ParamVec::adam_update`]'s composition of Candle ops, element by
    /// element in one pass: new `(p, m, v)`.
    pub fn adam(
        p: &Tensor,
        m: &Tensor,
        v: &Tensor,
        g: &Tensor,
        c: AdamUpdate,
    ) -> Option<(Tensor, Tensor, Tensor)> {
        #[allow(clippy::type_complexity)]
        fn go<T: WithDType + Float>(
            p: &[T],
            m: &[T],
            v: &[T],
            g: &[T],
            c: AdamUpdate,
        ) -> (Vec<T>, Vec<T>, Vec<T>) {
            let k = |x: f64| T::from_f64(x);
            let (b1, a1, b2, a2) = (k(c.beta1), k(1.0 - c.beta1), k(c.beta2), k(1.0 - c.beta2));
            let (eps, keep, step, zero, one) = (k(c.eps), k(c.keep), k(-c.step), k(0.0), k(1.0));
            let n = p.len();
            let (mut po, mut mo, mut vo) = (
                Vec::with_capacity(n),
                Vec::with_capacity(n),
                Vec::with_capacity(n),
            );
            // Written through the spare capacity in one zipped pass (no zero-fill, vectorised).
            let outputs = po.spare_capacity_mut()[..n]
                .iter_mut()
                .zip(&mut mo.spare_capacity_mut()[..n])
                .zip(&mut vo.spare_capacity_mut()[..n]);
            for ((((po, mo), vo), (&pi, &gi)), (&mi, &vi)) in
                outputs.zip(p.iter().zip(g)).zip(m.iter().zip(v))
            {
                let mi = (mi * b1 + zero) + (gi * a1 + zero);
                let vi = (vi * b2 + zero) + ((gi * gi) * a2 + zero);
                let dir = mi / (vi.sqrt() * one + eps);
                po.write((pi * keep + zero) + (dir * step + zero));
                mo.write(mi);
                vo.write(vi);
            }
            // SAFETY: the loop above initialised the first n elements of each vector.
            unsafe {
                po.set_len(n);
                mo.set_len(n);
                vo.set_len(n);
            }
            (po, mo, vo)
        }
        let (dp, dm, dv, dg) = (data(p)?, data(m)?, data(v)?, data(g)?);
        let (po, mo, vo) = match float_dtype(&[p, m, v, g])? {
            DType::F32 => {
                let (a, b, c2) = go(
                    dp.slice::<f32>()?,
                    dm.slice::<f32>()?,
                    dv.slice::<f32>()?,
                    dg.slice::<f32>()?,
                    c,
                );
                (tensor(a, p)?, tensor(b, p)?, tensor(c2, p)?)
            }
            _ => {
                let (a, b, c2) = go(
                    dp.slice::<f64>()?,
                    dm.slice::<f64>()?,
                    dv.slice::<f64>()?,
                    dg.slice::<f64>()?,
                    c,
                );
                (tensor(a, p)?, tensor(b, p)?, tensor(c2, p)?)
            }
        };
        Some((po, mo, vo))
    }
}

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

impl TensorParams {
    /// `f` on every tensor index, in parallel on the CPU fast paths; `None` if any tensor has
    /// none (then the caller takes the Candle-op path for all of them).
    fn fast<R: Send>(&self, f: impl Fn(usize) -> Option<R> + Sync + Send) -> Option<Vec<R>> {
        use rayon::prelude::*;
        // Below a quarter of a million numbers a pass takes tens of microseconds, about what
        // handing tensors to other threads costs.
        if self.numel() < 1 << 18 {
            return (0..self.tensors.len()).map(f).collect();
        }
        (0..self.tensors.len()).into_par_iter().map(f).collect()
    }
}

/// Sum of per-tensor parts in tensor order, whatever thread computed each part.
fn ordered_sum(parts: Vec<f64>) -> f64 {
    parts.into_iter().fold(0.0, |s, x| s + x)
}

impl ParamVec for TensorParams {
    fn dot(&self, other: &Self) -> Result<f64> {
        self.zip_check(other)?;
        if let Some(parts) =
            self.fast(|i| cpu::reduce2(&self.tensors[i], &other.tensors[i], |x, y| x * y))
        {
            return Ok(ordered_sum(parts));
        }
        let mut s = 0.0;
        for (a, b) in self.tensors.iter().zip(&other.tensors) {
            s += (a.to_dtype(DType::F64)? * b.to_dtype(DType::F64)?)?
                .sum_all()?
                .to_scalar::<f64>()?;
        }
        Ok(s)
    }
    fn axpy(&mut self, alpha: f64, x: &Self) -> Result<()> {
        self.zip_check(x)?;
        if let Some(t) = self.fast(|i| cpu::axpy(&self.tensors[i], alpha, &x.tensors[i])) {
            self.tensors = t;
            return Ok(());
        }
        *self = self.map2(x, |a, b| a + b.affine(alpha, 0.0)?)?;
        Ok(())
    }
    fn scale(&mut self, alpha: f64) -> Result<()> {
        if let Some(t) = self.fast(|i| cpu::scale(&self.tensors[i], alpha)) {
            self.tensors = t;
            return Ok(());
        }
        for t in &mut self.tensors {
            *t = t.affine(alpha, 0.0)?;
        }
        Ok(())
    }
    fn adam_update(&mut self, m: &mut Self, v: &mut Self, g: &Self, c: AdamUpdate) -> Result<()> {
        self.zip_check(m)?;
        self.zip_check(v)?;
        self.zip_check(g)?;
        let fused = self.fast(|i| {
            cpu::adam(
                &self.tensors[i],
                &m.tensors[i],
                &v.tensors[i],
                &g.tensors[i],
                c,
            )
        });
        let Some(fused) = fused else {
            return adam_update_by_ops(self, m, v, g, c);
        };
        for (i, (p, mi, vi)) in fused.into_iter().enumerate() {
            (self.tensors[i], m.tensors[i], v.tensors[i]) = (p, mi, vi);
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
        if let Some(parts) =
            self.fast(|i| cpu::reduce2(&self.tensors[i], &self.tensors[i], |x, _| x * x))
        {
            return Ok(ordered_sum(parts).sqrt());
        }
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
        // NaN and infinity survive a sum of absolute values; finite f32 values cannot overflow
        // an f64 sum.
        if let Some(parts) =
            self.fast(|i| cpu::reduce2(&self.tensors[i], &self.tensors[i], |x, _| x.abs()))
        {
            return Ok(ordered_sum(parts).is_finite());
        }
        for t in &self.tensors {
            let sum = t
                .to_dtype(DType::F64)?
                .abs()?
                .sum_all()?
                .to_scalar::<f64>()?;
            if !sum.is_finite() {
                return Ok(false);
            }
        }
        Ok(true)
    }
}
