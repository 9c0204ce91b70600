//! One module per claim of the paper (PEPit style). Each exposes a `check` function that
//! measures one instance and returns the measured and the claimed side, and a [`Claim`] that
//! runs `check` over a grid and assembles the report. The property tests in `theorems/` call the
//! same `check` functions, so a theorem's test and its report share one code path.

pub mod common;
pub mod controls;
pub mod eq11;
pub mod eq4;
pub mod eq8;
pub mod large_k;
pub mod llama_pretrain;
pub mod mechanism;
pub mod thm_2_2;
pub mod thm_2_3;
pub mod thm_3_1;
pub mod thm_3_2;
pub mod thm_3_2_steps;
pub mod thm_8_1;
pub mod thm_8_2;
pub mod thm_8_3;

use crate::error::{Error, Result};

pub use common::{replication_seeds, Claim, Settings};

/// Every claim, in the order of the paper, then the pipeline's controls.
pub fn registry() -> Vec<Box<dyn Claim>> {
    vec![
        Box::new(eq4::Eq4),
        Box::new(eq4::Remark21),
        Box::new(thm_2_2::Thm22),
        Box::new(thm_2_3::Thm23),
        Box::new(thm_3_1::Thm31Dot),
        Box::new(thm_3_1::Thm31Cos),
        Box::new(eq8::Eq8),
        Box::new(thm_3_2::Eq9),
        Box::new(thm_3_2::Thm32),
        Box::new(eq11::Eq11),
        Box::new(thm_3_2_steps::Thm32Steps),
        Box::new(thm_8_2::NexusK1),
        Box::new(thm_8_1::Thm81),
        Box::new(thm_8_2::Thm82),
        Box::new(thm_8_3::Thm83),
        Box::new(mechanism::Mechanism),
        Box::new(controls::Reptile { sign: 1.0 }),
        Box::new(controls::Reptile { sign: -1.0 }),
        Box::new(controls::DescentLemma {
            wrong_constant: false,
        }),
        Box::new(controls::DescentLemma {
            wrong_constant: true,
        }),
    ]
}

/// The ids of [`registry`], in its order: the order reports are listed in.
pub fn ids() -> Vec<&'static str> {
    registry().iter().map(|c| c.id()).collect()
}

/// The claim with this id, or an error listing the known ids.
pub fn find(id: &str) -> Result<Box<dyn Claim>> {
    let all = registry();
    let known = all.iter().map(|c| c.id()).collect::<Vec<_>>().join(", ");
    all.into_iter()
        .find(|c| c.id() == id)
        .ok_or_else(|| Error::UnknownClaim(id.into(), known))
}
