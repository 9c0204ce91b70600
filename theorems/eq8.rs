//! Eq. 8 / Eq. 13 (first-order transfer): the residual is O(gamma^2), bounded by the
//! L-smoothness constant, with the exact second-order term and a third-order remainder
//! bounded by M_3. Same code path as the `eq-8` report: `claims::eq8::check`.

use nalgebra::DVector;
use nexus_lab::claims::eq8::{check, SLOPE_TOL};
use nexus_lab::rng_for;
use nexus_lab::strategies;
use nexus_lab::tasks::{Objective, TaskDistribution};
use proptest::prelude::*;
use rand_distr::{Distribution, StandardNormal};

proptest! {
    #![proptest_config(strategies::config(64))]

    #[test]
    fn residual_is_second_order(family in strategies::family(), d in 1usize..8, spread in 0.05f64..2.0, seed in strategies::seed()) {
        let mut rng = rng_for(seed, "eq8");
        let dist = TaskDistribution::new(family, d, spread).unwrap();
        let tasks = dist.sample_many(2, &mut rng).unwrap();
        let x = &dist.center + DVector::<f64>::from_fn(d, |_, _| Distribution::<f64>::sample(&StandardNormal, &mut rng));
        let g_j = tasks[1].gradient(&x).unwrap();
        prop_assume!(g_j.norm() > 1e-6);
        let c = check(tasks[0].as_ref(), &g_j, &x).unwrap();
        prop_assert!(c.smooth_holds, "L-smooth bound violated: {:?}", c.smooth);
        prop_assert!(c.third_holds, "third-order remainder bound violated: {:?}", c.third);
        // The slope is 2 unless the curvature along g_j vanishes, which strong convexity rules out.
        prop_assert!(c.slope >= 2.0 - SLOPE_TOL, "slope {}", c.slope);
    }
}
