//! Two-sided pins on every stated bound formula and every family constant: the code's value
//! equals a value worked by hand at a small instance (bounds), and each constant is attained at
//! a known point (constants). A one-sided check with slack cannot see a bound made ten times too
//! small or a constant inflated; these can.
//!
//! Tolerances: the hand values are exact rationals or closed forms; the code evaluates them with
//! a few float64 operations, so 1e-14 relative covers rounding.

use nalgebra::{dvector, DMatrix, DVector};
use nexus_lab::claims::eq4;
use nexus_lab::claims::thm_2_2::Thm22Params;
use nexus_lab::claims::thm_2_3::eq6_bound;
use nexus_lab::claims::thm_3_1;
use nexus_lab::claims::thm_8_1;
use nexus_lab::expansion::{thm32_bound, thm83_bound};
use nexus_lab::rng_for;
use nexus_lab::tasks::{
    Family, IsotropicQuadratic, LogisticRegression, MinimaLaw, Quadratic, SoftplusSeparable, Task,
    TaskDistribution,
};

const REL: f64 = 1e-14;

fn assert_rel(code: f64, hand: f64, what: &str) {
    assert!(
        (code - hand).abs() <= REL * hand.abs(),
        "{what}: code {code} vs hand {hand}"
    );
}

#[test]
fn thm_3_2_bound_eq_12() {
    // (1/6) (4 L^2 + rho G) / G^2 K^3 gamma^3 at G = 2, L = 3, rho = 4, K = 2, gamma = 0.1:
    // (36 + 8) / 24 * 8 * 1e-3 = 11/750.
    assert_rel(thm32_bound(2.0, 3.0, 4.0, 2, 0.1), 11.0 / 750.0, "Eq. 12");
}

#[test]
fn thm_8_3_bound_eq_19() {
    // (M3/24 + M3 L/(8G)) K^4 g^4 + M3 L^2/(40 G^2) K^5 g^5 at G = 2, L = 3, M3 = 5, K = 2,
    // gamma = 0.1: (5/24 + 15/16) 16e-4 + (45/160) 32e-5 = 0.0018333.. + 0.00009 = 577/300000.
    assert_rel(
        thm83_bound(2.0, 3.0, 5.0, 2, 0.1),
        577.0 / 300_000.0,
        "Eq. 19",
    );
}

#[test]
fn thm_8_1_bound_eq_15() {
    // (1 - 2 gamma mu L/(L + mu))^T e0 at mu = 0.5, L = 2, gamma = 0.4, T = 3, e0 = 2:
    // (1 - 0.32)^3 * 2 = 0.628864.
    assert_rel(thm_8_1::bound(0.5, 2.0, 0.4, 3, 2.0), 0.628_864, "Eq. 15");
}

#[test]
fn thm_2_2_right_sides() {
    let p = Thm22Params {
        a: 2.0,
        sigma: 0.5,
        d: 3,
        k: 4,
        law: MinimaLaw::Gaussian,
    };
    assert_rel(p.claimed_as_written(), 0.125, "a sigma^2 / K");
    assert_rel(p.claimed_trace(), 0.375, "a d sigma^2 / K");
}

#[test]
fn thm_2_3_bound_eq_6() {
    // lambda_max ((lambda_max/lambda_min)^2 + 1)/(2K) sigma^2 at 1, 2, K = 4, sigma^2 = 3:
    // 2 * 5 / 8 * 3 = 3.75.
    assert_rel(eq6_bound(1.0, 2.0, 4, 3.0), 3.75, "Eq. 6");
}

#[test]
fn eq_4_sides() {
    // Isotropic a = 2 at distance^2 2 from the minimizer: gap 2, bound 1/2 * 2 * 2 = 2.
    let iso = IsotropicQuadratic::new(2.0, dvector![0.0, 0.0], 0.0).unwrap();
    let s = eq4::check(&iso, &dvector![1.0, 1.0]).unwrap();
    assert_rel(s.measured, 2.0, "Eq. 4 gap");
    assert_rel(s.claimed, 2.0, "Eq. 4 bound");
    // diag(1, 3) at (1, 1): gap (1 + 3)/2 = 2, bound 1/2 * 2 * 3 = 3.
    let h = DMatrix::from_diagonal(&dvector![1.0, 3.0]);
    let q = Quadratic::new(h, dvector![0.0, 0.0], 0.0).unwrap();
    let s = eq4::check(&q, &dvector![1.0, 1.0]).unwrap();
    assert_rel(s.measured, 2.0, "Eq. 4 gap");
    assert_rel(s.claimed, 3.0, "Eq. 4 bound");
}

#[test]
fn thm_3_1_sides() {
    // Unit isotropic tasks with minima (1, 0) and (-1, 0), at x = (0, 1/2): g1 = (-1, 1/2),
    // g2 = (1, 1/2), g1.g2 = -3/4, ||g||^2 = 5/4, S12 = -3/5, lambda = 1, K = 2.
    // closeness 5/4; dot bound -2 g1.g2 / (K lambda^2) = 3/4;
    // cos bound G^2 sum_{i != j}(1 - S_ij) / (K lambda^2) = 5/4 * 2 * 8/5 / 2 = 2.
    let tasks = vec![
        IsotropicQuadratic::new(1.0, dvector![1.0, 0.0], 0.0).unwrap(),
        IsotropicQuadratic::new(1.0, dvector![-1.0, 0.0], 0.0).unwrap(),
    ];
    let s = thm_3_1::check(&tasks, &dvector![0.0, 0.5]).unwrap();
    assert_rel(s.closeness, 1.25, "closeness");
    assert_rel(s.dot_bound, 0.75, "dot bound");
    assert_rel(s.cos_bound, 2.0, "cos bound");
    assert_rel(s.lambda, 1.0, "lambda");
}

/// `s(1 - s)(1 - 2 s)` is largest in magnitude at `s = 1/2 -+ 1/(2 sqrt 3)`, where it equals
/// `1/(6 sqrt 3)`: the logit of that `s`.
fn third_derivative_peak() -> f64 {
    let s = 0.5 - 0.5 / 3f64.sqrt();
    (s / (1.0 - s)).ln()
}

#[test]
fn anisotropic_constants_are_the_spectrum_ends() {
    let mut rng = rng_for(1, "pinned-aniso");
    let dist = TaskDistribution::new(Family::Anisotropic { mu: 0.5, l: 2.0 }, 5, 1.0).unwrap();
    for _ in 0..4 {
        let t = dist.sample(&mut rng).unwrap();
        let eig = t
            .hessian(&DVector::zeros(5))
            .unwrap()
            .symmetric_eigenvalues();
        let (lo, hi) = (eig.min(), eig.max());
        let c = t.curvature();
        assert!((lo - c.lambda_min).abs() <= 1e-12 && (hi - c.lambda_max).abs() <= 1e-12);
        // The task's constants come from its own eigendecomposition: rounding only.
        assert!((c.lambda_min - 0.5).abs() <= 1e-12 && (c.lambda_max - 2.0).abs() <= 1e-12);
        assert_eq!((c.rho, c.m3), (0.0, 0.0));
    }
}

#[test]
fn nonquadratic_constants_are_attained() {
    // 1-D, offset b = 0.3: phi'' peaks at z = -b with lambda_max; |phi'''| peaks where
    // z + b = logit(1/2 - 1/(2 sqrt 3)) with 4 (lambda_max - lambda_min)/(6 sqrt 3).
    let b = 0.3;
    let t = SoftplusSeparable::new(dvector![0.0], dvector![b], None, 0.5, 2.0, 0.0).unwrap();
    let c = t.curvature();
    let one = dvector![1.0];
    let h_peak = t.hessian(&dvector![-b]).unwrap()[(0, 0)];
    assert!((h_peak - c.lambda_max).abs() <= 1e-14 * c.lambda_max);
    let z3 = third_derivative_peak() - b;
    let d3 = t.third_contract(&dvector![z3], &one, &one).unwrap()[0].abs();
    assert!((d3 - c.m3).abs() <= 1e-12 * c.m3, "{d3} vs {}", c.m3);
    assert!((c.m3 - 4.0 * 1.5 / (6.0 * 3f64.sqrt())).abs() <= 1e-15);
    assert_eq!(
        c.rho, c.m3,
        "in 1-D the Hessian's Lipschitz constant is max |phi'''|"
    );
    // lambda_min is approached far from the peak.
    let far = t.hessian(&dvector![40.0]).unwrap()[(0, 0)];
    assert!((far - c.lambda_min).abs() <= 1e-12);
}

#[test]
fn logistic_constants_are_attained_with_one_sample() {
    // One sample x with ||x||^2 = d, label +1: at w = 0 the Hessian is reg I + x x^T / 4, top
    // eigenvalue reg + d/4; along u = x/||x||, D^3 L[u, u, u] = l'''(m) d^{3/2} peaks at
    // |l'''| = 1/(6 sqrt 3), i.e. M_3 = d^{3/2}/(6 sqrt 3), at margin m = -logit(s*).
    let d = 4usize;
    let x = DVector::from_element(d, 1.0); // norm^2 = d
    let features = DMatrix::from_row_slice(1, d, x.as_slice());
    let t = LogisticRegression::new(features, dvector![1.0], 0.1).unwrap();
    let c = t.curvature();
    assert!((c.lambda_max - (0.1 + d as f64 / 4.0)).abs() <= 1e-14);
    let top = t
        .hessian(&DVector::zeros(d))
        .unwrap()
        .symmetric_eigenvalues()
        .max();
    assert!((top - c.lambda_max).abs() <= 1e-13);
    let u = &x / x.norm();
    let dn = (d as f64).sqrt();
    let mut best: f64 = 0.0;
    for m in [third_derivative_peak(), -third_derivative_peak()] {
        let w = &u * (m / dn);
        best = best.max(t.third_contract(&w, &u, &u).unwrap().dot(&u).abs());
    }
    let m3 = (d as f64).powf(1.5) / (6.0 * 3f64.sqrt());
    assert!((c.m3 - m3).abs() <= 1e-13 * m3, "{} vs {m3}", c.m3);
    assert!((best - c.m3).abs() <= 1e-12 * c.m3, "{best} vs {}", c.m3);
    assert!((c.lambda_min - 0.1).abs() <= 0.0);
}

/// `stats::mean_ci` against intervals worked by hand where Student's t has a closed form: one
/// degree of freedom (`t_p = tan(pi (p - 1/2))`) and two (`t_p = (2p - 1) / sqrt(2 p (1 - p))`).
/// A normal quantile in place of Student's t (1.645 and 1.960 here) misses both by a factor of
/// 2 or more. Tolerance 1e-9 relative: statrs inverts the t distribution numerically.
#[test]
fn mean_ci_is_the_student_t_interval() {
    use nexus_lab::stats::mean_ci;
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-9 * b.abs().max(1.0);
    // n = 2: mean 0.5, sample variance 0.5, standard error 0.5, level 0.9 -> t_{0.95, 1}.
    let ci = mean_ci(&[0.0, 1.0], 0.9).unwrap();
    let t1 = (std::f64::consts::PI * 0.45).tan();
    assert!(close(ci.mean, 0.5) && close(ci.std_err, 0.5));
    assert!(
        close(ci.lo, 0.5 - 0.5 * t1) && close(ci.hi, 0.5 + 0.5 * t1),
        "{ci:?}"
    );
    // n = 3: mean 3, sample variance (4 + 1 + 9) / 2 = 7, level 0.95 -> t_{0.975, 2}.
    let ci = mean_ci(&[1.0, 2.0, 6.0], 0.95).unwrap();
    let t2 = 0.95 / (2.0f64 * 0.975 * 0.025).sqrt();
    let se = (7.0f64 / 3.0).sqrt();
    assert!(close(ci.mean, 3.0) && close(ci.std_err, se));
    assert!(
        close(ci.lo, 3.0 - t2 * se) && close(ci.hi, 3.0 + t2 * se),
        "{ci:?}"
    );
    assert_eq!(ci.n, 3);
    // Fewer than two samples, or a level outside (0, 1), is an error naming it.
    assert!(mean_ci(&[1.0], 0.9).is_err());
    assert!(mean_ci(&[1.0, 2.0], 1.0).is_err());
}

/// `metrics_up_to` keeps complete valid records up to the step and names the lines it drops.
#[test]
fn metrics_are_cut_to_complete_valid_records() {
    use nexus_lab::llama::metrics_up_to;
    let bytes = b"{\"step\": 1}\n{\"step\": 2, \"eval\": {}}\n\xff\n{\"step\": 3}\nnot json\n\n{\"step\": 2, \"x\"";
    let (kept, dropped) = metrics_up_to(bytes, 2);
    assert_eq!(
        kept,
        b"{\"step\": 1}\n{\"step\": 2, \"eval\": {}}\n".to_vec()
    );
    assert_eq!(dropped, vec![3, 5, 7]);
    let (kept, dropped) = metrics_up_to(b"", 5);
    assert!(kept.is_empty() && dropped.is_empty());
}
