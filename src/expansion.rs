//! The terms of the paper's expansions of `E[pg]`, each computed from its own formula with
//! exact derivatives (never from the quantity it approximates).
//!
//! Notation (paper Sec. 11): `g_i = grad L_i(x)`, `ghat_i = g_i / ||g_i||`,
//! `J_i = (1/||g_i||) (I - ghat_i ghat_i^T) H_i`, the Jacobian of `ghat_i` (Eq. 63/68), so the
//! directional derivative of `ghat_i` along `v` is `J_i v`, and the gradient of
//! `S_ij = ghat_i . ghat_j` is `J_i^T ghat_j + J_j^T ghat_i` (chain rule). The paper's Eq. 9 and
//! Eq. 82 write it as `J_i ghat_j + J_j ghat_i`; both are computed here so that a test can tell
//! which one matches finite differences.
//!
//! With `N` sources and `K` inner steps sampled with replacement, expanding Algorithm 1 to
//! second order gives (the proof's Eq. 77 and 81, generalised to `N != K`)
//! `E[pg] = gamma (K/N) sum_i ghat_i - gamma^2 K(K-1)/(2 N^2) sum_{i,j} J_i ghat_j + O(gamma^3)`.
//! Thm 3.2 states, for `N = K`,
//! `E[pg] = gamma sum_i ghat_i - gamma^2 (K-1)/(4K) grad sum_{i != j} S_ij + E_2nd`.

use crate::error::{Error, Result};
use crate::tasks::{Task, TaskConstants};
use nalgebra::{DMatrix, DVector};

/// First and second derivatives of every task at one point.
#[derive(Clone, Debug)]
pub struct Local {
    /// Gradients `g_i`.
    pub g: Vec<DVector<f64>>,
    /// Normalized gradients `ghat_i`.
    pub ghat: Vec<DVector<f64>>,
    /// Hessians `H_i`.
    pub h: Vec<DMatrix<f64>>,
    /// Jacobians `J_i` of the normalized gradients.
    pub j: Vec<DMatrix<f64>>,
}

impl Local {
    /// Derivatives at `x`; an error if some gradient vanishes (the expansions need `G_min > 0`).
    pub fn at<T: Task>(tasks: &[T], x: &DVector<f64>) -> Result<Self> {
        let d = x.len();
        let (mut g, mut ghat, mut h, mut j) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for t in tasks {
            let gi = t.gradient(x)?;
            let n = gi.norm();
            if n == 0.0 || !n.is_finite() {
                return Err(Error::InvalidArgument {
                    name: "x",
                    reason: "a task gradient vanishes; the expansion needs G_min > 0".into(),
                });
            }
            let u = &gi / n;
            let hi = t.hessian(x)?;
            let proj = DMatrix::identity(d, d) - &u * u.transpose();
            j.push(proj * &hi / n);
            g.push(gi);
            ghat.push(u);
            h.push(hi);
        }
        Ok(Self { g, ghat, h, j })
    }

    /// Number of tasks.
    pub fn len(&self) -> usize {
        self.g.len()
    }

    /// Whether there are no tasks.
    pub fn is_empty(&self) -> bool {
        self.g.is_empty()
    }

    /// `sum_i ghat_i`.
    pub fn sum_ghat(&self) -> DVector<f64> {
        self.ghat
            .iter()
            .fold(DVector::zeros(self.dim()), |a, v| a + v)
    }

    fn dim(&self) -> usize {
        self.g.first().map_or(0, |v| v.len())
    }

    /// `sum_{i,j} J_i ghat_j` (Eq. 81's sum, diagonal included).
    pub fn interaction(&self) -> DVector<f64> {
        let s = self.sum_ghat();
        self.j
            .iter()
            .fold(DVector::zeros(self.dim()), |a, ji| a + ji * &s)
    }

    /// The exact `grad S_ij = J_i^T ghat_j + J_j^T ghat_i`.
    pub fn cos_grad(&self, i: usize, j: usize) -> DVector<f64> {
        self.j[i].tr_mul(&self.ghat[j]) + self.j[j].tr_mul(&self.ghat[i])
    }

    /// The paper's Eq. 9 / Eq. 82: `J_i ghat_j + J_j ghat_i`.
    pub fn cos_grad_eq9(&self, i: usize, j: usize) -> DVector<f64> {
        &self.j[i] * &self.ghat[j] + &self.j[j] * &self.ghat[i]
    }

    /// `grad sum_{i != j} S_ij` (exact).
    pub fn sum_cos_grad(&self) -> DVector<f64> {
        let mut out = DVector::zeros(self.dim());
        for i in 0..self.len() {
            for j in 0..self.len() {
                if i != j {
                    out += self.cos_grad(i, j);
                }
            }
        }
        out
    }
}

/// Thm 3.2 as stated (`N = K`): `gamma sum_i ghat_i - gamma^2 (K-1)/(4K) grad sum_{i != j} S_ij`.
pub fn thm32_stated(local: &Local, gamma: f64) -> DVector<f64> {
    let k = local.len() as f64;
    local.sum_ghat() * gamma - local.sum_cos_grad() * (gamma * gamma * (k - 1.0) / (4.0 * k))
}

/// The second-order expansion that follows from Eq. 77 and 81, for `K` steps over `N` sources:
/// `gamma (K/N) sum_i ghat_i - gamma^2 K(K-1)/(2 N^2) sum_{i,j} J_i ghat_j`.
pub fn eq81_expansion(local: &Local, inner_steps: usize, gamma: f64) -> DVector<f64> {
    let (k, n) = (inner_steps as f64, local.len() as f64);
    local.sum_ghat() * (gamma * k / n)
        - local.interaction() * (gamma * gamma * k * (k - 1.0) / (2.0 * n * n))
}

/// The first-order term alone, `gamma (K/N) sum_i ghat_i`.
pub fn first_order(local: &Local, inner_steps: usize, gamma: f64) -> DVector<f64> {
    local.sum_ghat() * (gamma * inner_steps as f64 / local.len() as f64)
}

/// Constants of Thm 3.2 over the ball the inner loop cannot leave, `B(x, K gamma)`:
/// `(G_min, L, rho)` as the minimum / maximum over the tasks.
pub fn thm32_constants<T: Task>(
    tasks: &[T],
    x: &DVector<f64>,
    inner_steps: usize,
    gamma: f64,
) -> (f64, f64, f64) {
    let radius = inner_steps as f64 * gamma;
    tasks
        .iter()
        .fold((f64::INFINITY, 0.0f64, 0.0f64), |(gmin, l, rho), t| {
            let c = TaskConstants::over_ball(t, x, radius);
            (
                gmin.min(c.g_min),
                l.max(c.curvature.lambda_max),
                rho.max(c.curvature.rho),
            )
        })
}

/// The stated bound `(1/6) ((4 L^2 + rho G_min) / G_min^2) K^3 gamma^3` (Eq. 12 / Eq. 85).
pub fn thm32_bound(g_min: f64, l: f64, rho: f64, inner_steps: usize, gamma: f64) -> f64 {
    (4.0 * l * l + rho * g_min) / (6.0 * g_min * g_min)
        * (inner_steps as f64).powi(3)
        * gamma.powi(3)
}

/// Third-derivative information needed by the third-order terms.
pub struct Third<'a, T> {
    tasks: &'a [T],
    x: &'a DVector<f64>,
    local: &'a Local,
}

impl<'a, T: Task> Third<'a, T> {
    /// Binds tasks, point and their first/second derivatives.
    pub fn new(tasks: &'a [T], x: &'a DVector<f64>, local: &'a Local) -> Self {
        Self { tasks, x, local }
    }

    /// The second derivative of `ghat_i` as a symmetric bilinear map, `D^2 ghat_i [u, v]`:
    /// with `n = ||g_i||`, `P = I - ghat ghat^T`, `a_u = H u`, `b = D^3 L_i [u, v]`,
    /// `D^2 ghat [u, v] = (P b - P a_v (ghat.a_u)/n - P a_u (ghat.a_v)/n - ghat (a_v^T P a_u)/n) / n`.
    pub fn d2_ghat(&self, i: usize, u: &DVector<f64>, v: &DVector<f64>) -> Result<DVector<f64>> {
        let l = self.local;
        let n = l.g[i].norm();
        let gh = &l.ghat[i];
        let proj = |w: &DVector<f64>| w - gh * gh.dot(w);
        let (au, av) = (&l.h[i] * u, &l.h[i] * v);
        let b = self.tasks[i].third_contract(self.x, u, v)?;
        let pav = proj(&av);
        let pau = proj(&au);
        Ok((proj(&b)
            - &pav * (gh.dot(&au) / n)
            - &pau * (gh.dot(&av) / n)
            - gh * (av.dot(&pau) / n))
            / n)
    }

    /// The third-order coefficient of `E[pg]` (divided by `gamma^3`) for `K` steps over `N`
    /// sources, derived from Algorithm 1 by expanding the normalized gradient to second order:
    /// `C(K,3)/N^3 Jsum Jsum ghat_sum + 1/2 [K(K-1)/(2N^2) sum_{i,j} D^2 ghat_i[ghat_j, ghat_j]
    ///  + K(K-1)(K-2)/(3N^3) sum_i D^2 ghat_i[ghat_sum, ghat_sum]]`.
    pub fn derived(&self, inner_steps: usize) -> Result<DVector<f64>> {
        let l = self.local;
        let (k, n) = (inner_steps as f64, l.len() as f64);
        let d = self.x.len();
        let s = l.sum_ghat();
        let jsum = l.j.iter().fold(DMatrix::zeros(d, d), |a, m| a + m);
        let mut out = &jsum * (&jsum * &s) * (k * (k - 1.0) * (k - 2.0) / 6.0 / n.powi(3));
        for i in 0..l.len() {
            for j in 0..l.len() {
                out += self.d2_ghat(i, &l.ghat[j], &l.ghat[j])?
                    * (0.5 * k * (k - 1.0) / (2.0 * n * n));
            }
            out += self.d2_ghat(i, &s, &s)? * (0.5 * k * (k - 1.0) * (k - 2.0) / (3.0 * n.powi(3)));
        }
        Ok(out)
    }

    /// Thm 8.3's stated third-order term (divided by `gamma^3`, sign as in `E[pg] = grad J_3rd`):
    /// `(K-1)(2K-1)/(12 K^2) grad sum_{i,j,p} g_i^T H_j g_p
    ///  = (K-1)(2K-1)/(12 K^2) (2 Hsum Hsum gsum + sum_j D^3 L_j [gsum, gsum])`.
    pub fn stated_thm83(&self) -> Result<DVector<f64>> {
        let l = self.local;
        let k = l.len() as f64;
        let d = self.x.len();
        let gsum = l.g.iter().fold(DVector::zeros(d), |a, v| a + v);
        let hsum = l.h.iter().fold(DMatrix::zeros(d, d), |a, m| a + m);
        let mut out = &hsum * (&hsum * &gsum) * 2.0;
        for t in self.tasks {
            out += t.third_contract(self.x, &gsum, &gsum)?;
        }
        Ok(out * ((k - 1.0) * (2.0 * k - 1.0) / (12.0 * k * k)))
    }

    /// The proof's Eq. 106 (divided by `gamma^3`):
    /// `-(K-1)(2K-1)/(12 K^2) sum_{i,j,p} D^3 L_j [ghat_i, ghat_p]`.
    pub fn eq106(&self) -> Result<DVector<f64>> {
        let l = self.local;
        let k = l.len() as f64;
        let s = l.sum_ghat();
        let mut out = DVector::zeros(self.x.len());
        for t in self.tasks {
            out += t.third_contract(self.x, &s, &s)?;
        }
        Ok(out * (-(k - 1.0) * (2.0 * k - 1.0) / (12.0 * k * k)))
    }
}

/// Thm 8.3's stated bound (Eq. 19):
/// `(M_3/24 + M_3 L / (8 G_min)) K^4 gamma^4 + M_3 L^2 / (40 G_min^2) K^5 gamma^5`.
pub fn thm83_bound(g_min: f64, l: f64, m3: f64, inner_steps: usize, gamma: f64) -> f64 {
    let k = inner_steps as f64;
    (m3 / 24.0 + m3 * l / (8.0 * g_min)) * k.powi(4) * gamma.powi(4)
        + m3 * l * l / (40.0 * g_min * g_min) * k.powi(5) * gamma.powi(5)
}
