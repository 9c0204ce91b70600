//! Fused CPU kernels, each with its own backward, for the Llama's element-wise pieces: RMSNorm,
//! the causal softmax of attention, SwiGLU, the rotary embedding with the head split, and the
//! cross-entropy. Each replaces a chain of plain Candle ops (and that chain's backward graph)
//! by one pass over memory; on 2 cores about half the plain-op step was such chains
//! (`../shared/measurements/llama-cpu-profile.md`).
//!
//! Every kernel runs in f32 and f64 on the CPU. `tests/fused.rs` checks each forward and
//! backward against the plain-op version and against central finite differences in f64. The
//! plain ops stay in [`super::model`] and are what CUDA and half precision use
//! ([`Kernels::for_device`]): no CUDA kernel of these has been checked on a GPU.
//!
//! Rows are independent, so they run in parallel on rayon's pool for large inputs; every
//! reduction runs over one row in a fixed order, so results do not depend on the thread count.

use candle_core::{
    bail, CpuStorage, CustomOp1, CustomOp2, CustomOp3, DType, Device, Layout, Shape, Tensor,
    WithDType,
};
use num_traits::Float;
use rayon::prelude::*;
use std::sync::Arc;

/// Which implementation of the element-wise pieces a model uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kernels {
    /// Plain differentiable Candle ops (any device and dtype).
    Plain,
    /// The fused CPU kernels of this module (f32 and f64 on the CPU).
    Fused,
}

impl Kernels {
    /// Fused where they exist (CPU, f32 or f64), plain elsewhere.
    pub fn for_device(device: &Device, dtype: DType) -> Self {
        if device.is_cpu() && matches!(dtype, DType::F32 | DType::F64) {
            Kernels::Fused
        } else {
            Kernels::Plain
        }
    }
}

impl std::str::FromStr for Kernels {
    type Err = crate::Error;
    fn from_str(s: &str) -> crate::Result<Self> {
        match s {
            "plain" => Ok(Kernels::Plain),
            "fused" => Ok(Kernels::Fused),
            other => Err(crate::Error::InvalidArgument {
                name: "kernels",
                reason: format!("unknown kernels `{other}` (plain, fused)"),
            }),
        }
    }
}

/// Inputs with at least this many elements are split over rayon's threads.
const PARALLEL_MIN: usize = 1 << 15;

trait Real:
    WithDType + Float + Send + Sync + std::ops::AddAssign + std::ops::SubAssign + std::ops::DivAssign
{
    /// `e^x`: the standard library's in f64; in f32 a branch-free version the compiler can
    /// vectorise (libm's `expf` is a call per element, 7% of a tiny step).
    fn exp_fast(self) -> Self;
}
impl Real for f32 {
    fn exp_fast(self) -> Self {
        exp_f32(self)
    }
}
impl Real for f64 {
    fn exp_fast(self) -> Self {
        self.exp()
    }
}

/// `e^x` in f32 to within 2 ulp (`tests/fused.rs` checks it against f64 over the f32 range):
/// `x = n ln 2 + r` with `|r| <= ln 2 / 2`, Cephes' polynomial for `e^r`, and `2^n` built in
/// the exponent bits. Below -87.3 (where `e^x` leaves the normal range) it returns 0,
/// above 88.7 infinity; NaN stays NaN.
#[inline(always)]
pub fn exp_f32(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // 1.5 * 2^23: after adding it, the float's low mantissa bits hold round(x log2 e) as an
    // integer, and subtracting it again gives that integer as a float. Integer and float
    // operations only, so loops over it vectorise.
    const ROUND: f32 = 12_582_912.0;
    let clamped = x.clamp(-87.3, 88.7);
    let shifted = clamped * LOG2E + ROUND;
    let n = shifted - ROUND;
    let r = clamped - n * LN2_HI - n * LN2_LO;
    let p = ((((1.987_569_1e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r
        + 1.666_666_5e-1)
        * r
        + 0.5; // Cephes' 5.0000001201e-1, which rounds to 0.5 in f32
    let e = p * r * r + r + 1.0;
    let n_int = shifted.to_bits().wrapping_sub(ROUND.to_bits()) as i32;
    // 2^n as 2^(n/2) 2^(n - n/2): n reaches 128 near the top of the range, where 2^n alone
    // is not a finite f32 although e^x is.
    let half = n_int >> 1;
    let pow2 = |k: i32| f32::from_bits(((k + 127) as u32) << 23);
    let scaled = e * pow2(half) * pow2(n_int - half);
    let scaled = if x < -87.3 { 0.0 } else { scaled };
    let scaled = if x > 88.7 { f32::INFINITY } else { scaled };
    if x.is_nan() {
        x
    } else {
        scaled
    }
}

fn real<T: Real>(v: f64) -> T {
    <T as num_traits::NumCast>::from(v).expect("f64 fits f32 and f64")
}

fn contiguous<'a, T: WithDType>(
    s: &'a CpuStorage,
    l: &Layout,
    op: &'static str,
) -> candle_core::Result<&'a [T]> {
    let data = s.as_slice::<T>()?;
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&data[a..b]),
        None => bail!("{op}: input must be contiguous"),
    }
}

/// Applies `f(row_index, row)` to every `width`-long row of `out`, in parallel when large.
fn for_rows<T: Send>(out: &mut [T], width: usize, f: impl Fn(usize, &mut [T]) + Sync) {
    for_rows_of_work(out, width, out.len(), &f)
}

/// [`for_rows`] for rows whose cost is not their length: parallel when `work` is large. `f` is
/// a trait object so that the parallel loop is compiled once per float type, not once per
/// kernel (a call per row, against a row's hundreds of operations).
fn for_rows_of_work<T: Send>(
    out: &mut [T],
    width: usize,
    work: usize,
    f: &(dyn Fn(usize, &mut [T]) + Sync),
) {
    if work >= PARALLEL_MIN {
        out.par_chunks_mut(width)
            .enumerate()
            .for_each(|(i, r)| f(i, r));
    } else {
        out.chunks_mut(width).enumerate().for_each(|(i, r)| f(i, r));
    }
}

/// Runs a generic kernel body for the storage's float type.
macro_rules! float_dispatch {
    ($s:expr, $op:expr, $f:ident ( $($arg:expr),* )) => {
        match $s {
            CpuStorage::F32(_) => $f::<f32>($($arg),*),
            CpuStorage::F64(_) => $f::<f64>($($arg),*),
            _ => bail!("{}: only f32 and f64 are supported", $op),
        }
    };
}

fn storage<T: Real>(v: Vec<T>) -> CpuStorage {
    T::to_cpu_storage_owned(v)
}

// ---------------------------------------------------------------- RMSNorm

/// `y = x / sqrt(mean(x^2) + eps) * w` over the last dimension; arguments `(x, w)`.
pub struct RmsNorm {
    /// The epsilon under the root.
    pub eps: f64,
}

fn rms_norm_fwd<T: Real>(
    s1: &CpuStorage,
    l1: &Layout,
    s2: &CpuStorage,
    l2: &Layout,
    eps: f64,
) -> candle_core::Result<(CpuStorage, Shape)> {
    let (x, w) = (
        contiguous::<T>(s1, l1, "rms-norm")?,
        contiguous::<T>(s2, l2, "rms-norm")?,
    );
    let h = w.len();
    if h == 0 || l1.dims().last() != Some(&h) {
        bail!(
            "rms-norm: weight of {h} does not match input {:?}",
            l1.dims()
        );
    }
    let mut y = vec![T::zero(); x.len()];
    let (eps, hn) = (real::<T>(eps), real::<T>(h as f64));
    for_rows(&mut y, h, |i, out| {
        let row = &x[i * h..(i + 1) * h];
        let ss = row.iter().fold(T::zero(), |a, &v| a + v * v);
        let r = T::one() / (ss / hn + eps).sqrt();
        for ((o, &v), &g) in out.iter_mut().zip(row).zip(w) {
            *o = v * r * g;
        }
    });
    Ok((storage(y), l1.shape().clone()))
}

impl CustomOp2 for RmsNorm {
    fn name(&self) -> &'static str {
        "rms-norm"
    }
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        float_dispatch!(s1, "rms-norm", rms_norm_fwd(s1, l1, s2, l2, self.eps))
    }
    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _y: &Tensor,
        dy: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let (dx, dw) = rms_norm_backward(x, w, dy, self.eps)?;
        Ok((Some(dx), Some(dw)))
    }
}

/// The gradients `(dx, dw)` of [`RmsNorm`] at `(x, w)` for the output gradient `dy`.
pub fn rms_norm_backward(
    x: &Tensor,
    w: &Tensor,
    dy: &Tensor,
    eps: f64,
) -> candle_core::Result<(Tensor, Tensor)> {
    let h = w.elem_count();
    let n = x.elem_count() / h;
    // One kernel returns both gradients: rows 0..n are dx, row n is dw.
    let both = x.contiguous()?.apply_op3_no_bwd(
        &w.contiguous()?,
        &dy.contiguous()?,
        &RmsNormBackward { eps },
    )?;
    Ok((
        both.narrow(0, 0, n)?.reshape(x.shape())?,
        both.narrow(0, n, 1)?.reshape(h)?,
    ))
}

struct RmsNormBackward {
    eps: f64,
}

/// With `r = 1/sqrt(mean(x^2) + eps)`: `dw_j = sum_rows dy_j x_j r` and
/// `dx_j = r w_j dy_j - r^3 x_j / h * sum_k w_k dy_k x_k`.
fn rms_norm_bwd<T: Real>(
    s: [(&CpuStorage, &Layout); 3],
    eps: f64,
) -> candle_core::Result<(CpuStorage, Shape)> {
    let x = contiguous::<T>(s[0].0, s[0].1, "rms-norm-backward")?;
    let w = contiguous::<T>(s[1].0, s[1].1, "rms-norm-backward")?;
    let dy = contiguous::<T>(s[2].0, s[2].1, "rms-norm-backward")?;
    let h = w.len();
    let n = x.len() / h;
    let (eps, hn) = (real::<T>(eps), real::<T>(h as f64));
    let mut out = vec![T::zero(); (n + 1) * h];
    let inv_rms =
        |row: &[T]| T::one() / (row.iter().fold(T::zero(), |a, &v| a + v * v) / hn + eps).sqrt();
    {
        let (dx, _) = out.split_at_mut(n * h);
        for_rows(dx, h, |i, dxr| {
            let (xr, dyr) = (&x[i * h..(i + 1) * h], &dy[i * h..(i + 1) * h]);
            let r = inv_rms(xr);
            let dot = xr
                .iter()
                .zip(dyr)
                .zip(w)
                .fold(T::zero(), |a, ((&xv, &d), &wv)| a + wv * d * xv);
            let c = r * r * r * dot / hn;
            for (((o, &xv), &d), &wv) in dxr.iter_mut().zip(xr).zip(dyr).zip(w) {
                *o = r * wv * d - c * xv;
            }
        });
    }
    let dw = &mut out[n * h..];
    for i in 0..n {
        let (xr, dyr) = (&x[i * h..(i + 1) * h], &dy[i * h..(i + 1) * h]);
        let r = inv_rms(xr);
        for ((o, &xv), &d) in dw.iter_mut().zip(xr).zip(dyr) {
            *o += d * xv * r;
        }
    }
    Ok((storage(out), Shape::from((n + 1, h))))
}

impl CustomOp3 for RmsNormBackward {
    fn name(&self) -> &'static str {
        "rms-norm-backward"
    }
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        float_dispatch!(
            s1,
            "rms-norm-backward",
            rms_norm_bwd([(s1, l1), (s2, l2), (s3, l3)], self.eps)
        )
    }
}

// ---------------------------------------------------------------- causal softmax

/// `p = softmax(scale * s)` over the last dimension of square `(..., t, t)` scores, with entry
/// `(i, j)` masked for `j > i` (probability exactly 0): attention's scale, mask and softmax.
pub struct CausalSoftmax {
    /// The score scale, `1/sqrt(head_dim)`.
    pub scale: f64,
}

fn causal_softmax_fwd<T: Real>(
    s: &CpuStorage,
    l: &Layout,
    scale: f64,
) -> candle_core::Result<(CpuStorage, Shape)> {
    let x = contiguous::<T>(s, l, "causal-softmax")?;
    let t = *l.dims().last().unwrap_or(&0);
    if l.dims().len() < 2 || l.dims()[l.dims().len() - 2] != t {
        bail!("causal-softmax: scores must be square, got {:?}", l.dims());
    }
    let scale = real::<T>(scale);
    let mut p = vec![T::zero(); x.len()];
    for_rows(&mut p, t, |r, out| {
        let i = r % t;
        let row = &x[r * t..r * t + i + 1];
        let max = row
            .iter()
            .fold(T::neg_infinity(), |a, &v| Float::max(a, v * scale));
        for (o, &v) in out.iter_mut().zip(row) {
            *o = (v * scale - max).exp_fast();
        }
        let sum = out[..=i].iter().fold(T::zero(), |a, &v| a + v);
        for o in &mut out[..=i] {
            *o /= sum;
        }
    });
    Ok((storage(p), l.shape().clone()))
}

impl CustomOp1 for CausalSoftmax {
    fn name(&self) -> &'static str {
        "causal-softmax"
    }
    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        float_dispatch!(s, "causal-softmax", causal_softmax_fwd(s, l, self.scale))
    }
    fn bwd(&self, _s: &Tensor, p: &Tensor, dp: &Tensor) -> candle_core::Result<Option<Tensor>> {
        Ok(Some(causal_softmax_backward(p, dp, self.scale)?))
    }
}

/// The gradient of [`CausalSoftmax`]'s input, from its output `p` and output gradient `dp`.
pub fn causal_softmax_backward(p: &Tensor, dp: &Tensor, scale: f64) -> candle_core::Result<Tensor> {
    p.contiguous()?
        .apply_op2_no_bwd(&dp.contiguous()?, &SoftmaxBackward { scale })
}

struct SoftmaxBackward {
    scale: f64,
}

/// `ds = scale * p * (dp - sum_j p_j dp_j)`; masked entries have `p = 0`, so their gradient is 0.
fn softmax_bwd<T: Real>(
    s1: &CpuStorage,
    l1: &Layout,
    s2: &CpuStorage,
    l2: &Layout,
    scale: f64,
) -> candle_core::Result<(CpuStorage, Shape)> {
    let p = contiguous::<T>(s1, l1, "softmax-backward")?;
    let dp = contiguous::<T>(s2, l2, "softmax-backward")?;
    let t = *l1.dims().last().unwrap_or(&1);
    let scale = real::<T>(scale);
    let mut ds = vec![T::zero(); p.len()];
    for_rows(&mut ds, t, |r, out| {
        let (pr, dr) = (&p[r * t..(r + 1) * t], &dp[r * t..(r + 1) * t]);
        let dot = pr.iter().zip(dr).fold(T::zero(), |a, (&x, &y)| a + x * y);
        for ((o, &x), &y) in out.iter_mut().zip(pr).zip(dr) {
            *o = scale * x * (y - dot);
        }
    });
    Ok((storage(ds), l1.shape().clone()))
}

impl CustomOp2 for SoftmaxBackward {
    fn name(&self) -> &'static str {
        "softmax-backward"
    }
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        float_dispatch!(
            s1,
            "softmax-backward",
            softmax_bwd(s1, l1, s2, l2, self.scale)
        )
    }
}

// ---------------------------------------------------------------- SwiGLU

/// `y = silu(a) * b` for an input `(..., 2 i)` holding `a` (gate) then `b` (up) along the last
/// dimension, output `(..., i)`: the MLP's activation after one matrix product with the gate
/// and up weights stacked.
pub struct SwiGlu;

fn sigmoid<T: Real>(a: T) -> T {
    T::one() / (T::one() + (-a).exp_fast())
}

fn swiglu_fwd<T: Real>(s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
    let x = contiguous::<T>(s, l, "swiglu")?;
    let two_i = *l.dims().last().unwrap_or(&0);
    if !two_i.is_multiple_of(2) {
        bail!("swiglu: last dimension {two_i} must be even");
    }
    let i = two_i / 2;
    let mut y = vec![T::zero(); x.len() / 2];
    for_rows(&mut y, i.max(1), |r, out| {
        let (a, b) = x[r * two_i..(r + 1) * two_i].split_at(i);
        for ((o, &av), &bv) in out.iter_mut().zip(a).zip(b) {
            *o = av * sigmoid(av) * bv;
        }
    });
    let mut dims = l.dims().to_vec();
    *dims.last_mut().expect("checked above") = i;
    Ok((storage(y), Shape::from(dims)))
}

impl CustomOp1 for SwiGlu {
    fn name(&self) -> &'static str {
        "swiglu"
    }
    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        float_dispatch!(s, "swiglu", swiglu_fwd(s, l))
    }
    fn bwd(&self, x: &Tensor, _y: &Tensor, dy: &Tensor) -> candle_core::Result<Option<Tensor>> {
        Ok(Some(swiglu_backward(x, dy)?))
    }
}

/// The gradient of [`SwiGlu`]'s input `x` for the output gradient `dy`.
pub fn swiglu_backward(x: &Tensor, dy: &Tensor) -> candle_core::Result<Tensor> {
    x.contiguous()?
        .apply_op2_no_bwd(&dy.contiguous()?, &SwiGluBackward)
}

struct SwiGluBackward;

/// `da = dy * b * sigma(a) (1 + a (1 - sigma(a)))`, `db = dy * silu(a)`.
fn swiglu_bwd<T: Real>(
    s1: &CpuStorage,
    l1: &Layout,
    s2: &CpuStorage,
    l2: &Layout,
) -> candle_core::Result<(CpuStorage, Shape)> {
    let x = contiguous::<T>(s1, l1, "swiglu-backward")?;
    let dy = contiguous::<T>(s2, l2, "swiglu-backward")?;
    let two_i = *l1.dims().last().unwrap_or(&0);
    let i = two_i / 2;
    let mut dx = vec![T::zero(); x.len()];
    for_rows(&mut dx, two_i.max(1), |r, out| {
        let (a, b) = x[r * two_i..(r + 1) * two_i].split_at(i);
        let d = &dy[r * i..(r + 1) * i];
        let (da, db) = out.split_at_mut(i);
        for k in 0..i {
            let sg = sigmoid(a[k]);
            da[k] = d[k] * b[k] * sg * (T::one() + a[k] * (T::one() - sg));
            db[k] = d[k] * a[k] * sg;
        }
    });
    Ok((storage(dx), l1.shape().clone()))
}

impl CustomOp2 for SwiGluBackward {
    fn name(&self) -> &'static str {
        "swiglu-backward"
    }
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        float_dispatch!(s1, "swiglu-backward", swiglu_bwd(s1, l1, s2, l2))
    }
}

// ---------------------------------------------------------------- rotary embedding + heads

/// Splits the stacked projections `(b, t, 3 h)` (queries, keys, values) into heads and applies
/// the rotate-half rotary embedding to queries and keys: output `(3, b, heads, t, head_dim)`.
/// Rotation of the pair `(x1, x2) = (x_j, x_{j + hd/2})` by the angle of position `p`:
/// `(x1 cos - x2 sin, x2 cos + x1 sin)`.
#[derive(Clone)]
pub struct QkvRope {
    /// Heads.
    pub heads: usize,
    /// `cos` of the rotary angles, `(max_positions, head_dim / 2)` row-major.
    pub cos: Arc<Vec<f64>>,
    /// `sin` of the same angles.
    pub sin: Arc<Vec<f64>>,
}

/// Rotates `(b, t, 3h)` into `(3, b, heads, t, hd)` (`inverse = false`) or the gradient back
/// (`inverse = true`: rotation by the opposite angle, heads merged).
fn qkv_rope_kernel<T: Real>(
    s: &CpuStorage,
    l: &Layout,
    op: &QkvRope,
    inverse: bool,
) -> candle_core::Result<(CpuStorage, Shape)> {
    let x = contiguous::<T>(s, l, "qkv-rope")?;
    let (b, t, h, nh) = if inverse {
        let d = l.dims();
        if d.len() != 5 || d[0] != 3 {
            bail!("qkv-rope-backward: expected (3, b, heads, t, hd), got {d:?}");
        }
        (d[1], d[3], d[2] * d[4], d[2])
    } else {
        let d = l.dims();
        if d.len() != 3 || !d[2].is_multiple_of(3) {
            bail!("qkv-rope: expected (b, t, 3h), got {d:?}");
        }
        (d[0], d[1], d[2] / 3, op.heads)
    };
    let hd = h / nh;
    let half = hd / 2;
    if nh == 0 || h % nh != 0 || hd % 2 != 0 || op.cos.len() < t * half {
        bail!("qkv-rope: {h} channels, {nh} heads, {t} positions do not fit the tables");
    }
    let mut out = vec![T::zero(); x.len()];
    let split_offset = |part: usize, bi: usize, head: usize, p: usize| {
        (((part * b + bi) * nh + head) * t + p) * hd
    };
    let merged_offset =
        |part: usize, bi: usize, head: usize, p: usize| ((bi * t + p) * 3 + part) * h + head * hd;
    // One output row of hd values per (part, batch, head, position), in the output's order.
    for_rows(&mut out, hd, |row, o| {
        let (part, p, src) = if inverse {
            let (head, part, p, bi) = (
                row % nh,
                (row / nh) % 3,
                (row / (3 * nh)) % t,
                row / (3 * nh * t),
            );
            (part, p, split_offset(part, bi, head, p))
        } else {
            let (p, head, bi, part) = (
                row % t,
                (row / t) % nh,
                (row / (t * nh)) % b,
                row / (t * nh * b),
            );
            (part, p, merged_offset(part, bi, head, p))
        };
        let src = &x[src..src + hd];
        if part == 2 {
            o.copy_from_slice(src); // values: no rotation
            return;
        }
        for j in 0..half {
            let c = real::<T>(op.cos[p * half + j]);
            let s = real::<T>(op.sin[p * half + j]);
            let s = if inverse { -s } else { s };
            let (x1, x2) = (src[j], src[j + half]);
            o[j] = x1 * c - x2 * s;
            o[j + half] = x2 * c + x1 * s;
        }
    });
    let shape = if inverse {
        Shape::from((b, t, 3 * h))
    } else {
        Shape::from(vec![3, b, nh, t, hd])
    };
    Ok((storage(out), shape))
}

impl CustomOp1 for QkvRope {
    fn name(&self) -> &'static str {
        "qkv-rope"
    }
    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        float_dispatch!(s, "qkv-rope", qkv_rope_kernel(s, l, self, false))
    }
    fn bwd(&self, _x: &Tensor, _y: &Tensor, dy: &Tensor) -> candle_core::Result<Option<Tensor>> {
        Ok(Some(self.backward(dy)?))
    }
}

impl QkvRope {
    /// The gradient `(b, t, 3h)` of the input for the output gradient `(3, b, heads, t, hd)`.
    pub fn backward(&self, dy: &Tensor) -> candle_core::Result<Tensor> {
        dy.contiguous()?
            .apply_op1_no_bwd(&QkvRopeBackward(self.clone()))
    }
}

struct QkvRopeBackward(QkvRope);

impl CustomOp1 for QkvRopeBackward {
    fn name(&self) -> &'static str {
        "qkv-rope-backward"
    }
    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        float_dispatch!(s, "qkv-rope-backward", qkv_rope_kernel(s, l, &self.0, true))
    }
}

// ---------------------------------------------------------------- cross-entropy

/// Mean next-token cross-entropy of logits `(n, vocab)` against `u32` targets `(n)`, a scalar.
/// The forward pass keeps each row's log-sum-exp for the backward pass, which then needs one
/// exponential per logit.
#[derive(Default)]
pub struct CrossEntropy {
    log_sum_exp: std::sync::OnceLock<Vec<f64>>,
}

fn log_sum_exp<T: Real>(row: &[T], scratch: &mut Vec<T>) -> T {
    let max = row.iter().fold(T::neg_infinity(), |a, &v| Float::max(a, v));
    scratch.clear();
    scratch.extend(row.iter().map(|&v| (v - max).exp_fast()));
    max + scratch.iter().fold(T::zero(), |a, &v| a + v).ln()
}

fn targets_of<'a>(s: &'a CpuStorage, l: &Layout, n: usize) -> candle_core::Result<&'a [u32]> {
    let t = contiguous::<u32>(s, l, "cross-entropy")?;
    if t.len() != n {
        bail!("cross-entropy: {} targets for {n} rows", t.len());
    }
    Ok(t)
}

fn cross_entropy_fwd<T: Real>(
    s1: &CpuStorage,
    l1: &Layout,
    s2: &CpuStorage,
    l2: &Layout,
    cache: &std::sync::OnceLock<Vec<f64>>,
) -> candle_core::Result<(CpuStorage, Shape)> {
    let x = contiguous::<T>(s1, l1, "cross-entropy")?;
    let (n, v) = l1.shape().dims2()?;
    let targets = targets_of(s2, l2, n)?;
    if let Some(&tg) = targets.iter().find(|&&tg| tg as usize >= v) {
        bail!("cross-entropy: target {tg} outside a vocabulary of {v}");
    }
    let mut lse = vec![0.0f64; n];
    const ROWS: usize = 64;
    for_rows_of_work(&mut lse, ROWS, n * v, &|chunk, out| {
        let mut scratch = Vec::with_capacity(v);
        for (k, o) in out.iter_mut().enumerate() {
            let r = chunk * ROWS + k;
            *o = log_sum_exp(&x[r * v..(r + 1) * v], &mut scratch).to_f64();
        }
    });
    // Summed in row order whatever the thread count.
    let mut total = T::zero();
    for (r, &tg) in targets.iter().enumerate() {
        total = total + real::<T>(lse[r]) - x[r * v + tg as usize];
    }
    let _ = cache.set(lse);
    Ok((storage(vec![total / real::<T>(n as f64)]), Shape::from(())))
}

impl CustomOp2 for CrossEntropy {
    fn name(&self) -> &'static str {
        "cross-entropy"
    }
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        float_dispatch!(
            s1,
            "cross-entropy",
            cross_entropy_fwd(s1, l1, s2, l2, &self.log_sum_exp)
        )
    }
    fn bwd(
        &self,
        logits: &Tensor,
        targets: &Tensor,
        _loss: &Tensor,
        dloss: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let g = dloss.to_dtype(DType::F64)?.to_scalar::<f64>()?;
        Ok((Some(self.backward(logits, targets, g)?), None))
    }
}

impl CrossEntropy {
    /// The gradient of the logits after this op's forward pass, for a loss gradient `dloss`.
    pub fn backward(
        &self,
        logits: &Tensor,
        targets: &Tensor,
        dloss: f64,
    ) -> candle_core::Result<Tensor> {
        let n = logits.dim(0)?;
        let Some(log_sum_exp) = self.log_sum_exp.get() else {
            bail!("cross-entropy: backward before forward");
        };
        logits.contiguous()?.apply_op2_no_bwd(
            &targets.contiguous()?,
            &CrossEntropyBackward {
                scale: dloss / n as f64,
                log_sum_exp,
            },
        )
    }
}

struct CrossEntropyBackward<'a> {
    scale: f64,
    log_sum_exp: &'a [f64],
}

/// `d logits = scale * (softmax(logits) - onehot(target))`.
fn cross_entropy_bwd<T: Real>(
    s1: &CpuStorage,
    l1: &Layout,
    s2: &CpuStorage,
    l2: &Layout,
    scale: f64,
    log_sum_exp: &[f64],
) -> candle_core::Result<(CpuStorage, Shape)> {
    let x = contiguous::<T>(s1, l1, "cross-entropy-backward")?;
    let (n, v) = l1.shape().dims2()?;
    let targets = targets_of(s2, l2, n)?;
    if log_sum_exp.len() != n {
        bail!(
            "cross-entropy-backward: {} cached rows for {n}",
            log_sum_exp.len()
        );
    }
    let scale = real::<T>(scale);
    let mut d = vec![T::zero(); x.len()];
    for_rows(&mut d, v, |r, out| {
        let row = &x[r * v..(r + 1) * v];
        let lse = real::<T>(log_sum_exp[r]);
        for (o, &xv) in out.iter_mut().zip(row) {
            *o = scale * (xv - lse).exp_fast();
        }
        let tg = targets[r] as usize;
        out[tg] -= scale;
    });
    Ok((storage(d), l1.shape().clone()))
}

impl CustomOp2 for CrossEntropyBackward<'_> {
    fn name(&self) -> &'static str {
        "cross-entropy-backward"
    }
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        float_dispatch!(
            s1,
            "cross-entropy-backward",
            cross_entropy_bwd(s1, l1, s2, l2, self.scale, self.log_sum_exp)
        )
    }
}
