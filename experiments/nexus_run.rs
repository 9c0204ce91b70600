//! Runs Nexus (or a baseline) on a synthetic multi-task problem and prints, every few outer
//! steps, the training loss, the mean pairwise gradient cosine, closeness to the task minima and
//! the held-out loss on tasks drawn from the same distribution.
//!
//! ```text
//! cargo run --release --bin nexus_run -- --family anisotropic --dim 10 --tasks 4 --gamma 0.05 \
//!     --outer adamw --lr 0.01 --steps 500
//! ```
//! Bad input (K = 0, gamma <= 0, a negative spread, a non-finite number, an unknown name, a
//! dimension whose matrices would not fit in memory) prints one line naming the flag and exits
//! with code 2.

use clap::{Parser, ValueEnum};
use nalgebra::DVector;
use nexus_lab::cli::limits as L;
use nexus_lab::metrics::{closeness, mean_loss, mean_pairwise_cosine};
use nexus_lab::nexus::{InnerStep, Nexus, NexusConfig, Sampling};
use nexus_lab::optim::{AdamW, AdamWConfig, NormalizedAdam, Optimizer, Sgd};
use nexus_lab::tasks::{BoxedTask, Family, TaskDistribution};
use nexus_lab::{rng_for, Error, Result};
use std::process::ExitCode;

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Outer {
    Sgd,
    Adamw,
    /// Adam fed the normalized gradient.
    Nadam,
}

/// Runs Nexus on a synthetic multi-task problem and prints the training loss, the mean pairwise
/// gradient cosine, closeness to the task minima and the held-out loss.
#[derive(Parser)]
#[command(version, allow_negative_numbers = true)]
struct Args {
    /// isotropic, anisotropic, nonquadratic or logistic.
    #[arg(long, default_value = "anisotropic")]
    family: String,
    /// Dimension.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=L::COUNT))]
    dim: u64,
    /// Training tasks.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=L::COUNT))]
    tasks: u64,
    /// Inner steps per outer step (default: the number of tasks).
    #[arg(long = "K", value_parser = clap::value_parser!(u64).range(1..=L::COUNT))]
    k: Option<u64>,
    /// Inner step size gamma (> 0).
    #[arg(long, default_value_t = 0.05, value_parser = nexus_lab::cli::positive)]
    gamma: f64,
    /// Spread of the task minima (>= 0).
    #[arg(long, default_value_t = 1.0, value_parser = nexus_lab::cli::non_negative)]
    spread: f64,
    /// Outer steps.
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..=L::STEPS))]
    steps: u64,
    /// Print every this many steps.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u64).range(1..=L::STEPS))]
    every: u64,
    #[arg(long, value_enum, default_value_t = Outer::Adamw)]
    outer: Outer,
    /// Outer learning rate (>= 0).
    #[arg(long, default_value_t = 0.01, value_parser = nexus_lab::cli::non_negative)]
    lr: f64,
    /// AdamW weight decay (>= 0).
    #[arg(long, default_value_t = 0.0, value_parser = nexus_lab::cli::non_negative)]
    weight_decay: f64,
    /// Raw inner steps (Nexus-Dot) instead of normalized ones.
    #[arg(long)]
    dot: bool,
    /// Draw the K sources without replacement.
    #[arg(long)]
    without_replacement: bool,
    /// Held-out tasks.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u64).range(1..=L::COUNT))]
    held_out: u64,
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

/// Refuses, before allocating, a problem that would not fit in the memory available: every
/// task of the matrix families holds d x d matrices (and the Haar rotation's construction a few
/// more), a logistic task a samples x d feature matrix.
fn check_memory(family: &Family, dim: usize, tasks: usize) -> Result<()> {
    let d = dim as f64;
    let per_task = match family {
        Family::Isotropic { .. } => 8.0 * 4.0 * d,
        Family::Logistic { samples, .. } => 8.0 * (*samples as f64 + 4.0) * d,
        _ => 8.0 * 4.0 * d * d,
    };
    let need = per_task * tasks as f64;
    match nexus_lab::cli::available_memory() {
        Some(avail) if need > 0.8 * avail => Err(Error::InvalidArgument {
            name: "dim",
            reason: format!(
                "--dim {dim} with {tasks} tasks of the {} family needs about {:.1} GiB; {:.1} GiB are available",
                family.id(),
                need / 2f64.powi(30),
                avail / 2f64.powi(30)
            ),
        }),
        _ => Ok(()),
    }
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
    Ok(match a.outer {
        Outer::Sgd => Box::new(Sgd::new(a.lr)?),
        Outer::Adamw => Box::new(AdamW::new(cfg)?),
        Outer::Nadam => Box::new(NormalizedAdam::new(cfg)?),
    })
}

fn run(a: &Args) -> Result<()> {
    let fam = family(&a.family)?;
    let (dim, n_tasks, n_held) = (a.dim as usize, a.tasks as usize, a.held_out as usize);
    check_memory(&fam, dim, n_tasks + n_held + 1)?;
    let dist = TaskDistribution::new(fam, dim, a.spread)?;
    let mut rng = rng_for(a.seed, "nexus_run");
    let mut tasks: Vec<BoxedTask> = dist.sample_many(n_tasks, &mut rng)?;
    let held_out = dist.sample_many(n_held, &mut rng)?;
    let cfg = NexusConfig {
        inner_steps: a.k.map_or(n_tasks, |k| k as usize),
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
        "seed {} family {} d {} tasks {} K {} gamma {} outer {:?} lr {}",
        a.seed, a.family, a.dim, a.tasks, cfg.inner_steps, a.gamma, a.outer, a.lr
    );
    println!(
        "{:>6} {:>12} {:>10} {:>12} {:>12}",
        "step", "train_loss", "cosine", "closeness", "heldout"
    );
    for step in 0..=a.steps {
        if step % a.every == 0 || step == a.steps {
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
    nexus_lab::cli::finish("nexus_run", run(&Args::parse()))
}
