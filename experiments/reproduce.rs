//! The main job: evaluates every registered claim and regenerates `figures/REPORT.md`, the JSON
//! reports in `figures/reports/` and the figures `figures/<id>.png`.
//!
//! ```text
//! cargo run --release --bin reproduce [-- --quick] [--only <id>]... [--seed <n>] [--seeds <n>] [--out <dir>]
//! ```
//! With `--seeds N` (default 5) every selected claim is also evaluated at N - 1 further master
//! seeds hashed from `--seed`; each report records its verdict at every seed, and `SEEDS.md`
//! (written with REPORT.md from all reports) lists them and any verdict that changes.
//! Bad input prints a message and exits with code 2.

use indicatif::{ProgressBar, ProgressStyle};
use nexus_lab::claims::{self, Claim, Settings};
use nexus_lab::report;
use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str = "usage: reproduce [--quick] [--only <claim-id>]... [--seed <u64>] [--seeds <n>] [--out <dir>]\n\
  --quick        smaller grids and Monte Carlo sizes\n\
  --only <id>    evaluate only this claim (repeatable); REPORT.md still lists every claim with a report\n\
  --seed <u64>   master seed (default 20260409)\n\
  --seeds <n>    also evaluate at n - 1 further master seeds, recorded in SEEDS.md (default 5)\n\
  --out <dir>    output folder (default figures; only then is README.md's verdict table updated)";
const DEFAULT_OUT: &str = "figures";

struct Args {
    settings: Settings,
    seeds: usize,
    only: Vec<String>,
    out: PathBuf,
}

fn parse(argv: impl Iterator<Item = String>) -> Result<Option<Args>, String> {
    let mut args = Args {
        settings: Settings::default(),
        seeds: 5,
        only: Vec::new(),
        out: PathBuf::from(DEFAULT_OUT),
    };
    let mut argv = argv;
    while let Some(a) = argv.next() {
        match a.as_str() {
            "--quick" => args.settings.quick = true,
            "--only" => args
                .only
                .push(argv.next().ok_or("--only needs a claim id")?),
            "--seed" => {
                let v = argv.next().ok_or("--seed needs a value")?;
                args.settings.seed = v
                    .parse()
                    .map_err(|_| format!("--seed must be a non-negative integer, got `{v}`"))?;
            }
            "--seeds" => {
                let v = argv.next().ok_or("--seeds needs a value")?;
                args.seeds = v
                    .parse()
                    .ok()
                    .filter(|n| *n >= 1)
                    .ok_or_else(|| format!("--seeds must be a positive integer, got `{v}`"))?;
            }
            "--out" => args.out = PathBuf::from(argv.next().ok_or("--out needs a directory")?),
            "-h" | "--help" => return Ok(None),
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    if args.out.as_os_str().is_empty() {
        return Err("--out must name a directory".into());
    }
    let mut seen = std::collections::HashSet::new();
    args.only.retain(|id| seen.insert(id.clone()));
    Ok(Some(args))
}

fn run(args: &Args) -> nexus_lab::Result<()> {
    let selected: Vec<Box<dyn Claim>> = if args.only.is_empty() {
        claims::registry()
    } else {
        args.only
            .iter()
            .map(|id| claims::find(id))
            .collect::<nexus_lab::Result<_>>()?
    };
    let style = ProgressStyle::with_template("{prefix:>12} [{bar:40}] {pos}/{len} {elapsed}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    let seeds = claims::replication_seeds(args.settings.seed, args.seeds);
    for claim in &selected {
        let mut replications = Vec::new();
        let mut primary = None;
        for &seed in &seeds {
            let bar = ProgressBar::new(0)
                .with_style(style.clone())
                .with_prefix(claim.id());
            let settings = Settings {
                seed,
                ..args.settings
            };
            let r = claim.evaluate(&settings, &bar)?;
            bar.finish_and_clear();
            replications.push(report::Replication {
                seed,
                verdict: r.verdict,
            });
            primary.get_or_insert(r);
        }
        let mut r = primary.expect("at least one seed");
        r.replications = replications;
        report::write_json(&r, &args.out)?;
        report::draw_figure(&r, &args.out.join(format!("{}.png", r.id)))?;
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
    // REPORT.md covers every report on disk: claims not re-run and experiments' reports too.
    let all = report::load_all(&args.out)?;
    // Reports not re-run here (other claims, experiments' reports) are re-saved and their
    // figures redrawn from their data, so every file follows the current report format and
    // plotting code.
    for r in all
        .iter()
        .filter(|r| !selected.iter().any(|c| c.id() == r.id))
    {
        report::write_json(r, &args.out)?;
        report::draw_figure(r, &args.out.join(format!("{}.png", r.id)))?;
    }
    report::write_summary(&all, &args.out, args.settings.seed, args.settings.quick)?;
    // The README's table mirrors the committed figures/ only; runs elsewhere leave it alone.
    if args.out == std::path::Path::new(DEFAULT_OUT) {
        report::update_readme(std::path::Path::new("README.md"), &all)?;
    }
    Ok(())
}

fn main() -> ExitCode {
    nexus_lab::cli::finish("reproduce", USAGE, parse(std::env::args().skip(1)), run)
}
