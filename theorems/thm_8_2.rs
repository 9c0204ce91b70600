//! Thm 8.2 (NSGD) and Sec. 5.2 (K = 1). Same code path as the `thm-8.2` and `sec-5.2` reports.

use nexus_lab::claims::common::SLOPE_TOL;
use nexus_lab::claims::common::{draw_instance, gamma_grid, GammaGrid};
use nexus_lab::claims::thm_8_2::{check_k1, check_nsgd, K1_TOL};
use nexus_lab::rng_for;
use nexus_lab::strategies;
use nexus_lab::tasks::Family;
use proptest::prelude::*;

proptest! {
    #![proptest_config(strategies::config(24))]

    /// K = 1: E[pg] is exactly gamma times the mean normalized gradient.
    #[test]
    fn k1_has_no_higher_order_term(family in strategies::family(), d in 1usize..7, n in 1usize..7, seed in strategies::seed()) {
        let (tasks, x) = draw_instance(family, d, n, &mut rng_for(seed, "k1")).unwrap();
        prop_assert!(check_k1(&tasks, &x, &gamma_grid(GammaGrid::Exact)).unwrap() <= K1_TOL);
    }

    /// Two NSGD steps follow the Eq. 81 expansion with K = 2 over N sources.
    #[test]
    fn two_nsgd_steps_follow_the_eq81_expansion(family in strategies::family(), d in 2usize..7, n in 2usize..6, seed in strategies::seed()) {
        let (tasks, x) = draw_instance(family, d, n, &mut rng_for(seed, "nsgd")).unwrap();
        let (s, _) = check_nsgd(&tasks, &x, &gamma_grid(GammaGrid::Exact)).unwrap();
        prop_assert!(s[2] >= 3.0 - SLOPE_TOL, "slope {}", s[2]);
    }

    /// On isotropic tasks the i.i.d. reading's coefficient is gamma/4.
    #[test]
    fn isotropic_coefficient_is_a_quarter(a in 0.2f64..3.0, d in 2usize..7, n in 2usize..6, seed in strategies::seed()) {
        let (tasks, x) = draw_instance(Family::Isotropic { a }, d, n, &mut rng_for(seed, "nsgd-iso")).unwrap();
        let (s, _) = check_nsgd(&tasks, &x, &gamma_grid(GammaGrid::Exact)).unwrap();
        prop_assert!(s[1] >= 3.0 - SLOPE_TOL, "gamma/4 slope {}", s[1]);
        prop_assert!(s[0] < 2.2, "gamma/8 slope {}", s[0]);
    }
}
