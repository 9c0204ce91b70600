//! The training loop, end to end: micro-batches with gradient accumulation (the paper's
//! Algorithm 2) or Nexus's engineering adaptation (Algorithm 3), an outer AdamW with gradient
//! clipping and a warmup + cosine / WSD schedule, metrics to JSONL, atomic checkpoints and exact
//! resume.
//!
//! Algorithm 3 *is* Algorithm 1 with the accumulation window's micro-batches as the sources, in
//! order: [`crate::nexus::pseudo_gradient`] runs the inner NSGD steps on the model (one per
//! micro-batch) and returns the displacement, which the outer optimizer takes as its gradient.
//! The same function, the same [`crate::optim::AdamW`]: no second copy of the algorithm. Both
//! paths do one forward and backward pass per micro-batch; Nexus keeps one extra copy of the
//! parameters (the start of the inner loop).

use super::checkpoint::{self, RunLock};
use super::data::{DataSet, Source};
use super::model::{Llama, LlamaConfig};
use super::params::TensorParams;
use crate::error::{ensure, Error, Result};
use crate::nexus::{pseudo_gradient, step_direction, InnerStep, NexusConfig, SourceGradients};
use crate::optim::{clip_norm, AdamW, AdamWConfig, NormalizedAdam, Optimizer};
use crate::params::ParamVec;
use candle_core::{DType, Device, Tensor};
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};
use std::io::Write as _;
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

impl std::str::FromStr for Variant {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "adamw" => Variant::Adamw,
            "nexus" => Variant::Nexus,
            "nexus-dot" => Variant::NexusDot,
            "nsgd" => Variant::Nsgd,
            "random" => Variant::Random,
            "muon" => Variant::Muon,
            "muon+nexus" => Variant::MuonNexus,
            other => {
                return Err(Error::InvalidArgument {
                    name: "variant",
                    reason: format!("unknown variant `{other}` (adamw, nexus, nexus-dot, nsgd, random, muon, muon+nexus)"),
                })
            }
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

/// A user data source.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSource {
    /// Source name.
    pub name: String,
    /// Plain text or `.jsonl` file.
    pub path: PathBuf,
    /// Mixture weight (ignored for held-out sources).
    #[serde(default = "one")]
    pub weight: f64,
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
    pub held_out: Vec<FileSource>,
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
            // Name the key on the line the parser points at, so the message fits on one line.
            let key = e.span().and_then(|span| {
                let line = text[..span.start.min(text.len())].lines().count().max(1);
                let src = text.lines().nth(line - 1)?;
                let key = src.split('=').next()?.trim();
                Some(format!(" key `{key}` (line {line}):"))
            });
            Error::Data(format!(
                "config {}:{} {}",
                path.display(),
                key.unwrap_or_default(),
                e.message().trim()
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

    /// Checks every setting.
    pub fn validate(&self) -> Result<()> {
        LlamaConfig::preset(&self.preset)?;
        ensure(self.accum >= 1, "accum", || {
            "need at least one micro-batch per step (K >= 1)".into()
        })?;
        ensure(self.micro_batch >= 1 && self.seq_len >= 1, "batch", || {
            "micro_batch and seq_len must be >= 1".into()
        })?;
        for (name, v) in [
            ("lr", self.lr),
            ("muon_lr", self.muon_lr),
            ("weight_decay", self.weight_decay),
            ("decay_fraction", self.decay_fraction),
        ] {
            ensure(v >= 0.0 && v.is_finite(), name, || {
                format!("must be finite and >= 0, got {v}")
            })?;
        }
        ensure(
            self.inner_lr > 0.0 && self.inner_lr.is_finite(),
            "inner_lr",
            || format!("gamma must be finite and > 0, got {}", self.inner_lr),
        )?;
        ensure(self.clip > 0.0, "clip", || {
            format!("must be > 0, got {}", self.clip)
        })?;
        ensure(
            self.language_spread >= 0.0 && self.language_spread.is_finite(),
            "language_spread",
            || "must be finite and >= 0".into(),
        )
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
                skill: super::data::Skill::from_name(name)?,
            });
            weights.push(1.0);
        }
        DataSet::new(sources, weights, held_out, self.seed)
    }
}

/// The micro-batches of one accumulation window as Nexus's sources.
struct MicroBatches<'a> {
    model: &'a Llama,
    batches: Vec<Tensor>,
    losses: Vec<f64>,
    /// The outer step being taken (1-based), for the divergence message.
    step: usize,
}

impl SourceGradients<TensorParams> for MicroBatches<'_> {
    fn num_sources(&self) -> usize {
        self.batches.len()
    }
    fn gradient(&mut self, source: usize, x: &TensorParams) -> Result<TensorParams> {
        let result = self.model.loss_and_gradients_at(x, &self.batches[source]);
        self.record(result)
    }
}

impl MicroBatches<'_> {
    /// The gradient of one micro-batch at the model's current parameters.
    fn gradient_at_model(&mut self, source: usize) -> Result<TensorParams> {
        let result = self.model.loss_and_gradients(&self.batches[source]);
        self.record(result)
    }

    /// Keeps the loss of a gradient evaluation; a non-finite loss is divergence.
    fn record(&mut self, result: Result<(f64, TensorParams)>) -> Result<TensorParams> {
        let (loss, g) = result?;
        // Stop at the first non-finite loss, before it can reach an inner or outer step.
        if !loss.is_finite() {
            return Err(Error::Diverged {
                step: self.step,
                loss,
            });
        }
        self.losses.push(loss);
        Ok(g)
    }
}

enum Outer {
    Plain(AdamW<TensorParams>),
    Normalized(NormalizedAdam<TensorParams>),
    Muon(super::muon::Muon),
}

impl Outer {
    fn adam(&self) -> &AdamW<TensorParams> {
        match self {
            Outer::Plain(a) => a,
            Outer::Normalized(n) => n.adam(),
            Outer::Muon(m) => m.adam(),
        }
    }
    fn adam_mut(&mut self) -> &mut AdamW<TensorParams> {
        match self {
            Outer::Plain(a) => a,
            Outer::Normalized(n) => n.adam_mut(),
            Outer::Muon(m) => m.adam_mut(),
        }
    }
    fn step(&mut self, p: &mut TensorParams, g: &TensorParams) -> Result<()> {
        match self {
            Outer::Plain(a) => a.step(p, g),
            Outer::Normalized(n) => n.step(p, g),
            Outer::Muon(m) => m.step(p, g),
        }
    }
    /// Sets the learning rates for a schedule factor `f` of the peak.
    fn set_lr(&mut self, cfg: &TrainConfig, f: f64) -> Result<()> {
        if let Outer::Muon(m) = self {
            m.set_lr(cfg.muon_lr * f);
        }
        self.adam_mut().set_lr(cfg.lr * f)
    }
}

/// Per-step numbers.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct StepStats {
    /// Step just taken (1-based).
    pub step: usize,
    /// Mean micro-batch loss (for Nexus, along the inner trajectory).
    pub loss: f64,
    /// Learning rate used.
    pub lr: f64,
    /// Norm of the (pseudo-)gradient before clipping.
    pub grad_norm: f64,
}

/// Evaluation numbers.
#[derive(Clone, Debug, Serialize)]
pub struct Evaluation {
    /// Step evaluated at.
    pub step: usize,
    /// Validation loss per training source.
    pub validation: Vec<(String, f64)>,
    /// Mean validation loss over training sources.
    pub validation_mean: f64,
    /// Loss per held-out source.
    pub held_out: Vec<(String, f64)>,
    /// Mean held-out loss (NaN without held-out sources).
    pub held_out_mean: f64,
    /// Mean pairwise cosine of per-source validation gradients (pairs i < j).
    pub gradient_cosine: f64,
    /// Exact-match accuracy on 20 prompts of each skill source trained on.
    pub skills_exact_match: Vec<(String, f64)>,
}

/// A training run.
pub struct Trainer {
    /// Its configuration.
    pub cfg: TrainConfig,
    /// The model (holding the current parameters).
    pub model: Llama,
    /// Its data.
    pub data: DataSet,
    params: TensorParams,
    outer: Outer,
    step: usize,
    out: PathBuf,
    _lock: RunLock,
}

/// Validation rows per source of [`Trainer::evaluate`] (`seq_len + 1` tokens each).
pub const VALIDATION_ROWS: usize = 16;

/// The mean of per-source losses (NaN without sources, as when a run holds none out).
fn mean_loss(losses: &[(String, f64)]) -> f64 {
    if losses.is_empty() {
        f64::NAN
    } else {
        losses.iter().map(|x| x.1).sum::<f64>() / losses.len() as f64
    }
}

impl Trainer {
    /// A fresh run writing into `out`, which must not hold a run already (see
    /// [`Trainer::create`]).
    pub fn new(cfg: TrainConfig, out: &Path, device: &Device, dtype: DType) -> Result<Self> {
        Self::create(cfg, out, device, dtype, false)
    }

    /// A fresh run writing into `out`. `out` is locked for the run's life (a second process
    /// gets an error). If it holds a run already (metrics or checkpoints), that is an error
    /// unless `replace`, which removes that run's files first.
    pub fn create(
        cfg: TrainConfig,
        out: &Path,
        device: &Device,
        dtype: DType,
        replace: bool,
    ) -> Result<Self> {
        cfg.validate()?;
        let lock = RunLock::acquire(out)?;
        if checkpoint::has_run(out) {
            if !replace {
                return Err(Error::InvalidArgument {
                    name: "out",
                    reason: format!(
                        "{} holds a run already (metrics or checkpoints): --resume continues it, --force replaces it, or choose another --out",
                        out.display()
                    ),
                });
            }
            checkpoint::remove_run(out)?;
        }
        Self::build(cfg, out, device, dtype, lock)
    }

    fn build(
        cfg: TrainConfig,
        out: &Path,
        device: &Device,
        dtype: DType,
        lock: RunLock,
    ) -> Result<Self> {
        cfg.validate()?;
        let data = cfg.dataset()?;
        let mut model = Llama::new(LlamaConfig::preset(&cfg.preset)?, cfg.seed, device, dtype)?;
        if cfg.precision == Precision::Bf16 {
            model.set_compute_dtype(DType::BF16);
        }
        let adam = AdamWConfig {
            lr: cfg.lr,
            beta1: 0.9,
            beta2: 0.95,
            eps: 1e-10,
            weight_decay: cfg.weight_decay,
        };
        let outer = match cfg.variant {
            Variant::Nsgd => Outer::Normalized(NormalizedAdam::new(adam)?),
            Variant::Muon | Variant::MuonNexus => {
                let matrix = model
                    .names()
                    .iter()
                    .map(|n| n.contains(".self_attn.") || n.contains(".mlp."))
                    .collect();
                Outer::Muon(super::muon::Muon::new(cfg.muon_lr, 0.95, matrix, adam)?)
            }
            _ => Outer::Plain(AdamW::new(adam)?),
        };
        let params = model.params()?;
        Ok(Self {
            cfg,
            model,
            data,
            params,
            outer,
            step: 0,
            out: out.to_path_buf(),
            _lock: lock,
        })
    }

    /// Continues the run checkpointed in `out` with the checkpoint's configuration.
    pub fn resume(out: &Path, device: &Device, dtype: DType) -> Result<Self> {
        Self::resume_with(out, device, dtype, &ResumeRequest::default())
    }

    /// Continues the run checkpointed in `out`, with the changes `request` asks for where they
    /// are safe (see [`ResumeRequest`]) and an error where they are not. Leftovers of a killed
    /// checkpoint write are removed first; the checkpoint's `config.json` must match its
    /// configuration and `optimizer.safetensors` must hold every moment the optimizer had.
    pub fn resume_with(
        out: &Path,
        device: &Device,
        dtype: DType,
        request: &ResumeRequest,
    ) -> Result<Self> {
        let lock = RunLock::acquire(out)?;
        checkpoint::clean(out)?;
        let dir = checkpoint::latest(out)?;
        let state_path = dir.join("state.json");
        let state: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&state_path).map_err(|e| Error::Io {
                path: state_path.display().to_string(),
                source: e,
            })?)
            .map_err(|e| Error::Data(format!("{}: {e}", state_path.display())))?;
        let saved: TrainConfig = serde_json::from_value(state["config"].clone())
            .map_err(|e| Error::Data(format!("{}: `config`: {e}", state_path.display())))?;
        let step = state["step"]
            .as_u64()
            .ok_or_else(|| Error::Data(format!("{}: no `step`", state_path.display())))?
            as usize;
        let cfg = request.apply(saved, step)?;
        check_model_config(&dir, &cfg)?;
        let mut t = Self::build(cfg, out, device, dtype, lock)?;
        t.model.load_params(&dir)?;
        t.params = t.model.params()?;
        t.step = step;
        let adam_t = state["adam_steps"].as_u64().unwrap_or(0);
        let file = dir.join("optimizer.safetensors");
        let moments = candle_core::safetensors::load(&file, device)
            .map_err(|e| Error::Data(format!("{}: {e}", file.display())))?;
        let names = t.model.names().to_vec();
        let shapes: Vec<Vec<usize>> = t.params.tensors.iter().map(|p| p.dims().to_vec()).collect();
        let collect = |prefix: &str, what: &str| -> Result<TensorParams> {
            let mut tensors = Vec::with_capacity(names.len());
            for (i, name) in names.iter().enumerate() {
                let key = format!("{prefix}.{i}");
                let tensor = moments.get(&key).ok_or_else(|| {
                    Error::Data(format!(
                        "{}: no `{key}` ({what} of `{name}`)",
                        file.display()
                    ))
                })?;
                if tensor.dims() != shapes[i].as_slice() {
                    return Err(Error::Data(format!(
                        "{}: `{key}` has shape {:?}, `{name}` has {:?}",
                        file.display(),
                        tensor.dims(),
                        shapes[i]
                    )));
                }
                tensors.push(tensor.to_dtype(dtype)?);
            }
            Ok(TensorParams { tensors })
        };
        // Moments exist once the optimizer has taken a step; a resume without them would
        // silently restart Adam from zero.
        if adam_t > 0 {
            let (m, v) = (
                collect("m", "first moment")?,
                collect("v", "second moment")?,
            );
            t.outer.adam_mut().restore(Some(m), Some(v), adam_t);
            if let Outer::Muon(muon) = &mut t.outer {
                muon.restore_buffers(Some(collect("muon", "Muon momentum")?.tensors));
            }
        }
        t.truncate_metrics()?;
        Ok(t)
    }

    /// Steps taken.
    pub fn step_count(&self) -> usize {
        self.step
    }

    /// One outer step. On the CPU it runs inside Candle's thread pool, so that the many short
    /// parallel sections of a step start on warm workers instead of handing off to a pool from
    /// outside (a thread wake-up each; measured at 5-10% of a tiny step). Called from a rayon
    /// worker already (a caller running several runs at once, each in a pool of its own), it
    /// stays there: Candle's pool is one per process, and runs handed to it would take turns.
    pub fn step(&mut self) -> Result<StepStats> {
        if rayon::current_thread_index().is_some() {
            return self.step_in_pool();
        }
        let device = self.model.device().clone();
        device.with_context(|| self.step_in_pool())
    }

    fn step_in_pool(&mut self) -> Result<StepStats> {
        let cfg = &self.cfg;
        let lr = cfg.lr_at(self.step);
        let len = cfg.seq_len;
        let device = self.model.device().clone();
        let batches = (0..cfg.accum)
            .map(|m| {
                let (_, tokens) = self.data.micro_batch(self.step, m, cfg.micro_batch, len);
                Ok(Tensor::from_vec(
                    tokens,
                    (cfg.micro_batch, len + 1),
                    &device,
                )?)
            })
            .collect::<Result<Vec<_>>>()?;
        let mut oracle = MicroBatches {
            model: &self.model,
            batches,
            losses: Vec::new(),
            step: self.step + 1,
        };
        let order: Vec<usize> = (0..cfg.accum).collect();
        let nexus = NexusConfig {
            inner_step: if cfg.variant == Variant::NexusDot {
                InnerStep::Raw
            } else {
                InnerStep::Normalized
            },
            ..NexusConfig::new(cfg.accum, cfg.inner_lr)?
        };
        // A gradient that overflows inside the inner loop is divergence too, reported as such
        // (the loss of that step is undefined), so the last checkpoint is kept.
        let grad = (|| -> Result<TensorParams> {
            Ok(match cfg.variant {
                Variant::Adamw | Variant::Nsgd | Variant::Muon => {
                    // The model holds `self.params` between steps, so no copy is needed.
                    let mut sum = oracle.gradient_at_model(0)?;
                    for i in 1..cfg.accum {
                        sum.axpy(1.0, &oracle.gradient_at_model(i)?)?;
                    }
                    sum.scale(1.0 / cfg.accum as f64)?;
                    sum
                }
                Variant::Nexus | Variant::NexusDot | Variant::MuonNexus => {
                    pseudo_gradient(&mut oracle, &self.params, &order, &nexus)?
                }
                Variant::Random => {
                    let pg = pseudo_gradient(&mut oracle, &self.params, &order, &nexus)?;
                    let mut first = self.params.zeros_like()?;
                    for i in 0..cfg.accum {
                        first.axpy(
                            1.0,
                            &step_direction(&oracle.gradient(i, &self.params)?, &nexus)?,
                        )?;
                    }
                    let correction = pg.minus(&first)?.norm()?;
                    let u = random_unit(&self.params, self.data.seed, self.step)?;
                    first.axpy(correction, &u)?;
                    first
                }
            })
        })();
        let mut grad = match grad {
            Err(Error::NonFinite(_)) => {
                return Err(Error::Diverged {
                    step: self.step + 1,
                    loss: f64::NAN,
                })
            }
            other => other?,
        };
        let loss = oracle.losses.iter().sum::<f64>() / oracle.losses.len() as f64;
        if !loss.is_finite() {
            return Err(Error::Diverged {
                step: self.step + 1,
                loss,
            });
        }
        let grad_norm = clip_norm(&mut grad, cfg.clip)?;
        self.outer
            .set_lr(&self.cfg, lr / self.cfg.lr.max(f64::MIN_POSITIVE))?;
        self.outer.step(&mut self.params, &grad)?;
        if !self.params.all_finite()? {
            return Err(Error::Diverged {
                step: self.step + 1,
                loss: f64::NAN,
            });
        }
        self.model.set_params(&self.params)?;
        self.step += 1;
        Ok(StepStats {
            step: self.step,
            loss,
            lr,
            grad_norm,
        })
    }

    /// Validation and held-out losses, gradient similarity and skill accuracy at the current point,
    /// on the run's fixed validation rows ([`Trainer::evaluate_on`] with 16 rows per source).
    pub fn evaluate(&self) -> Result<Evaluation> {
        self.evaluate_on(VALIDATION_ROWS)
    }

    /// [`Trainer::evaluate`] on `rows` validation rows of `seq_len + 1` tokens per source (at
    /// least 1). The first 16 are the rows `evaluate` uses, so a larger set extends it; a final
    /// measurement wants more, because 16 rows leave sampling noise of the size of the effects
    /// the paper reports (measured in `pretrain`'s docs).
    pub fn evaluate_on(&self, rows: usize) -> Result<Evaluation> {
        let validation = self.losses_on(&self.data.sources, rows)?;
        let held_out = self.losses_on(&self.data.held_out, rows)?;
        let gradient_cosine = self.gradient_cosine_on(rows)?;
        let mut skills_exact_match = Vec::new();
        for s in &self.data.sources {
            if let Source::Skill { name, skill } = s {
                skills_exact_match.push((name.clone(), self.exact_match(*skill, name, 20)?));
            }
        }
        Ok(Evaluation {
            step: self.step,
            validation_mean: mean_loss(&validation),
            held_out_mean: mean_loss(&held_out),
            validation,
            held_out,
            gradient_cosine,
            skills_exact_match,
        })
    }

    /// The mean pairwise cosine of the training sources' gradients (pairs `i < j`; NaN with
    /// fewer than two sources), each gradient on the first `rows` validation rows of its source,
    /// the rows [`Trainer::evaluate_on`] uses: the paper's gradient similarity
    /// `E_{i != j} CosSim(grad L_i, grad L_j)` (Table 4). Sampling noise in a gradient shrinks
    /// its cosine toward 0, so more rows measure it with less bias.
    pub fn gradient_cosine_on(&self, rows: usize) -> Result<f64> {
        let grads = self
            .data
            .sources
            .iter()
            .map(|s| {
                let tokens = self.validation_tokens(s, rows)?;
                Ok(self.model.loss_and_gradients(&tokens)?.1)
            })
            .collect::<Result<Vec<_>>>()?;
        let (mut cos, mut pairs) = (0.0, 0);
        for i in 0..grads.len() {
            for j in i + 1..grads.len() {
                cos += grads[i].dot(&grads[j])? / (grads[i].norm()? * grads[j].norm()?);
                pairs += 1;
            }
        }
        Ok(if pairs > 0 {
            cos / pairs as f64
        } else {
            f64::NAN
        })
    }

    /// [`Evaluation::held_out_mean`] alone, on `rows` rows per held-out source: the same
    /// number `evaluate_on(rows)` gives, without the gradients and generations it also pays for.
    pub fn held_out_mean_on(&self, rows: usize) -> Result<f64> {
        Ok(mean_loss(&self.losses_on(&self.data.held_out, rows)?))
    }

    /// The validation loss of each of `sources` on its first `rows` rows.
    fn losses_on(&self, sources: &[Source], rows: usize) -> Result<Vec<(String, f64)>> {
        sources
            .iter()
            .map(|s| {
                let tokens = self.validation_tokens(s, rows)?;
                Ok((s.name().to_string(), self.model.eval_loss(&tokens)?))
            })
            .collect()
    }

    /// The first `rows` validation rows of `source` (`seq_len + 1` tokens each) as a tensor.
    fn validation_tokens(&self, source: &Source, rows: usize) -> Result<Tensor> {
        if rows == 0 {
            return Err(Error::InvalidArgument {
                name: "rows",
                reason: "an evaluation needs at least one row per source".into(),
            });
        }
        let len = self.cfg.seq_len;
        Ok(Tensor::from_vec(
            self.data.validation(source, rows, len),
            (rows, len + 1),
            self.model.device(),
        )?)
    }

    /// Share of `n` fixed prompts of `skill` that greedy decoding completes exactly.
    fn exact_match(&self, skill: super::data::Skill, name: &str, n: usize) -> Result<f64> {
        let mut rng = crate::rng_for(self.data.seed, &format!("skill-eval:{name}"));
        let mut hits = 0;
        for _ in 0..n {
            let (prompt, answer) = skill.example(&mut rng);
            let out = self.model.generate(prompt.as_bytes(), answer.len())?;
            hits += usize::from(out == answer.as_bytes());
        }
        Ok(hits as f64 / n as f64)
    }

    /// Writes a checkpoint of the current step (the protocol of [`checkpoint`]: a kill at any
    /// point leaves a resumable run).
    pub fn checkpoint(&self) -> Result<()> {
        checkpoint::write(&self.out, self.step, |dir| {
            self.model.save(dir)?;
            checkpoint::failpoint("checkpoint:model-written");
            let (m, v, adam_t) = self.outer.adam().moments();
            let mut map = std::collections::HashMap::new();
            for (prefix, p) in [("m", m), ("v", v)] {
                if let Some(p) = p {
                    for (i, t) in p.tensors.iter().enumerate() {
                        map.insert(format!("{prefix}.{i}"), t.clone());
                    }
                }
            }
            if let Outer::Muon(muon) = &self.outer {
                for (i, t) in muon.buffers().into_iter().flatten().enumerate() {
                    map.insert(format!("muon.{i}"), t.clone());
                }
            }
            candle_core::safetensors::save(&map, dir.join("optimizer.safetensors"))?;
            let state = serde_json::json!({"step": self.step, "adam_steps": adam_t, "config": self.cfg, "crate_version": crate::VERSION});
            let path = dir.join("state.json");
            std::fs::write(&path, serde_json::to_string_pretty(&state)?).map_err(|e| Error::Io {
                path: path.display().to_string(),
                source: e,
            })
        })
    }

    /// Appends one JSON line to `metrics.jsonl`.
    pub fn log(&self, record: &serde_json::Value) -> Result<()> {
        let path = self.out.join("metrics.jsonl");
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| Error::Io {
                path: path.display().to_string(),
                source: e,
            })?;
        writeln!(f, "{record}").map_err(|e| Error::Io {
            path: path.display().to_string(),
            source: e,
        })
    }

    /// Drops metric lines written after the checkpoint being resumed.
    fn truncate_metrics(&self) -> Result<()> {
        let path = self.out.join("metrics.jsonl");
        let Ok(text) = std::fs::read_to_string(&path) else {
            return Ok(());
        };
        let kept: String = text
            .lines()
            .filter(|l| {
                serde_json::from_str::<serde_json::Value>(l)
                    .ok()
                    .and_then(|v| v["step"].as_u64())
                    .is_some_and(|s| s as usize <= self.step)
            })
            .map(|l| format!("{l}\n"))
            .collect();
        crate::fsio::write_atomic(&path, kept.as_bytes())
    }

    /// Runs to `cfg.steps`, logging, evaluating and checkpointing on the way. On a NaN or
    /// infinite loss it stops with [`Error::Diverged`] and leaves the last checkpoint as it was.
    pub fn run(&mut self, progress: &indicatif::ProgressBar) -> Result<Option<Evaluation>> {
        progress.set_length(self.cfg.steps as u64);
        progress.set_position(self.step as u64);
        let mut last = None;
        while self.step < self.cfg.steps {
            let stats = self.step()?;
            self.log(&serde_json::to_value(stats)?)?;
            progress.inc(1);
            progress.set_message(format!("loss {:.4}", stats.loss));
            if self.step.is_multiple_of(self.cfg.eval_every.max(1)) || self.step == self.cfg.steps {
                let e = self.evaluate()?;
                self.log(&serde_json::json!({"step": self.step, "eval": e}))?;
                last = Some(e);
            }
            if self.step.is_multiple_of(self.cfg.checkpoint_every.max(1))
                || self.step == self.cfg.steps
            {
                self.checkpoint()?;
            }
        }
        Ok(last)
    }

    /// The current parameters.
    pub fn params(&self) -> &TensorParams {
        &self.params
    }

    /// The paper's closeness measurement (Table 4, Fig. 7): fine-tune a copy of the current point
    /// on one source with full-batch AdamW (a fixed batch of the source, `steps` steps) and return
    /// `||x_k* - x||` with the source's loss along the segment at `t = 0, 1/4, ..., 1`.
    /// The model is left at the current point.
    pub fn finetune_distance(
        &self,
        source: &Source,
        steps: usize,
        lr: f64,
    ) -> Result<(f64, Vec<f64>)> {
        let tokens = self.validation_tokens(source, VALIDATION_ROWS)?;
        let mut adam = AdamW::new(AdamWConfig {
            lr,
            beta1: 0.9,
            beta2: 0.95,
            eps: 1e-10,
            weight_decay: 0.0,
        })?;
        let mut p = self.params.clone();
        for _ in 0..steps {
            let (_, g) = self.model.loss_and_gradients_at(&p, &tokens)?;
            adam.step(&mut p, &g)?;
        }
        let delta = p.minus(&self.params)?;
        let mut path = Vec::new();
        for i in 0..=4 {
            let mut q = self.params.clone();
            q.axpy(i as f64 / 4.0, &delta)?;
            self.model.set_params(&q)?;
            path.push(self.model.eval_loss(&tokens)?);
        }
        self.model.set_params(&self.params)?;
        Ok((delta.norm()?, path))
    }
}

/// The checkpoint a resume of the run in `out` would load: its newest complete checkpoint.
pub fn checkpoint_dir(out: &Path) -> Result<PathBuf> {
    checkpoint::latest(out)
}

/// Checks the checkpoint's `config.json` (Hugging Face names) against the model shape its
/// configuration names; an edited or foreign file is an error naming the key.
fn check_model_config(dir: &Path, cfg: &TrainConfig) -> Result<()> {
    let path = dir.join("config.json");
    let text = std::fs::read_to_string(&path).map_err(|e| Error::Io {
        path: path.display().to_string(),
        source: e,
    })?;
    let json: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| Error::Data(format!("{}: {e}", path.display())))?;
    let shape = LlamaConfig::preset(&cfg.preset)?;
    let expected = serde_json::to_value(&shape)?;
    for (key, want) in expected.as_object().into_iter().flatten() {
        if json.get(key) != Some(want) {
            return Err(Error::Data(format!(
                "{}: `{key}` is {}, but the run's preset `{}` has {want}",
                path.display(),
                json.get(key)
                    .map_or("missing".to_string(), |v| v.to_string()),
                cfg.preset
            )));
        }
    }
    Ok(())
}

/// What a resumed run may change. Every field in `given` (a [`TrainConfig`] field name) was
/// set by the user: `steps`, `eval_every` and `checkpoint_every` take the new value (more
/// steps move the schedule's end); any other field must equal the checkpoint's, or the resume
/// is refused with a message naming it (the model shape, the variant, the data and the
/// optimizer settings are the run's identity).
#[derive(Clone, Debug, Default)]
pub struct ResumeRequest {
    /// The configuration the command line and config file describe.
    pub config: Option<TrainConfig>,
    /// The fields of `config` the user set explicitly.
    pub given: Vec<String>,
}

impl ResumeRequest {
    const CHANGEABLE: [&'static str; 3] = ["steps", "eval_every", "checkpoint_every"];

    fn apply(&self, saved: TrainConfig, step: usize) -> Result<TrainConfig> {
        let Some(requested) = &self.config else {
            return Ok(saved);
        };
        let (mut merged, asked) = (
            serde_json::to_value(&saved)?,
            serde_json::to_value(requested)?,
        );
        for field in &self.given {
            let (old, new) = (&merged[field.as_str()], &asked[field.as_str()]);
            if old == new {
                continue;
            }
            if !Self::CHANGEABLE.contains(&field.as_str()) {
                return Err(Error::InvalidArgument {
                    name: "resume",
                    reason: format!(
                        "`{field}` cannot change on resume: the checkpoint has {old}, the command asks {new}"
                    ),
                });
            }
            merged[field.as_str()] = new.clone();
        }
        let cfg: TrainConfig = serde_json::from_value(merged)?;
        ensure(cfg.steps >= step, "steps", || {
            format!(
                "the checkpoint is at step {step}; --steps {} would go back",
                cfg.steps
            )
        })?;
        cfg.validate()?;
        Ok(cfg)
    }
}

/// A uniformly random unit direction in parameter space, a function of the seed and the step.
fn random_unit(like: &TensorParams, seed: u64, step: usize) -> Result<TensorParams> {
    let mut rng = crate::rng_for(seed, &format!("random-direction:{step}"));
    let mut tensors = Vec::with_capacity(like.tensors.len());
    for t in &like.tensors {
        let values: Vec<f64> = (0..t.elem_count())
            .map(|_| Distribution::<f64>::sample(&StandardNormal, &mut rng))
            .collect();
        tensors.push(Tensor::from_vec(values, t.dims(), t.device())?.to_dtype(t.dtype())?);
    }
    let mut u = TensorParams { tensors };
    let n = u.norm()?;
    u.scale(1.0 / n)?;
    Ok(u)
}
