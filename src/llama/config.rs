//! A run's configuration: the optimizer variant, the schedule, the data, the model preset and
//! every hyperparameter, read from flags or TOML and checked in one place
//! ([`TrainConfig::validate`], called when a run is built).

use super::data::{DataSet, Skill, Source};
use super::model::LlamaConfig;
use crate::error::{ensure, Error, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// What drives the outer step.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Variant {
    /// AdamW on the accumulated gradient.
    Adamw,
    /// Nexus (normalized inner steps) + AdamW.
    Nexus,
    /// Nexus with raw inner steps + AdamW.
    NexusDot,
    /// Adam fed the normalized accumulated gradient (Nexus with K = 1).
    Nsgd,
    /// Nexus's first-order part plus a random direction of the norm of its correction.
    Random,
    /// Muon on the accumulated gradient (AdamW for embeddings, head and norms).
    Muon,
    /// Nexus's displacement fed to Muon.
    #[serde(rename = "muon+nexus")]
    MuonNexus,
}

impl Variant {
    /// Every variant, in the order studies list them (AdamW, the baseline, first).
    pub const ALL: [Variant; 7] = [
        Variant::Adamw,
        Variant::Nexus,
        Variant::NexusDot,
        Variant::Nsgd,
        Variant::Random,
        Variant::Muon,
        Variant::MuonNexus,
    ];

    /// The name flags, configuration files and reports use (serde writes the same).
    pub fn name(self) -> &'static str {
        match self {
            Variant::Adamw => "adamw",
            Variant::Nexus => "nexus",
            Variant::NexusDot => "nexus-dot",
            Variant::Nsgd => "nsgd",
            Variant::Random => "random",
            Variant::Muon => "muon",
            Variant::MuonNexus => "muon+nexus",
        }
    }
}

impl std::fmt::Display for Variant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Variant {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Variant::ALL
            .into_iter()
            .find(|v| v.name() == s)
            .ok_or_else(|| Error::InvalidArgument {
                name: "variant",
                reason: format!(
                    "unknown variant `{s}` ({})",
                    Variant::ALL.map(Variant::name).join(", ")
                ),
            })
    }
}

/// Learning-rate schedule after the warmup.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Schedule {
    /// Constant.
    Constant,
    /// Cosine decay to 10% of the peak.
    Cosine,
    /// Warmup-stable-decay: constant, then a linear decay to 10% over the last `decay_fraction`.
    Wsd,
}

/// The precision of the forward and backward passes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Precision {
    /// Everything in the parameters' dtype.
    #[default]
    F32,
    /// bf16 compute; parameters, gradients and optimizer state stay in their dtype (f32 master
    /// weights). Runs on the plain ops (the fused CPU kernels are f32 and f64 only).
    Bf16,
}

impl std::str::FromStr for Precision {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "f32" => Ok(Precision::F32),
            "bf16" => Ok(Precision::Bf16),
            other => Err(Error::InvalidArgument {
                name: "dtype",
                reason: format!("unknown precision `{other}` (f32, bf16)"),
            }),
        }
    }
}

/// A user training source.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSource {
    /// Source name.
    pub name: String,
    /// Plain text or `.jsonl` file.
    pub path: PathBuf,
    /// Mixture weight (> 0; relative to the other sources').
    #[serde(default = "one")]
    pub weight: f64,
}

/// A user held-out source: evaluated, never trained on, so it has no weight (a `weight` key
/// under `[[held_out]]` is an error).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeldOutSource {
    /// Source name.
    pub name: String,
    /// Plain text or `.jsonl` file.
    pub path: PathBuf,
}

fn one() -> f64 {
    1.0
}

/// Every setting of a run; a TOML file holds any subset (unknown keys are an error).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    /// Model size preset.
    pub preset: String,
    /// Optimizer variant.
    pub variant: Variant,
    /// Outer steps.
    pub steps: usize,
    /// Micro-batches per outer step (Nexus's K).
    pub accum: usize,
    /// Sequences per micro-batch.
    pub micro_batch: usize,
    /// Tokens per sequence.
    pub seq_len: usize,
    /// Peak outer learning rate.
    pub lr: f64,
    /// Nexus inner step gamma.
    pub inner_lr: f64,
    /// Peak learning rate of Muon's matrix updates (variants `muon`, `muon+nexus`).
    pub muon_lr: f64,
    /// AdamW decoupled weight decay.
    pub weight_decay: f64,
    /// Global norm clip of the (pseudo-)gradient.
    pub clip: f64,
    /// Linear warmup steps.
    pub warmup: usize,
    /// Schedule after warmup.
    pub schedule: Schedule,
    /// WSD decay share of the run.
    pub decay_fraction: f64,
    /// Run seed (model init and every batch).
    pub seed: u64,
    /// Evaluate every this many steps.
    pub eval_every: usize,
    /// Checkpoint every this many steps (and at the end).
    pub checkpoint_every: usize,
    /// Built-in synthetic training languages (used when `sources` is empty).
    pub languages: usize,
    /// Built-in held-out languages.
    pub held_out_languages: usize,
    /// How different the languages are.
    pub language_spread: f64,
    /// Skill sources to add to the mixture: `arithmetic`, `brackets`, `recall`.
    pub skills: Vec<String>,
    /// User training sources.
    pub sources: Vec<FileSource>,
    /// User held-out sources.
    pub held_out: Vec<HeldOutSource>,
    /// Compute precision.
    pub precision: Precision,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            preset: "tiny".into(),
            variant: Variant::Nexus,
            steps: 200,
            accum: 4,
            micro_batch: 8,
            seq_len: 32,
            lr: 3e-3,
            inner_lr: 0.01,
            muon_lr: 0.02,
            weight_decay: 0.0,
            clip: 1.0,
            warmup: 20,
            schedule: Schedule::Cosine,
            decay_fraction: 0.2,
            seed: 1,
            eval_every: 50,
            checkpoint_every: 100,
            languages: 4,
            held_out_languages: 4,
            language_spread: 1.0,
            skills: Vec::new(),
            sources: Vec::new(),
            held_out: Vec::new(),
            precision: Precision::F32,
        }
    }
}

impl TrainConfig {
    /// Reads a TOML file; unknown keys and bad values are errors that name them.
    pub fn from_toml(path: &Path) -> Result<Self> {
        Ok(Self::from_toml_with_keys(path)?.0)
    }

    /// [`TrainConfig::from_toml`], and the keys the file sets.
    pub fn from_toml_with_keys(path: &Path) -> Result<(Self, Vec<String>)> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::Data(format!("cannot read config {}: {e}", path.display())))?;
        let cfg: Self = toml::from_str(&text).map_err(|e| {
            let message = e.message().trim();
            // An unknown key: the parser's span covers the table holding it, so find the key's
            // own line; otherwise the key on the line the span starts at.
            let unknown = message
                .strip_prefix("unknown field `")
                .and_then(|m| m.split('`').next());
            let at = unknown
                .and_then(|key| {
                    text.lines().enumerate().find_map(|(i, l)| {
                        let k = l.split('=').next()?.trim();
                        (l.contains('=') && k == key).then(|| (key.to_string(), i + 1))
                    })
                })
                .or_else(|| {
                    let span = e.span()?;
                    let line = text[..span.start.min(text.len())].lines().count().max(1);
                    let src = text.lines().nth(line - 1)?;
                    Some((src.split('=').next()?.trim().to_string(), line))
                });
            Error::Data(format!(
                "config {}:{} {message}",
                path.display(),
                at.map(|(key, line)| format!(" key `{key}` (line {line}):"))
                    .unwrap_or_default()
            ))
        })?;
        cfg.validate()?;
        let keys = text
            .parse::<toml::Table>()
            .map(|t| t.keys().cloned().collect())
            .unwrap_or_default();
        Ok((cfg, keys))
    }

    /// The paper's optimizer hyperparameters for its 1B runs (Sec. 14.1, Table 6): outer
    /// learning rate 0.002, inner gamma 0.01, AdamW betas (0.9, 0.95) and eps 1e-10 (always
    /// used here), weight decay 0.2, clipping at 1.0, and a warmup-stable-decay schedule. The
    /// paper warms up for 1,000 steps and decays over the last 10,000 of about 100,000; here
    /// those are 1% and 10% of `steps`.
    pub fn with_paper_hyperparameters(self) -> Self {
        Self {
            lr: 2e-3,
            inner_lr: 0.01,
            weight_decay: 0.2,
            clip: 1.0,
            schedule: Schedule::Wsd,
            warmup: (self.steps / 100).max(1),
            decay_fraction: 0.1,
            ..self
        }
    }

    /// Checks every setting, with the same range checks as the flags ([`crate::cli::range`]):
    /// counts, the sequence length against the preset's positions, the memory a step needs
    /// against the memory available, and the sources (named, distinct, weighted > 0, none both
    /// trained on and held out).
    pub fn validate(&self) -> Result<()> {
        use crate::cli::{limits, range};
        let shape = LlamaConfig::preset(&self.preset)?;
        for (name, v, min, max) in [
            ("steps", self.steps, 1, limits::STEPS),
            ("accum", self.accum, 1, limits::BATCH),
            ("micro_batch", self.micro_batch, 1, limits::BATCH),
            (
                "seq_len",
                self.seq_len,
                1,
                shape.max_position_embeddings as u64,
            ),
            ("warmup", self.warmup, 0, limits::STEPS),
            ("eval_every", self.eval_every, 1, u64::MAX),
            ("checkpoint_every", self.checkpoint_every, 1, u64::MAX),
            ("languages", self.languages, 0, limits::COUNT),
            (
                "held_out_languages",
                self.held_out_languages,
                0,
                limits::COUNT,
            ),
        ] {
            let v = v as u64;
            ensure(v >= min && v <= max, name, || {
                if name == "accum" {
                    format!("need at least one micro-batch per step (K >= 1) and at most {max}, got {v}")
                } else if name == "seq_len" {
                    format!(
                        "must be between 1 and the `{}` preset's {max} positions, got {v}",
                        self.preset
                    )
                } else {
                    format!("must be between {min} and {max}, got {v}")
                }
            })?;
        }
        let check = |name: &'static str, r: std::result::Result<f64, String>| {
            r.map(drop)
                .map_err(|reason| Error::InvalidArgument { name, reason })
        };
        check("lr", range::non_negative(self.lr))?;
        check("muon_lr", range::non_negative(self.muon_lr))?;
        check("weight_decay", range::non_negative(self.weight_decay))?;
        check("decay_fraction", range::fraction(self.decay_fraction))?;
        check("inner_lr", range::positive(self.inner_lr))?;
        check("clip", range::positive(self.clip))?;
        check("language_spread", range::non_negative(self.language_spread))?;
        let need = shape.training_bytes(self.micro_batch, self.seq_len);
        if let Some(available) = crate::cli::available_memory() {
            ensure(need <= 0.8 * available, "micro_batch", || {
                format!(
                    "{} sequences of {} tokens on the `{}` preset need about {:.1} GiB per micro-batch; {:.1} GiB are available",
                    self.micro_batch,
                    self.seq_len,
                    self.preset,
                    need / 2f64.powi(30),
                    available / 2f64.powi(30)
                )
            })?;
        }
        let mut names = std::collections::BTreeSet::new();
        let mut paths = std::collections::BTreeMap::new();
        let all = self
            .sources
            .iter()
            .map(|s| (&s.name, &s.path, Some(s.weight)))
            .chain(self.held_out.iter().map(|s| (&s.name, &s.path, None)));
        for (name, path, weight) in all {
            ensure(!name.trim().is_empty(), "sources", || {
                format!("a source without a name ({})", path.display())
            })?;
            ensure(names.insert(name.clone()), "sources", || {
                format!("two sources are named `{name}`")
            })?;
            if let Some(w) = weight {
                check("weight", range::positive(w)).map_err(|_| Error::InvalidArgument {
                    name: "weight",
                    reason: format!("source `{name}`: must be finite and > 0, got {w}"),
                })?;
            }
            let key = std::fs::canonicalize(path).unwrap_or_else(|_| path.clone());
            let training = weight.is_some();
            if let Some((other, other_training)) = paths.insert(key, (name.clone(), training)) {
                return Err(Error::InvalidArgument {
                    name: if training != other_training {
                        "held_out"
                    } else {
                        "sources"
                    },
                    reason: format!(
                        "sources `{other}` and `{name}` read the same file {}{}",
                        path.display(),
                        if training != other_training {
                            ": a held-out source must not be trained on"
                        } else {
                            ""
                        }
                    ),
                });
            }
        }
        Ok(())
    }

    /// Whether a run evaluates after `step` outer steps (1-based): every `eval_every` steps and
    /// at the last one.
    pub fn evaluates_at(&self, step: usize) -> bool {
        step.is_multiple_of(self.eval_every.max(1)) || step == self.steps
    }

    /// Learning rate at `step` (0-based).
    pub fn lr_at(&self, step: usize) -> f64 {
        if step < self.warmup {
            return self.lr * (step + 1) as f64 / self.warmup as f64;
        }
        let progress =
            (step - self.warmup) as f64 / (self.steps.saturating_sub(self.warmup)).max(1) as f64;
        let floor = 0.1;
        match self.schedule {
            Schedule::Constant => self.lr,
            Schedule::Cosine => {
                self.lr
                    * (floor
                        + (1.0 - floor) * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos()))
            }
            Schedule::Wsd => {
                let start = 1.0 - self.decay_fraction;
                if progress < start {
                    self.lr
                } else {
                    self.lr
                        * (1.0
                            - (1.0 - floor)
                                * ((progress - start) / self.decay_fraction.max(1e-12)).min(1.0))
                }
            }
        }
    }

    /// The data set this configuration names.
    pub fn dataset(&self) -> Result<DataSet> {
        let (mut sources, mut weights) = (Vec::new(), Vec::new());
        for s in &self.sources {
            sources.push(Source::from_file(&s.name, &s.path)?);
            weights.push(s.weight);
        }
        let mut held_out = self
            .held_out
            .iter()
            .map(|s| Source::from_file(&s.name, &s.path))
            .collect::<Result<Vec<_>>>()?;
        if sources.is_empty() {
            for i in 0..self.languages {
                sources.push(Source::language(self.seed, i, self.language_spread)?);
                weights.push(1.0);
            }
            if held_out.is_empty() {
                for i in self.languages..self.languages + self.held_out_languages {
                    held_out.push(Source::language(self.seed, i, self.language_spread)?);
                }
            }
        }
        for name in &self.skills {
            sources.push(Source::Skill {
                name: name.clone(),
                skill: Skill::from_name(name)?,
            });
            weights.push(1.0);
        }
        DataSet::new(sources, weights, held_out, self.seed)
    }
}
