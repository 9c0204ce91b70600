//! `tightness`: the worst case of every bound, found by search over its assumption class
//! ([`nexus_lab::tightness`]), beside its closed form where one is known.
//!
//! ```text
//! cargo run --release --bin tightness [-- --quick] [--only <key>]... [--seed <n>] [--starts <n>] [--iterations <n>] [--out <dir>]
//! ```
//! Writes `<out>/tightness/<key>.json` (each problem's worst instance, loadable and re-checked
//! from the file), `<out>/tightness/summary.json` (the table's rows), `<out>/thm-8.1-sharp.png`
//! (Thm 8.1's ratio as a function of gamma), and rewrites `REPORT.md` and the README's
//! tightness table from them (published together, like `reproduce`'s outputs).

use clap::Parser;
use nexus_lab::claims;
use nexus_lab::cli::limits as L;
use nexus_lab::report;
use nexus_lab::tightness::{self as search, Budget};
use std::path::PathBuf;
use std::process::ExitCode;

const DEFAULT_OUT: &str = "figures";

/// Searches every bound's assumption class for its worst case and writes the tightness table.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Fewer starts and iterations (a smoke pass).
    #[arg(long)]
    quick: bool,
    /// Search only the problems whose key starts with this (repeatable; see the table's json
    /// links for the keys); the other rows are kept from the last full run.
    #[arg(long, value_name = "KEY")]
    only: Vec<String>,
    /// Master seed of the starts.
    #[arg(long, default_value_t = 20260409)]
    seed: u64,
    /// Nelder-Mead starts per problem (default 12; 3 with --quick).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=L::SEEDS))]
    starts: Option<u64>,
    /// Nelder-Mead iterations per start (default 3000; 300 with --quick).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=L::STEPS))]
    iterations: Option<u64>,
    /// Output folder (only for the default is the README's table updated).
    #[arg(long, default_value = DEFAULT_OUT, value_parser = nexus_lab::cli::output_dir())]
    out: PathBuf,
}

fn run(args: &Args) -> nexus_lab::Result<()> {
    nexus_lab::cli::check_writable(&args.out)?;
    let budget = Budget {
        starts: args
            .starts
            .map_or(Budget::default(args.quick).starts, |s| s as usize),
        iterations: args
            .iterations
            .unwrap_or(Budget::default(args.quick).iterations),
    };
    // An unknown key fails before the folder is locked or anything computed.
    search::select(&args.only.iter().map(String::as_str).collect::<Vec<_>>())?;
    let mut publication = report::Publication::begin(&args.out)?;
    let reports = report::load_all(&args.out, &claims::ids())?;
    let staged = publication.dir().to_path_buf();
    let only: Vec<&str> = args.only.iter().map(String::as_str).collect();
    let rows = search::publish(&staged, &args.out, &reports, budget, args.seed, &only)?;
    report::write_summary(&reports, &rows, &staged)?;
    if args.out == std::path::Path::new(DEFAULT_OUT) {
        let readme = std::path::Path::new("README.md");
        let dest = publication.external(readme);
        report::update_readme_into(readme, &reports, &rows, &dest)?;
    }
    publication.commit()?;
    Ok(())
}

fn main() -> ExitCode {
    nexus_lab::cli::finish("tightness", run(&Args::parse()))
}
