//! Each bound's assumption class as a search problem, with its closed-form worst case where
//! one is known. Every class is two-dimensional quadratic tasks with spectra in a stated
//! interval (rotations free, minima and points free): the smallest class on which each claim's
//! worst case is attained or, for Eq. 78, searched.

use super::search::{bounded, spd2, ClosedForm, Problem, QuadInstance};
use crate::claims::common::stationary_point;
use crate::claims::{controls, eq4, thm_2_3, thm_3_1, thm_3_2_steps, thm_8_1, thm_8_3};
use crate::error::Result;
use crate::report::tightness::Sharpness;
use nalgebra::{DMatrix, DVector};
use std::f64::consts::PI;

/// The spectrum interval of the searched classes (the ratios below are invariant under scaling
/// the Hessians, so only `lambda_max / lambda_min = 10` matters).
pub const SPECTRUM: (f64, f64) = (0.1, 1.0);

/// `count` quadratic tasks from `z`: per task two eigenvalues in [`SPECTRUM`], an angle and a
/// minimizer (5 numbers each).
fn tasks_from(z: &[f64], count: usize) -> (Vec<Vec<Vec<f64>>>, Vec<Vec<f64>>) {
    let (lo, hi) = SPECTRUM;
    let mut hessians = Vec::new();
    let mut minima = Vec::new();
    for t in 0..count {
        let w = &z[5 * t..5 * t + 5];
        let h = spd2(bounded(w[0], lo, hi), bounded(w[1], lo, hi), w[2]);
        hessians.push(QuadInstance::rows(&h));
        minima.push(vec![w[3], w[4]]);
    }
    (hessians, minima)
}

fn instance(
    hessians: Vec<Vec<Vec<f64>>>,
    minima: Vec<Vec<f64>>,
    point: Vec<f64>,
    other: Vec<f64>,
    gamma: f64,
) -> QuadInstance {
    QuadInstance {
        hessians,
        minima,
        point,
        other,
        gamma,
    }
}

/// One quadratic task and a point (7 numbers): the class of Eq. 4 and of the descent lemma.
fn one_task_and_point(z: &[f64]) -> QuadInstance {
    let (h, m) = tasks_from(z, 1);
    instance(h, m, vec![z[5], z[6]], vec![], 0.0)
}

/// `diag(1, 0.1)` with its minimizer at 0, evaluated at the top eigenvector `e_1`: where Eq. 4
/// and the descent lemma are attained.
fn top_eigenvector_instance() -> QuadInstance {
    instance(
        vec![diag(1.0, 0.1)],
        vec![vec![0.0, 0.0]],
        vec![1.0, 0.0],
        vec![],
        0.0,
    )
}

fn diag(a: f64, b: f64) -> Vec<Vec<f64>> {
    vec![vec![a, 0.0], vec![0.0, b]]
}

/// Eq. 4: `L_T(x) - L_T(x_T*) <= 1/2 ||x - x_T*||^2 max_segment ||H||`.
pub struct Eq4;

impl Problem for Eq4 {
    fn claim(&self) -> &'static str {
        eq4::EQ_4.id
    }
    fn name(&self) -> String {
        "Eq. 4 on 2-D quadratics, spectra in [0.1, 1]".into()
    }
    fn key(&self) -> String {
        "eq-4".into()
    }
    fn dim(&self) -> usize {
        7
    }
    fn decode(&self, z: &[f64]) -> Result<QuadInstance> {
        Ok(one_task_and_point(z))
    }
    fn ratio(&self, i: &QuadInstance) -> Result<f64> {
        let s = eq4::check(&i.tasks()?[0], &i.point())?;
        Ok(s.measured / s.claimed)
    }
    fn closed_form(&self) -> Option<ClosedForm> {
        Some(ClosedForm {
            instance: top_eigenvector_instance(),
            sharp: 1.0,
            sharpness: Sharpness::Proven,
            attained_at: "x - x_T* along a top eigenvector of a quadratic (Taylor's remainder is exact there; the bound holds by Taylor's theorem, so 1 is the supremum)".into(),
        })
    }
}

/// Thm 3.1's two inequalities at the exact stationary point of K quadratic tasks.
pub struct Thm31 {
    pub k: usize,
    /// The second inequality (`thm-3.1-cos`) instead of the first.
    pub cosine: bool,
}

impl Problem for Thm31 {
    fn claim(&self) -> &'static str {
        if self.cosine {
            thm_3_1::THM_3_1_COS.id
        } else {
            thm_3_1::THM_3_1_DOT.id
        }
    }
    fn name(&self) -> String {
        format!(
            "{} inequality of Eq. 7, K = {}, 2-D quadratics, spectra in [0.1, 1]",
            if self.cosine { "second" } else { "first" },
            self.k
        )
    }
    fn key(&self) -> String {
        format!("{}-k{}", self.claim(), self.k)
    }
    fn dim(&self) -> usize {
        5 * self.k
    }
    fn decode(&self, z: &[f64]) -> Result<QuadInstance> {
        let (h, m) = tasks_from(z, self.k);
        let mut i = instance(h, m, vec![], vec![], 0.0);
        i.point = stationary_point(&i.tasks()?)?.as_slice().to_vec();
        Ok(i)
    }
    fn ratio(&self, i: &QuadInstance) -> Result<f64> {
        let s = thm_3_1::check(&i.tasks()?, &i.point())?;
        Ok(if self.cosine {
            s.dot_bound / s.cos_bound
        } else {
            s.closeness / s.dot_bound
        })
    }
    fn closed_form(&self) -> Option<ClosedForm> {
        // K isotropic tasks of curvature 1 with minima on a regular K-gon around 0: the
        // stationary point is 0, every gradient has the same norm and the normalized gradients
        // sum to zero.
        let k = self.k;
        let minima: Vec<Vec<f64>> = (0..k)
            .map(|j| {
                let a = 2.0 * PI * j as f64 / k as f64;
                vec![a.cos(), a.sin()]
            })
            .collect();
        Some(ClosedForm {
            instance: instance(vec![diag(1.0, 1.0); k], minima, vec![0.0, 0.0], vec![], 0.0),
            sharp: if self.cosine { 1.0 / k as f64 } else { 1.0 },
            // K = 2: stationarity forces g_1 = -g_2, so the ratio is 1/2 on every instance.
            // K > 2: attained; that nothing exceeds 1/K is the search's finding, not a proof.
            sharpness: if !self.cosine || k == 2 {
                Sharpness::Proven
            } else {
                Sharpness::Attained
            },
            attained_at: if self.cosine {
                format!("equal gradient norms whose normalized gradients sum to zero (K isotropic tasks with minima on a regular K-gon): at stationarity the ratio is sum ||g||^2 / (G^2 (K^2 - ||sum ghat||^2)), which is 1/K = {:.4} there", 1.0 / k as f64)
            } else {
                "isotropic tasks of equal curvature (the mean value step is exact and lambda is their curvature)".into()
            },
        })
    }
}

/// Thm 8.1: SGD on two quadratic tasks with a common minimizer, `mu = 0.1`, `L = 1`, at a fixed
/// step `gamma`, `T` steps, from a unit `x_0 - x*`.
pub struct Thm81 {
    pub gamma: f64,
    pub steps: usize,
}

impl Thm81 {
    const MU: f64 = 0.1;
    const L: f64 = 1.0;
    /// The step as a share of the largest allowed, `2/(L+mu)`.
    pub fn share(&self) -> f64 {
        self.gamma * (Self::L + Self::MU) / 2.0
    }
}

impl Problem for Thm81 {
    fn claim(&self) -> &'static str {
        thm_8_1::THM_8_1.id
    }
    fn name(&self) -> String {
        format!(
            "Eq. 15, T = {}, gamma = {:.3} x 2/(L+mu), two 2-D quadratics with a common minimizer, mu = 0.1, L = 1",
            self.steps,
            self.share()
        )
    }
    fn key(&self) -> String {
        format!("thm-8.1-t{}-share{:.3}", self.steps, self.share())
    }
    fn dim(&self) -> usize {
        // Two tasks of (two eigenvalues, an angle), and the angle of x_0 - x*.
        7
    }
    fn decode(&self, z: &[f64]) -> Result<QuadInstance> {
        let h = (0..2)
            .map(|t| {
                let w = &z[3 * t..3 * t + 3];
                QuadInstance::rows(&spd2(
                    bounded(w[0], Self::MU, Self::L),
                    bounded(w[1], Self::MU, Self::L),
                    w[2],
                ))
            })
            .collect();
        Ok(instance(
            h,
            vec![vec![0.0, 0.0]; 2],
            vec![z[6].cos(), z[6].sin()],
            vec![],
            self.gamma,
        ))
    }
    fn ratio(&self, i: &QuadInstance) -> Result<f64> {
        let e0 = i.point();
        let measured =
            thm_8_1::exact_quadratic(&i.tasks()?, &DVector::zeros(2), &e0, i.gamma, self.steps)?;
        Ok(measured / thm_8_1::bound(Self::MU, Self::L, i.gamma, self.steps, e0.norm_squared()))
    }
    fn closed_form(&self) -> Option<ClosedForm> {
        let (mu, l, g) = (Self::MU, Self::L, self.gamma);
        let along_mu = (1.0 - g * mu).abs() >= (1.0 - g * l).abs();
        let sharp =
            thm_8_1::sharp_rate(mu, l, g, self.steps) / thm_8_1::bound(mu, l, g, self.steps, 1.0);
        Some(ClosedForm {
            instance: instance(
                vec![diag(mu, l); 2],
                vec![vec![0.0, 0.0]; 2],
                if along_mu { vec![1.0, 0.0] } else { vec![0.0, 1.0] },
                vec![],
                g,
            ),
            sharp,
            sharpness: Sharpness::Proven,
            attained_at: format!(
                "gradient descent on diag(mu, L) from x_0 - x* along the {} eigenvector: the tight rate max((1 - gamma mu)^2, (1 - gamma L)^2)^T over Eq. 15's factor^T; equal only at gamma = 2/(L+mu)",
                if along_mu { "mu" } else { "L" }
            ),
        })
    }
}

/// The descent lemma (control): one step of size `1/L` decreases an L-smooth `f` by at least
/// `factor ||grad f||^2 / (2L)`; `factor = 2` is the deliberately wrong constant.
pub struct Descent {
    pub factor: f64,
}

impl Problem for Descent {
    fn claim(&self) -> &'static str {
        if self.factor == 1.0 {
            controls::CTL_DESCENT.id
        } else {
            controls::CTL_DESCENT_WRONG_CONSTANT.id
        }
    }
    fn name(&self) -> String {
        format!(
            "decrease >= {} ||g||^2 / (2L) on 2-D quadratics, spectra in [0.1, 1]",
            self.factor
        )
    }
    fn key(&self) -> String {
        self.claim().into()
    }
    fn dim(&self) -> usize {
        7
    }
    fn decode(&self, z: &[f64]) -> Result<QuadInstance> {
        Ok(one_task_and_point(z))
    }
    fn ratio(&self, i: &QuadInstance) -> Result<f64> {
        let (claimed, decrease) = controls::descent_sides(&i.tasks()?[0], &i.point(), self.factor)?;
        Ok(claimed / decrease)
    }
    fn closed_form(&self) -> Option<ClosedForm> {
        Some(ClosedForm {
            instance: top_eigenvector_instance(),
            sharp: self.factor,
            sharpness: Sharpness::Proven,
            attained_at: "a gradient along the top eigenvector (the step 1/L lands on the minimizer along it); the decrease is ||g||^2/(2L) exactly".into(),
        })
    }
}

/// The ball of Thm 3.2's proof: `B(x, K gamma)` must not hold a minimizer (`G_min > 0`).
fn ball_instance(z: &[f64], k: usize, gamma_max: f64) -> QuadInstance {
    let (h, m) = tasks_from(z, k);
    let x = vec![z[5 * k], z[5 * k + 1]];
    let gamma = bounded(z[5 * k + 2], 1e-3, gamma_max);
    instance(h, m, x, vec![], gamma)
}

/// Eq. 64: `||J_i(y)|| <= L_1 = L / G_min` on the ball `B(x, K gamma)`.
pub struct Eq64 {
    pub k: usize,
}

impl Problem for Eq64 {
    fn claim(&self) -> &'static str {
        thm_3_2_steps::THM_3_2_STEPS.id
    }
    fn name(&self) -> String {
        format!(
            "Eq. 64, K = {}, 2-D quadratics, spectra in [0.1, 1], any point of the ball",
            self.k
        )
    }
    fn key(&self) -> String {
        format!("eq-64-k{}", self.k)
    }
    fn dim(&self) -> usize {
        // Tasks, x, gamma, then y: a radius share and an angle; the task whose J is measured is
        // the first (the tasks are exchangeable).
        5 * self.k + 5
    }
    fn decode(&self, z: &[f64]) -> Result<QuadInstance> {
        let mut i = ball_instance(z, self.k, 0.5);
        let radius = self.k as f64 * i.gamma * bounded(z[5 * self.k + 3], 0.0, 1.0);
        let a = z[5 * self.k + 4];
        i.other = vec![i.point[0] + radius * a.cos(), i.point[1] + radius * a.sin()];
        Ok(i)
    }
    fn ratio(&self, i: &QuadInstance) -> Result<f64> {
        thm_3_2_steps::eq64_ratio(&i.tasks()?, &i.point(), i.gamma, 0, &i.other())
    }
    fn typical_reading(&self) -> Option<&'static str> {
        Some("Eq. 64")
    }
    fn closed_form(&self) -> Option<ClosedForm> {
        // H = diag(L, mu) for every task, x - x* along the mu-eigenvector at distance 1, y the
        // ball's point nearest the minimizer: ||g(y)|| = mu (1 - K gamma) = G_min and
        // (I - ghat ghat^T) H = diag(L, 0).
        let (k, gamma) = (self.k, 0.05);
        let y = 1.0 - k as f64 * gamma;
        Some(ClosedForm {
            instance: instance(
                vec![diag(1.0, 0.1); k],
                vec![vec![0.0, 0.0]; k],
                vec![0.0, 1.0],
                vec![0.0, y],
                gamma,
            ),
            sharp: 1.0,
            sharpness: Sharpness::Proven,
            attained_at: "x - x* along the smallest-curvature eigenvector, y the ball's point nearest the minimizer (the segment along an eigenvector): ||g(y)|| = G_min and (I - ghat ghat^T) H has norm L".into(),
        })
    }
}

/// Eq. 77-78 (Thm 3.2's cubic remainder, per index sequence):
/// `||pg - gamma sum_m ghat_{s_m} + gamma^2 sum_{l<m} J ghat|| <= (L_2 + L_1^2)/6 K^3 gamma^3`.
pub struct Eq78 {
    pub k: usize,
}

impl Problem for Eq78 {
    fn claim(&self) -> &'static str {
        thm_3_2_steps::THM_3_2_STEPS.id
    }
    fn name(&self) -> String {
        format!(
            "Eq. 77-78 (Thm 3.2's cubic remainder bound, worst index sequence), K = {}, 2-D quadratics, spectra in [0.1, 1]",
            self.k
        )
    }
    fn key(&self) -> String {
        format!("eq-78-k{}", self.k)
    }
    fn dim(&self) -> usize {
        5 * self.k + 3
    }
    fn decode(&self, z: &[f64]) -> Result<QuadInstance> {
        Ok(ball_instance(z, self.k, 0.5))
    }
    fn ratio(&self, i: &QuadInstance) -> Result<f64> {
        thm_3_2_steps::eq78_ratio(&i.tasks()?, &i.point(), i.gamma)
    }
    fn typical_reading(&self) -> Option<&'static str> {
        Some("Eq. 77-78")
    }
}

/// Thm 8.3's corrected form: its remainder constant
/// `C = ||E[pg] - (Eq. 81 + derived third-order term)|| / ((K gamma)^4 L_1^3)` at gamma = 0.01
/// (`thm_8_3::check`), maximized over K quadratic tasks and the point. A measured constant, not
/// a ratio to a claimed bound: no explicit bound is derived for the corrected form.
pub struct Thm83Remainder {
    pub k: usize,
}

impl Problem for Thm83Remainder {
    fn claim(&self) -> &'static str {
        thm_8_3::THM_8_3.id
    }
    fn name(&self) -> String {
        format!(
            "corrected form's remainder constant C = residual / ((K gamma)^4 L_1^3) at gamma = 0.01 (a measured constant, no bound claimed), K = {}, 2-D quadratics, spectra in [0.1, 1]",
            self.k
        )
    }
    fn key(&self) -> String {
        format!("thm-8.3-remainder-k{}", self.k)
    }
    fn dim(&self) -> usize {
        5 * self.k + 2
    }
    fn decode(&self, z: &[f64]) -> Result<QuadInstance> {
        let (h, m) = tasks_from(z, self.k);
        let x = vec![z[5 * self.k], z[5 * self.k + 1]];
        Ok(instance(h, m, x, vec![], 0.01))
    }
    fn ratio(&self, i: &QuadInstance) -> Result<f64> {
        Ok(thm_8_3::check(&i.tasks()?, &i.point(), &[i.gamma])?.remainder_constant)
    }
    fn is_bound(&self) -> bool {
        false
    }
}

/// Thm 2.3 on quadratic task laws: the Hessian drawn uniformly from two matrices with spectra
/// in `[0.5, 2]` (the anisotropic family's interval, `kappa = 4`), minima with covariance
/// `I` (any law), K = 2, d = 2; the gap is exact ([`thm_2_3::quadratic_law_gap`]).
pub struct Thm23Law;

impl Thm23Law {
    const SPECTRUM: (f64, f64) = (0.5, 2.0);
    const K: usize = 2;
}

impl Problem for Thm23Law {
    fn claim(&self) -> &'static str {
        thm_2_3::THM_2_3.id
    }
    fn name(&self) -> String {
        "Eq. 6 on quadratic laws: K = 2, d = 2, the Hessian uniform over two matrices with spectra in [0.5, 2] (kappa = 4), minima of covariance I".into()
    }
    fn key(&self) -> String {
        "thm-2.3-law".into()
    }
    fn dim(&self) -> usize {
        6
    }
    fn decode(&self, z: &[f64]) -> Result<QuadInstance> {
        let (lo, hi) = Self::SPECTRUM;
        let h = (0..2)
            .map(|t| {
                let w = &z[3 * t..3 * t + 3];
                QuadInstance::rows(&spd2(bounded(w[0], lo, hi), bounded(w[1], lo, hi), w[2]))
            })
            .collect();
        Ok(instance(h, vec![], vec![], vec![], 0.0))
    }
    fn ratio(&self, i: &QuadInstance) -> Result<f64> {
        let support: Vec<DMatrix<f64>> = (0..i.hessians.len()).map(|k| i.hessian(k)).collect();
        let d = 2.0;
        let gap = thm_2_3::quadratic_law_gap(&support, Self::K, 1.0)?;
        let (lo, hi) = Self::SPECTRUM;
        Ok(gap / thm_2_3::eq6_bound(lo, hi, Self::K, d))
    }
    fn closed_form(&self) -> Option<ClosedForm> {
        let (lo, hi) = Self::SPECTRUM;
        let kappa = hi / lo;
        Some(ClosedForm {
            instance: instance(vec![diag(hi, hi); 2], vec![], vec![], vec![], 0.0),
            sharp: 2.0 / (kappa * kappa + 1.0),
            sharpness: Sharpness::Attained,
            attained_at: format!(
                "isotropic tasks at lambda_max: the gap is lambda_max sigma^2 / K exactly, so gap / bound = 2/(kappa^2 + 1) = {:.4} at kappa = {kappa}: the kappa^2 factor is slack",
                2.0 / (kappa * kappa + 1.0)
            ),
        })
    }
}

/// Every searched problem, in the order of the report.
pub fn all() -> Vec<Box<dyn Problem>> {
    let mut v: Vec<Box<dyn Problem>> = vec![Box::new(Eq4), Box::new(Thm23Law)];
    for k in [2, 3] {
        v.push(Box::new(Thm31 { k, cosine: false }));
    }
    for k in [2, 3, 4] {
        v.push(Box::new(Thm31 { k, cosine: true }));
    }
    for k in [2, 3] {
        v.push(Box::new(Eq64 { k }));
    }
    for k in [2, 3, 4] {
        v.push(Box::new(Eq78 { k }));
    }
    for k in [2, 3] {
        v.push(Box::new(Thm83Remainder { k }));
    }
    let (mu, l) = (Thm81::MU, Thm81::L);
    for share in [0.25, 0.5, 0.75, 1.0] {
        for steps in [1, 2] {
            v.push(Box::new(Thm81 {
                gamma: share * 2.0 / (l + mu),
                steps,
            }));
        }
    }
    v.push(Box::new(Descent { factor: 1.0 }));
    v.push(Box::new(Descent { factor: 2.0 }));
    v
}
