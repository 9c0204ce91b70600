//! One study's analysis: paired differences to AdamW per variant and metric, the tested
//! instances and readings, the figures' series and the report, and each of the paper's claims
//! read off it.

use super::runs::{
    correction_strength, effects_figure, mean_held_out_tail_change, mean_tail_change, run_all,
    ClosenessProtocol, Job, MeanBand, Metric, RunResult, StudyConfig, BAND_LEVEL, FINAL_EVAL_ROWS,
    LEVEL, NEAREST_SCALE_GAIN,
};
use crate::llama::{TrainConfig, Variant};
use crate::report::{
    ClaimKind, ClaimMeta, ClaimReport, EffectSeries, Hypothesis, Instance, Outcome, Reading, Role,
    Series, Test,
};
use crate::stats::mean_ci;
use crate::Result;
use candle_core::Device;
use indicatif::ProgressBar;

/// The study's statement, the same on every mixture.
const STATEMENT: &str = "Nexus reaches the same pretraining loss as AdamW (|delta| < 0.01) with lower out-of-distribution loss, higher gradient similarity between sources and a smaller distance to per-source minima; NSGD (K = 1) and Muon show no such bias and Nexus-Dot slows pretraining.";
const REFERENCE: &str = "Tables 1 and 4, Fig. 7 (empirical claims, at our scale)";

/// The study on the built-in synthetic languages.
pub const LLAMA_PRETRAIN: ClaimMeta = ClaimMeta {
    id: "llama-pretrain",
    reference: REFERENCE,
    statement: STATEMENT,
    kind: ClaimKind::UpperBound,
};

/// The study on the balanced manual-page mixture.
pub const LLAMA_MANPAGES: ClaimMeta = ClaimMeta {
    id: "llama-manpages",
    ..LLAMA_PRETRAIN
};

/// The study on the skewed manual-page mixture (one minority language, Table 7).
pub const LLAMA_MANPAGES_SKEWED: ClaimMeta = ClaimMeta {
    id: "llama-manpages-skewed",
    ..LLAMA_PRETRAIN
};

/// The variants whose minority-language gain a skewed mixture reports: Nexus, and its controls
/// NSGD (normalized inner steps without the second-order term) and the random direction.
const MINORITY_VARIANTS: [Variant; 3] = [Variant::Nexus, Variant::Nsgd, Variant::Random];

/// The reading of a variant's minority-language gain.
fn minority_reading(v: Variant) -> String {
    format!("{}: the minority language gains most", v.name())
}

/// The paper's claims about Nexus against AdamW, one per line of the study's summary, each
/// with the instance that decides it: (claim, reading, whether the instance is the
/// equivalence on the pretraining loss).
const CLAIMS: [(&str, &str, Option<bool>); 6] = [
    (
        "same pretraining loss",
        "nexus: same pretraining loss, lower held-out loss",
        Some(true),
    ),
    (
        "lower held-out loss",
        "nexus: same pretraining loss, lower held-out loss",
        Some(false),
    ),
    (
        "higher gradient similarity",
        "nexus: gradient cosine better",
        None,
    ),
    (
        "closer to the training languages' minima",
        "nexus: closeness (train sources) better",
        None,
    ),
    (
        "closer to the held-out languages' minima",
        "nexus: closeness (held-out) better",
        None,
    ),
    (
        "minority language helped most",
        "nexus: the minority language gains most",
        None,
    ),
];

/// One claim's outcome in one study.
pub(super) struct ClaimOutcome {
    claim: &'static str,
    outcome: Outcome,
    /// `holds`, `holds with a smaller effect than the paper's`, `fails`, or `undecided (N seeds
    /// would decide)`.
    words: String,
    /// For an effect not shown whose estimate points the claimed way: the seeds that would
    /// show an effect of the estimated size.
    seeds_to_detect: Option<f64>,
}

/// Each claim's outcome in one study.
pub(super) fn per_claim(rep: &ClaimReport) -> Vec<ClaimOutcome> {
    CLAIMS
        .iter()
        .filter_map(|&(claim, reading, equivalence)| {
            let inst = rep.instances_of(reading).find(|i| {
                equivalence.is_none_or(|e| i.params.contains_key("pretraining_loss") == e)
            })?;
            let words = match (inst.outcome(), inst.needed_samples) {
                (Outcome::Undecided, Some(n)) if n.is_finite() => {
                    format!("undecided ({n:.0} seeds would decide)")
                }
                (o, _) => o.label().to_string(),
            };
            Some(ClaimOutcome {
                claim,
                outcome: inst.outcome(),
                words,
                seeds_to_detect: inst.samples_to_detect(),
            })
        })
        .collect()
}

/// The finding that lists each claim's outcome at every master seed and whether it is stable.
pub(super) fn claim_table(claims: &[Vec<ClaimOutcome>], masters: &[u64]) -> String {
    let first = claims.first().map_or(&[][..], |c| &c[..]);
    let lines: Vec<String> = first
        .iter()
        .enumerate()
        .map(|(k, c0)| {
            let at: Vec<&str> = claims.iter().map(|c| c[k].words.as_str()).collect();
            // Undecided at 27 seeds and at 31 is the same outcome.
            let stable = if claims.iter().all(|c| c[k].outcome == c0.outcome) {
                "stable".to_string()
            } else if claims
                .iter()
                .all(|c| matches!(c[k].outcome, Outcome::Fails | Outcome::Smaller))
            {
                // Both say the paper's size is excluded; they differ only on whether a smaller
                // effect is significant, a question of power (see `report::verdict`).
                let seeds = claims
                    .iter()
                    .filter_map(|c| c[k].seeds_to_detect)
                    .fold(f64::NAN, f64::max);
                format!(
                    "the paper's effect size is excluded at every master seed, stable; whether a smaller effect exists is not decided: significant at some master seeds only{}",
                    if seeds.is_finite() {
                        format!(", about {seeds:.0} seeds would show one of the estimated size")
                    } else {
                        String::new()
                    }
                )
            } else {
                "CHANGES with the master seed".to_string()
            };
            format!("{}: {} ({stable})", c0.claim, at.join(" / "))
        })
        .collect();
    format!(
        "Per claim, Nexus against AdamW, at master seeds {}: {}.",
        masters
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(" / "),
        lines.join("; ")
    )
}

/// Whether the closeness fine-tunes reached their minima (the criterion checked on each):
/// how many met the gradient test, how many stopped on the plateau test instead (and the
/// gradient ratio they ended at, which can be far from small: a plateau over 10 steps can be an
/// oscillation), how many hit the cap, and the steps they took, per variant; and the batch loss
/// at the fine-tuned points as a share of the one at the trained point (each run's mean over
/// its sources, the ends of the interpolation path), the evidence that does not lean on the
/// gradient: a trained model can start so near a source's optimum that its gradient is small
/// and any point of a memorized batch has a larger one. `None` under the fixed-steps protocol,
/// which records none.
fn finetune_finding(results: &[Vec<RunResult>], stop: &ClosenessProtocol) -> Option<String> {
    let ClosenessProtocol::ToMinimum(stop) = stop else {
        return None;
    };
    let ends: Vec<_> = results
        .iter()
        .flatten()
        .flat_map(|r| &r.finetunes)
        .collect();
    if ends.is_empty() {
        return None;
    }
    let by_gradient = ends
        .iter()
        .filter(|e| e.converged && e.gradient_ratio <= stop.gradient_ratio)
        .count();
    let plateau: Vec<f64> = ends
        .iter()
        .filter(|e| e.converged && e.gradient_ratio > stop.gradient_ratio)
        .map(|e| e.gradient_ratio)
        .collect();
    let capped = ends.iter().filter(|e| !e.converged).count();
    let steps: Vec<f64> = ends.iter().map(|e| e.steps as f64).collect();
    let (steps_min, steps_median, steps_max) = crate::stats::min_median_max(&steps)?;
    let per_variant: Vec<String> = Variant::ALL
        .iter()
        .zip(results)
        .map(|(v, runs)| {
            let e: Vec<_> = runs.iter().flat_map(|r| &r.finetunes).collect();
            format!(
                "{} {}/{}",
                v.name(),
                e.iter().filter(|e| e.converged).count(),
                e.len()
            )
        })
        .collect();
    let plateau_range = if plateau.is_empty() {
        String::new()
    } else {
        format!(
            ", with the gradient ratio at the end from {:.3} to {:.3}",
            plateau.iter().cloned().fold(f64::INFINITY, f64::min),
            plateau.iter().cloned().fold(0.0, f64::max)
        )
    };
    let loss_left = |path: fn(&RunResult) -> &[f64]| -> String {
        let left: Vec<f64> = results
            .iter()
            .flatten()
            .filter_map(|r| match path(r) {
                [first, .., last] => Some(last / first),
                _ => None,
            })
            .collect();
        crate::stats::min_median_max(&left).map_or("-".into(), |(lo, med, hi)| {
            format!(
                "{:.1}% [{:.1}%, {:.1}%]",
                100.0 * med,
                100.0 * lo,
                100.0 * hi
            )
        })
    };
    Some(format!(
        "Closeness fine-tunes, {} in all: {by_gradient} met the gradient test (norm at most {} of its start), {} stopped on the plateau test instead{plateau_range}, {capped} hit the cap of {} steps (converged per variant: {}); steps median {:.0} [{:.0}, {:.0}]. The batch loss at the fine-tuned points, as a share of the one at the trained point (median over runs [range]): {} toward the training languages' minima, {} toward the held-out ones'. The closeness means include every fine-tune.",
        ends.len(),
        stop.gradient_ratio,
        plateau.len(),
        stop.max_steps,
        per_variant.join(", "),
        steps_median,
        steps_min,
        steps_max,
        loss_left(|r| &r.path),
        loss_left(|r| &r.held_out_path),
    ))
}

/// Trains every variant at every training seed of one master seed and assembles the report;
/// also returns the interpolation series (Fig. 7), the held-out curves over training and the
/// headline numbers in words.
pub(super) fn study(
    a: &StudyConfig,
    master: u64,
    bar: &ProgressBar,
    device: &Device,
) -> Result<(ClaimReport, Vec<Series>, Vec<Series>, String)> {
    let setting = a.base_setting();
    let jobs: Vec<Job> = Variant::ALL
        .iter()
        .flat_map(|&variant| {
            let setting = setting.clone();
            (0..a.seeds_of(variant)).map(move |seed| Job {
                variant,
                seed,
                setting: setting.clone(),
            })
        })
        .collect();
    bar.set_message(format!("master seed {master}"));
    let mut done = run_all(a, master, &jobs, bar, device)?.into_iter();
    // [variant][seed], in the order of `jobs`.
    let results: Vec<Vec<RunResult>> = Variant::ALL
        .iter()
        .map(|&v| done.by_ref().take(a.seeds_of(v)).collect())
        .collect();
    let mut summary = Vec::new();
    println!(
        "{:<10} {:<26} {:>10} {:>22}",
        "variant",
        "metric",
        "mean diff",
        format!("{:.1}% CI", LEVEL * 100.0)
    );
    let family = if a.corpus.is_some() {
        "manual pages"
    } else {
        "synthetic languages"
    };
    let mut instances = Vec::new();
    let mut findings = Vec::new();
    // (variant, held-out point in % of AdamW's loss, pretraining point) for the figure.
    let mut effect_points = Vec::new();
    // How active Nexus's correction was: its size against the first-order part, over every
    // measurement (the evaluation steps) of every run of each variant that has one.
    let strength_of = |vi: usize| correction_strength(&results[vi]);
    for (vi, v) in Variant::ALL.iter().enumerate().skip(1) {
        // Paired by training seed: the variant's seeds against AdamW's first as many.
        let seeds = results[vi].len();
        let diffs_of = |m: Metric| -> Result<crate::stats::MeanCi> {
            let d: Vec<f64> = (0..seeds)
                .map(|s| results[vi][s].metrics[m as usize] - results[0][s].metrics[m as usize])
                .collect();
            mean_ci(&d, LEVEL)
        };
        let mut parts = Vec::new();
        let pretraining = diffs_of(Metric::PretrainingLoss)?;
        let held = diffs_of(Metric::HeldOutLoss)?;
        let held_base = (0..seeds)
            .map(|s| results[0][s].metrics[Metric::HeldOutLoss as usize])
            .sum::<f64>()
            / seeds as f64;
        let pct = 100.0 / held_base;
        effect_points.push((
            v.name().to_string(),
            (vi as f64, held.mean * pct, held.lo * pct, held.hi * pct),
            (vi as f64, pretraining.mean, pretraining.lo, pretraining.hi),
        ));
        for metric in Metric::ALL {
            let ci = diffs_of(metric)?;
            println!(
                "{:<10} {:<26} {:>+10.4} [{:>+9.4}, {:>+9.4}]",
                v.name(),
                metric,
                ci.mean,
                ci.lo,
                ci.hi
            );
            parts.push(format!(
                "{metric} {:+.4} [{:+.4}, {:+.4}]",
                ci.mean, ci.lo, ci.hi
            ));
            let mut prm = vec![
                ("seeds", seeds as f64),
                ("steps", a.steps as f64),
                ("pretraining_loss_diff", pretraining.mean),
            ];
            if let Some(((lo, med, hi), _)) = strength_of(vi) {
                // The correction strength beside the effect (the README's Llama table).
                prm.extend([
                    ("strength_min", lo),
                    ("strength_median", med),
                    ("strength_max", hi),
                ]);
            }
            let baseline = (0..seeds)
                .map(|s| results[0][s].metrics[metric as usize])
                .sum::<f64>()
                / seeds as f64;
            let effect = Hypothesis::Effect {
                lower_is_better: metric.lower_is_better(),
                size: metric.effect_size(baseline),
            };
            instances.push(Instance::tested(
                family,
                &format!("{}: {metric} better", v.name()),
                &prm,
                0.0,
                Test::of(&ci, effect),
            ));
            if *v == Variant::Nexus
                && matches!(metric, Metric::PretrainingLoss | Metric::HeldOutLoss)
            {
                summary.push(format!(
                    "nexus {metric} {:+.4} [{:+.4}, {:+.4}]",
                    ci.mean, ci.lo, ci.hi
                ));
            }
            if *v == Variant::Nexus && metric == Metric::HeldOutLoss {
                // Two instances of the statement, both tested: "same pretraining loss" is the
                // paper's |delta| < 0.01 on the loss over the training mixture, an equivalence
                // (holds when the interval lies inside the margin, undecided when it straddles
                // it), and the held-out effect. A point estimate near 0.01 decides neither.
                let statement = "nexus: same pretraining loss, lower held-out loss";
                let same = Hypothesis::Within {
                    value: 0.0,
                    margin: 0.01,
                };
                let mut same_prm = prm.clone();
                same_prm.push(("pretraining_loss", 1.0));
                instances.push(Instance::tested(
                    family,
                    statement,
                    &same_prm,
                    0.0,
                    Test::of(&pretraining, same),
                ));
                instances.push(Instance::tested(
                    family,
                    statement,
                    &prm,
                    0.0,
                    Test::of(&ci, effect),
                ));
            }
        }
        findings.push(format!(
            "{} - adamw over {seeds} seeds: {}.",
            v.name(),
            parts.join("; ")
        ));
    }
    let mut strengths = Vec::new();
    for (vi, v) in Variant::ALL.iter().enumerate() {
        if let Some(((lo, med, hi), (clo, cmed, chi))) = strength_of(vi) {
            strengths.push(format!(
                "{} {med:.3e} [{lo:.3e}, {hi:.3e}], cosine {cmed:.6} [{clo:.6}, {chi:.6}]",
                v.name()
            ));
        }
    }
    if !strengths.is_empty() {
        findings.push(format!(
            "Correction strength, ||pg - gamma sum_i ghat_i|| / ||gamma sum_i ghat_i|| with ghat_i the normalized micro-batch gradients at the step's start (median [range] over the evaluation steps of every run; gamma = {}, K = {}), and the cosine between pg and its first-order part: {}.",
            TrainConfig::default().inner_lr,
            TrainConfig::default().accum,
            strengths.join("; ")
        ));
    }
    if let Some(f) = finetune_finding(&results, &a.closeness()) {
        findings.push(f);
    }
    // How far from flat the runs stopped: the paper compares models at the end of a schedule.
    let flatness: Vec<String> = Variant::ALL
        .iter()
        .zip(&results)
        .map(|(v, runs)| {
            format!(
                "{} {} and {:+.2}%",
                v.name(),
                mean_tail_change(runs.iter()),
                100.0 * mean_held_out_tail_change(runs.iter())
            )
        })
        .collect();
    findings.push(format!(
        "How far from flat the runs stopped (mean over seeds): the training loss's change over the last 10% of steps (least-squares line) and the held-out loss's change over the last evaluation interval (the last sixth of the steps): {}.",
        flatness.join("; ")
    ));
    let speeds: Vec<String> = Variant::ALL
        .iter()
        .enumerate()
        .map(|(vi, v)| {
            format!(
                "{} {:.0}",
                v.name(),
                results[vi].iter().map(|r| r.tokens_per_second).sum::<f64>()
                    / results[vi].len() as f64
            )
        })
        .collect();
    findings.push(format!(
        "Training throughput on this machine (tokens/s per run, including evaluation; {} run(s) at once, {}): {}.",
        a.jobs,
        if a.jobs > 1 { "one thread each" } else { "every core for one run" },
        speeds.join(", ")
    ));
    // Table 7: under a skewed mixture, is the minority language helped most? Per seed, Nexus's
    // validation-loss change on the minority minus its mean change on the other languages.
    let minority = a.corpus.as_ref().and_then(|c| c.minority.clone());
    if let Some((lang, share)) = &minority {
        let langs: Vec<String> = results[0][0]
            .validation
            .iter()
            .map(|x| x.0.clone())
            .collect();
        let loss_on = |r: &RunResult, l: &str| {
            r.validation
                .iter()
                .find(|x| x.0 == l)
                .map_or(f64::NAN, |x| x.1)
        };
        // Per seed, a variant's validation-loss change (against AdamW) on the minority minus
        // its mean change on the other languages. NSGD (normalized inner steps, no second-order
        // term) and the random direction are the controls: normalized steps alone down-weight
        // high-loss batches, so a minority reading that NSGD shares is not Nexus's mechanism.
        let mut parts = Vec::new();
        for v in MINORITY_VARIANTS {
            let vi = Variant::ALL.iter().position(|w| *w == v).unwrap_or(1);
            let n = results[vi].len();
            let change =
                |s: usize, l: &str| loss_on(&results[vi][s], l) - loss_on(&results[0][s], l);
            let gains: Vec<f64> = (0..n)
                .map(|s| {
                    let others: Vec<f64> = langs
                        .iter()
                        .filter(|l| *l != lang)
                        .map(|l| change(s, l))
                        .collect();
                    change(s, lang) - others.iter().sum::<f64>() / others.len().max(1) as f64
                })
                .collect();
            let ci = mean_ci(&gains, LEVEL)?;
            let baseline = results[0][..n]
                .iter()
                .map(|r| loss_on(r, lang))
                .sum::<f64>()
                / n as f64;
            if v == Variant::Nexus {
                summary.push(format!(
                    "minority gain {:+.4} [{:+.4}, {:+.4}]",
                    ci.mean, ci.lo, ci.hi
                ));
            }
            println!(
                "minority {lang} at {:.0}%: {}'s validation-loss change there minus elsewhere {:+.4} [{:+.4}, {:+.4}]",
                100.0 * share,
                v.name(),
                ci.mean,
                ci.lo,
                ci.hi
            );
            parts.push(format!(
                "{} {:+.4} [{:+.4}, {:+.4}] ({n} seeds)",
                v.name(),
                ci.mean,
                ci.lo,
                ci.hi
            ));
            instances.push(Instance::tested(
                family,
                &minority_reading(v),
                &[("seeds", n as f64), ("share", *share)],
                0.0,
                Test::of(
                    &ci,
                    Hypothesis::Effect {
                        lower_is_better: true,
                        size: NEAREST_SCALE_GAIN * baseline.abs(),
                    },
                ),
            ));
        }
        findings.push(format!(
            "Skewed mixture, {lang} at {:.0}% of the training data: each variant's validation-loss change (against AdamW, paired by seed) on {lang} minus its mean change on the other training languages: {} (negative means the minority is helped most, the paper's Table 7 reading; NSGD and the random direction are its controls: a gain NSGD shares comes from the normalized inner steps, not from Nexus's second-order term).",
            100.0 * share,
            parts.join("; ")
        ));
    }
    let mut readings = vec![Reading::new(
        "nexus: same pretraining loss, lower held-out loss",
        "two tested instances: the pretraining-loss difference (Nexus - AdamW, paired by seed; the validation loss over the training mixture) within +-0.01 (an equivalence: its family-wise interval inside the margin), and the held-out-loss difference significantly below 0 (Holm, family-wise 0.001), 'no effect' when a 0.34% reduction (the smallest held-out gain the paper reports at any size, Table 9, 300M) is excluded",
        Role::Statement,
    )];
    if minority.is_some() {
        for v in MINORITY_VARIANTS {
            readings.push(Reading::new(
                &minority_reading(v),
                &format!("{}'s validation-loss change (against AdamW, paired by seed) on the minority language minus its mean change on the other training languages is significantly below 0 (Holm); 'no effect' when 0.34% of the minority's AdamW loss is excluded (Table 7's reading, at the paper's smallest reported gain){}", v.name(), if v == Variant::Nexus { "" } else { "; a control for Nexus's reading" }),
                Role::Info,
            ));
        }
    }
    for v in &Variant::ALL[1..] {
        for metric in Metric::ALL {
            readings.push(Reading::new(
                &format!("{}: {metric} better", v.name()),
                "the difference to AdamW is significant in the better direction (Holm); 'no effect' when an effect of the paper's relative size is excluded",
                Role::Info,
            ));
        }
    }
    // Mean over seeds with its interval (the project's level) as a shaded band.
    let across_seeds = |values: &[Vec<f64>]| -> Result<MeanBand> {
        let (mut mean, mut lo, mut hi) = (Vec::new(), Vec::new(), Vec::new());
        for i in 0..values[0].len() {
            let column: Vec<f64> = values.iter().map(|v| v[i]).collect();
            let ci = mean_ci(&column, BAND_LEVEL)?;
            mean.push(ci.mean);
            lo.push(ci.lo);
            hi.push(ci.hi);
        }
        Ok((mean, (lo, hi)))
    };
    let series = Variant::ALL
        .iter()
        .enumerate()
        .map(|(vi, v)| -> Result<Series> {
            let x: Vec<f64> = results[vi][0].curve.iter().map(|p| p.0).collect();
            let per_seed: Vec<Vec<f64>> = results[vi]
                .iter()
                .map(|r| r.curve.iter().map(|p| p.1).collect())
                .collect();
            let (y, band) = across_seeds(&per_seed)?;
            Ok(Series {
                label: v.name().into(),
                x,
                y,
                guide: false,
                band: Some(band),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    // Fig. 7: the loss along the straight line to each language's fine-tuned minimum, toward
    // the training languages and toward the held-out ones.
    let mut interpolation = Vec::new();
    for (target, path_of) in [
        (
            "training languages",
            (|r: &RunResult| r.path.clone()) as fn(&RunResult) -> Vec<f64>,
        ),
        ("held-out languages", |r: &RunResult| {
            r.held_out_path.clone()
        }),
    ] {
        for v in [Variant::Adamw, Variant::Nexus] {
            let vi = Variant::ALL.iter().position(|w| *w == v).unwrap_or(0);
            let per_seed: Vec<Vec<f64>> = results[vi].iter().map(path_of).collect();
            let (y, band) = across_seeds(&per_seed)?;
            interpolation.push(Series {
                label: format!("{}, toward {target}", v.name()),
                x: (0..y.len())
                    .map(|i| i as f64 / (y.len() - 1) as f64)
                    .collect(),
                y,
                guide: false,
                band: Some(band),
            });
        }
    }
    let defaults = TrainConfig::default();
    let (meta, data) = match &a.corpus {
        Some(c) => {
            let manifest = std::fs::read(c.dir.join("manifest.json")).ok();
            (
                if c.minority.is_some() {
                    &LLAMA_MANPAGES_SKEWED
                } else {
                    &LLAMA_MANPAGES
                },
                serde_json::json!({"corpus": "Debian manual pages (corpus fetch)", "train_languages": c.train, "held_out_languages": c.held_out, "minority": c.minority,
                    "manifest_sha256": manifest.map(|m| crate::corpus::sha256(&m))}),
            )
        }
        None => (
            &LLAMA_PRETRAIN,
            serde_json::json!({"languages": defaults.languages, "held_out_languages": defaults.held_out_languages,
                "language_spread": defaults.language_spread}),
        ),
    };
    let tokens_per_run = a.steps * defaults.accum * defaults.micro_batch * defaults.seq_len;
    let parameters = crate::llama::LlamaConfig::preset(&a.preset)?.num_parameters();
    findings.push(format!(
        "Scale: {parameters} parameters ({} preset), {tokens_per_run} training tokens per run ({} steps of {} x {} x {} tokens); the paper's models range from 130M to 3B parameters, and its Table 6 runs train 1B on 50B and 3B on 110B tokens.",
        a.preset,
        a.steps,
        defaults.accum,
        defaults.micro_batch,
        defaults.seq_len
    ));
    let mut settings = serde_json::json!({"preset": a.preset, "steps": a.steps, "seeds": a.seeds, "headline_seeds": a.headline_seeds, "jobs": a.jobs,
        "final_eval_tokens_per_language": FINAL_EVAL_ROWS * (defaults.seq_len + 1),
        "pretraining_loss": "validation loss on the training languages weighted by their mixture shares, final evaluation",
        "gradient_cosine": format!("mean pairwise cosine of the training languages' gradients, {FINAL_EVAL_ROWS} rows each, averaged over the 6 evaluations during training (Table 4's protocol); effect size +{:.4} (Table 4)", Metric::GradientCosine.effect_size(0.0)), "accum": defaults.accum, "micro_batch": defaults.micro_batch,
        "seq_len": defaults.seq_len, "lr": defaults.lr, "inner_lr": defaults.inner_lr, "schedule": "warmup 20 + cosine", "ci_level": LEVEL,
        "closeness": a.closeness().describe(), "device": a.device.flag(),
        "master_seeds": a.master_seeds, "run_seeds": "stream_seed(master, \"pretrain-run:<i>\")",
        "tokens_per_run": tokens_per_run});
    if let (Some(obj), Some(extra)) = (settings.as_object_mut(), data.as_object()) {
        obj.extend(extra.clone());
    }
    let mut rep = ClaimReport::assemble(
        meta,
        master,
        a.quick,
        settings,
        readings,
        instances,
        effects_figure(
            format!(
                "variant: {}",
                Variant::ALL[1..]
                    .iter()
                    .enumerate()
                    .map(|(i, v)| format!("{} {}", i + 1, v.name()))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            "variant - AdamW, paired by seed",
            false,
            effect_points
                .iter()
                .map(|(name, held, _)| EffectSeries {
                    label: name.clone(),
                    points: vec![*held],
                })
                .collect(),
            effect_points
                .iter()
                .map(|(name, _, pre)| EffectSeries {
                    label: name.clone(),
                    points: vec![*pre],
                })
                .collect(),
        ),
    )?;
    rep.findings = findings;
    rep.scale = Some(format!(
        "{parameters} parameters, {tokens_per_run} training tokens per run"
    ));
    Ok((rep, interpolation, series, summary.join(", ")))
}
