//! Dense matrix products for the batched gradient oracles ([`crate::tasks::Task::gradients`]).
//!
//! nalgebra's own product runs the `matrixmultiply` kernels on one thread; `gemm` (already in the
//! build for Candle) has AVX-512 kernels chosen at run time, 1.18x faster at the exact engine's
//! 100 x 100 times 100 x 256 blocks on this machine, and splits large products over rayon's
//! threads. Both work on nalgebra's column-major storage, so no copies are made.
//! `expectation_bench` measures both kernels and the engine against NumPy's dgemm.

use crate::error::{Error, Result};
use gemm::Parallelism;
use nalgebra::DMatrix;

/// Products below this many floating-point operations run on one thread: splitting them costs
/// more than it saves (about 0.1 ms of rayon hand-off against 1 ms of work at 40 GFLOP/s).
const PARALLEL_FLOPS: usize = 1 << 22;

/// `a * b`.
pub fn matmul(a: &DMatrix<f64>, b: &DMatrix<f64>) -> Result<DMatrix<f64>> {
    product(a, false, b)
}

/// `a^T * b`, without forming `a^T`.
pub fn matmul_tn(a: &DMatrix<f64>, b: &DMatrix<f64>) -> Result<DMatrix<f64>> {
    product(a, true, b)
}

/// Tile edge of [`symmetric_matmul`]: a 128 x 128 tile (128 KB) stays in a core's L2 between
/// its two products.
const SYMMETRIC_TILE: usize = 128;

/// `h * b` for a symmetric `h`, reading only its upper triangle of tiles.
///
/// At d = 1000 a product with a narrow block (the exact engine's first levels) streams `h`
/// from memory for little arithmetic. Each off-diagonal tile `H_ij` (i < j) is used twice,
/// back to back, for `H_ij B_j` and `H_ij^T B_i`, so it is read from memory once: about half of
/// `h`'s traffic (`expectation_bench` prints both kernels). Single-threaded; a product large
/// enough to split over threads, outside a rayon task, goes to [`matmul`], as does one with
/// `h` under two tiles or `b` a single column (gemm's matrix-vector path is faster there).
/// Symmetry is the caller's guarantee: only the tiles on and above the diagonal are read (the
/// diagonal ones whole). The sums run in a different order from [`matmul`]'s, so the two agree
/// to float64 rounding, not bit for bit.
pub fn symmetric_matmul(h: &DMatrix<f64>, b: &DMatrix<f64>) -> Result<DMatrix<f64>> {
    let (d, w) = (h.nrows(), b.ncols());
    if h.ncols() != d {
        return Err(Error::DimensionMismatch {
            expected: d,
            got: h.ncols(),
        });
    }
    if b.nrows() != d {
        return Err(Error::DimensionMismatch {
            expected: d,
            got: b.nrows(),
        });
    }
    if d < 2 * SYMMETRIC_TILE || w < 2 || matches!(parallelism(d, w, d), Parallelism::Rayon(_)) {
        return matmul(h, b);
    }
    let mut out = DMatrix::<f64>::zeros(d, w);
    let tiles = d.div_ceil(SYMMETRIC_TILE);
    let span = |t: usize| {
        let start = t * SYMMETRIC_TILE;
        (start, SYMMETRIC_TILE.min(d - start))
    };
    let ld = d as isize;
    let (hp, bp, op) = (h.as_ptr(), b.as_ptr(), out.as_mut_ptr());
    // out[rows of `to`] += T b[rows of `from`], for the tile T of `h` whose first element is
    // at `tile`, read as stored or transposed (the same memory, strides swapped).
    let accumulate =
        |tile: *const f64, transposed: bool, to: (usize, usize), from: (usize, usize)| {
            let (cs, rs) = if transposed { (1, ld) } else { (ld, 1) };
            // SAFETY: `h` is d x d, `b` and `out` d x w, all column-major with leading
            // dimension d and alive for the call. `tile` is element (r0, c0) of `h` for a tile
            // of `span` rows r0.. and columns c0.., so the `to.1 x from.1` matrix read with
            // these strides lies inside `h`; row blocks `to` of `out` and `from` of `b` lie
            // inside them. `out` does not alias the inputs and was zeroed, so accumulating
            // into it (`read_dst`) reads initialized values.
            unsafe {
                gemm::gemm(
                    to.1,
                    w,
                    from.1,
                    op.add(to.0),
                    ld,
                    1,
                    true,
                    tile,
                    cs,
                    rs,
                    bp.add(from.0),
                    ld,
                    1,
                    1.0,
                    1.0,
                    false,
                    false,
                    false,
                    Parallelism::None,
                );
            }
        };
    for i in 0..tiles {
        for j in i..tiles {
            let (rows, cols) = (span(i), span(j));
            let tile = hp.wrapping_add(cols.0 * d + rows.0);
            accumulate(tile, false, rows, cols);
            if i != j {
                accumulate(tile, true, cols, rows);
            }
        }
    }
    Ok(out)
}

/// Inside a rayon task the caller already runs products in parallel (the exact engine's
/// blocks): one thread each. Outside, a product worth splitting uses every thread.
fn parallelism(m: usize, n: usize, k: usize) -> Parallelism {
    if 2 * m * n * k >= PARALLEL_FLOPS && rayon::current_thread_index().is_none() {
        Parallelism::Rayon(0)
    } else {
        Parallelism::None
    }
}

fn product(a: &DMatrix<f64>, transpose_a: bool, b: &DMatrix<f64>) -> Result<DMatrix<f64>> {
    let (m, k) = if transpose_a {
        (a.ncols(), a.nrows())
    } else {
        a.shape()
    };
    let n = b.ncols();
    if b.nrows() != k {
        return Err(Error::DimensionMismatch {
            expected: k,
            got: b.nrows(),
        });
    }
    if m == 0 || n == 0 || k == 0 {
        return Ok(DMatrix::zeros(m, n));
    }
    // The product is written into fresh capacity: with `read_dst = false` gemm overwrites every
    // element, so zeroing it first would be a wasted pass (at the exact engine's blocks, the
    // cost of a tenth of the product).
    let mut out: Vec<f64> = Vec::with_capacity(m * n);
    // Column-major: element (i, j) of an r-row matrix sits at i + j r (row stride 1, column
    // stride r); the transpose swaps the strides.
    let (a_rs, a_cs) = if transpose_a {
        (a.nrows() as isize, 1)
    } else {
        (1, a.nrows() as isize)
    };
    let parallelism = parallelism(m, n, k);
    // SAFETY: `out` has capacity for m x n elements, `a` (or its transpose) is m x k and `b`
    // k x n, all column-major and alive for the call, with the strides above; `out` does not
    // alias the inputs. With `read_dst = false` gemm reads none of `out` and writes every one of
    // its m x n elements (through the raw pointer, no reference to them is made before), so
    // they are initialized when its length is set.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            out.as_mut_ptr(),
            m as isize,
            1,
            false,
            a.as_ptr(),
            a_cs,
            a_rs,
            b.as_ptr(),
            k as isize,
            1,
            0.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        );
        out.set_len(m * n);
    }
    Ok(DMatrix::from_vec(m, n, out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::RngExt;

    /// Against nalgebra's product, to float64 rounding of a length-k dot product.
    #[test]
    fn products_match_nalgebra() {
        let mut rng = crate::rng_for(7, "linalg");
        for (m, k, n) in [(1, 1, 1), (3, 5, 2), (100, 100, 37), (64, 300, 129)] {
            let a = DMatrix::<f64>::from_fn(m, k, |_, _| rng.random_range(-1.0..1.0));
            let at = a.transpose();
            let b = DMatrix::<f64>::from_fn(k, n, |_, _| rng.random_range(-1.0..1.0));
            let want = &a * &b;
            let tol = 4.0 * f64::EPSILON * k as f64;
            assert!((matmul(&a, &b).unwrap() - &want).amax() <= tol);
            assert!((matmul_tn(&at, &b).unwrap() - &want).amax() <= tol);
        }
        assert!(matmul(&DMatrix::zeros(2, 3), &DMatrix::zeros(2, 1)).is_err());
    }

    /// Against nalgebra's product, on sizes that take the tiled path (a partial last tile
    /// included) and ones that fall back to `matmul`.
    #[test]
    fn symmetric_products_match_nalgebra() {
        let mut rng = crate::rng_for(8, "linalg-symmetric");
        for (d, w) in [(300, 5), (256, 2), (257, 17), (100, 4), (300, 1)] {
            let a = DMatrix::<f64>::from_fn(d, d, |_, _| rng.random_range(-1.0..1.0));
            let h = (&a + a.transpose()) * 0.5;
            let b = DMatrix::<f64>::from_fn(d, w, |_, _| rng.random_range(-1.0..1.0));
            let want = &h * &b;
            let tol = 4.0 * f64::EPSILON * d as f64;
            assert!((symmetric_matmul(&h, &b).unwrap() - &want).amax() <= tol);
        }
        assert!(symmetric_matmul(&DMatrix::zeros(2, 3), &DMatrix::zeros(3, 1)).is_err());
        assert!(symmetric_matmul(&DMatrix::zeros(3, 3), &DMatrix::zeros(2, 1)).is_err());
    }
}
