//! Runs Nexus (or a baseline) on a synthetic multi-task problem and prints, every few outer
//! steps, the training loss, the mean pairwise gradient cosine, closeness to the task minima and
//! the held-out loss on tasks drawn from the same distribution.
//!
//! ```text
//! cargo run --release --bin nexus_run -- --family anisotropic --dim 10 --tasks 4 --gamma 0.05 \
//!     --outer adamw --lr 0.01 --steps 500
//! ```
//! Bad input (K = 0, gamma <= 0, a negative spread, a non-finite number, an unknown name)
//! prints a message and exits with code 2.

use nalgebra::DVector;
use nexus_lab::metrics::{closeness, mean_loss, mean_pairwise_cosine};
use nexus_lab::nexus::{InnerStep, Nexus, NexusConfig, Sampling};
use nexus_lab::optim::{AdamW, AdamWConfig, NormalizedAdam, Optimizer, Sgd};
use nexus_lab::tasks::{BoxedTask, Family, TaskDistribution};
use nexus_lab::{rng_for, Error, Result};
use std::process::ExitCode;

const USAGE: &str =
    "usage: nexus_run [--family isotropic|anisotropic|nonquadratic|logistic] [--dim D] [--tasks N]
  [--K K] [--gamma G] [--spread S] [--steps T] [--every E] [--outer sgd|adamw|nadam] [--lr LR]
  [--weight-decay WD] [--dot] [--without-replacement] [--held-out M] [--seed SEED]";

struct Args {
    family: String,
    dim: usize,
    tasks: usize,
    k: Option<usize>,
    gamma: f64,
    spread: f64,
    steps: usize,
    every: usize,
    outer: String,
    lr: f64,
    weight_decay: f64,
    dot: bool,
    without_replacement: bool,
    held_out: usize,
    seed: u64,
}

fn number<T: std::str::FromStr>(
    flag: &str,
    value: Option<String>,
) -> std::result::Result<T, String> {
    let v = value.ok_or_else(|| format!("{flag} needs a value"))?;
    v.parse().map_err(|_| format!("{flag}: cannot parse `{v}`"))
}

fn finite(flag: &str, value: Option<String>) -> std::result::Result<f64, String> {
    let x: f64 = number(flag, value)?;
    if x.is_finite() {
        Ok(x)
    } else {
        Err(format!("{flag} must be finite, got {x}"))
    }
}

fn parse(mut it: impl Iterator<Item = String>) -> std::result::Result<Option<Args>, String> {
    let mut a = Args {
        family: "anisotropic".into(),
        dim: 10,
        tasks: 4,
        k: None,
        gamma: 0.05,
        spread: 1.0,
        steps: 300,
        every: 50,
        outer: "adamw".into(),
        lr: 0.01,
        weight_decay: 0.0,
        dot: false,
        without_replacement: false,
        held_out: 32,
        seed: 1,
    };
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--family" => a.family = it.next().ok_or("--family needs a value")?,
            "--dim" => a.dim = number(&flag, it.next())?,
            "--tasks" => a.tasks = number(&flag, it.next())?,
            "--K" => a.k = Some(number(&flag, it.next())?),
            "--gamma" => a.gamma = finite(&flag, it.next())?,
            "--spread" => a.spread = finite(&flag, it.next())?,
            "--steps" => a.steps = number(&flag, it.next())?,
            "--every" => a.every = number(&flag, it.next())?,
            "--outer" => a.outer = it.next().ok_or("--outer needs a value")?,
            "--lr" => a.lr = finite(&flag, it.next())?,
            "--weight-decay" => a.weight_decay = finite(&flag, it.next())?,
            "--dot" => a.dot = true,
            "--without-replacement" => a.without_replacement = true,
            "--held-out" => a.held_out = number(&flag, it.next())?,
            "--seed" => a.seed = number(&flag, it.next())?,
            "-h" | "--help" => return Ok(None),
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    Ok(Some(a))
}

fn family(name: &str) -> Result<Family> {
    let standard = Family::standard();
    standard
        .into_iter()
        .find(|f| f.id() == name)
        .ok_or_else(|| Error::InvalidArgument {
            name: "family",
            reason: format!(
                "unknown family `{name}` (known: {})",
                standard.map(|f| f.id()).join(", ")
            ),
        })
}

fn outer(a: &Args) -> Result<Box<dyn Optimizer<DVector<f64>>>> {
    let cfg = AdamWConfig {
        lr: a.lr,
        weight_decay: a.weight_decay,
        ..AdamWConfig::default()
    };
    Ok(match a.outer.as_str() {
        "sgd" => Box::new(Sgd::new(a.lr)?),
        "adamw" => Box::new(AdamW::new(cfg)?),
        "nadam" => Box::new(NormalizedAdam::new(cfg)?),
        other => {
            return Err(Error::InvalidArgument {
                name: "outer",
                reason: format!("unknown optimizer `{other}` (sgd, adamw, nadam)"),
            })
        }
    })
}

fn run(a: &Args) -> Result<()> {
    let dist = TaskDistribution::new(family(&a.family)?, a.dim, a.spread)?;
    let mut rng = rng_for(a.seed, "nexus_run");
    let mut tasks: Vec<BoxedTask> = dist.sample_many(a.tasks, &mut rng)?;
    let held_out = dist.sample_many(a.held_out.max(1), &mut rng)?;
    let cfg = NexusConfig {
        inner_steps: a.k.unwrap_or(a.tasks),
        inner_lr: a.gamma,
        inner_step: if a.dot {
            InnerStep::Raw
        } else {
            InnerStep::Normalized
        },
        sampling: if a.without_replacement {
            Sampling::WithoutReplacement
        } else {
            Sampling::WithReplacement
        },
    };
    let mut nexus = Nexus::new(cfg, outer(a)?)?;
    let mut x = dist.center.clone() * 0.0;
    println!(
        "seed {} family {} d {} tasks {} K {} gamma {} outer {} lr {}",
        a.seed, a.family, a.dim, a.tasks, cfg.inner_steps, a.gamma, a.outer, a.lr
    );
    println!(
        "{:>6} {:>12} {:>10} {:>12} {:>12}",
        "step", "train_loss", "cosine", "closeness", "heldout"
    );
    for step in 0..=a.steps {
        if step % a.every.max(1) == 0 || step == a.steps {
            let cos =
                mean_pairwise_cosine(&tasks, &x)?.map_or("-".to_string(), |c| format!("{c:.5}"));
            println!(
                "{step:>6} {:>12.6} {cos:>10} {:>12.6} {:>12.6}",
                mean_loss(&tasks, &x)?,
                closeness(&tasks, &x)?,
                mean_loss(&held_out, &x)?
            );
        }
        if step < a.steps {
            nexus.step(&mut x, &mut tasks, &mut rng)?;
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    nexus_lab::cli::finish("nexus_run", USAGE, parse(std::env::args().skip(1)), run)
}
