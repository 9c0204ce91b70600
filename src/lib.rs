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

pub mod bench;
pub mod claims;
pub mod cli;
pub mod corpus;
pub mod error;
pub mod expansion;
pub mod expectation;
pub mod fsio;
pub mod linalg;
pub mod llama;
pub mod metrics;
pub mod nexus;
pub mod optim;
pub mod params;
pub mod report;
pub mod stats;
pub mod strategies;
pub mod tasks;
pub mod tightness;

pub use error::{Error, Result};

/// Prints a warning on standard error: something was skipped or dropped, and the run goes on.
pub fn warn(message: &str) {
    eprintln!("nexus-lab: warning: {message}");
}

/// The crate version recorded in every report.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// A reproducible random stream: ChaCha8 seeded by hashing the master seed together with a
/// stream label (claim, instance, replicate), so that adding a stream never shifts another one
/// and two master seeds give unrelated streams for every label (never `seed + i`).
pub fn rng_for(seed: u64, stream: &str) -> rand::rngs::ChaCha8Rng {
    use rand::SeedableRng;
    rand::rngs::ChaCha8Rng::seed_from_u64(stream_seed(seed, stream))
}

/// The 64-bit seed of a stream: FNV-1a over the master seed's bytes and the label, finished with
/// the SplitMix64 mixer so that nearby inputs give unrelated outputs.
pub fn stream_seed(seed: u64, stream: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in seed.to_le_bytes().iter().chain(stream.as_bytes()) {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}
