//! Thm 2.2 (quadratic basins). Same code path as the `thm-2.2` report: `claims::thm_2_2`.
//!
//! What holds (and is asserted): averaged over draws of the training tasks, the gap is
//! `a tr(Sigma) / K = a d sigma^2 / K`. What the measurement refutes (asserted as refuted): the
//! per-coordinate reading `a sigma^2 / K` for d > 1. Monte Carlo checks use 99.9% intervals.

use nexus_lab::claims::thm_2_2::{averaged_gap, conditional_gap, Thm22Params};
use nexus_lab::rng_for;
use nexus_lab::strategies;
use nexus_lab::tasks::MinimaLaw;
use proptest::prelude::*;

fn law() -> impl Strategy<Value = MinimaLaw> {
    prop_oneof![Just(MinimaLaw::Gaussian), Just(MinimaLaw::Uniform)]
}

proptest! {
    #![proptest_config(strategies::config(16))]

    #[test]
    fn averaged_gap_is_a_trace_sigma_over_k(a in 0.1f64..4.0, sigma in 0.05f64..2.0, d in 1usize..6, k in 1usize..12, law in law(), seed in strategies::seed()) {
        let p = Thm22Params { a, sigma, d, k, law };
        let ci = averaged_gap(&p, 6_000, &mut rng_for(seed, "thm22")).unwrap();
        prop_assert!(ci.contains(p.claimed_trace()), "CI [{}, {}] misses a d sigma^2 / K = {}", ci.lo, ci.hi, p.claimed_trace());
    }

    /// The Monte Carlo engine recovers the exact conditional expectation of one draw.
    #[test]
    fn conditional_monte_carlo_matches_exact_value(a in 0.1f64..4.0, sigma in 0.05f64..2.0, d in 1usize..6, k in 1usize..12, law in law(), seed in strategies::seed()) {
        let p = Thm22Params { a, sigma, d, k, law };
        let (ci, exact) = conditional_gap(&p, 6_000, &mut rng_for(seed, "thm22-cond")).unwrap();
        prop_assert!(ci.contains(exact), "CI [{}, {}] misses exact {}", ci.lo, ci.hi, exact);
    }
}

/// With d = 10 the gap is ten times the stated a sigma^2 / K: the stated right side is refuted.
#[test]
fn per_coordinate_reading_is_refuted_in_dimension_ten() {
    let p = Thm22Params {
        a: 1.0,
        sigma: 0.5,
        d: 10,
        k: 4,
        law: MinimaLaw::Gaussian,
    };
    let ci = averaged_gap(&p, 6_000, &mut rng_for(1, "thm22-refute")).unwrap();
    assert!(
        ci.lo > 5.0 * p.claimed_as_written(),
        "CI [{}, {}] vs a sigma^2/K = {}",
        ci.lo,
        ci.hi,
        p.claimed_as_written()
    );
    assert!(ci.contains(p.claimed_trace()));
}
