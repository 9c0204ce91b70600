//! `pretrain`: the Llama study of the paper's empirical predictions
//! ([`nexus_lab::claims::llama_pretrain`] has the study, its design and its sample sizes). This
//! binary parses the flags, checks them before any training and runs the study.
//!
//! ```text
//! cargo run --release --bin pretrain                 # default: tiny model, 2 x 100 + 5 x 10 runs x 2 master seeds
//! cargo run --release --bin pretrain -- --quick      # a fast smoke pass
//! cargo run --release --bin pretrain -- --corpus data/manpages --steps 1200  # real text: balanced, then skewed (~6.5 h)
//! cargo run --release --bin pretrain -- --preset small --steps 2000 --device cuda   # GPU (with --features cuda)
//! cargo run --release --bin pretrain -- --sweep dose       # gamma x K against AdamW (llama-dose)
//! cargo run --release --bin pretrain -- --sweep schedules  # cosine and WSD (llama-schedules, Table 3)
//! cargo run --release --bin pretrain -- --sweep sizes      # five sizes, two decades (llama-sizes)
//! cargo run --release --bin pretrain -- --sweep sizes --stored-only  # re-publish from the committed runs, training nothing
//! ```

use nexus_lab::claims::llama_pretrain::{self, Corpus, StudyConfig, SweepKind, HEADLINE_SEEDS};
use nexus_lab::cli::limits as L;
use nexus_lab::Result;
use std::path::PathBuf;
use std::process::ExitCode;

/// AdamW against Nexus, its ablations and Muon on the synthetic languages, several seeds.
#[derive(clap::Parser)]
#[command(version)]
struct Cli {
    /// A fast smoke pass: 2 seeds, 40 steps (unless given).
    #[arg(long)]
    quick: bool,
    /// Master seed: every training run's seed is hashed from it.
    #[arg(long, default_value_t = 1000)]
    seed: u64,
    /// Run the whole study at this many master seeds (`--seed` and seeds hashed from it) and
    /// record the verdict at each: a verdict must not change with the master seed.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..=L::MASTER_SEEDS))]
    master_seeds: u64,
    /// Instead of the variant study, Nexus against AdamW over a sweep of settings: `dose`
    /// (gamma 0.003-0.3 x K 2, 4, 8), `schedules` (cosine, WSD) or `sizes` (2.5k-271k
    /// parameters at the same tokens per parameter); --seeds pairs per arm (default 16; 20 for
    /// `sizes`).
    #[arg(long, value_enum, conflicts_with = "corpus")]
    sweep: Option<SweepKind>,
    /// Training seeds of each ablation, or of each arm of a sweep (>= 2, for paired intervals).
    #[arg(long, value_parser = clap::value_parser!(u64).range(2..=L::SEEDS))]
    seeds: Option<u64>,
    /// Training seeds of AdamW and Nexus, the headline comparison (at least --seeds; default 100
    /// on the synthetic languages and 150 with --corpus, or --seeds when larger).
    #[arg(long, value_parser = clap::value_parser!(u64).range(2..=L::SEEDS))]
    headline_seeds: Option<u64>,
    /// Training runs at once, each on one thread (default: one per core on the CPU, 1 on CUDA,
    /// where a run has the device to itself).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=L::THREADS))]
    jobs: Option<u64>,
    /// Publish the report from the stored runs alone (in `<out>/.pretrain-runs/`): a run that
    /// is not stored under its current settings is an error, before anything is trained.
    #[arg(long)]
    stored_only: bool,
    /// Outer steps per run (>= 6).
    #[arg(long, value_parser = clap::value_parser!(u64).range(6..=L::STEPS))]
    steps: Option<u64>,
    /// Model size: micro, tiny, small or base.
    #[arg(long, default_value = "tiny")]
    preset: String,
    #[arg(long, value_enum, default_value_t = nexus_lab::cli::DeviceName::Cpu)]
    device: nexus_lab::cli::DeviceName,
    /// Output folder for the report and figure.
    #[arg(long, default_value = "figures", value_parser = nexus_lab::cli::output_dir())]
    out: PathBuf,
    /// Train on the manual-page corpus in this folder (written by `corpus fetch`) instead of
    /// the synthetic languages; the report is `llama-manpages`.
    #[arg(long)]
    corpus: Option<PathBuf>,
    /// With --corpus: the training languages.
    #[arg(long, value_delimiter = ',', default_value = "de,fr,es,pl,ru,en")]
    train_languages: Vec<String>,
    /// With --corpus: the held-out languages (related to the training ones).
    #[arg(
        long = "held-out",
        value_delimiter = ',',
        default_value = "nl,sv,it,pt-br,ro,cs,uk"
    )]
    held_out_languages: Vec<String>,
    /// With --corpus: after the balanced mixture (report `llama-manpages`), a skewed one with
    /// this training language at this share, LANG:SHARE (report `llama-manpages-skewed`).
    #[arg(long, value_parser = minority, default_value = "de:0.05")]
    minority: (String, f64),
    /// With --corpus: only the balanced mixture.
    #[arg(long)]
    no_skewed: bool,
    /// With --corpus: only the skewed mixture, to regenerate `llama-manpages-skewed` alone (its
    /// runs are the same as in the full study: seeds are hashed from the master seed).
    #[arg(long, requires = "corpus", conflicts_with = "no_skewed")]
    no_balanced: bool,
}

fn minority(s: &str) -> std::result::Result<(String, f64), String> {
    let (lang, share) = s
        .split_once(':')
        .ok_or_else(|| format!("expected LANG:SHARE, got `{s}`"))?;
    let share: f64 = share
        .parse()
        .map_err(|_| format!("`{share}` is not a number"))?;
    if share > 0.0 && share < 1.0 {
        Ok((lang.to_string(), share))
    } else {
        Err(format!("the share must be in (0, 1), got {share}"))
    }
}

/// Every language known and its text file present, before any training.
fn check_corpus(c: &Corpus) -> Result<()> {
    if let Some((m, _)) = &c.minority {
        if !c.train.contains(m) {
            return Err(nexus_lab::Error::InvalidArgument {
                name: "minority",
                reason: format!("`{m}` is not a training language ({})", c.train.join(", ")),
            });
        }
    }
    for lang in c.train.iter().chain(&c.held_out) {
        nexus_lab::corpus::language(lang)?;
        let path = c.dir.join(format!("{lang}.txt"));
        if !path.is_file() {
            return Err(nexus_lab::Error::Data(format!(
                "{} not found: run `cargo run --release --bin corpus -- fetch --out {}` first",
                path.display(),
                c.dir.display()
            )));
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let c = <Cli as clap::Parser>::parse();
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    let jobs = c.jobs.map_or(
        if c.device == nexus_lab::cli::DeviceName::Cpu {
            cores
        } else {
            1
        },
        |j| j as usize,
    );
    // Several runs at once: one thread each, so they do not contend for the cores.
    nexus_lab::llama::configure_cpu((jobs > 1).then_some(1));
    let seeds = c.seeds.map_or(
        match (c.quick, c.sweep) {
            (true, _) => 2,
            (false, Some(kind)) => llama_pretrain::default_seeds(kind),
            (false, None) => 10,
        },
        |s| s as usize,
    );
    let headline_seeds = c.headline_seeds.map_or(
        if c.quick {
            2
        } else {
            HEADLINE_SEEDS[usize::from(c.corpus.is_some())].max(seeds)
        },
        |s| s as usize,
    );
    if headline_seeds < seeds {
        eprintln!("pretrain: --headline-seeds ({headline_seeds}) must be at least --seeds ({seeds}): each ablation is paired with AdamW's seeds");
        return ExitCode::from(2);
    }
    let study = |minority: Option<(String, f64)>| StudyConfig {
        quick: c.quick,
        jobs,
        headline_seeds,
        master_seed: c.seed,
        master_seeds: c.master_seeds as usize,
        seeds,
        steps: c
            .steps
            .map_or(if c.quick { 40 } else { 300 }, |s| s as usize),
        preset: c.preset.clone(),
        device: c.device,
        out: c.out.clone(),
        corpus: c.corpus.clone().map(|dir| Corpus {
            dir,
            train: c.train_languages.clone(),
            held_out: c.held_out_languages.clone(),
            minority,
        }),
        sweep: c.sweep,
        stored_only: c.stored_only,
    };
    // On the corpus, one command runs the balanced mixture and then the skewed one.
    let mut studies = Vec::new();
    if !c.no_balanced {
        studies.push(study(None));
    }
    if c.corpus.is_some() && !c.no_skewed {
        studies.push(study(Some(c.minority.clone())));
    }
    // Bad settings fail before the first of the runs, not after the last.
    let checked = studies.iter().try_for_each(|a| {
        nexus_lab::llama::LlamaConfig::preset(&a.preset)?;
        nexus_lab::cli::check_writable(&a.out)?;
        a.corpus.as_ref().map_or(Ok(()), check_corpus)
    });
    nexus_lab::cli::finish(
        "pretrain",
        checked.and_then(|()| studies.iter().try_for_each(llama_pretrain::run)),
    )
}
