//! The Llama study (`pretrain`): the paper's empirical predictions at our scale: AdamW against Nexus, its ablations (Nexus-Dot,
//! NSGD = Nexus with K = 1, a random direction of the norm of Nexus's correction) and Muon with
//! and without Nexus, same budget, several seeds, on the built-in family of synthetic languages with
//! held-out languages from the same distribution.
//!
//! Prints a table of mean differences to AdamW with 99.9% Student-t intervals (paired by seed),
//! writes `figures/reports/llama-pretrain.json` and `figures/llama-pretrain.png`, and refreshes
//! `figures/REPORT.md` (and the README's table). Finished runs are stored in
//! `<out>/.pretrain-runs/<study>/<master seed>/` and reused by the next run of the same settings.
//!
//! AdamW and Nexus, the headline comparison, train at 100 seeds on the synthetic languages and
//! 150 on the manual pages (`HEADLINE_SEEDS`); each ablation at 10, paired with AdamW's first 10.
//! Runs go one per core at a time, each on one thread (`--jobs`).
//!
//! ```text
//! cargo run --release --bin pretrain                 # default: tiny model, 2 x 100 + 5 x 10 runs x 2 master seeds
//! cargo run --release --bin pretrain -- --quick      # a fast smoke pass
//! cargo run --release --bin pretrain -- --corpus data/manpages --steps 1200  # real text: balanced, then skewed (~6.5 h)
//! cargo run --release --bin pretrain -- --preset small --steps 2000 --device cuda   # GPU (with --features cuda)
//! ```

mod analysis;
mod runs;
mod sweep;

pub use analysis::{LLAMA_MANPAGES, LLAMA_MANPAGES_SKEWED, LLAMA_PRETRAIN};
pub use runs::{Corpus, Metric, Setting, StudyConfig, SweepKind, HEADLINE_SEEDS};
pub use sweep::{arms, default_seeds, Arm, LLAMA_DOSE, LLAMA_SCHEDULES, LLAMA_SIZES};

use crate::llama::Variant;
use crate::report::{self, ClaimReport, Series};
use crate::Result;
use analysis::{claim_table, per_claim, study};
use runs::BAND_LEVEL;
use std::path::Path;

/// The study at every master seed: the report of the first, with the verdict at each.
pub fn run(a: &StudyConfig) -> Result<()> {
    // One study per store at a time: two would train and store the same runs.
    let store = a.out.join(".pretrain-runs").join(a.study_id());
    let _lock =
        crate::fsio::DirLock::acquire(&store, ".lock", "another study storing its runs here")?;
    let device = a.device.device()?;
    let masters = crate::claims::common::replication_seeds(a.master_seed, a.master_seeds);
    let runs: usize = match a.sweep {
        Some(kind) => sweep::jobs(kind, a)?.len(),
        None => Variant::ALL.iter().map(|&v| a.seeds_of(v)).sum(),
    };
    let bar = runs::progress_bar((masters.len() * runs) as u64);
    let mut primary: Option<(ClaimReport, Vec<Series>, Vec<Series>)> = None;
    let (mut replications, mut summaries, mut claims) = (Vec::new(), Vec::new(), Vec::new());
    for &master in &masters {
        let (rep, interpolation, curves, summary) = match a.sweep {
            Some(kind) => {
                let (rep, summary) = sweep::study(kind, a, master, &bar, &device)?;
                (rep, Vec::new(), Vec::new(), summary)
            }
            None => study(a, master, &bar, &device)?,
        };
        eprintln!("pretrain: master seed {master}: {}", rep.verdict.label());
        replications.push(report::Replication {
            seed: master,
            verdict: rep.verdict,
        });
        summaries.push(format!(
            "master seed {master}: {} ({summary})",
            rep.verdict.label()
        ));
        if a.sweep.is_none() {
            claims.push(per_claim(&rep));
        }
        primary.get_or_insert((rep, interpolation, curves));
    }
    bar.finish();
    let (mut rep, interpolation, curves) =
        primary.ok_or_else(|| crate::Error::InvalidArgument {
            name: "master-seeds",
            reason: "at least one master seed is needed".into(),
        })?;
    let stable = replications.iter().all(|r| r.verdict == rep.verdict);
    rep.findings.push(format!(
        "Replications: the whole study at {} master seeds ({}, seeds hashed from the master seed); the verdict is {} at every master seed. {}.",
        masters.len(),
        if a.sweep.is_some() {
            format!("{} training seeds per arm", a.seeds)
        } else {
            format!(
                "{} training seeds for AdamW and Nexus, {} for each ablation",
                a.headline_seeds, a.seeds
            )
        },
        if stable { "the same" } else { "NOT the same" },
        summaries.join("; ")
    ));
    if !claims.is_empty() {
        rep.findings.push(claim_table(&claims, &masters));
    }
    rep.replications = replications;
    let id = rep.id.clone();
    // Published like `reproduce`'s outputs: staged, then installed together (report::Publication).
    let mut publication = report::Publication::begin(&a.out)?;
    let staged = publication.dir().to_path_buf();
    report::write_json(&rep, &staged)?;
    report::draw_figure(&rep, &staged.join(format!("{id}.png")))?;
    if !curves.is_empty() {
        report::draw_curve_figure(
            &curves,
            "outer step",
            &format!(
                "held-out loss (mean over seeds, {:.0}% band)",
                100.0 * BAND_LEVEL
            ),
            &format!("{id}: held-out loss during training"),
            &staged.join(format!("{id}-curves.png")),
        )?;
    }
    if !interpolation.is_empty() {
        report::draw_curve_figure(
            &interpolation,
            "t (0: trained model, 1: a language's fine-tuned minimum)",
            &format!(
                "loss on that language (mean over languages and seeds, {:.0}% band)",
                100.0 * BAND_LEVEL
            ),
            &format!("{id}: loss along the line to the per-language minima (Fig. 7)"),
            &staged.join(format!("{id}-interpolation.png")),
        )?;
    }
    let all = report::load_layered(&[&staged, &a.out], &crate::claims::ids())?;
    let tightness = report::tightness::load(&a.out)?;
    report::write_summary(&all, &tightness, &staged)?;
    if a.out == Path::new("figures") {
        let readme = Path::new("README.md");
        let dest = publication.external(readme);
        report::update_readme_into(readme, &all, &tightness, &dest)?;
    }
    publication.commit()?;
    eprintln!("pretrain: {}", rep.verdict.label());
    Ok(())
}
