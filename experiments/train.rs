//! Trains a Llama with AdamW, Nexus or an ablation on the built-in synthetic languages or on
//! user files, with metrics in `<out>/metrics.jsonl` and crash-safe checkpoints in
//! `<out>/checkpoints/` (see `src/llama/checkpoint.rs`).
//!
//! ```text
//! cargo run --release --bin train -- --variant nexus --steps 200 --out runs/nexus
//! cargo run --release --bin train -- --config run.toml --out runs/a
//! cargo run --release --bin train -- --source code=data/code.txt --held-out prose=data/prose.jsonl
//! cargo run --release --bin train -- --resume --steps 400 --out runs/nexus   # continue, extended
//! ```
//! One process per `--out` (a lock); a folder holding a run is continued with `--resume` or
//! replaced with `--force`, never overwritten silently. Bad input prints one line naming the
//! flag, file or key and exits with code 2.

use candle_core::DType;
use clap::{Parser, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use nexus_lab::cli::limits as L;
use nexus_lab::cli::DeviceName;
use nexus_lab::llama::{
    FileSource, HeldOutSource, Precision, ResumeRequest, Schedule, TrainConfig, Trainer, Variant,
};
use nexus_lab::Result;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Hyper {
    /// The paper's 1B hyperparameters (Table 6): lr 2e-3, gamma 0.01, weight decay 0.2,
    /// clipping 1.0, warmup-stable-decay.
    Paper,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum ScheduleName {
    Constant,
    Cosine,
    Wsd,
}

/// Trains a byte-level Llama with AdamW, Nexus or an ablation.
#[derive(Parser, Debug)]
#[command(version, allow_negative_numbers = true)]
struct Args {
    /// A TOML file with any subset of the settings below (flags override it).
    #[arg(long)]
    config: Option<PathBuf>,
    /// micro, tiny, small or base.
    #[arg(long)]
    preset: Option<String>,
    /// adamw, nexus, nexus-dot, nsgd, random, muon or muon+nexus.
    #[arg(long)]
    variant: Option<Variant>,
    /// Outer steps (with --resume: the new total).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=L::STEPS))]
    steps: Option<u64>,
    /// Micro-batches per outer step (Nexus's K).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=L::BATCH))]
    accum: Option<u64>,
    /// Sequences per micro-batch.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=L::BATCH))]
    micro_batch: Option<u64>,
    /// Tokens per sequence.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=L::SEQ_LEN))]
    seq_len: Option<u64>,
    /// Peak outer learning rate (>= 0).
    #[arg(long, value_parser = nexus_lab::cli::non_negative)]
    lr: Option<f64>,
    /// Nexus's inner step gamma (> 0).
    #[arg(long, value_parser = nexus_lab::cli::positive)]
    inner_lr: Option<f64>,
    /// Muon's learning rate (>= 0).
    #[arg(long, value_parser = nexus_lab::cli::non_negative)]
    muon_lr: Option<f64>,
    /// Decoupled weight decay (>= 0).
    #[arg(long, value_parser = nexus_lab::cli::non_negative)]
    weight_decay: Option<f64>,
    /// Global norm clip (> 0).
    #[arg(long, value_parser = nexus_lab::cli::positive)]
    clip: Option<f64>,
    /// Linear warmup steps.
    #[arg(long, value_parser = clap::value_parser!(u64).range(0..=L::STEPS))]
    warmup: Option<u64>,
    #[arg(long, value_enum)]
    schedule: Option<ScheduleName>,
    /// Share of the run the WSD schedule decays over (0 to 1).
    #[arg(long, value_parser = nexus_lab::cli::fraction)]
    decay_fraction: Option<f64>,
    #[arg(long)]
    seed: Option<u64>,
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=L::STEPS))]
    eval_every: Option<u64>,
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=L::STEPS))]
    checkpoint_every: Option<u64>,
    /// Built-in synthetic training languages.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=L::COUNT))]
    languages: Option<u64>,
    /// Built-in held-out languages.
    #[arg(long, value_parser = clap::value_parser!(u64).range(0..=L::COUNT))]
    held_out_languages: Option<u64>,
    /// How different the languages are (>= 0).
    #[arg(long, value_parser = nexus_lab::cli::non_negative)]
    language_spread: Option<f64>,
    /// A skill source: arithmetic, brackets or recall (repeatable).
    #[arg(long)]
    skill: Vec<String>,
    /// A training source NAME=PATH[:WEIGHT] (repeatable).
    #[arg(long, value_parser = file_source)]
    source: Vec<FileSource>,
    /// A held-out source NAME=PATH (repeatable; held-out sources take no weight).
    #[arg(long, value_parser = held_out_source)]
    held_out: Vec<HeldOutSource>,
    /// Compute precision: f32, or bf16 (bf16 compute, f32 master weights and optimizer state).
    #[arg(long)]
    dtype: Option<Precision>,
    /// A hyperparameter preset, applied after the other settings.
    #[arg(long, value_enum)]
    hyper: Option<Hyper>,
    #[arg(long, value_enum, default_value_t = DeviceName::Cpu)]
    device: DeviceName,
    /// The run folder.
    #[arg(long, default_value = "runs/default", value_parser = nexus_lab::cli::output_dir())]
    out: PathBuf,
    /// Continue the run in --out (more --steps, new --eval-every or --checkpoint-every may be
    /// given; anything else must match the checkpoint).
    #[arg(long)]
    resume: bool,
    /// Replace a run already in --out.
    #[arg(long, conflicts_with = "resume")]
    force: bool,
    /// With --resume: continue even if a --source file changed since the checkpoint (its size
    /// or SHA-256 differs); without it such a resume is refused.
    #[arg(long, requires = "resume")]
    allow_changed_data: bool,
}

fn held_out_source(spec: &str) -> std::result::Result<HeldOutSource, String> {
    let (name, path) = spec
        .split_once('=')
        .ok_or_else(|| format!("expected NAME=PATH, got `{spec}`"))?;
    if let Some((_, w)) = path.rsplit_once(':') {
        if w.parse::<f64>().is_ok() {
            return Err(format!(
                "held-out sources are not trained on and take no weight, got `{spec}`"
            ));
        }
    }
    Ok(HeldOutSource {
        name: name.into(),
        path: path.into(),
    })
}

fn file_source(spec: &str) -> std::result::Result<FileSource, String> {
    let (name, rest) = spec
        .split_once('=')
        .ok_or_else(|| format!("expected NAME=PATH[:WEIGHT], got `{spec}`"))?;
    let (path, weight) = match rest.rsplit_once(':') {
        Some((p, w)) => match w.parse::<f64>() {
            Ok(w) => (p, nexus_lab::cli::range::positive(w)?),
            Err(_) => (rest, 1.0),
        },
        None => (rest, 1.0),
    };
    Ok(FileSource {
        name: name.into(),
        path: path.into(),
        weight,
    })
}

/// The configuration the flags and the config file describe, and the fields they set.
fn requested(a: &Args) -> Result<(TrainConfig, Vec<String>)> {
    let (mut cfg, mut given) = match &a.config {
        Some(path) => TrainConfig::from_toml_with_keys(path)?,
        None => (TrainConfig::default(), Vec::new()),
    };
    let mut set = |field: &str| given.push(field.to_string());
    macro_rules! flag {
        ($field:ident) => {
            if let Some(v) = a.$field.clone() {
                cfg.$field = v.into();
                set(stringify!($field));
            }
        };
        ($field:ident as usize) => {
            if let Some(v) = a.$field {
                cfg.$field = v as usize;
                set(stringify!($field));
            }
        };
    }
    flag!(preset);
    flag!(variant);
    flag!(steps as usize);
    flag!(accum as usize);
    flag!(micro_batch as usize);
    flag!(seq_len as usize);
    flag!(lr);
    flag!(inner_lr);
    flag!(muon_lr);
    flag!(weight_decay);
    flag!(clip);
    flag!(warmup as usize);
    flag!(decay_fraction);
    flag!(seed);
    flag!(eval_every as usize);
    flag!(checkpoint_every as usize);
    flag!(languages as usize);
    flag!(held_out_languages as usize);
    flag!(language_spread);
    if let Some(p) = a.dtype {
        cfg.precision = p;
        set("precision");
    }
    if let Some(s) = a.schedule {
        cfg.schedule = match s {
            ScheduleName::Constant => Schedule::Constant,
            ScheduleName::Cosine => Schedule::Cosine,
            ScheduleName::Wsd => Schedule::Wsd,
        };
        set("schedule");
    }
    if !a.skill.is_empty() {
        cfg.skills.extend(a.skill.iter().cloned());
        set("skills");
    }
    if !a.source.is_empty() {
        cfg.sources.extend(a.source.iter().cloned());
        set("sources");
    }
    if !a.held_out.is_empty() {
        cfg.held_out.extend(a.held_out.iter().cloned());
        set("held_out");
    }
    if a.hyper == Some(Hyper::Paper) {
        // After the other settings, so that it sees the final step count.
        cfg = cfg.with_paper_hyperparameters();
        for f in [
            "lr",
            "inner_lr",
            "weight_decay",
            "clip",
            "schedule",
            "warmup",
            "decay_fraction",
        ] {
            set(f);
        }
    }
    Ok((cfg, given))
}

fn run(a: &Args) -> Result<()> {
    nexus_lab::llama::configure_cpu(None);
    let (cfg, given) = requested(a)?;
    let dev = a.device.device()?;
    // Parameters, gradients and optimizer state are f32; `--dtype bf16` sets the compute precision.
    let dtype = DType::F32;
    let mut trainer = if a.resume {
        let request = ResumeRequest {
            config: Some(cfg),
            given,
            allow_changed_data: a.allow_changed_data,
        };
        Trainer::resume_with(&a.out, &dev, dtype, &request)?
    } else {
        Trainer::create(cfg, &a.out, &dev, dtype, a.force)?
    };
    eprintln!(
        "train: {} parameters, variant {:?}, step {} of {}, out {}",
        trainer.model.config().num_parameters(),
        trainer.cfg.variant,
        trainer.step_count(),
        trainer.cfg.steps,
        a.out.display()
    );
    let bar = ProgressBar::new(trainer.cfg.steps as u64).with_style(
        ProgressStyle::with_template("[{bar:40}] {pos}/{len} {elapsed} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let started = std::time::Instant::now();
    let first = trainer.step_count();
    let last = trainer.run(&bar)?;
    bar.finish();
    let steps = trainer.step_count() - first;
    let tokens = steps * trainer.cfg.accum * trainer.cfg.micro_batch * trainer.cfg.seq_len;
    eprintln!(
        "train: {steps} steps, {:.0} tokens/s",
        tokens as f64 / started.elapsed().as_secs_f64().max(1e-9)
    );
    if let Some(e) = last {
        println!("{}", serde_json::to_string_pretty(&e)?);
    }
    Ok(())
}

fn main() -> ExitCode {
    nexus_lab::cli::finish("train", run(&Args::parse()))
}
