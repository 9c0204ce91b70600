//! What a claim's evaluation produces: its readings, its measured instances and the report that
//! carries them, with the figure to draw. The rules that turn instances into a verdict are in
//! [`super::verdict`].

use super::evidence::{Test, Verdict};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What a claim is: its id, where the paper states it, the statement and its kind. Each claim
/// module writes it once, as a constant beside its doc, and [`ClaimReport::assemble`] copies
/// it into the report.
#[derive(Clone, Copy, Debug)]
pub struct ClaimMeta {
    /// Stable id, e.g. `thm-2.2`.
    pub id: &'static str,
    /// Where the paper states it.
    pub reference: &'static str,
    /// The claim in words and formulas.
    pub statement: &'static str,
    /// Equality, bound or order.
    pub kind: ClaimKind,
}

/// What kind of statement a claim is.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq)]
pub enum ClaimKind {
    /// An identity between two quantities.
    Equality,
    /// `measured <= claimed`.
    UpperBound,
    /// A residual of order `gamma^power`.
    Order { power: f64 },
}

/// The part a reading plays in the verdict.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub enum Role {
    /// The claim as the paper states it.
    Statement,
    /// The statement's own formula, on a named part of its setting (a family, a parameter
    /// range, on average over a draw).
    Restriction,
    /// A different formula, constant or identity in place of the statement's.
    Correction,
    /// Informative only: a proof step, a sharper form, or a probe outside the assumptions.
    Info,
}

impl Role {
    /// The role's name in reports, tables and legends.
    pub fn label(&self) -> &'static str {
        match self {
            Role::Statement => "statement",
            Role::Restriction => "restriction",
            Role::Correction => "correction",
            Role::Info => "informative",
        }
    }
}

/// One reading of a claim: the statement, a restriction of it, a corrected form, or an
/// informative check (a proof step, a sharper constant, a probe outside the assumptions).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Reading {
    /// Short name, used to tag instances.
    pub name: String,
    /// What this reading asserts, in words.
    pub description: String,
    /// Its role in the verdict.
    pub role: Role,
    /// For a correction: the corrected statement as a formula.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub formula: Option<String>,
}

impl Reading {
    /// A reading with the given role.
    pub fn new(name: &str, description: &str, role: Role) -> Self {
        Self {
            name: name.into(),
            description: description.into(),
            role,
            formula: None,
        }
    }
    /// A correction reading with its corrected statement as a formula.
    pub fn correction(name: &str, description: &str, formula: &str) -> Self {
        Self {
            formula: Some(formula.into()),
            ..Self::new(name, description, Role::Correction)
        }
    }
}

/// One measured instance of one reading of a claim.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Instance {
    /// Task family.
    pub family: String,
    /// The reading ([`Reading::name`]) it tests.
    #[serde(rename = "variant")]
    pub reading: String,
    /// The instance's parameters (dimension, K, spread, step size, seed stream, ...).
    pub params: BTreeMap<String, f64>,
    /// Measured side (a mean for Monte Carlo, a slope for order claims).
    pub measured: f64,
    /// Claimed side.
    pub claimed: f64,
    /// `measured / claimed`, when finite.
    pub ratio: Option<f64>,
    /// Confidence interval of the measured side, when it is a Monte Carlo estimate (for a
    /// tested instance: the reading's family-wise interval, see [`verdict`]).
    pub ci: Option<(f64, f64)>,
    /// Whether the reading holds on this instance.
    pub holds: bool,
    /// Whether the evidence cannot decide (then `holds` is false but the reading did not fail).
    #[serde(default)]
    pub undecided: bool,
    /// Monte Carlo evidence, decided with the reading's other instances.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test: Option<Test>,
    /// The test's unadjusted p-value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p_value: Option<f64>,
    /// For an undecided instance: the sample size that would decide it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub needed_samples: Option<f64>,
    /// For an effect: the family-wise interval excludes an effect of the stated size (with
    /// `holds`, a significant effect smaller than stated; see [`verdict`]).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub below_stated_size: bool,
}

impl Instance {
    /// An instance; `ratio` is computed.
    pub fn new(
        family: &str,
        reading: &str,
        params: &[(&str, f64)],
        measured: f64,
        claimed: f64,
        holds: bool,
    ) -> Self {
        Self {
            family: family.into(),
            reading: reading.into(),
            params: params.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            measured,
            claimed,
            ratio: Some(measured / claimed).filter(|r| r.is_finite()),
            ci: None,
            holds,
            undecided: false,
            test: None,
            p_value: None,
            needed_samples: None,
            below_stated_size: false,
        }
    }
    /// An instance decided by Monte Carlo evidence: `measured` is the test's mean and `claimed`
    /// the side it is compared with; the outcome is set when the report is assembled.
    pub fn tested(
        family: &str,
        reading: &str,
        params: &[(&str, f64)],
        claimed: f64,
        test: Test,
    ) -> Self {
        Self {
            test: Some(test),
            ..Self::new(family, reading, params, test.mean, claimed, false)
        }
    }
    /// Size used to pick the smallest counterexample: the product of `d` and `K` when present.
    pub fn size(&self) -> f64 {
        ["d", "K"]
            .iter()
            .map(|k| self.params.get(*k).copied().unwrap_or(1.0))
            .product()
    }
}

/// Min / median / max of measured/claimed over the instances of the deciding reading.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct Tightness {
    /// The reading these ratios come from.
    pub min: f64,
    /// Median ratio.
    pub median: f64,
    /// Maximum ratio.
    pub max: f64,
}

/// A control of the pipeline: a result known to be true (expected `holds`) or the same with a
/// deliberate error (expected `fails`), run through the same engine and verdict code.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Control {
    /// The verdict the pipeline must reach.
    pub expected: Verdict,
}

/// The verdict a claim reached at one master seed.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Replication {
    /// The master seed.
    pub seed: u64,
    /// The verdict there.
    pub verdict: Verdict,
}

/// A curve drawn in a claim's figure.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Series {
    /// Legend label.
    pub label: String,
    /// Abscissae.
    pub x: Vec<f64>,
    /// Ordinates.
    pub y: Vec<f64>,
    /// Dashed reference line (a slope guide or `y = x`) rather than data.
    pub guide: bool,
    /// A shaded interval `(lower, upper)` around the curve, one pair per abscissa (for example
    /// a confidence interval across seeds).
    #[serde(default)]
    pub band: Option<(Vec<f64>, Vec<f64>)>,
}

/// What a claim's figure shows.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Figure {
    /// Measured against claimed for every instance, log-log, with `y = x`.
    MeasuredVsClaimed,
    /// Curves (for example residual against gamma) with optional guides and shaded bands, on a
    /// log x axis (linear when an abscissa is 0 or below); the y axis is logarithmic when the
    /// data span a decade or more.
    Curves {
        x_label: String,
        y_label: String,
        series: Vec<Series>,
    },
    /// Paired differences (a variant minus its baseline) with their intervals, one panel per
    /// group, on a linear y axis with dashed reference lines (0, the paper's effect size).
    Effects {
        x_label: String,
        y_label: String,
        /// A log x axis (every abscissa positive).
        log_x: bool,
        panels: Vec<EffectPanel>,
    },
}

/// One panel of [`Figure::Effects`]: a few series of differences and their reference lines.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EffectPanel {
    pub title: String,
    pub series: Vec<EffectSeries>,
    /// Horizontal dashed lines: (label, y).
    pub references: Vec<(String, f64)>,
}

/// A series of differences, each with its interval.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EffectSeries {
    pub label: String,
    /// (x, mean, lower, upper), one per point.
    pub points: Vec<(f64, f64, f64, f64)>,
}

/// Everything one claim's evaluation produced: written to `figures/reports/<id>.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ClaimReport {
    /// Claim id, e.g. `thm-2.2`.
    pub id: String,
    /// Where the paper states it.
    pub reference: String,
    /// The claim in words.
    pub statement: String,
    /// Equality, bound or order.
    pub kind: ClaimKind,
    /// Crate version that produced the report.
    pub crate_version: String,
    /// Run seed.
    pub seed: u64,
    /// Whether this was a `--quick` run.
    pub quick: bool,
    /// Grid and Monte Carlo settings.
    pub settings: serde_json::Value,
    /// The readings tested.
    #[serde(rename = "variants")]
    pub readings: Vec<Reading>,
    /// Every instance.
    pub instances: Vec<Instance>,
    /// Derived verdict.
    pub verdict: Verdict,
    /// The reading that decided the verdict (the statement, or the restriction or correction
    /// that holds).
    #[serde(rename = "deciding_variant")]
    pub deciding_reading: String,
    /// The first correction reading that holds, if any.
    #[serde(default)]
    pub corrected_form: Option<String>,
    /// For a control: the verdict the pipeline must reach.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control: Option<Control>,
    /// The verdict at each master seed the claim was evaluated at (the run's own seed first),
    /// when `reproduce --seeds N` replicated it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub replications: Vec<Replication>,
    /// For a claim that fails as stated: the proof step where it breaks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proof_fault: Option<String>,
    /// For an empirical claim tested at one scale: that scale (parameters, tokens), to which
    /// its verdict is confined ("not reproduced at this scale" rather than a bare `fails`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale: Option<String>,
    /// Families covered by the deciding reading.
    pub families: Vec<String>,
    /// Ratios of the deciding reading.
    pub tightness: Option<Tightness>,
    /// Smallest instance where the statement fails, if any.
    pub counterexample: Option<Instance>,
    /// Findings computed from the instances, in words with numbers.
    pub findings: Vec<String>,
    /// Figure specification.
    pub figure: Figure,
}

impl ClaimReport {
    /// Marks this report as a control of the pipeline, expected to reach `expected`.
    pub fn as_control(mut self, expected: Verdict) -> Self {
        self.control = Some(Control { expected });
        self
    }

    /// Whether a control reached the verdict expected of it (`None` for a claim).
    pub fn control_passed(&self) -> Option<bool> {
        self.control.map(|c| c.expected == self.verdict)
    }

    /// For a claim tested at one scale, what its verdict is confined to:
    /// ` (not reproduced at this scale: ...)` after a `fails`, ` (at this scale: ...)` otherwise.
    pub fn scale_note(&self) -> String {
        match &self.scale {
            Some(scale) if self.verdict == Verdict::Fails => {
                format!(" (not reproduced at this scale: {scale})")
            }
            Some(scale) => format!(" (at this scale: {scale})"),
            None => String::new(),
        }
    }

    /// The verdict with the scale it is confined to ([`ClaimReport::scale_note`]).
    pub fn verdict_text(&self) -> String {
        format!("{}{}", self.verdict.label(), self.scale_note())
    }

    /// The deciding reading's description.
    pub fn deciding_description(&self) -> &str {
        self.readings
            .iter()
            .find(|v| v.name == self.deciding_reading)
            .map(|v| v.description.as_str())
            .unwrap_or("")
    }

    /// Instances of one reading.
    pub fn instances_of<'a>(&'a self, reading: &'a str) -> impl Iterator<Item = &'a Instance> + 'a {
        self.instances.iter().filter(move |i| i.reading == reading)
    }

    /// `(holding, total)` instance counts of one reading.
    pub fn count(&self, reading: &str) -> (usize, usize) {
        let all: Vec<&Instance> = self.instances_of(reading).collect();
        (all.iter().filter(|i| i.holds).count(), all.len())
    }
}

/// Adds copies of the `from` reading's instances that satisfy `keep`, renamed to the
/// restriction reading `to`: the statement's own formula, judged only on part of its setting.
pub fn add_restriction(
    instances: &mut Vec<Instance>,
    from: &str,
    to: &str,
    keep: impl Fn(&Instance) -> bool,
) {
    let copies: Vec<Instance> = instances
        .iter()
        .filter(|i| i.reading == from && keep(i))
        .map(|i| Instance {
            reading: to.into(),
            ..i.clone()
        })
        .collect();
    instances.extend(copies);
}
