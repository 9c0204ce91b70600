//! Eq. 11 (is the expected pseudo-gradient a gradient field?). Same code path as the `eq-11`
//! report.
//!
//! Asserted because measured: on isotropic tasks the Jacobian of the exact `E[pg]` is symmetric
//! to the tolerance; off them it is not, and already its first-order part is not. A control:
//! the finite-difference Jacobian of a true gradient field (a quadratic task's gradient) is
//! symmetric to the same tolerance.

use nalgebra::{DMatrix, DVector};
use nexus_lab::claims::common::draw_instance;
use nexus_lab::claims::eq11::{asymmetry, check, jacobian_fd, FD_STEP, GAMMA, SYMMETRY_TOL};
use nexus_lab::rng_for;
use nexus_lab::strategies;
use nexus_lab::tasks::{spd_with_spectrum, Family, Objective, Quadratic};
use proptest::prelude::*;

proptest! {
    #![proptest_config(strategies::config(8))]

    #[test]
    fn isotropic_expected_pseudo_gradient_is_a_gradient_field(a in 0.5f64..2.0, d in 2usize..6, k in 2usize..4, seed in strategies::seed()) {
        let (tasks, x) = draw_instance(Family::Isotropic { a }, d, k, &mut rng_for(seed, "eq11-iso")).unwrap();
        let s = check(&tasks, &x, GAMMA).unwrap();
        prop_assert!(s.expected <= SYMMETRY_TOL, "asymmetry {}", s.expected);
        prop_assert!(s.first_order <= SYMMETRY_TOL, "first-order asymmetry {}", s.first_order);
    }

    #[test]
    fn anisotropic_expected_pseudo_gradient_is_not_a_gradient_field(d in 3usize..6, seed in strategies::seed()) {
        let family = Family::Anisotropic { mu: 0.5, l: 2.0 };
        let (tasks, x) = draw_instance(family, d, 3, &mut rng_for(seed, "eq11-aniso")).unwrap();
        let s = check(&tasks, &x, GAMMA).unwrap();
        prop_assert!(s.expected > 100.0 * SYMMETRY_TOL, "asymmetry {}", s.expected);
        prop_assert!(s.first_order > 100.0 * SYMMETRY_TOL, "first-order asymmetry {}", s.first_order);
    }
}

/// The control: a quadratic's gradient `H (x - c)` is a gradient field, and the central
/// differences recover its symmetric Jacobian `H` (exactly, up to rounding: the field is linear).
#[test]
fn the_jacobian_of_a_gradient_field_is_symmetric() {
    let h = spd_with_spectrum(4, 0.5, 7.0, &mut rng_for(3, "eq11-control")).unwrap();
    let task = Quadratic::new(h.clone(), DVector::from_element(4, 0.3), 0.0).unwrap();
    let grad = |y: &DVector<f64>| task.gradient(y);
    let jac: DMatrix<f64> = jacobian_fd(&grad, &DVector::from_element(4, 1.7), FD_STEP).unwrap();
    assert!((&jac - &h).norm() <= 1e-9 * h.norm(), "{jac} vs {h}");
    assert!(asymmetry(&jac) <= 1e-9);
}
