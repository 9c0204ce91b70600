//! The integration tests: one module per subject, in the file named after it (`tests/nexus.rs`,
//! `tests/reliability.rs`, ...), all in one test binary so that a fresh `cargo test` links once.
//! `cargo test --test integration reliability` runs one subject's tests.

mod architecture;
mod cli;
mod corpus;
mod derivatives;
mod extremes;
mod full_disk;
mod fused;
mod llama;
mod nexus;
mod pinned;
mod reliability;
mod tightness;
mod training;
mod verdicts;
