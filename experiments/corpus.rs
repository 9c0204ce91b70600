//! Fetches and renders the multilingual manual-page corpus (`src/corpus.rs`).
//!
//! ```text
//! sudo apt-get install mandoc                      # once (Debian/Ubuntu); apt-get and dpkg-deb come with the system
//! cargo run --release --bin corpus -- fetch        # all 14 languages into data/manpages/
//! cargo run --release --bin corpus -- fetch --languages de,nl --out /tmp/m
//! ```
//! Needs `apt-get` (Debian's package index; `apt-get download` needs no root), `dpkg-deb` and
//! `mandoc` on the PATH, and network access to a Debian mirror. A missing tool, a failed
//! download or an unknown language is one line naming it and exit code 2.

use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use nexus_lab::corpus::{self, Entry, Language, Manifest};
use nexus_lab::fsio::io_error;
use nexus_lab::{Error, Result};
use rayon::prelude::*;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

/// The manual-page corpus: one plain-text file per language, with a manifest.
#[derive(Parser)]
#[command(version)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Download the pinned packages, render every page and write `<language>.txt` and
    /// `manifest.json`.
    Fetch {
        /// Languages, comma-separated.
        #[arg(
            long,
            value_delimiter = ',',
            default_value = "en,de,fr,es,it,pt-br,ro,nl,sv,da,pl,cs,ru,uk"
        )]
        languages: Vec<String>,
        /// Output folder (git-ignored by default).
        #[arg(long, default_value = "data/manpages", value_parser = nexus_lab::cli::output_dir())]
        out: PathBuf,
    },
}

/// Checks that `name` is an executable on the PATH.
fn require(name: &str, hint: &str) -> Result<()> {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(name).is_file()))
        .unwrap_or(false);
    if found {
        Ok(())
    } else {
        Err(Error::InvalidArgument {
            name: "tool",
            reason: format!("`{name}` not found on the PATH: {hint}"),
        })
    }
}

fn run(program: &str, args: &[&str], dir: &Path) -> Result<Vec<u8>> {
    let out = Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .map_err(io_error(Path::new(program)))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(Error::Data(format!(
            "`{program} {}` failed: {}",
            args.join(" "),
            err.lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("(no message)")
        )));
    }
    Ok(out.stdout)
}

fn fetch_one(lang: Language, out: &Path, bar: &ProgressBar) -> Result<Entry> {
    let work = out.join(".work").join(lang.code);
    if work.exists() {
        std::fs::remove_dir_all(&work).map_err(io_error(&work))?;
    }
    std::fs::create_dir_all(&work).map_err(io_error(&work))?;
    bar.set_message(format!("{}: apt-get download {}", lang.code, lang.package));
    run(
        "apt-get",
        &["download", &format!("{}={}", lang.package, lang.version)],
        &work,
    )?;
    let deb = std::fs::read_dir(&work)
        .map_err(io_error(&work))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
        .ok_or_else(|| {
            Error::Data(format!(
                "apt-get left no .deb for {} in {}",
                lang.package,
                work.display()
            ))
        })?;
    let bytes = std::fs::read(&deb).map_err(io_error(&deb))?;
    let tree = work.join("tree");
    run(
        "dpkg-deb",
        &[
            "-x",
            &deb.display().to_string(),
            &tree.display().to_string(),
        ],
        &work,
    )?;
    let pages = corpus::pages(&tree, lang)?;
    bar.set_message(format!("{}: rendering {} pages", lang.code, pages.len()));
    // Rendered in parallel, joined in path order.
    let rendered: Vec<Option<String>> = pages
        .par_iter()
        .map(|p| {
            run(
                "mandoc",
                &["-T", "utf8", "-O", "width=80", &p.display().to_string()],
                &work,
            )
            .ok()
            .map(|b| corpus::plain_text(&String::from_utf8_lossy(&b)))
        })
        .collect();
    let failed = rendered.iter().filter(|r| r.is_none()).count();
    let text: String = rendered
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join("\n");
    if text.is_empty() {
        return Err(Error::Data(format!("{}: no page rendered", lang.package)));
    }
    let path = out.join(format!("{}.txt", lang.code));
    nexus_lab::fsio::write_atomic(&path, text.as_bytes())?;
    std::fs::remove_dir_all(&work).map_err(io_error(&work))?;
    Ok(Entry {
        language: lang.code.into(),
        package: lang.package.into(),
        version: lang.version.into(),
        deb_sha256: corpus::sha256(&bytes),
        deb_bytes: bytes.len() as u64,
        pages: pages.len() - failed,
        pages_failed: failed,
        text_bytes: text.len() as u64,
        text_sha256: corpus::sha256(text.as_bytes()),
    })
}

fn fetch(languages: &[String], out: &Path) -> Result<()> {
    let langs = languages
        .iter()
        .map(|c| corpus::language(c))
        .collect::<Result<Vec<_>>>()?;
    require(
        "apt-get",
        "the corpus comes from Debian's packages (Debian or Ubuntu)",
    )?;
    require("dpkg-deb", "it unpacks the packages (package dpkg)")?;
    require("mandoc", "install it with `sudo apt-get install mandoc`")?;
    nexus_lab::cli::check_writable(out)?;
    // Absolute, because the tools run inside the work folders.
    let out = &std::fs::canonicalize(out).map_err(io_error(out))?;
    let mandoc = String::from_utf8_lossy(
        &run("dpkg-query", &["-W", "-f", "${Version}", "mandoc"], out).unwrap_or_default(),
    )
    .trim()
    .to_string();
    let bar = ProgressBar::new(langs.len() as u64).with_style(
        ProgressStyle::with_template("[{bar:30}] {pos}/{len} {elapsed} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let mut manifest = Manifest {
        languages: Vec::new(),
        mandoc: format!("mandoc {mandoc}"),
        crate_version: nexus_lab::VERSION.into(),
    };
    for lang in langs {
        let entry = fetch_one(lang, out, &bar)?;
        eprintln!(
            "corpus: {} {} {}: {} pages ({} failed), {} bytes of text",
            entry.language,
            entry.package,
            entry.version,
            entry.pages,
            entry.pages_failed,
            entry.text_bytes
        );
        manifest.languages.push(entry);
        bar.inc(1);
    }
    bar.finish_and_clear();
    std::fs::remove_dir_all(out.join(".work")).ok();
    nexus_lab::fsio::write_atomic(
        &out.join("manifest.json"),
        serde_json::to_string_pretty(&manifest)?.as_bytes(),
    )
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Cmd::Fetch { languages, out } => fetch(languages, out),
    };
    nexus_lab::cli::finish("corpus", result)
}
