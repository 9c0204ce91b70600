//! The property checks of the paper's claims: one module per claim, in the file named after it
//! (`theorems/thm_2_2.rs` checks Thm 2.2), all in one test binary so that a fresh `cargo test`
//! links once. `cargo test --test theorems thm_2_2` runs one claim's checks.

mod eq11;
mod eq4;
mod eq8;
mod invariances;
mod thm_2_2;
mod thm_2_3;
mod thm_3_1;
mod thm_3_2;
mod thm_8_1;
mod thm_8_2;
mod thm_8_3;
