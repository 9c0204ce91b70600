//! Trains a Llama with AdamW, Nexus or an ablation on the built-in synthetic languages or on
//! user files, with metrics in `<out>/metrics.jsonl` and a checkpoint in `<out>/checkpoint`.
//!
//! ```text
//! cargo run --release --bin train -- --variant nexus --steps 200 --out runs/nexus
//! cargo run --release --bin train -- --config run.toml --out runs/a
//! cargo run --release --bin train -- --source code=data/code.txt --held-out prose=data/prose.jsonl
//! cargo run --release --bin train -- --resume --out runs/nexus
//! ```
//! Bad input prints a message and exits with code 2.

use candle_core::{DType, Device};
use indicatif::{ProgressBar, ProgressStyle};
use nexus_lab::llama::{FileSource, TrainConfig, Trainer};
use nexus_lab::{Error, Result};
use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str = "usage: train [--config FILE.toml] [--preset micro|tiny|small|base] [--variant adamw|nexus|nexus-dot|nsgd|random]
  [--steps N] [--accum K] [--micro-batch B] [--seq-len T] [--lr LR] [--inner-lr GAMMA] [--weight-decay WD]
  [--schedule constant|cosine|wsd] [--warmup N] [--seed S] [--eval-every N] [--checkpoint-every N]
  [--languages K] [--held-out-languages H] [--language-spread S] [--skill arithmetic|brackets|recall]...
  [--source NAME=PATH[:WEIGHT]]... [--held-out NAME=PATH]... [--device cpu|cuda]
  [--dtype f32|bf16 (bf16: bf16 compute, f32 master weights)] [--hyper paper] [--out DIR] [--resume]";

struct Args {
    cfg: TrainConfig,
    out: PathBuf,
    resume: bool,
    device: String,
}

fn value(flag: &str, v: Option<String>) -> Result<String> {
    v.ok_or_else(|| Error::InvalidArgument {
        name: "argument",
        reason: format!("{flag} needs a value"),
    })
}

fn num<T: std::str::FromStr>(flag: &str, v: Option<String>) -> Result<T> {
    let v = value(flag, v)?;
    v.parse().map_err(|_| Error::InvalidArgument {
        name: "argument",
        reason: format!("{flag}: cannot parse `{v}`"),
    })
}

fn file_source(spec: &str) -> Result<FileSource> {
    let (name, rest) = spec.split_once('=').ok_or_else(|| Error::InvalidArgument {
        name: "source",
        reason: format!("expected NAME=PATH[:WEIGHT], got `{spec}`"),
    })?;
    let (path, weight) = match rest.rsplit_once(':') {
        Some((p, w)) if w.parse::<f64>().is_ok() => (p, w.parse().unwrap_or(1.0)),
        _ => (rest, 1.0),
    };
    Ok(FileSource {
        name: name.into(),
        path: path.into(),
        weight,
    })
}

fn parse(argv: Vec<String>) -> Result<Option<Args>> {
    // A config file first, so that flags override it whatever their order.
    let mut cfg = match argv.iter().position(|a| a == "--config") {
        Some(i) => {
            TrainConfig::from_toml(&PathBuf::from(value("--config", argv.get(i + 1).cloned())?))?
        }
        None => TrainConfig::default(),
    };
    let mut a = Args {
        cfg: TrainConfig::default(),
        out: PathBuf::from("runs/default"),
        resume: false,
        device: "cpu".into(),
    };
    let mut paper = false;
    let mut it = argv.into_iter();
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--config" => {
                it.next();
            }
            "--preset" => cfg.preset = value(&flag, it.next())?,
            "--variant" => cfg.variant = value(&flag, it.next())?.parse()?,
            "--steps" => cfg.steps = num(&flag, it.next())?,
            "--accum" => cfg.accum = num(&flag, it.next())?,
            "--micro-batch" => cfg.micro_batch = num(&flag, it.next())?,
            "--seq-len" => cfg.seq_len = num(&flag, it.next())?,
            "--lr" => cfg.lr = num(&flag, it.next())?,
            "--inner-lr" => cfg.inner_lr = num(&flag, it.next())?,
            "--weight-decay" => cfg.weight_decay = num(&flag, it.next())?,
            "--warmup" => cfg.warmup = num(&flag, it.next())?,
            "--schedule" => {
                let v = value(&flag, it.next())?;
                cfg.schedule = serde_json::from_value(serde_json::Value::String(v.clone()))
                    .map_err(|_| Error::InvalidArgument {
                        name: "schedule",
                        reason: format!("unknown schedule `{v}` (constant, cosine, wsd)"),
                    })?;
            }
            "--seed" => cfg.seed = num(&flag, it.next())?,
            "--eval-every" => cfg.eval_every = num(&flag, it.next())?,
            "--checkpoint-every" => cfg.checkpoint_every = num(&flag, it.next())?,
            "--languages" => cfg.languages = num(&flag, it.next())?,
            "--held-out-languages" => cfg.held_out_languages = num(&flag, it.next())?,
            "--language-spread" => cfg.language_spread = num(&flag, it.next())?,
            "--skill" => cfg.skills.push(value(&flag, it.next())?),
            "--source" => cfg.sources.push(file_source(&value(&flag, it.next())?)?),
            "--held-out" => cfg.held_out.push(file_source(&value(&flag, it.next())?)?),
            "--device" => a.device = value(&flag, it.next())?,
            "--dtype" => cfg.precision = value(&flag, it.next())?.parse()?,
            "--hyper" => match value(&flag, it.next())?.as_str() {
                "paper" => paper = true,
                other => {
                    return Err(Error::InvalidArgument {
                        name: "hyper",
                        reason: format!("unknown hyperparameter preset `{other}` (paper)"),
                    })
                }
            },
            "--out" => a.out = PathBuf::from(value(&flag, it.next())?),
            "--resume" => a.resume = true,
            "-h" | "--help" => return Ok(None),
            other => {
                return Err(Error::InvalidArgument {
                    name: "argument",
                    reason: format!("unknown argument `{other}`"),
                })
            }
        }
    }
    if paper {
        // After the other flags, so that it sees the final step count.
        cfg = cfg.with_paper_hyperparameters();
    }
    cfg.validate()?;
    a.cfg = cfg;
    Ok(Some(a))
}

fn device(name: &str) -> Result<Device> {
    match name {
        "cpu" => Ok(Device::Cpu),
        "cuda" => Device::new_cuda(0).map_err(|e| Error::InvalidArgument {
            name: "device",
            reason: format!("cuda unavailable ({e}); build with --features cuda"),
        }),
        other => Err(Error::InvalidArgument {
            name: "device",
            reason: format!("unknown device `{other}` (cpu, cuda)"),
        }),
    }
}

fn run(a: &Args) -> Result<()> {
    nexus_lab::llama::configure_cpu(None);
    let dev = device(&a.device)?;
    // Parameters, gradients and optimizer state are f32; `--dtype bf16` sets the compute precision.
    let dtype = DType::F32;
    let mut trainer = if a.resume {
        Trainer::resume(&a.out, &dev, dtype)?
    } else {
        Trainer::new(a.cfg.clone(), &a.out, &dev, dtype)?
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
    nexus_lab::cli::finish(
        "train",
        USAGE,
        parse(std::env::args().skip(1).collect()),
        run,
    )
}
