//! Eq. 4 (closeness x flatness bound) and Remark 2.1 (its equality case).
//! Same code path as the `eq-4` and `rem-2.1` reports: `claims::eq4::check`.

use nexus_lab::claims::eq4::{check, draw_scenario};
use nexus_lab::rng_for;
use nexus_lab::strategies;
use nexus_lab::tasks::{Family, TaskDistribution};
use proptest::prelude::*;

proptest! {
    #![proptest_config(strategies::config(64))]

    /// Eq. 4 holds at the training stationary point for any family, dimension, K and spread.
    #[test]
    fn eq4_upper_bound_holds(family in strategies::family(), d in 1usize..8, k in 1usize..8, spread in 0.05f64..2.0, seed in strategies::seed()) {
        let dist = TaskDistribution::new(family, d, spread).unwrap();
        let (_, x, downstream) = draw_scenario(&dist, k, &mut rng_for(seed, "eq4")).unwrap();
        let s = check(downstream.as_ref(), &x).unwrap();
        prop_assert!(s.measured <= s.claimed + s.tolerance, "measured {} > claimed {}", s.measured, s.claimed);
        prop_assert!(s.measured >= -s.tolerance, "x_T* is the minimizer, so the gap is non-negative");
    }

    /// Remark 2.1, corrected: for a quadratic the gap equals the directional quadratic form.
    #[test]
    fn quadratic_gap_is_the_directional_quadratic_form(
        family in prop_oneof![
            (0.1f64..5.0).prop_map(|a| Family::Isotropic { a }),
            (0.1f64..2.0, 1.0f64..10.0).prop_map(|(mu, r)| Family::Anisotropic { mu, l: mu * r }),
        ],
        d in 1usize..8, k in 1usize..8, spread in 0.05f64..2.0, seed in strategies::seed())
    {
        let dist = TaskDistribution::new(family, d, spread).unwrap();
        let (_, x, downstream) = draw_scenario(&dist, k, &mut rng_for(seed, "rem21")).unwrap();
        let s = check(downstream.as_ref(), &x).unwrap();
        prop_assert!((s.measured - s.directional).abs() <= s.tolerance);
        if matches!(family, Family::Isotropic { .. }) {
            prop_assert!((s.measured - s.claimed).abs() <= s.tolerance, "isotropic: Eq. 4 is an equality");
        }
    }
}

/// Remark 2.1 as stated is refuted by an anisotropic quadratic: Eq. 4's right side is strictly
/// larger than the gap whenever the segment is not along a top eigenvector.
#[test]
fn remark_2_1_stated_equality_is_strict_for_anisotropic_quadratics() {
    let dist = TaskDistribution::new(Family::Anisotropic { mu: 0.5, l: 2.0 }, 2, 0.3).unwrap();
    let mut strict = 0;
    for seed in 0..20 {
        let (_, x, downstream) =
            draw_scenario(&dist, 2, &mut rng_for(seed, "rem21-strict")).unwrap();
        let s = check(downstream.as_ref(), &x).unwrap();
        assert!(s.measured <= s.claimed + s.tolerance);
        if s.claimed - s.measured > 1e-3 * s.claimed {
            strict += 1;
        }
    }
    // A random direction is a top eigenvector with probability zero.
    assert_eq!(strict, 20);
}
