//! # nexus-lab
//!
//! Puts the claims of "Nexus: Same Pretraining Loss, Better Downstream Generalization via
//! Common Minima" to the test. The crate holds:
//!
//! - [`tasks`]: task families with exact derivatives and the distributions they are drawn from;
//! - [`nexus`] and [`optim`]: one implementation of Nexus (Algorithm 1) generic over the
//!   parameter type ([`params::ParamVec`]) and the outer optimizer;
//! - [`claims`]: one module per claim of the paper, each returning measured and claimed sides
//!   per instance, used both by the property tests in `theorems/` and by the reports;
//! - [`report`]: verdicts, JSON reports, `figures/REPORT.md` and the figures.

pub mod claims;
pub mod cli;
pub mod error;
pub mod expansion;
pub mod expectation;
pub mod llama;
pub mod metrics;
pub mod nexus;
pub mod optim;
pub mod params;
pub mod report;
pub mod stats;
pub mod strategies;
pub mod tasks;

pub use error::{Error, Result};

/// The crate version recorded in every report.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// A reproducible random stream: ChaCha8 seeded from a run seed and a stream label, so that
/// adding a stream never shifts another one.
pub fn rng_for(seed: u64, stream: &str) -> rand::rngs::ChaCha8Rng {
    use rand::SeedableRng;
    // FNV-1a of the label, mixed with the seed.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in stream.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    rand::rngs::ChaCha8Rng::seed_from_u64(seed ^ h.rotate_left(17))
}
