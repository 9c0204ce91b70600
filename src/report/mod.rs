//! Verdicts and reports.
//!
//! A claim's evaluation yields [`Instance`]s: one measured side, one claimed side and whether the
//! claim holds there, for one reading ([`Variant`]) of the claim. The verdict is derived from
//! them, never written by hand ([`verdict`] has the rules): `holds`, `holds under a restriction`
//! (the statement's own formula on part of its setting), `fails as stated; corrected form holds`
//! (a different formula), `fails`, or `inconclusive`.
//!
//! Informative readings (`Role::Info`: a proof step, a sharper constant, or a probe that breaks
//! an assumption of the claim) are reported but never decide the verdict.

mod claim_report;
mod evidence;
mod markdown;
mod plot;
mod publish;
mod store;
pub mod tightness;
pub mod verdict;

pub use claim_report::{
    add_restriction, ClaimKind, ClaimMeta, ClaimReport, Control, EffectPanel, EffectSeries, Figure,
    Instance, Reading, Replication, Role, Series, Tightness,
};
pub use evidence::{Hypothesis, Outcome, Test, Verdict};
pub use markdown::{corrections, seed_table, verdict_table, write_summary};
pub use plot::{draw_curve_figure, draw_figure, register_fonts};
pub use publish::Publication;
pub use store::{load_all, load_layered, update_readme_into, write_json};
pub use verdict::{decide_tests, holm};
