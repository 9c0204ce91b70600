//! Matrix products and sums of the fused CPU path, with the caller choosing which threads run
//! them, so that independent ones can run side by side.
//!
//! Candle splits every product over all of rayon's threads, and every element-wise sum of
//! 64k elements or more over a pool of its own (a third thread on 2 cores, which the caller
//! waits for by spinning). At the `small` preset's sizes (a few hundred rows and columns) each
//! split costs a hand-off and leaves pieces too small to run the kernels at full speed: on 2
//! cores a training step took 232 ms against 306 ms on one (`llama_bench step --preset
//! small`), a 1.3x speed-up. Here the work is cut coarser. AdamW's micro-batches are
//! independent: one pass per thread, each product on its thread ([`Split::Here`]). A pass that
//! runs alone (Nexus's inner steps follow one another) runs its backward products in
//! independent pairs side by side, a weight's gradient beside its layer's input gradient, equal
//! in arithmetic ([`Split::matmul_pair`]), and cuts every product into one block of rows per
//! thread, or a batch of attention matrices among the threads ([`Split::Rows`]).
//!
//! Every product is the `gemm` call Candle's CPU back end makes, with the same strides, on
//! fewer rows or batches at a time. `gemm` sums each element over `k` in blocks whose length
//! depends on `k` and the caches alone (`gemm-common`'s `kernel_params`), so neither the rows
//! a call is given nor the thread count changes a single bit: the results are Candle's
//! (`tests/fused.rs` checks it at every shape the model uses, on pools of 1 to 3 threads), and
//! a run trains to the same numbers on one thread or two (`tests/training.rs`). A sum is one
//! addition per element either way.

use candle_core::{bail, CpuStorage, CustomOp2, Layout, Shape, Tensor, WithDType};
use std::ops::Add;

/// Where a forward pass's products run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Split {
    /// A batch's matrices, or one matrix's rows in blocks, over the pool's threads: one pass
    /// at a time.
    Rows,
    /// On the calling thread: the caller runs several passes at once.
    Here,
}

impl Split {
    /// `a b` for matrices or batches of them (the leading dimensions), where `self` says.
    pub fn matmul(self, a: &Tensor, b: &Tensor) -> candle_core::Result<Tensor> {
        a.apply_op2_no_bwd(
            b,
            &Op::MatMul {
                rows_over_pool: self == Split::Rows,
            },
        )
    }

    /// Two independent products `(a1 b1, a2 b2)`: with [`Split::Rows`] side by side, their
    /// row blocks shared out among the pool's threads as each comes free (the two are equal in
    /// arithmetic, not in time: one operand may be read through a transpose); with
    /// [`Split::Here`] one after the other on the calling thread.
    pub fn matmul_pair(
        self,
        (a1, b1): (&Tensor, &Tensor),
        (a2, b2): (&Tensor, &Tensor),
    ) -> candle_core::Result<(Tensor, Tensor)> {
        match self {
            Split::Rows => {
                let (x, y) = rayon::join(|| self.matmul(a1, b1), || self.matmul(a2, b2));
                Ok((x?, y?))
            }
            Split::Here => Ok((self.matmul(a1, b1)?, self.matmul(a2, b2)?)),
        }
    }
}

/// `a b` for matrices or batches of them (the leading dimensions, equal in both) on the CPU
/// (f32 or f64, any strides), on the calling thread; the result is contiguous.
pub fn matmul(a: &Tensor, b: &Tensor) -> candle_core::Result<Tensor> {
    Split::Here.matmul(a, b)
}

/// [`Split::Rows`] cuts a product into one block of rows per thread, each a multiple of the
/// widest f32 kernel's 64 rows so that no block but the last ends in a partial tile. (Blocks of
/// 64 rows, four to a 256-row product, were no faster at the `small` preset: each packs the
/// right operand again.)
const ROW_BLOCK: usize = 64;

/// The module's operations as one Candle op on two operands.
enum Op {
    MatMul { rows_over_pool: bool },
    Add,
}

impl Op {
    fn run<T: WithDType + Add<Output = T>>(
        &self,
        a: &[T],
        la: &Layout,
        b: &[T],
        lb: &Layout,
    ) -> candle_core::Result<(Vec<T>, Shape)> {
        match *self {
            Op::MatMul { rows_over_pool } => product(a, la, b, lb, rows_over_pool),
            Op::Add => Ok((sum(a, la, b, lb)?, la.shape().clone())),
        }
    }
}

impl CustomOp2 for Op {
    fn name(&self) -> &'static str {
        match self {
            Op::MatMul { .. } => "serial-matmul",
            Op::Add => "serial-add",
        }
    }
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        match (s1, s2) {
            (CpuStorage::F32(a), CpuStorage::F32(b)) => {
                let (v, s) = self.run(a, l1, b, l2)?;
                Ok((CpuStorage::F32(v), s))
            }
            (CpuStorage::F64(a), CpuStorage::F64(b)) => {
                let (v, s) = self.run(a, l1, b, l2)?;
                Ok((CpuStorage::F64(v), s))
            }
            _ => bail!(
                "{}: only f32 and f64 operands of one type are supported",
                self.name()
            ),
        }
    }
}

fn product<T: WithDType>(
    a: &[T],
    la: &Layout,
    b: &[T],
    lb: &Layout,
    rows_over_pool: bool,
) -> candle_core::Result<(Vec<T>, Shape)> {
    let (da, db) = (la.dims(), lb.dims());
    let rank = da.len();
    if rank < 2 || db.len() != rank || da[..rank - 2] != db[..rank - 2] {
        bail!("serial-matmul: operands {da:?} and {db:?} are not matrices with the same batch");
    }
    let (m, k, k2, n) = (da[rank - 2], da[rank - 1], db[rank - 2], db[rank - 1]);
    if k != k2 {
        bail!("serial-matmul: inner sizes {k} and {k2} differ");
    }
    let batch_dims = &da[..rank - 2];
    let batches: usize = batch_dims.iter().product();
    let (sa, sb) = (la.stride(), lb.stride());
    let (a, b) = (&a[la.start_offset()..], &b[lb.start_offset()..]);
    // Where batch `i` (row-major over the batch dimensions) starts in an operand.
    let offset = |strides: &[usize], mut i: usize| {
        let mut at = 0;
        for (d, &size) in batch_dims.iter().enumerate().rev() {
            at += (i % size) * strides[d];
            i /= size;
        }
        at
    };
    // The last element each operand's strides reach must lie in its buffer: gemm reads through
    // raw pointers.
    let reach = |s: &[usize], rows: usize, cols: usize| {
        offset(s, batches.saturating_sub(1))
            + rows.saturating_sub(1) * s[rank - 2]
            + cols.saturating_sub(1) * s[rank - 1]
    };
    let mut shape = batch_dims.to_vec();
    shape.extend([m, n]);
    let mut out: Vec<T> = Vec::with_capacity(batches * m * n);
    if batches * m * n * k > 0 && (reach(sa, m, k) >= a.len() || reach(sb, k, n) >= b.len()) {
        bail!("serial-matmul: an operand's strides reach past its storage");
    }
    if batches * m * n > 0 && k == 0 {
        out.resize(batches * m * n, T::zero());
        return Ok((out, Shape::from(shape)));
    }
    let (a_rs, a_cs, b_rs, b_cs) = (sa[rank - 2], sa[rank - 1], sb[rank - 2], sb[rank - 1]);
    let (out_at, a_at, b_at) = (
        out.as_mut_ptr() as usize,
        a.as_ptr() as usize,
        b.as_ptr() as usize,
    );
    // Rows `r0..r1` of batch `i`'s product into the same rows of its block of `out`.
    let rows = |i: usize, r0: usize, r1: usize| {
        // SAFETY: `out` has capacity for batches x m x n elements; batch i of `a` is m x k and
        // of `b` k x n with the strides of their layouts, checked above to stay inside their
        // slices, which live for the call and do not alias `out`; rows r0..r1 of `a` start r0
        // row strides in. Calls write disjoint rows of `out`. The arguments are Candle's
        // `MatMul` call (alpha 0, beta 1) with no splitting inside.
        unsafe {
            gemm::gemm(
                r1 - r0,
                n,
                k,
                (out_at as *mut T).add((i * m + r0) * n),
                1,
                n as isize,
                false,
                (a_at as *const T).add(offset(sa, i) + r0 * a_rs),
                a_cs as isize,
                a_rs as isize,
                (b_at as *const T).add(offset(sb, i)),
                b_cs as isize,
                b_rs as isize,
                T::zero(),
                T::one(),
                false,
                false,
                false,
                gemm::Parallelism::None,
            )
        }
    };
    let threads = rayon::current_num_threads();
    let parallel = rows_over_pool && threads > 1;
    if parallel && batches > 1 {
        use rayon::prelude::*;
        (0..batches).into_par_iter().for_each(|i| rows(i, 0, m));
    } else if parallel && m >= 2 * ROW_BLOCK {
        use rayon::prelude::*;
        let block = m.div_ceil(threads).next_multiple_of(ROW_BLOCK);
        (0..m.div_ceil(block))
            .into_par_iter()
            .for_each(|j| rows(0, j * block, ((j + 1) * block).min(m)));
    } else {
        (0..batches).for_each(|i| rows(i, 0, m));
    }
    // SAFETY: with `read_dst = false` gemm reads none of `out` and writes every element of the
    // rows it is given, and the calls cover every row of every batch, so all elements are
    // initialized.
    unsafe { out.set_len(batches * m * n) };
    Ok((out, Shape::from(shape)))
}

/// `a + b` for two contiguous tensors of one shape on the CPU (f32 or f64), on the calling
/// thread.
pub fn add(a: &Tensor, b: &Tensor) -> candle_core::Result<Tensor> {
    a.apply_op2_no_bwd(b, &Op::Add)
}

fn sum<T: WithDType + Add<Output = T>>(
    a: &[T],
    la: &Layout,
    b: &[T],
    lb: &Layout,
) -> candle_core::Result<Vec<T>> {
    let (Some((a0, a1)), Some((b0, b1))) = (la.contiguous_offsets(), lb.contiguous_offsets())
    else {
        bail!("serial-add: operands must be contiguous");
    };
    if la.dims() != lb.dims() {
        bail!(
            "serial-add: shapes {:?} and {:?} differ",
            la.dims(),
            lb.dims()
        );
    }
    Ok(a[a0..a1]
        .iter()
        .zip(&b[b0..b1])
        .map(|(&x, &y)| x + y)
        .collect())
}
