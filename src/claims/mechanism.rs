//! The mechanism study (Sec. 3 and 5 of the paper, on synthetic multi-task problems where
//! closeness is computable): at the same training loss, does Nexus reach closer minima, more
//! similar task gradients and a lower held-out loss than its base optimizer?
//!
//! Methods, all with the same outer AdamW (betas 0.9/0.95, eps 1e-10, no weight decay) and the
//! same index sampling (K sources drawn with replacement per outer step):
//! - `adamw`: AdamW on the mean gradient of the K sampled sources (Algorithm 2);
//! - `nexus`: Nexus, K normalized inner steps, displacement to AdamW (Algorithm 1);
//! - `nsgd (K = 1)`: Nexus with one inner step (normalized-gradient Adam, Sec. 5.2);
//! - `nexus-dot`: unnormalized inner steps (Sec. 5.3);
//! - `random control`: the first-order part of Nexus's pseudo-gradient (`gamma` times the sum of
//!   the sampled normalized gradients at the start point) plus a uniformly random direction of
//!   the same norm as Nexus's correction (the ablation a referee asked for).
//!
//! Each run stops at the first outer step whose training loss is within 10% of the initial
//! excess over the exact training minimum (the "same training loss"); metrics there: mean
//! pairwise gradient cosine (pairs i < j), closeness `(1/K) sum_k ||x - x_k*||^2`, and the mean
//! loss of 32 held-out tasks from the same distribution. Differences to AdamW are paired by seed
//! (same tasks, same start), decided by Holm-corrected tests with an equivalence margin of the
//! paper's effect size ([`crate::report::verdict`]).

use super::common::{family_code, par_map, stationary_point, stream, Claim, Settings};
use crate::error::Result;
use crate::metrics::{closeness, mean_loss, mean_pairwise_cosine};
use crate::nexus::{pseudo_gradient, sample_indices, step_direction, InnerStep, NexusConfig};
use crate::optim::{AdamW, AdamWConfig, Optimizer};
use crate::report::{
    ClaimKind, ClaimMeta, ClaimReport, EffectPanel, EffectSeries, Figure, Hypothesis, Instance,
    Reading, Role, Test,
};
use crate::stats::{mean_ci, CI_LEVEL};
use crate::tasks::{BoxedTask, Family, TaskDistribution};
use indicatif::ProgressBar;
use nalgebra::DVector;
use rand::Rng;
use rand_distr::{Distribution, StandardNormal};

/// The claim [`Mechanism`] checks.
pub const MECHANISM: ClaimMeta = ClaimMeta {
    id: "mechanism",
    reference: "Sec. 1-3 and 5 (same training loss, closer minima, better downstream)",
    statement: "At the same training loss, Nexus reaches closer per-task minima, higher gradient similarity and lower held-out loss than its base optimizer; NSGD (K = 1) and Nexus-Dot do not share the bias.",
    kind: ClaimKind::UpperBound,
};

/// The compared methods.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// AdamW on the mean sampled gradient.
    AdamW,
    /// Nexus + AdamW.
    Nexus,
    /// Nexus with K = 1.
    NsgdK1,
    /// Nexus-Dot.
    NexusDot,
    /// First-order part plus a random direction of the correction's norm.
    RandomControl,
}

impl Method {
    /// All methods, baseline first.
    pub const ALL: [Method; 5] = [
        Method::AdamW,
        Method::Nexus,
        Method::NsgdK1,
        Method::NexusDot,
        Method::RandomControl,
    ];
    /// Report name.
    pub fn name(&self) -> &'static str {
        match self {
            Method::AdamW => "adamw",
            Method::Nexus => "nexus",
            Method::NsgdK1 => "nsgd (K = 1)",
            Method::NexusDot => "nexus-dot",
            Method::RandomControl => "random control",
        }
    }
}

/// Settings of one study cell.
#[derive(Clone, Copy, Debug)]
pub struct StudyConfig {
    /// Inner step gamma.
    pub gamma: f64,
    /// Outer AdamW learning rate.
    pub lr: f64,
    /// Stop when the training loss is within this fraction of the initial excess.
    pub target_fraction: f64,
    /// Give up after this many outer steps.
    pub max_steps: usize,
}

impl Default for StudyConfig {
    fn default() -> Self {
        Self {
            gamma: 0.3,
            lr: 0.01,
            target_fraction: 0.1,
            max_steps: 20_000,
        }
    }
}

/// Metrics at the stopping point.
#[derive(Clone, Copy, Debug)]
pub struct Outcome {
    /// Whether the target training loss was reached.
    pub reached: bool,
    /// Outer steps taken.
    pub steps: usize,
    /// Training loss there.
    pub train_loss: f64,
    /// Mean pairwise gradient cosine.
    pub cosine: f64,
    /// Closeness to the training minima.
    pub closeness: f64,
    /// Mean held-out loss.
    pub heldout: f64,
}

/// Runs one method from `x0` until the target training loss.
pub fn run<R: Rng + ?Sized>(
    method: Method,
    tasks: &[BoxedTask],
    held_out: &[BoxedTask],
    x0: &DVector<f64>,
    target: f64,
    cfg: &StudyConfig,
    rng: &mut R,
) -> Result<Outcome> {
    let k = tasks.len();
    let adam_cfg = AdamWConfig {
        lr: cfg.lr,
        weight_decay: 0.0,
        ..AdamWConfig::default()
    };
    let mut outer = AdamW::new(adam_cfg)?;
    let nexus = NexusConfig::new(k, cfg.gamma)?;
    let inner = match method {
        Method::NsgdK1 => NexusConfig::new(1, cfg.gamma)?,
        Method::NexusDot => NexusConfig {
            inner_step: InnerStep::Raw,
            ..nexus
        },
        _ => nexus,
    };
    let mut x = x0.clone();
    let mut sources: Vec<&BoxedTask> = tasks.iter().collect();
    let mut steps = 0;
    let loss = |x: &DVector<f64>| mean_loss(tasks, x);
    while loss(&x)? > target && steps < cfg.max_steps {
        let idx = sample_indices(&inner, k, rng)?;
        let direction = match method {
            Method::AdamW => {
                idx.iter()
                    .map(|&s| tasks[s].gradient(&x))
                    .sum::<Result<DVector<f64>>>()?
                    / idx.len() as f64
            }
            Method::Nexus | Method::NsgdK1 | Method::NexusDot => {
                pseudo_gradient(&mut sources, &x, &idx, &inner)?
            }
            Method::RandomControl => {
                let pg = pseudo_gradient(&mut sources, &x, &idx, &inner)?;
                let mut first = DVector::zeros(x.len());
                for &s in &idx {
                    first += step_direction(&tasks[s].gradient(&x)?, &inner)?;
                }
                let correction = (&pg - &first).norm();
                let u = DVector::<f64>::from_fn(x.len(), |_, _| {
                    Distribution::<f64>::sample(&StandardNormal, rng)
                })
                .normalize();
                first + u * correction
            }
        };
        outer.step(&mut x, &direction)?;
        steps += 1;
    }
    Ok(Outcome {
        reached: loss(&x)? <= target,
        steps,
        train_loss: loss(&x)?,
        cosine: mean_pairwise_cosine(tasks, &x)?.unwrap_or(f64::NAN),
        closeness: closeness(tasks, &x)?,
        heldout: mean_loss(held_out, &x)?,
    })
}

/// One seed of one cell: every method from the same start on the same tasks.
pub fn run_seed(
    family: Family,
    d: usize,
    k: usize,
    spread: f64,
    cfg: &StudyConfig,
    seed: u64,
    label: &str,
) -> Result<Vec<Outcome>> {
    let dist = TaskDistribution::new(family, d, spread)?;
    let mut rng = crate::rng_for(seed, label);
    let tasks = dist.sample_many(k, &mut rng)?;
    let held_out = dist.sample_many(32, &mut rng)?;
    let x_train = stationary_point(&tasks)?;
    let x0 = &dist.center
        + DVector::<f64>::from_fn(d, |_, _| {
            Distribution::<f64>::sample(&StandardNormal, &mut rng)
        }) * 3.0;
    let (l_min, l0) = (mean_loss(&tasks, &x_train)?, mean_loss(&tasks, &x0)?);
    let target = l_min + cfg.target_fraction * (l0 - l_min);
    Method::ALL
        .iter()
        .map(|&m| {
            run(
                m,
                &tasks,
                &held_out,
                &x0,
                target,
                cfg,
                &mut crate::rng_for(seed, &format!("{label}:{}", m.name())),
            )
        })
        .collect()
}

const METRICS: [&str; 3] = ["held-out loss", "closeness", "cosine"];
const STATEMENT: &str = "nexus: lower held-out loss";
const LOGISTIC: &str = "nexus: lower held-out loss, logistic regression";

/// The paper's effect size (Table 1: out-of-distribution loss 1.302 -> 1.290 at equal
/// pretraining loss, 0.9% of the loss): "no effect" is decided when an effect of 0.9% of the
/// AdamW mean is excluded, for held-out loss and closeness; for the cosine (no size in the
/// paper) an absolute 0.01.
pub const RELATIVE_EFFECT: f64 = 0.009;

fn effect_size(which: &str, baseline: f64) -> f64 {
    if which == "cosine" {
        0.01
    } else {
        RELATIVE_EFFECT * baseline.abs()
    }
}

fn metric(o: &Outcome, which: &str) -> f64 {
    match which {
        "held-out loss" => o.heldout,
        "closeness" => o.closeness,
        _ => o.cosine,
    }
}

/// The mechanism study as a report.
pub struct Mechanism;

impl Claim for Mechanism {
    fn meta(&self) -> &'static ClaimMeta {
        &MECHANISM
    }
    fn evaluate(&self, settings: &Settings, progress: &ProgressBar) -> Result<ClaimReport> {
        // 160 replicates decide every held-out reading of Nexus at five master seeds (at 40 the
        // logistic, spread 0.3 effect of about -0.003 was significant at some seeds only); the
        // study takes a few seconds, so --quick keeps them.
        let seeds = 160;
        let cfg = StudyConfig::default();
        let (d, k) = (10, 4);
        // The standard families but the isotropic one, where closeness is a function of the
        // training loss (so "same training loss" would fix it).
        let [_, families @ ..] = Family::standard();
        let spreads = [0.3, 1.0, 3.0];
        let mut cells = Vec::new();
        for family in families {
            for spread in spreads {
                for seed in 0..seeds {
                    cells.push((family, spread, seed as u64));
                }
            }
        }
        // Replicate r of a cell has its own stream, hashed from (master seed, claim, family,
        // spread, r): two master seeds share no replicate.
        let outcomes: Vec<Vec<Outcome>> = par_map(&cells, progress, |&(family, spread, rep)| {
            run_seed(
                family,
                d,
                k,
                spread,
                &cfg,
                settings.seed,
                &stream("mechanism", &[family_code(family), spread, rep as f64]),
            )
        })?;
        let mut instances = Vec::new();
        let mut findings = Vec::new();
        let mut panels = Vec::new();
        for family in families {
            let mut panel = EffectPanel {
                title: format!("{} (d = {d}, K = {k})", family.id()),
                series: Vec::new(),
                references: vec![
                    ("no effect".into(), 0.0),
                    (
                        "the paper's effect (-0.9%)".into(),
                        -100.0 * effect_size("held-out loss", 1.0),
                    ),
                ],
            };
            for (mi, method) in Method::ALL.iter().enumerate() {
                let mut points = Vec::new();
                for spread in spreads {
                    let rows: Vec<&Vec<Outcome>> = cells
                        .iter()
                        .zip(&outcomes)
                        .filter(|((f, s, _), _)| *f == family && *s == spread)
                        .map(|(_, o)| o)
                        .collect();
                    if *method == Method::AdamW {
                        continue;
                    }
                    let unreached = rows
                        .iter()
                        .filter(|o| !o[mi].reached || !o[0].reached)
                        .count();
                    let mut parts = Vec::new();
                    for which in METRICS {
                        let diffs: Vec<f64> = rows
                            .iter()
                            .map(|o| metric(&o[mi], which) - metric(&o[0], which))
                            .collect();
                        let ci = mean_ci(&diffs, CI_LEVEL)?;
                        let baseline = rows.iter().map(|o| metric(&o[0], which)).sum::<f64>()
                            / rows.len() as f64;
                        let effect = Hypothesis::Effect {
                            lower_is_better: which != "cosine",
                            size: effect_size(which, baseline),
                        };
                        if which == "held-out loss" {
                            let pct = 100.0 / baseline;
                            points.push((spread, ci.mean * pct, ci.lo * pct, ci.hi * pct));
                        }
                        let variant = if *method == Method::Nexus && which == "held-out loss" {
                            STATEMENT.to_string()
                        } else {
                            format!("{}: {} better", method.name(), which)
                        };
                        instances.push(Instance::tested(
                            family.id(),
                            &variant,
                            &[
                                ("spread", spread),
                                ("seeds", rows.len() as f64),
                                ("d", d as f64),
                                ("K", k as f64),
                            ],
                            0.0,
                            Test::of(&ci, effect),
                        ));
                        if variant == STATEMENT && matches!(family, Family::Logistic { .. }) {
                            let mut on_logistic = instances.last().cloned().expect("just pushed");
                            on_logistic.reading = LOGISTIC.into();
                            instances.push(on_logistic);
                        }
                        parts.push(format!(
                            "{which} {:+.4} [{:+.4}, {:+.4}]",
                            ci.mean, ci.lo, ci.hi
                        ));
                    }
                    findings.push(format!(
                        "{} spread {spread}: {} - adamw: {}{}.",
                        family.id(),
                        method.name(),
                        parts.join("; "),
                        if unreached > 0 {
                            format!(" ({unreached} seeds did not reach the target loss)")
                        } else {
                            String::new()
                        }
                    ));
                }
                if *method != Method::AdamW {
                    panel.series.push(EffectSeries {
                        label: format!("{} - adamw", method.name()),
                        points,
                    });
                }
            }
            panels.push(panel);
        }
        let mut variants = vec![
            Reading::new(
                STATEMENT,
                "at the same training loss, Nexus's held-out loss is below AdamW's on every family and spread (paired differences; Holm-corrected one-sided test; 'no effect' when the family-wise interval excludes a 0.9% reduction)",
                Role::Statement,
            ),
            Reading::new(LOGISTIC, "the same, restricted to the logistic-regression family (the real model)", Role::Restriction),
        ];
        for method in &Method::ALL[1..] {
            for which in METRICS {
                let name = format!("{}: {} better", method.name(), which);
                if name != "nexus: held-out loss better" {
                    variants.push(Reading::new(
                        &name,
                        &format!(
                            "({} - adamw) {} differs from 0 in the better direction (Holm-corrected; 'no effect' when an effect of the paper's relative size is excluded)",
                            method.name(),
                            which
                        ),
                        Role::Info,
                    ));
                }
            }
        }
        let mut report = ClaimReport::assemble(
            &MECHANISM,
            settings.seed,
            settings.quick,
            serde_json::json!({"families": families, "d": d, "K": k, "spreads": spreads, "seeds": seeds, "held_out_tasks": 32,
                "gamma": cfg.gamma, "outer": "AdamW lr 0.01 betas (0.9, 0.95) eps 1e-10 wd 0", "target_fraction": cfg.target_fraction, "max_steps": cfg.max_steps}),
            variants,
            instances,
            Figure::Effects {
                x_label: "spread of the task minima".into(),
                y_label: format!(
                    "held-out loss at the target training loss, method - AdamW, % of AdamW's ({:.1}% intervals)",
                    100.0 * CI_LEVEL
                ),
                log_x: true,
                panels,
            },
        )?;
        report.findings = findings;
        Ok(report)
    }
}
