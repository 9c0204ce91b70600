//! The main job: evaluates every registered claim and regenerates `figures/REPORT.md`, the JSON
//! reports in `figures/reports/` and the figures `figures/<id>.png`, then searches every bound
//! for its worst case (`nexus_lab::tightness`: `figures/tightness/`, the tightness table).
//!
//! ```text
//! cargo run --release --bin reproduce [-- --quick] [--only <id>]... [--seed <n>] [--seeds <n>] [--out <dir>]
//! ```
//! With `--seeds N` (default 5) every selected claim is also evaluated at N - 1 further master
//! seeds hashed from `--seed`; each report records its verdict at every seed, and `SEEDS.md`
//! (written with REPORT.md from all reports) lists them and any verdict that changes.
//! Bad input prints a message and exits with code 2. One run per output folder (a lock); every
//! file is written to `<out>/.staging/` first and installed together at the end, so a reader
//! never finds a mix of two runs, and a killed run's leftovers are repaired by the next
//! (`report::Publication`).

use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use nexus_lab::claims::{self, Claim, Settings};
use nexus_lab::cli::limits as L;
use nexus_lab::report;
use std::path::PathBuf;
use std::process::ExitCode;

const DEFAULT_OUT: &str = "figures";

/// Evaluates the paper's claims and regenerates REPORT.md, CORRECTIONS.md, SEEDS.md, the JSON
/// reports and the figures.
#[derive(Parser)]
#[command(version, allow_negative_numbers = true)]
struct Args {
    /// Smaller grids and Monte Carlo sizes.
    #[arg(long)]
    quick: bool,
    /// Evaluate only this claim (repeatable); REPORT.md still lists every claim with a report.
    #[arg(long, value_name = "CLAIM-ID")]
    only: Vec<String>,
    /// Master seed.
    #[arg(long, default_value_t = Settings::default().seed)]
    seed: u64,
    /// Also evaluate at n - 1 further master seeds, recorded in SEEDS.md.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=L::SEEDS))]
    seeds: u64,
    /// Output folder (only for the default is README.md's verdict table updated).
    #[arg(long, default_value = DEFAULT_OUT, value_parser = nexus_lab::cli::output_dir())]
    out: PathBuf,
}

fn run(args: &Args) -> nexus_lab::Result<()> {
    nexus_lab::cli::check_writable(&args.out)?;
    let mut only = args.only.clone();
    let mut seen = std::collections::HashSet::new();
    only.retain(|id| seen.insert(id.clone())); // a repeated --only runs once
    let selected: Vec<Box<dyn Claim>> = if only.is_empty() {
        claims::registry()
    } else {
        only.iter()
            .map(|id| claims::find(id))
            .collect::<nexus_lab::Result<_>>()?
    };
    // The output folder is locked for the run, a killed earlier run's leftovers are repaired,
    // and everything is written to a staging folder first (report::Publication).
    let mut publication = report::Publication::begin(&args.out)?;
    // A report already there that cannot be read fails now, naming its file, not after the
    // computation.
    report::load_all(&args.out, &claims::ids())?;
    let base = Settings {
        seed: args.seed,
        quick: args.quick,
    };
    let style = ProgressStyle::with_template("{prefix:>12} [{bar:40}] {pos}/{len} {elapsed}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    let seeds = claims::replication_seeds(base.seed, args.seeds as usize);
    let staged = publication.dir().to_path_buf();
    for claim in &selected {
        let mut replications = Vec::new();
        let mut primary = None;
        for &seed in &seeds {
            let bar = ProgressBar::new(0)
                .with_style(style.clone())
                .with_prefix(claim.id());
            let settings = Settings { seed, ..base };
            let r = claim.evaluate(&settings, &bar)?;
            bar.finish_and_clear();
            replications.push(report::Replication {
                seed,
                verdict: r.verdict,
            });
            primary.get_or_insert(r);
        }
        let Some(mut r) = primary else {
            continue;
        };
        r.replications = replications;
        report::write_json(&r, &staged)?;
        report::draw_figure(&r, &staged.join(format!("{}.png", r.id)))?;
        eprintln!(
            "{:>14}: {}{}",
            r.id,
            r.verdict.label(),
            if r.replications.iter().any(|x| x.verdict != r.verdict) {
                "  (CHANGES WITH THE MASTER SEED, see SEEDS.md)"
            } else {
                ""
            }
        );
    }
    // REPORT.md covers every report: this run's and those on disk (claims not re-run and
    // experiments' reports), which are re-saved and their figures redrawn from their data so
    // every file follows the current report format and plotting code.
    let all = report::load_layered(&[&staged, &args.out], &claims::ids())?;
    for r in all
        .iter()
        .filter(|r| !selected.iter().any(|c| c.id() == r.id))
    {
        report::write_json(r, &staged)?;
        report::draw_figure(r, &staged.join(format!("{}.png", r.id)))?;
    }
    // The worst-case search of every bound (about 20 s); a partial run (--only) keeps the
    // committed rows.
    let tightness = if only.is_empty() {
        nexus_lab::tightness::publish(
            &staged,
            &args.out,
            &all,
            nexus_lab::tightness::Budget::default(args.quick),
            args.seed,
            &[],
        )?
    } else {
        report::tightness::load(&args.out)?
    };
    report::write_summary(&all, &tightness, &staged)?;
    // The README's table mirrors the committed figures/ only; runs elsewhere leave it alone.
    if args.out == std::path::Path::new(DEFAULT_OUT) {
        let readme = std::path::Path::new("README.md");
        let dest = publication.external(readme);
        report::update_readme_into(readme, &all, &tightness, &dest)?;
    }
    publication.commit()?;
    Ok(())
}

fn main() -> ExitCode {
    nexus_lab::cli::finish("reproduce", run(&Args::parse()))
}
