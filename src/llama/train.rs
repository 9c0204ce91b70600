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
use super::config::{Precision, TrainConfig, Variant};
use super::data::DataSet;
use super::data::Source;
use super::eval::{Evaluation, RunPoint};
use super::model::{Llama, LlamaConfig};
use super::params::TensorParams;
use super::state::{
    check_model_config, newest_valid, source_digests, ResumeRequest, RunState, SourceDigest,
};
use crate::error::{Error, Result};
use crate::fsio::io_error;
use crate::nexus::{
    first_order_part, pseudo_gradient, CorrectionStrength, InnerStep, NexusConfig, SourceGradients,
};
use crate::optim::{clip_norm, AdamW, AdamWConfig, NormalizedAdam, Optimizer};
use crate::params::ParamVec;
use candle_core::{DType, Device, Tensor};
use rand_distr::{Distribution, StandardNormal};
use serde::Serialize;
use std::io::Write as _;
use std::path::{Path, PathBuf};

/// Runs the pool's pending jobs, spinning between them, until `done`. On the step's own thread
/// (which picks this job up itself when no other thread took it before the step waited on the
/// pool) it returns at once: the step, further down that thread's stack, is what sets `done`.
fn keep_awake(done: &std::sync::atomic::AtomicBool, owner: Option<usize>) {
    if rayon::current_thread_index() == owner {
        return;
    }
    while !done.load(std::sync::atomic::Ordering::Acquire) {
        match rayon::yield_now() {
            Some(rayon::Yield::Executed) => {}
            Some(rayon::Yield::Idle) => std::hint::spin_loop(),
            None => return,
        }
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
    /// The mean gradient of the micro-batches at the model's current parameters, summed in
    /// micro-batch order. As many micro-batches as the pool has threads are computed at once
    /// (side by side on the CPU), which bounds the gradients held to that many plus the sum.
    fn mean_gradient_at_model(&mut self) -> Result<TensorParams> {
        let width = rayon::current_num_threads().max(1);
        let mut sum: Option<TensorParams> = None;
        for start in (0..self.batches.len()).step_by(width) {
            let end = (start + width).min(self.batches.len());
            for result in self.model.losses_and_gradients(&self.batches[start..end]) {
                let g = self.record(result)?;
                match sum.as_mut() {
                    None => sum = Some(g),
                    Some(s) => s.axpy(1.0, &g)?,
                }
            }
        }
        let mut sum = sum.ok_or_else(|| Error::InvalidArgument {
            name: "accum",
            reason: "an outer step needs at least one micro-batch".into(),
        })?;
        sum.scale(1.0 / self.batches.len() as f64)?;
        Ok(sum)
    }

    /// Keeps the loss of a gradient evaluation; a non-finite loss is divergence.
    fn record(&mut self, result: Result<(f64, TensorParams)>) -> Result<TensorParams> {
        let (loss, g) = result?;
        // Stop at the first non-finite loss, before it can reach an inner or outer step.
        if !loss.is_finite() {
            return Err(Error::Diverged {
                step: self.step,
                loss,
                checkpoint: None,
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
    /// At evaluation steps, for the variants whose update is a pseudo-gradient: how far it
    /// departs from its first-order part ([`CorrectionStrength`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub correction: Option<CorrectionStrength>,
}

/// A training run.
pub struct Trainer {
    /// Its configuration.
    pub cfg: TrainConfig,
    /// The model (holding the current parameters).
    pub model: Llama,
    /// Its data.
    pub data: DataSet,
    pub(super) params: TensorParams,
    outer: Outer,
    pub(super) step: usize,
    out: PathBuf,
    /// The source files as this run read them, recorded in every checkpoint.
    sources: Vec<SourceDigest>,
    /// The step of the newest checkpoint written or resumed from.
    last_checkpoint: Option<usize>,
    _lock: RunLock,
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
        // Checked before anything on disk is touched (`replace` removes a run).
        cfg.validate()?;
        let lock = checkpoint::lock_run(out)?;
        if checkpoint::has_run(out) {
            if !replace {
                let resumable = !checkpoint::candidates(out)?.0.is_empty();
                return Err(Error::InvalidArgument {
                    name: "out",
                    reason: if resumable {
                        format!(
                            "{} holds a run already: --resume continues it, --force replaces it, or choose another --out",
                            out.display()
                        )
                    } else {
                        format!(
                            "{} holds a run that stopped before its first checkpoint (metrics only): --force starts it again, or choose another --out",
                            out.display()
                        )
                    },
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
        let sources = source_digests(&cfg)?;
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
            sources,
            last_checkpoint: None,
            _lock: lock,
        })
    }

    /// Continues the run checkpointed in `out` with the checkpoint's configuration.
    pub fn resume(out: &Path, device: &Device, dtype: DType) -> Result<Self> {
        Self::resume_with(out, device, dtype, &ResumeRequest::default())
    }

    /// Continues the run checkpointed in `out`, with the changes `request` asks for where they
    /// are safe (see [`ResumeRequest`]) and an error where they are not. Leftovers of a killed
    /// checkpoint write (`.tmp`) are removed first; nothing else is. The checkpoint taken is the
    /// newest whose files match the digests its state records ([`super::state::newest_valid`]);
    /// the source files must match theirs (unless the request allows changed data), the
    /// checkpoint's `config.json` must match its configuration and `optimizer.safetensors` must
    /// hold every moment the optimizer had.
    pub fn resume_with(
        out: &Path,
        device: &Device,
        dtype: DType,
        request: &ResumeRequest,
    ) -> Result<Self> {
        let lock = checkpoint::lock_run(out)?;
        checkpoint::remove_leftovers(out)?;
        let (dir, state) = newest_valid(out)?;
        let step = state.step;
        let cfg = request.apply(state.config, step)?;
        cfg.validate()?;
        request.check_sources(&state.sources, &source_digests(&cfg)?)?;
        check_model_config(&dir, &cfg)?;
        let mut t = Self::build(cfg, out, device, dtype, lock)?;
        t.last_checkpoint = Some(step);
        t.model.load_params(&dir)?;
        t.params = t.model.params()?;
        t.step = step;
        let adam_t = state.adam_steps;
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
        let stats = if rayon::current_thread_index().is_some() {
            self.step_with_pool_awake()
        } else {
            let device = self.model.device().clone();
            device.with_context(|| self.step_with_pool_awake())
        };
        stats.map_err(|e| match e {
            Error::Diverged { step, loss, .. } => Error::Diverged {
                step,
                loss,
                checkpoint: self.last_checkpoint,
            },
            other => other,
        })
    }

    /// [`Trainer::step_in_pool`] with another thread of a CPU pool kept awake for the step,
    /// taking the step's parallel work as soon as it is handed out. A rayon worker with nothing
    /// to do goes to sleep within microseconds, and on a virtual machine a sleeping core can take
    /// milliseconds to start again: Nexus's inner passes hand out a few hundred short parallel
    /// sections per step, and with the second core asleep between them it joined late or not
    /// at all (`perf`: one thread busy alone for 30% of a `small` step's sampled time). Only the
    /// scheduling changes, not the results.
    fn step_with_pool_awake(&mut self) -> Result<StepStats> {
        if rayon::current_num_threads() < 2 || !self.model.device().is_cpu() {
            return self.step_in_pool();
        }
        /// Sets the flag when dropped, so that a step that panics still releases the spinning
        /// thread (`rayon::join` waits for both halves before it passes the panic on).
        struct Finished<'a>(&'a std::sync::atomic::AtomicBool);
        impl Drop for Finished<'_> {
            fn drop(&mut self) {
                self.0.store(true, std::sync::atomic::Ordering::Release);
            }
        }
        let done = std::sync::atomic::AtomicBool::new(false);
        let owner = rayon::current_thread_index();
        let (stats, ()) = rayon::join(
            || {
                let _finished = Finished(&done);
                self.step_in_pool()
            },
            || keep_awake(&done, owner),
        );
        stats
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
        // The correction's strength is measured at the evaluation steps (K more gradients at
        // the start point each time), for the variants whose update is a pseudo-gradient.
        let next = self.step + 1;
        let measure = matches!(
            cfg.variant,
            Variant::Nexus | Variant::NexusDot | Variant::MuonNexus | Variant::Random
        ) && cfg.evaluates_at(next);
        let mut correction = None;
        // A gradient that overflows inside the inner loop is divergence too, reported as such
        // (the loss of that step is undefined), so the last checkpoint is kept.
        let grad = (|| -> Result<TensorParams> {
            Ok(match cfg.variant {
                Variant::Adamw | Variant::Nsgd | Variant::Muon => {
                    // The model holds `self.params` between steps, so no copy is needed.
                    oracle.mean_gradient_at_model()?
                }
                Variant::Nexus | Variant::NexusDot | Variant::MuonNexus => {
                    let pg = pseudo_gradient(&mut oracle, &self.params, &order, &nexus)?;
                    if measure {
                        // Measured without entering the step's loss: the loss reported is the
                        // inner trajectory's, as on steps that are not measured.
                        let seen = oracle.losses.len();
                        let first = first_order_part(&mut oracle, &self.params, &order, &nexus)?;
                        oracle.losses.truncate(seen);
                        correction = Some(CorrectionStrength::of(&pg, &first)?);
                    }
                    pg
                }
                Variant::Random => {
                    let pg = pseudo_gradient(&mut oracle, &self.params, &order, &nexus)?;
                    let mut first = first_order_part(&mut oracle, &self.params, &order, &nexus)?;
                    if measure {
                        correction = Some(CorrectionStrength::of(&pg, &first)?);
                    }
                    let size = pg.minus(&first)?.norm()?;
                    let u = random_unit(&self.params, self.data.seed, self.step)?;
                    first.axpy(size, &u)?;
                    first
                }
            })
        })();
        let mut grad = match grad {
            Err(Error::NonFinite(_)) => {
                return Err(Error::Diverged {
                    step: self.step + 1,
                    loss: f64::NAN,
                    checkpoint: None,
                })
            }
            other => other?,
        };
        let loss = oracle.losses.iter().sum::<f64>() / oracle.losses.len() as f64;
        if !loss.is_finite() {
            return Err(Error::Diverged {
                step: self.step + 1,
                loss,
                checkpoint: None,
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
                checkpoint: None,
            });
        }
        self.model.set_params(&self.params)?;
        self.step += 1;
        Ok(StepStats {
            step: self.step,
            loss,
            lr,
            grad_norm,
            correction,
        })
    }

    /// Writes a checkpoint of the current step (the protocol of [`checkpoint`]: a kill at any
    /// point leaves a resumable run).
    pub fn checkpoint(&mut self) -> Result<()> {
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
            let optimizer = dir.join("optimizer.safetensors");
            candle_core::safetensors::save(&map, &optimizer)
                .map_err(|e| Error::Data(format!("writing {}: {e}", optimizer.display())))?;
            RunState {
                adam_steps: adam_t,
                config: self.cfg.clone(),
                crate_version: crate::VERSION.into(),
                files: Default::default(),
                sources: self.sources.clone(),
                state_sha256: String::new(),
                step: self.step,
            }
            .seal_and_write(dir)
        })?;
        self.last_checkpoint = Some(self.step);
        Ok(())
    }

    /// Appends one JSON line to `metrics.jsonl`.
    pub fn log(&self, record: &serde_json::Value) -> Result<()> {
        let path = self.out.join("metrics.jsonl");
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io_error(&path))?;
        writeln!(f, "{record}").map_err(io_error(&path))
    }

    /// Drops metric lines written after the checkpoint being resumed.
    fn truncate_metrics(&self) -> Result<()> {
        let path = self.out.join("metrics.jsonl");
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(io_error(&path)(e)),
        };
        let (kept, dropped) = metrics_up_to(&bytes, self.step);
        for line in dropped {
            crate::warn(&format!(
                "{} line {line}: not a complete JSON record, dropped on resume",
                path.display()
            ));
        }
        crate::fsio::write_atomic(&path, &kept)
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
            if self.cfg.evaluates_at(self.step) {
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

    fn point(&self) -> RunPoint<'_> {
        RunPoint {
            model: &self.model,
            data: &self.data,
            cfg: &self.cfg,
            params: &self.params,
            step: self.step,
        }
    }

    /// Validation and held-out losses, gradient similarity and skill accuracy at the current
    /// point, on the run's fixed validation rows ([`Trainer::evaluate_on`] with
    /// [`super::VALIDATION_ROWS`] rows per source).
    pub fn evaluate(&self) -> Result<Evaluation> {
        self.point().evaluate()
    }

    /// [`Trainer::evaluate`] on `rows` validation rows of `seq_len + 1` tokens per source (at
    /// least 1). The first rows are those `evaluate` uses, so a larger set extends it; a final
    /// measurement wants more, because 16 rows leave sampling noise of the size of the effects
    /// the paper reports.
    pub fn evaluate_on(&self, rows: usize) -> Result<Evaluation> {
        self.point().evaluate_on(rows)
    }

    /// Mean pairwise cosine of the per-source gradients on `rows` validation rows per source.
    pub fn gradient_cosine_on(&self, rows: usize) -> Result<f64> {
        self.point().gradient_cosine_on(rows)
    }

    /// Mean held-out loss on `rows` rows per held-out source (NaN without held-out sources).
    pub fn held_out_mean_on(&self, rows: usize) -> Result<f64> {
        self.point().held_out_mean_on(rows)
    }

    /// The paper's closeness measurement (Table 4, Fig. 7): fine-tune a copy of the current
    /// point on one source with full-batch AdamW and return the distance moved and the source's
    /// loss along the segment (see the evaluation module).
    pub fn finetune_distance(
        &self,
        source: &Source,
        steps: usize,
        lr: f64,
    ) -> Result<(f64, Vec<f64>)> {
        self.point().finetune_distance(source, steps, lr)
    }

    /// Closeness to a minimum: fine-tune a copy of the current point on one source until `stop`
    /// holds (see the evaluation module).
    pub fn finetune_to_minimum(
        &self,
        source: &Source,
        stop: &super::eval::MinimumCriterion,
    ) -> Result<super::eval::Minimum> {
        self.point().finetune_to_minimum(source, stop)
    }

    /// The current parameters.
    pub fn params(&self) -> &TensorParams {
        &self.params
    }
}

/// The records of a `metrics.jsonl` to keep when resuming at `step`: every complete line (ending
/// in a newline) that is valid UTF-8 JSON with a `step` of at most `step`, whatever bytes
/// surround it; and the 1-based numbers of the lines dropped for being torn, not UTF-8 or not
/// JSON (records of later steps are dropped silently: the resumed run writes them again).
pub fn metrics_up_to(bytes: &[u8], step: usize) -> (Vec<u8>, Vec<usize>) {
    let (mut kept, mut dropped) = (Vec::new(), Vec::new());
    for (i, line) in bytes.split_inclusive(|&b| b == b'\n').enumerate() {
        let complete = line.ends_with(b"\n");
        let record = std::str::from_utf8(line)
            .ok()
            .filter(|_| complete)
            .and_then(|l| serde_json::from_str::<serde_json::Value>(l).ok());
        match record.and_then(|v| v["step"].as_u64()) {
            Some(s) if s as usize <= step => kept.extend_from_slice(line),
            Some(_) => {}
            None if line.iter().all(u8::is_ascii_whitespace) => {}
            None => dropped.push(i + 1),
        }
    }
    (kept, dropped)
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
