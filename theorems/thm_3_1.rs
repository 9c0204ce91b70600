//! Thm 3.1 (gradient similarity bounds closeness), both inequalities, at exact stationary
//! points. Same code path as the `thm-3.1-dot` and `thm-3.1-cos` reports.

use nexus_lab::claims::common::stationary_point;
use nexus_lab::claims::thm_3_1::{check, le};
use nexus_lab::rng_for;
use nexus_lab::strategies;
use nexus_lab::tasks::{Family, TaskDistribution};
use proptest::prelude::*;

proptest! {
    #![proptest_config(strategies::config(64))]

    #[test]
    fn both_inequalities_hold_at_stationary_points(family in strategies::family(), d in 1usize..8, k in 2usize..10, spread in 0.05f64..2.0, seed in strategies::seed()) {
        let dist = TaskDistribution::new(family, d, spread).unwrap();
        let tasks = dist.sample_many(k, &mut rng_for(seed, "thm31")).unwrap();
        let x = stationary_point(&tasks).unwrap();
        let s = check(&tasks, &x).unwrap();
        prop_assert!(s.stationarity <= 1e-10, "not stationary: {}", s.stationarity);
        prop_assert!(le(s.closeness, s.dot_bound), "closeness {} > dot bound {}", s.closeness, s.dot_bound);
        prop_assert!(le(s.dot_bound, s.cos_bound), "dot bound {} > cos bound {}", s.dot_bound, s.cos_bound);
    }

    /// K = 2: stationarity forces g_1 = -g_2, so the cosine bound is exactly twice the dot bound.
    #[test]
    fn cosine_bound_is_twice_the_dot_bound_for_two_tasks(family in strategies::family(), d in 1usize..8, spread in 0.05f64..2.0, seed in strategies::seed()) {
        let tasks = TaskDistribution::new(family, d, spread).unwrap().sample_many(2, &mut rng_for(seed, "thm31-k2")).unwrap();
        let s = check(&tasks, &stationary_point(&tasks).unwrap()).unwrap();
        prop_assert!((s.dot_bound / s.cos_bound - 0.5).abs() <= 1e-9, "ratio {}", s.dot_bound / s.cos_bound);
    }

    /// Isotropic tasks of one curvature make the first inequality an equality.
    #[test]
    fn first_inequality_is_tight_for_equal_isotropic_tasks(a in 0.1f64..5.0, d in 1usize..8, k in 2usize..10, spread in 0.05f64..2.0, seed in strategies::seed()) {
        let tasks = TaskDistribution::new(Family::Isotropic { a }, d, spread).unwrap().sample_many(k, &mut rng_for(seed, "thm31-iso")).unwrap();
        let s = check(&tasks, &stationary_point(&tasks).unwrap()).unwrap();
        prop_assert!((s.closeness / s.dot_bound - 1.0).abs() <= 1e-9);
    }
}
