//! `figures/REPORT.md`: one table over all claims, then a section per claim.

use super::claim_report::{ClaimKind, ClaimReport, Role};
use super::evidence::{Outcome, Verdict};
use crate::error::Result;
use crate::fsio::write_atomic;
use std::fmt::Write as _;
use std::path::Path;

fn fmt_num(x: f64) -> String {
    if x == 0.0 {
        "0".into()
    } else if x.abs() >= 1e-2 && x.abs() < 1e4 {
        format!("{x:.4}")
    } else {
        format!("{x:.3e}")
    }
}

fn params_text(params: &std::collections::BTreeMap<String, f64>) -> String {
    params
        .iter()
        .map(|(k, v)| format!("{k} = {}", fmt_num(*v)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The corrected form a report names: the correction's formula, else its name.
fn corrected_text(r: &ClaimReport) -> String {
    r.corrected_form
        .as_ref()
        .map(|name| {
            r.readings
                .iter()
                .find(|v| &v.name == name)
                .and_then(|v| v.formula.clone())
                .unwrap_or_else(|| name.clone())
        })
        .unwrap_or_else(|| "-".into())
}

/// Text made safe for a Markdown table cell (`|` would end the cell).
fn cell(text: &str) -> String {
    text.replace('|', "\\|")
}

/// The run a report came from: its master seed, mode and crate version.
pub fn run_label(r: &ClaimReport) -> String {
    format!(
        "seed {}, {}, nexus-lab {}",
        r.seed,
        if r.quick { "--quick" } else { "full" },
        r.crate_version
    )
}

/// True when the reports come from runs with different seeds, modes or crate versions (then
/// every table row names its run).
fn mixed_runs(reports: &[ClaimReport]) -> bool {
    reports
        .windows(2)
        .any(|w| run_label(&w[0]) != run_label(&w[1]))
}

fn table_rows(
    s: &mut String,
    reports: &[&ClaimReport],
    prefix: &str,
    controls: bool,
    with_run: bool,
) {
    for r in reports {
        let (ok, n) = r.count(&r.deciding_reading);
        let spread = r
            .tightness
            .map(|t| {
                format!(
                    "{} / {} / {}",
                    fmt_num(t.min),
                    fmt_num(t.median),
                    fmt_num(t.max)
                )
            })
            .unwrap_or_else(|| "-".into());
        // One column per meaning of measured / claimed: a bound's ratio, an order claim's fitted
        // slope over the claimed order, an identity's measured side over its claimed side (a
        // value, or an error over its tolerance).
        let tight = match r.kind {
            ClaimKind::UpperBound => format!("{spread} | - | -"),
            ClaimKind::Order { .. } => format!("- | {spread} | -"),
            ClaimKind::Equality => format!("- | - | {spread}"),
        };
        let expected = match (controls, r.control) {
            (true, Some(c)) => format!(
                " | {} | {}",
                c.expected.label(),
                if c.expected == r.verdict {
                    "yes"
                } else {
                    "**no**"
                }
            ),
            _ => String::new(),
        };
        let run = if with_run {
            format!(" {} |", run_label(r))
        } else {
            String::new()
        };
        let _ = writeln!(
            s,
            "| [{id}]({anchor}#{id}) | {refr} | **{verdict}**{scale}{expected} | {reading} | {corr} | {fam} | {tight} | {ok}/{n} | [png]({prefix}{id}.png) |{run}",
            id = r.id,
            anchor = if prefix.is_empty() { String::new() } else { format!("{prefix}REPORT.md") },
            refr = cell(&r.reference),
            verdict = r.verdict.label(),
            scale = cell(&r.scale_note()),
            reading = cell(&r.deciding_reading),
            corr = cell(&corrected_text(r)),
            fam = r.families.join(", "),
        );
    }
}

/// The Llama evidence in one table: per study and arm (or variant), the measured correction
/// strength `||pg - gamma sum_i ghat_i|| / ||gamma sum_i ghat_i||` (median [min, max] over the
/// evaluation steps of every run) beside the held-out effect against AdamW with its
/// family-wise interval. Rows are the held-out instances that carry a strength.
pub fn llama_table(reports: &[ClaimReport], prefix: &str) -> String {
    let mut s = String::from("| study | variant or arm | parameters | gamma | K | correction strength, median [min, max] | held-out loss, Nexus - AdamW [family-wise interval] | outcome |\n|---|---|---|---|---|---|---|---|\n");
    for r in reports.iter().filter(|r| r.scale.is_some()) {
        let setting = |key: &str| r.settings.get(key).and_then(serde_json::Value::as_f64);
        for i in r.instances.iter().filter(|i| {
            i.params.contains_key("strength_median")
                && (i.reading.ends_with("held-out loss better")
                    || i.reading == "nexus: lower held-out loss")
        }) {
            let p = |k: &str| i.params.get(k).copied();
            // A sweep's arm by its label in the settings; a variant by its name.
            let who = match p("arm") {
                Some(a) => r.settings["arms"][a as usize]["label"]
                    .as_str()
                    .map_or_else(|| format!("arm {a}"), |l| format!("nexus, {l}")),
                None => i.reading.split(':').next().unwrap_or("-").to_string(),
            };
            let params = p("d").map_or_else(
                || {
                    r.scale
                        .as_deref()
                        .and_then(|s| s.split(" parameters").next())
                        .unwrap_or("-")
                        .to_string()
                },
                |d| format!("{d}"),
            );
            let (lo, hi) = i.ci.unwrap_or((f64::NAN, f64::NAN));
            let _ = writeln!(
                s,
                "| [{}]({prefix}REPORT.md#{}) | {who} | {params} | {} | {} | {:.3e} [{:.3e}, {:.3e}] | {:+.4} [{:+.4}, {:+.4}] | {} |",
                r.id,
                r.id,
                p("gamma").or_else(|| setting("inner_lr")).map_or("-".into(), |g| format!("{g}")),
                p("K").or_else(|| setting("accum")).map_or("-".into(), |k| format!("{k}")),
                p("strength_median").unwrap_or(f64::NAN),
                p("strength_min").unwrap_or(f64::NAN),
                p("strength_max").unwrap_or(f64::NAN),
                i.measured,
                lo,
                hi,
                i.outcome().label(),
            );
        }
    }
    s
}

/// The verdict table alone: the paper's claims, then the pipeline's controls under their own
/// heading. `prefix` is the path from the reader to the figures folder: `""` inside
/// `figures/REPORT.md`, `"figures/"` in the README.
pub fn verdict_table(reports: &[ClaimReport], prefix: &str) -> String {
    let (controls, claims): (Vec<&ClaimReport>, Vec<&ClaimReport>) =
        reports.iter().partition(|r| r.control.is_some());
    let with_run = mixed_runs(reports);
    let (run_head, run_rule) = if with_run {
        (" run |", "---|")
    } else {
        ("", "")
    };
    let mut s = String::new();
    let _ = writeln!(s, "| claim | paper | verdict | deciding reading | corrected form | families | bound ratio (min / median / max) | slope / order | identity: measured / claimed | instances | figure |{run_head}");
    let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|---|---|{run_rule}");
    table_rows(&mut s, &claims, prefix, false, with_run);
    if !controls.is_empty() {
        s.push_str("\n**Controls** (results known to be true, and the same with a deliberate error, through the same engine and verdict code):\n\n");
        let _ = writeln!(s, "| control | source | verdict | expected | as expected | deciding reading | corrected form | families | bound ratio (min / median / max) | slope / order | identity: measured / claimed | instances | figure |{run_head}");
        let _ = writeln!(
            s,
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|{run_rule}"
        );
        table_rows(&mut s, &controls, prefix, true, with_run);
    }
    s
}

/// `CORRECTIONS.md`: for each claim that does not hold as stated, the corrected statement, the
/// proof step where it breaks, the evidence and the smallest counterexample of the original.
pub fn corrections(reports: &[ClaimReport]) -> String {
    let mut s = String::new();
    s.push_str("# Corrections to the Nexus paper's claims\n\n");
    s.push_str("Generated by `cargo run --release --bin reproduce` from `reports/*.json`, like `REPORT.md`: one section per claim whose statement does not hold on every instance measured. Nothing here is edited by hand.\n");
    for r in reports
        .iter()
        .filter(|r| r.control.is_none() && r.verdict != Verdict::Holds)
    {
        let _ = writeln!(s, "\n## {} ({})\n", r.id, r.reference);
        let _ = writeln!(s, "**Verdict: {}.**\n", r.verdict_text());
        let _ = writeln!(s, "**As stated.** {}\n", r.statement);
        let statement = r.readings.iter().find(|v| v.role == Role::Statement);
        if let Some(v) = statement {
            let (ok, n) = r.count(&v.name);
            let _ = writeln!(
                s,
                "The statement (`{}`) holds on {ok} of {n} instances.\n",
                v.name
            );
        }
        for v in r
            .readings
            .iter()
            .filter(|v| matches!(v.role, Role::Restriction | Role::Correction))
        {
            let (ok, n) = r.count(&v.name);
            let what = if v.role == Role::Restriction {
                "Restriction"
            } else {
                "Corrected form"
            };
            let _ = writeln!(
                s,
                "- **{what}** `{}`{}: {} (holds on {ok} of {n} instances: the reading {}).",
                v.name,
                v.formula
                    .as_ref()
                    .map(|f| format!(", `{f}`"))
                    .unwrap_or_default(),
                v.description,
                match r.reading_outcome(&v.name) {
                    Some(Outcome::Holds) => "holds",
                    Some(Outcome::Undecided) => "undecided",
                    _ => "fails",
                }
            );
        }
        if let Some(f) = &r.proof_fault {
            let _ = writeln!(s, "\n**Where the proof breaks.** {f}");
        }
        if let Some(t) = r.tightness {
            let _ = writeln!(
                s,
                "\n**Evidence.** Deciding reading `{}` on {}: measured / claimed {} / {} / {} (min / median / max).",
                r.deciding_reading,
                r.families.join(", "),
                fmt_num(t.min),
                fmt_num(t.median),
                fmt_num(t.max)
            );
        }
        if let Some(c) = &r.counterexample {
            let _ = writeln!(
                s,
                "\n**Smallest counterexample** ({}): {}; measured {} against claimed {}.",
                c.family,
                params_text(&c.params),
                fmt_num(c.measured),
                fmt_num(c.claimed)
            );
        }
    }
    s
}

/// `SEEDS.md`: each report's verdict at every master seed it was evaluated at
/// ([`ClaimReport::replications`]), and every verdict that changes with the seed.
pub fn seed_table(reports: &[ClaimReport]) -> String {
    let replicated: Vec<&ClaimReport> = reports
        .iter()
        .filter(|r| !r.replications.is_empty())
        .collect();
    let stable = |r: &ClaimReport| r.replications.iter().all(|x| x.verdict == r.verdict);
    let mut s = String::new();
    s.push_str("# Verdicts across master seeds\n\n");
    let _ = writeln!(
        s,
        "Generated from `reports/*.json` (nexus-lab {}) by `cargo run --release --bin reproduce` (every claim, `--seeds N`, default 5) and `pretrain` (the Llama studies, `--master-seeds N`, default 2): every report evaluated at its run's own master seed and at master seeds hashed from it. Nothing here is edited by hand.\n",
        crate::VERSION
    );
    let changed: Vec<&str> = replicated
        .iter()
        .filter(|r| !stable(r))
        .map(|r| r.id.as_str())
        .collect();
    let _ = if changed.is_empty() {
        writeln!(
            s,
            "**Every verdict below is identical at all its master seeds.**\n"
        )
    } else {
        writeln!(
            s,
            "**Verdicts that change with the master seed: {}.**\n",
            changed.join(", ")
        )
    };
    s.push_str("| claim | master seeds | verdict at each seed | identical |\n|---|---|---|---|\n");
    for r in replicated {
        let seeds: Vec<String> = r.replications.iter().map(|x| x.seed.to_string()).collect();
        let verdicts: Vec<&str> = r.replications.iter().map(|x| x.verdict.label()).collect();
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} |",
            r.id,
            seeds.join(", "),
            verdicts.join("; "),
            if stable(r) { "yes" } else { "**no**" }
        );
    }
    s
}

/// Writes `dir/REPORT.md` from the reports.
/// What the tightness table's columns mean.
pub const TIGHTNESS_INTRO: &str = "Generated by `cargo run --release --bin tightness` (figures/tightness/). For each bound, measured / claimed: *typical* is the median over the claim's sampled grid (its report); *worst found* is the largest a multistart Nelder-Mead search (argmin) found over the stated assumption class, every evaluation through the claim's own check, its instance saved as JSON and re-checked from the file; *sharp constant* is the supremum of the ratio over the class where a closed-form instance attains it (proven when a proof shows nothing exceeds it), else the search's worst; *slack* is the paper's constant over the sharp one, the factor by which the bound could shrink on that class. A worst found above 1 beyond rounding (1e-9) is a counterexample. A row whose class says \"a measured constant\" maximizes a constant with no bound claimed (Thm 8.3's corrected form), so it has no slack.\n\n";

pub fn write_summary(
    reports: &[ClaimReport],
    tightness: &[super::tightness::TightnessRow],
    dir: &Path,
) -> Result<()> {
    let mut s = String::new();
    let _ = writeln!(s, "# nexus-lab: verdicts on the Nexus paper's claims\n");
    // The header describes the runs the reports come from, read from the reports themselves:
    // a partial re-run (`--only`, `--quick`, another `--seed`) must not relabel the others.
    let origin = match reports.first() {
        Some(r) if !mixed_runs(reports) => format!(
            "Generated by `cargo run --release --bin reproduce{}` (every report: {}).",
            if r.quick { " -- --quick" } else { "" },
            run_label(r)
        ),
        Some(_) => "Generated by `cargo run --release --bin reproduce` from reports of several runs (different seeds, modes or crate versions): the `run` column and each section name the run of each report.".to_string(),
        None => "Generated by `cargo run --release --bin reproduce`; no reports yet.".to_string(),
    };
    let _ = writeln!(
        s,
        "{origin} Every number below comes from the JSON reports in `reports/`; nothing here is edited by hand.\n"
    );
    s.push_str("A claim **holds** when the paper's statement holds on every instance measured. When it does not, it **holds under a restriction** if the statement's own formula holds on a named part of its setting (a family, a parameter range, on average over a draw); otherwise it **fails as stated; corrected form holds** if a different formula, constant or identity (named in the corrected-form column) holds on every instance; otherwise it **fails**. It is **inconclusive** when no instance refutes the statement but some cannot decide at the sample size used (the report says what sample size would). The three ratio columns give min / median / max of measured side / claimed side over the deciding reading's instances, in the column of the claim's kind: for a bound, the bound ratio (at most 1 where it holds; how close to 1 is how tight it is on the instances drawn, not the worst case); for an order claim, the fitted log-log slope over the claimed order; for an identity, the measured side over the claimed one (a value near 1, or an error over its tolerance, as the claim's readings say).\n\n");
    s.push_str("**Statistics.** Monte Carlo instances are decided within their reading with family-wise error control: Holm's step-down procedure at family-wise level 0.001 over the reading's instances, and Bonferroni intervals (level 1 - 0.001/m for m instances) in the tables. The tests of a bound or of an effect are one-sided (toward the bound, in the claimed direction) and the intervals two-sided, so an effect can be significant while its interval's far end just reaches zero (p between 0.0005 and 0.001 for one instance). A bound fails when Holm rejects it. An identity holds when its family-wise interval lies inside the stated margin around the claimed value, fails when Holm rejects it, and is undecided otherwise. A claimed effect holds when Holm rejects \"no effect in the claimed direction\" and the interval does not exclude an effect of the stated size; it holds with a smaller effect than stated (counted as holding, and said in the table) when Holm rejects \"no effect\" and the interval excludes the stated size; it fails when the interval excludes an effect of the stated size (an equivalence test) and no effect is significant; it is undecided otherwise. Instance and replicate seeds are derived by hashing (master seed, claim, instance, replicate), so master seeds give independent replications; `reproduce --seeds 5` re-runs every claim at five master seeds and lists any verdict that changes.\n\n");
    if reports.iter().any(|r| r.scale.is_some()) {
        s.push_str("**Empirical claims at our scale.** The Llama studies train models of a few thousand to a few million parameters, far below the paper's 130M to 3B. A claimed effect there is decided against the smallest gain the paper reports at any model size (held-out loss 1.474 -> 1.469 at 300M, Table 9: 0.34%), and a verdict is confined to the scale it was tested at, which the table names: `fails (not reproduced at this scale: ...)` says that even the paper's smallest effect is excluded at that scale, not that the effect is absent at the paper's.\n\n");
    }
    s.push_str(&verdict_table(reports, ""));
    if reports.iter().any(|r| r.scale.is_some()) {
        s.push_str("\n## Llama evidence: correction strength and effect\n\n");
        s.push_str(&llama_table(reports, ""));
    }
    if !tightness.is_empty() {
        s.push_str("\n## Tightness: the worst case of each bound\n\n");
        s.push_str(TIGHTNESS_INTRO);
        s.push_str(&super::tightness::table(tightness, ""));
    }
    for r in reports {
        let _ = writeln!(s, "\n## {}\n", r.id);
        let _ = writeln!(
            s,
            "**Paper:** {}. **Kind:** {:?}. **Run:** {}.\n",
            r.reference,
            r.kind,
            run_label(r)
        );
        let _ = writeln!(s, "**Claim.** {}\n", r.statement);
        let _ = writeln!(
            s,
            "**Verdict: {}.** Deciding reading `{}`: {}\n",
            r.verdict_text(),
            r.deciding_reading,
            r.deciding_description()
        );
        if r.corrected_form.is_some() {
            let _ = writeln!(
                s,
                "**Corrected form that holds:** `{}`.\n",
                corrected_text(r)
            );
        }
        if let Some(f) = &r.proof_fault {
            let _ = writeln!(s, "**Where the proof breaks.** {f}\n");
        }
        s.push_str(
            "| reading | role | holds on | undecided | description |\n|---|---|---|---|---|\n",
        );
        for v in &r.readings {
            let (ok, n) = r.count(&v.name);
            let undecided = r.instances_of(&v.name).filter(|i| i.undecided).count();
            let smaller = r
                .instances_of(&v.name)
                .filter(|i| i.outcome() == Outcome::Smaller)
                .count();
            let role = v.role.label();
            let _ = writeln!(
                s,
                "| `{}` | {} | {}/{}{} | {} | {} |",
                v.name,
                role,
                ok,
                n,
                if smaller > 0 {
                    format!(" ({smaller} with a smaller effect than stated)")
                } else {
                    String::new()
                },
                undecided,
                cell(&v.description)
            );
        }
        let undecided: Vec<String> = r
            .instances
            .iter()
            .filter(|i| i.undecided)
            .map(|i| {
                format!(
                    "`{}` ({}; {}): n = {} would decide",
                    i.reading,
                    i.family,
                    params_text(&i.params),
                    i.needed_samples.map_or("?".into(), |n| format!("{n:.0}"))
                )
            })
            .collect();
        if !undecided.is_empty() {
            let _ = writeln!(s, "\n**Undecided instances.** {}.", undecided.join("; "));
        }
        if !r.findings.is_empty() {
            s.push_str("\n**Findings.**\n\n");
            for f in &r.findings {
                let _ = writeln!(s, "- {f}");
            }
        }
        if let Some(c) = &r.counterexample {
            let _ = writeln!(
                s,
                "\n**Smallest counterexample to the statement** ({}): {}; measured {} against claimed {}{}.",
                c.family,
                params_text(&c.params),
                fmt_num(c.measured),
                fmt_num(c.claimed),
                c.ci.map(|(lo, hi)| format!(" (family-wise interval [{}, {}])", fmt_num(lo), fmt_num(hi))).unwrap_or_default()
            );
        }
        let _ = writeln!(s, "\nFamilies covered by the deciding reading: {}. Report: [`reports/{}.json`](reports/{}.json).\n", r.families.join(", "), r.id, r.id);
        let _ = writeln!(s, "![{}]({}.png)", r.id, r.id);
    }
    write_atomic(&dir.join("REPORT.md"), s.as_bytes())?;
    write_atomic(&dir.join("CORRECTIONS.md"), corrections(reports).as_bytes())?;
    if reports.iter().any(|r| !r.replications.is_empty()) {
        write_atomic(&dir.join("SEEDS.md"), seed_table(reports).as_bytes())?;
    }
    Ok(())
}
