//! Thm 8.1 (SGD with a common minimizer). Same code path as the `thm-8.1` report.

use nalgebra::{DMatrix, DVector};
use nexus_lab::claims::thm_8_1::{
    bound, exact_quadratic, monte_carlo, sharp_instance, sharp_rate, Runs,
};
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

proptest! {
    #![proptest_config(strategies::config(32))]

    /// The sharp rate's instance attains its closed form at every gamma (a 40-step product of
    /// float64 factors: 1e-12 relative), the stated factor is never below it, and the two agree
    /// at gamma = 2/(L+mu) (rounding) while the stated one is strictly larger below it.
    #[test]
    fn the_sharp_rate_is_attained_and_below_the_bound(mu in 0.05f64..1.0, ratio in 1.5f64..20.0, frac in 0.05f64..0.95, steps in 1usize..40) {
        let l = mu * ratio;
        let gamma = frac * 2.0 / (l + mu);
        let (measured, sharp) = sharp_instance(mu, l, gamma, steps).unwrap();
        prop_assert!((measured / sharp - 1.0).abs() <= 1e-12, "{measured} vs {sharp}");
        let stated = bound(mu, l, gamma, steps, 1.0);
        prop_assert!(sharp < stated, "{sharp} >= {stated}");
        let at = 2.0 / (l + mu);
        prop_assert!((sharp_rate(mu, l, at, steps) / bound(mu, l, at, steps, 1.0) - 1.0).abs() <= 1e-12);
    }
}

/// The reviewer's example: L = 1, mu = 0.1, gamma = 1/(L+mu), T = 2: worst case 0.6830 against
/// the bound's 0.6967 (worked by hand: (1 - 1/11)^4 = (10/11)^4 and (1 - 2/12.1)^2).
#[test]
fn the_sharp_rate_below_two_over_l_plus_mu() {
    let gamma = 1.0 / 1.1;
    assert!((sharp_rate(0.1, 1.0, gamma, 2) - (10.0f64 / 11.0).powi(4)).abs() < 1e-15);
    assert!((bound(0.1, 1.0, gamma, 2, 1.0) - (1.0 - 2.0 / 12.1f64).powi(2)).abs() < 1e-15);
    assert!((sharp_rate(0.1, 1.0, gamma, 2) - 0.6830).abs() < 5e-5);
    assert!((bound(0.1, 1.0, gamma, 2, 1.0) - 0.6967).abs() < 5e-5);
}
