//! Shared proptest strategies and configuration for the property tests in `theorems/` and
//! `tests/`. Every run is reproducible: the proptest RNG seed is fixed and failures are not
//! persisted to disk, so a failing case is reported with its inputs and reproduces as is.

use crate::tasks::Family;
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed};

/// A deterministic proptest configuration with `cases` cases.
pub fn config(cases: u32) -> Config {
    Config {
        cases,
        rng_seed: RngSeed::Fixed(0x6e65_7875_735f_6c61),
        failure_persistence: None,
        ..Config::default()
    }
}

/// Any of the four families, with its constants drawn too.
pub fn family() -> impl Strategy<Value = Family> {
    prop_oneof![
        (0.1f64..5.0).prop_map(|a| Family::Isotropic { a }),
        (0.1f64..2.0, 1.0f64..10.0)
            .prop_map(|(mu, ratio)| Family::Anisotropic { mu, l: mu * ratio }),
        (0.1f64..2.0, 1.0f64..10.0, any::<bool>()).prop_map(|(lo, ratio, rotated)| {
            Family::NonQuadratic {
                lambda_min: lo,
                lambda_max: lo * ratio,
                rotated,
            }
        }),
        (8usize..80, 0.02f64..1.0).prop_map(|(samples, reg)| Family::Logistic { samples, reg }),
    ]
}

/// A family with nonzero third derivative (for claims about non-quadratic behaviour).
pub fn non_quadratic_family() -> impl Strategy<Value = Family> {
    prop_oneof![
        (0.1f64..2.0, 1.5f64..10.0, any::<bool>()).prop_map(|(lo, ratio, rotated)| {
            Family::NonQuadratic {
                lambda_min: lo,
                lambda_max: lo * ratio,
                rotated,
            }
        }),
        (8usize..80, 0.02f64..1.0).prop_map(|(samples, reg)| Family::Logistic { samples, reg }),
    ]
}

/// A seed for the instance's own random stream.
pub fn seed() -> impl Strategy<Value = u64> {
    any::<u64>()
}
