//! Evaluating a run: validation and held-out losses, the gradient similarity between sources,
//! skill accuracy, and the paper's closeness measurement (a fine-tune from the current point).

use super::config::TrainConfig;
use super::data::DataSet;
use super::data::Source;
use super::model::Llama;
use super::params::TensorParams;
use crate::error::{Error, Result};
use crate::optim::{AdamW, AdamWConfig, Optimizer};
use crate::params::ParamVec;
use candle_core::Tensor;
use serde::Serialize;

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

/// Validation rows per source of [`RunPoint::evaluate`] (`seq_len + 1` tokens each).
pub const VALIDATION_ROWS: usize = 16;

/// When a fine-tune toward a source's minimum stops: full-batch AdamW at `lr` on the fixed
/// batch until the gradient norm is at most `gradient_ratio` times its value at the start, or
/// the loss fell by less than a share `plateau` of itself over the last `window` steps; at most
/// `max_steps` steps (then the fine-tune did not converge, and says so).
#[derive(Clone, Debug, Serialize, serde::Deserialize, PartialEq)]
pub struct MinimumCriterion {
    pub lr: f64,
    pub gradient_ratio: f64,
    pub plateau: f64,
    pub window: usize,
    pub max_steps: usize,
}

impl MinimumCriterion {
    /// Whether the fine-tune whose `(loss, gradient norm / initial gradient norm)` so far is
    /// `trace` has reached its minimum.
    pub fn holds(&self, trace: &[(f64, f64)]) -> bool {
        let Some(&(loss, ratio)) = trace.last() else {
            return false;
        };
        if ratio <= self.gradient_ratio {
            return true;
        }
        trace.len() > self.window && {
            let before = trace[trace.len() - 1 - self.window].0;
            before - loss < self.plateau * loss.abs()
        }
    }
}

/// How a fine-tune toward a source's minimum ended.
#[derive(Clone, Debug)]
pub struct Minimum {
    /// `||x_k* - x||`.
    pub distance: f64,
    /// The source's loss along the segment at `t = 0, 1/4, ..., 1`.
    pub path: Vec<f64>,
    /// AdamW steps taken.
    pub steps: usize,
    /// Whether the criterion held (else the step cap stopped it).
    pub converged: bool,
    /// The gradient norm at the end over the one at the start.
    pub gradient_ratio: f64,
    /// `(loss, gradient norm / initial)` before each step and at the end.
    pub trace: Vec<(f64, f64)>,
}

/// The closeness fine-tunes' optimizer: full-batch AdamW without weight decay.
fn finetune_optimizer(lr: f64) -> Result<AdamW<TensorParams>> {
    AdamW::new(AdamWConfig {
        lr,
        beta1: 0.9,
        beta2: 0.95,
        eps: 1e-10,
        weight_decay: 0.0,
    })
}

/// The mean of per-source losses (NaN without sources, as when a run holds none out).
fn mean_loss(losses: &[(String, f64)]) -> f64 {
    if losses.is_empty() {
        f64::NAN
    } else {
        losses.iter().map(|x| x.1).sum::<f64>() / losses.len() as f64
    }
}

/// A run's current point as evaluation sees it: the model, its data and configuration, the
/// parameters and the step. [`super::Trainer`] hands one out for each evaluation.
pub(super) struct RunPoint<'a> {
    pub model: &'a Llama,
    pub data: &'a DataSet,
    pub cfg: &'a TrainConfig,
    pub params: &'a TensorParams,
    pub step: usize,
}

impl RunPoint<'_> {
    /// Validation and held-out losses, gradient similarity and skill accuracy at the current point,
    /// on the run's fixed validation rows ([`RunPoint::evaluate_on`] with 16 rows per source).
    pub(super) fn evaluate(&self) -> Result<Evaluation> {
        self.evaluate_on(VALIDATION_ROWS)
    }

    /// [`RunPoint::evaluate`] on `rows` validation rows of `seq_len + 1` tokens per source (at
    /// least 1). The first 16 are the rows `evaluate` uses, so a larger set extends it; a final
    /// measurement wants more, because 16 rows leave sampling noise of the size of the effects
    /// the paper reports (measured in `pretrain`'s docs).
    pub(super) fn evaluate_on(&self, rows: usize) -> Result<Evaluation> {
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
    /// the rows [`RunPoint::evaluate_on`] uses: the paper's gradient similarity
    /// `E_{i != j} CosSim(grad L_i, grad L_j)` (Table 4). Sampling noise in a gradient shrinks
    /// its cosine toward 0, so more rows measure it with less bias.
    pub(super) fn gradient_cosine_on(&self, rows: usize) -> Result<f64> {
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
    pub(super) fn held_out_mean_on(&self, rows: usize) -> Result<f64> {
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

    /// The loss on `tokens` at `x + t delta` for `t = 0, 1/4, ..., 1` (Fig. 7's interpolation);
    /// the model is left at the current point.
    fn losses_toward(&self, delta: &TensorParams, tokens: &Tensor) -> Result<Vec<f64>> {
        let mut path = Vec::new();
        for i in 0..=4 {
            let mut q = self.params.clone();
            q.axpy(i as f64 / 4.0, delta)?;
            self.model.set_params(&q)?;
            path.push(self.model.eval_loss(tokens)?);
        }
        self.model.set_params(self.params)?;
        Ok(path)
    }

    /// Closeness to a minimum: fine-tune a copy of the current point on one source's fixed batch
    /// with full-batch AdamW until `stop` says the fine-tune reached a minimum of that batch's
    /// loss (or its step cap), and return the distance, the loss along the segment and how the
    /// fine-tune ended. The model is left at the current point.
    pub(super) fn finetune_to_minimum(
        &self,
        source: &Source,
        stop: &MinimumCriterion,
    ) -> Result<Minimum> {
        let tokens = self.validation_tokens(source, VALIDATION_ROWS)?;
        let mut adam = finetune_optimizer(stop.lr)?;
        let mut p = self.params.clone();
        let mut trace = Vec::new();
        let mut g0 = f64::NAN;
        let mut steps = 0;
        let converged = loop {
            let (loss, g) = self.model.loss_and_gradients_at(&p, &tokens)?;
            let gnorm = g.norm()?;
            if steps == 0 {
                g0 = gnorm;
            }
            trace.push((loss, gnorm / g0));
            if stop.holds(&trace) {
                break true;
            }
            if steps == stop.max_steps {
                break false;
            }
            adam.step(&mut p, &g)?;
            steps += 1;
        };
        let delta = p.minus(self.params)?;
        let path = self.losses_toward(&delta, &tokens)?;
        Ok(Minimum {
            distance: delta.norm()?,
            path,
            steps,
            converged,
            gradient_ratio: trace.last().map_or(f64::NAN, |t| t.1),
            trace,
        })
    }

    /// The paper's closeness measurement (Table 4, Fig. 7): fine-tune a copy of the current point
    /// on one source with full-batch AdamW (a fixed batch of the source, `steps` steps) and return
    /// `||x_k* - x||` with the source's loss along the segment at `t = 0, 1/4, ..., 1`.
    /// The model is left at the current point.
    pub(super) fn finetune_distance(
        &self,
        source: &Source,
        steps: usize,
        lr: f64,
    ) -> Result<(f64, Vec<f64>)> {
        let tokens = self.validation_tokens(source, VALIDATION_ROWS)?;
        let mut adam = finetune_optimizer(lr)?;
        let mut p = self.params.clone();
        for _ in 0..steps {
            let (_, g) = self.model.loss_and_gradients_at(&p, &tokens)?;
            adam.step(&mut p, &g)?;
        }
        let delta = p.minus(self.params)?;
        let path = self.losses_toward(&delta, &tokens)?;
        Ok((delta.norm()?, path))
    }
}

#[cfg(test)]
mod tests {
    use super::MinimumCriterion;

    const STOP: MinimumCriterion = MinimumCriterion {
        lr: 1e-3,
        gradient_ratio: 0.05,
        plateau: 0.01,
        window: 3,
        max_steps: 100,
    };

    /// The gradient test alone stops at the first ratio at or below 0.05; the plateau test needs
    /// `window` steps of history and a fall of less than 1% of the loss over them.
    #[test]
    fn minimum_criterion() {
        assert!(!STOP.holds(&[]));
        assert!(!STOP.holds(&[(2.0, 1.0)]));
        assert!(STOP.holds(&[(2.0, 1.0), (1.0, 0.05)]));
        assert!(!STOP.holds(&[(2.0, 1.0), (1.0, 0.0501)]));
        // Falling fast: no plateau.
        let falling = [(4.0, 1.0), (3.0, 0.9), (2.0, 0.8), (1.0, 0.7)];
        assert!(!STOP.holds(&falling));
        // 1.000 -> 0.995 over 3 steps is 0.5% of the loss: a plateau.
        let flat = [(1.0, 1.0), (0.999, 0.9), (0.997, 0.9), (0.995, 0.9)];
        assert!(STOP.holds(&flat));
        // The same fall with one step too few of history.
        assert!(!STOP.holds(&flat[1..]));
        // A loss that rose over the window is a plateau too.
        assert!(STOP.holds(&[(1.0, 1.0), (1.1, 0.9), (1.2, 0.9), (1.3, 0.9)]));
    }
}
