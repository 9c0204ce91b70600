//! Thm 8.1 (SGD with a common minimizer). Same code path as the `thm-8.1` report.

use nalgebra::{DMatrix, DVector};
use nexus_lab::claims::thm_8_1::{bound, exact_quadratic, monte_carlo, Runs};
use nexus_lab::rng_for;
use nexus_lab::strategies;
use nexus_lab::tasks::{Family, Quadratic, TaskDistribution, Tilted};
use proptest::prelude::*;
use rand_distr::{Distribution, StandardNormal};

fn unit(d: usize, seed: u64) -> DVector<f64> {
    let mut rng = rng_for(seed, "e0");
    DVector::<f64>::from_fn(d, |_, _| {
        Distribution::<f64>::sample(&StandardNormal, &mut rng)
    })
    .normalize()
}

proptest! {
    #![proptest_config(strategies::config(32))]

    #[test]
    fn bound_holds_with_a_common_minimizer(family in strategies::family(), d in 1usize..6, n in 1usize..6, frac in 0.05f64..=1.0, steps in 1usize..40, seed in strategies::seed()) {
        let dist = TaskDistribution::new(family, d, 1.0).unwrap();
        let b = dist.bounds();
        let gamma = frac * 2.0 / (b.lambda_max + b.lambda_min);
        let free = dist.sample_many(n, &mut rng_for(seed, "thm81")).unwrap();
        let x_star = dist.center.clone();
        let tasks: Vec<_> = free.iter().map(|t| Tilted::new(t, x_star.clone()).unwrap()).collect();
        let e0 = unit(d, seed);
        let claimed = bound(b.lambda_min, b.lambda_max, gamma, steps, 1.0);
        if matches!(family, Family::Isotropic { .. } | Family::Anisotropic { .. }) {
            let m = exact_quadratic(&tasks, &x_star, &e0, gamma, steps).unwrap();
            prop_assert!(m <= claimed * (1.0 + 1e-12), "{m} > {claimed}");
        } else {
            let ci = monte_carlo(&tasks, &x_star, &e0, Runs { gamma, steps, runs: 300, normalized: false }, &mut rng_for(seed, "mc")).unwrap();
            prop_assert!(ci.lo <= claimed, "CI [{}, {}] above {claimed}", ci.lo, ci.hi);
        }
    }
}

/// At gamma = 2/(L+mu), curvature mu along x_0 - x* attains the bound.
#[test]
fn bound_is_attained() {
    for (mu, l) in [(0.5, 2.0), (0.1, 1.0)] {
        let task = Quadratic::new(
            DMatrix::from_diagonal(&DVector::from_vec(vec![mu, l])),
            DVector::zeros(2),
            0.0,
        )
        .unwrap();
        let gamma = 2.0 / (l + mu);
        let m = exact_quadratic(
            std::slice::from_ref(&task),
            &DVector::zeros(2),
            &DVector::from_vec(vec![1.0, 0.0]),
            gamma,
            25,
        )
        .unwrap();
        let kappa: f64 = l / mu;
        let rate = ((kappa - 1.0) / (kappa + 1.0)).powi(50);
        assert!((m / bound(mu, l, gamma, 25, 1.0) - 1.0).abs() < 1e-9);
        assert!((m / rate - 1.0).abs() < 1e-9, "Eq. 16's form");
    }
}
