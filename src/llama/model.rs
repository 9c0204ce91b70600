//! A trainable Llama in Candle: token embedding, RMSNorm, rotary position embedding, causal
//! multi-head attention, SwiGLU MLP, output head.
//!
//! Two implementations of the element-wise pieces, chosen by [`Kernels`]:
//! - plain: every op a plain differentiable Candle op. Candle's own fused RmsNorm,
//!   softmax-last-dim and rope kernels have no backward pass (../shared/CUDA.md), so RMSNorm,
//!   rotary embedding (the Hugging Face rotate-half convention) and SiLU are written out here,
//!   and so are the softmax ([`softmax_last_dim`]: exp, sum, div) and the cross-entropy
//!   ([`cross_entropy`]), op for op what `candle_nn` computes, without the dependency. Any
//!   device, any dtype.
//! - fused (the default on the CPU in f32 and f64): the kernels of [`super::fused`], each with
//!   its own backward; the query, key and value projections run as one matrix product, and so do
//!   the gate and up projections, with their weights stacked.
//!
//! Finite-difference tests check every gradient of both, and the two against each other.
//! Parameters carry the Hugging Face Llama names, so a checkpoint loads in the usual tools.

use super::fused::{CausalSoftmax, CrossEntropy, Kernels, QkvRope, RmsNorm, SwiGlu};
use super::params::TensorParams;
use super::serial::Split;
use crate::error::{ensure, Error, Result};
use candle_core::{DType, Device, Tensor, Var, D};
use rand_distr::{Distribution, Normal};
use serde::{Deserialize, Serialize};

/// Model shape.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LlamaConfig {
    /// Vocabulary size (256 for bytes).
    pub vocab_size: usize,
    /// Model width.
    pub hidden_size: usize,
    /// SwiGLU inner width.
    pub intermediate_size: usize,
    /// Number of transformer blocks.
    pub num_hidden_layers: usize,
    /// Attention heads (keys and values use as many).
    pub num_attention_heads: usize,
    /// Longest sequence.
    pub max_position_embeddings: usize,
    /// Rotary base.
    pub rope_theta: f64,
    /// RMSNorm epsilon.
    pub rms_norm_eps: f64,
}

impl LlamaConfig {
    /// A named size preset: `micro` (gradient checks), `tiny` (minutes on 2 CPU cores), `small`,
    /// `base` (~110M parameters, for a GPU).
    pub fn preset(name: &str) -> Result<Self> {
        let (hidden, inter, layers, heads, max_pos) = match name {
            "micro" => (8, 16, 1, 2, 16),
            // The size series of the `llama-sizes` study (2,484 to 270,816 parameters, with
            // `tiny` between): same depth as `tiny`, 128 positions.
            "size-2k" => (4, 12, 2, 2, 128),
            "size-10k" => (12, 32, 2, 2, 128),
            "size-34k" => (28, 76, 2, 2, 128),
            "size-271k" => (96, 256, 2, 4, 128),
            "tiny" => (64, 176, 2, 4, 128),
            "small" => (256, 688, 4, 8, 256),
            "base" => (768, 3072, 12, 12, 1024),
            other => {
                return Err(Error::InvalidArgument {
                    name: "preset",
                    reason: format!("unknown preset `{other}` (micro, tiny, small, base; the size series size-2k, size-10k, size-34k, size-271k)"),
                })
            }
        };
        Ok(Self {
            vocab_size: 256,
            hidden_size: hidden,
            intermediate_size: inter,
            num_hidden_layers: layers,
            num_attention_heads: heads,
            max_position_embeddings: max_pos,
            rope_theta: 10_000.0,
            rms_norm_eps: 1e-5,
        })
    }

    /// Checks the shape is usable.
    pub fn validate(&self) -> Result<()> {
        ensure(
            self.num_attention_heads > 0
                && self.hidden_size.is_multiple_of(self.num_attention_heads),
            "num_attention_heads",
            || format!("must divide hidden_size {}", self.hidden_size),
        )?;
        ensure(
            (self.hidden_size / self.num_attention_heads).is_multiple_of(2),
            "hidden_size",
            || "head dimension must be even for rotary embedding".into(),
        )?;
        ensure(
            self.vocab_size > 0 && self.num_hidden_layers > 0 && self.max_position_embeddings > 0,
            "config",
            || "sizes must be positive".into(),
        )
    }

    /// Names and shapes of every parameter, in the fixed order used everywhere.
    pub fn parameter_shapes(&self) -> Vec<(String, Vec<usize>)> {
        let (h, i, v) = (self.hidden_size, self.intermediate_size, self.vocab_size);
        let mut out = vec![("model.embed_tokens.weight".to_string(), vec![v, h])];
        for l in 0..self.num_hidden_layers {
            let p = format!("model.layers.{l}");
            out.push((format!("{p}.input_layernorm.weight"), vec![h]));
            for proj in ["q_proj", "k_proj", "v_proj", "o_proj"] {
                out.push((format!("{p}.self_attn.{proj}.weight"), vec![h, h]));
            }
            out.push((format!("{p}.post_attention_layernorm.weight"), vec![h]));
            out.push((format!("{p}.mlp.gate_proj.weight"), vec![i, h]));
            out.push((format!("{p}.mlp.up_proj.weight"), vec![i, h]));
            out.push((format!("{p}.mlp.down_proj.weight"), vec![h, i]));
        }
        out.push(("model.norm.weight".into(), vec![h]));
        out.push(("lm_head.weight".into(), vec![v, h]));
        out
    }

    /// Total parameter count.
    /// About how many bytes one micro-batch of `batch` sequences of `seq_len` tokens needs in
    /// training (f32): the activations kept for the backward pass (per token and layer, the
    /// block's inputs, its SwiGLU and attention intermediates and one row of attention
    /// probabilities per head), the logits, and as much again for their gradients; the
    /// parameters, gradients and two optimizer moments besides. An estimate for refusing a
    /// batch that cannot fit before allocating it, not an accounting.
    pub fn training_bytes(&self, batch: usize, seq_len: usize) -> f64 {
        let (b, t) = (batch as f64, seq_len as f64);
        let per_token_layer = 12.0 * self.hidden_size as f64
            + 3.0 * self.intermediate_size as f64
            + 2.0 * (self.num_attention_heads as f64) * t;
        let per_token =
            self.num_hidden_layers as f64 * per_token_layer + 3.0 * self.vocab_size as f64;
        4.0 * (2.0 * b * t * per_token + 4.0 * self.num_parameters() as f64)
    }

    /// The number of parameters.
    pub fn num_parameters(&self) -> usize {
        self.parameter_shapes()
            .iter()
            .map(|(_, s)| s.iter().product::<usize>())
            .sum()
    }
}

/// The model: named variables plus the rotary tables.
pub struct Llama {
    cfg: LlamaConfig,
    names: Vec<String>,
    vars: Vec<Var>,
    cos: Tensor,
    sin: Tensor,
    rope: QkvRope,
    kernels: Kernels,
    device: Device,
    /// The parameters' dtype (the master weights).
    dtype: DType,
    /// The dtype the forward and backward passes compute in.
    compute_dtype: DType,
}

impl Llama {
    /// A model initialised from `seed`: norms at 1, every matrix normal with std 0.02.
    pub fn new(cfg: LlamaConfig, seed: u64, device: &Device, dtype: DType) -> Result<Self> {
        cfg.validate()?;
        let mut rng = crate::rng_for(seed, "llama-init");
        let normal = Normal::new(0.0f64, 0.02).map_err(|e| Error::InvalidArgument {
            name: "init",
            reason: e.to_string(),
        })?;
        let (mut names, mut vars) = (Vec::new(), Vec::new());
        for (name, shape) in cfg.parameter_shapes() {
            let n: usize = shape.iter().product();
            let values: Vec<f64> = if shape.len() == 1 {
                vec![1.0; n]
            } else {
                (0..n).map(|_| normal.sample(&mut rng)).collect()
            };
            let t = Tensor::from_vec(values, shape, device)?.to_dtype(dtype)?;
            names.push(name);
            vars.push(Var::from_tensor(&t)?);
        }
        let (cos, sin) = rotary_tables(&cfg, device, dtype)?;
        let rope = fused_rotary(&cfg);
        Ok(Self {
            cfg,
            names,
            vars,
            cos,
            sin,
            rope,
            kernels: Kernels::for_device(device, dtype),
            device: device.clone(),
            dtype,
            compute_dtype: dtype,
        })
    }

    /// Computes in `dtype` while the parameters (and so the gradients and the optimizer state)
    /// stay in theirs: bf16 compute with f32 master weights. Each weight is cast in the forward
    /// pass, and the cast's backward returns its gradient in the parameters' dtype. Mixed
    /// precision runs on the plain ops.
    pub fn set_compute_dtype(&mut self, dtype: DType) {
        self.compute_dtype = dtype;
        if dtype != self.dtype {
            self.kernels = Kernels::Plain;
        }
    }

    /// The dtype of the forward and backward passes.
    pub fn compute_dtype(&self) -> DType {
        self.compute_dtype
    }

    /// A weight in the compute dtype (the variable itself when the dtypes agree).
    fn weight(&self, name: &str) -> Result<Tensor> {
        Ok(self.var(name)?.to_dtype(self.compute_dtype)?)
    }

    /// Chooses the kernels; fused ones exist on the CPU in f32 and f64 only.
    pub fn set_kernels(&mut self, kernels: Kernels) -> Result<()> {
        ensure(
            kernels == Kernels::Plain
                || (Kernels::for_device(&self.device, self.dtype) == Kernels::Fused
                    && self.compute_dtype == self.dtype),
            "kernels",
            || {
                format!(
                    "fused kernels run on the CPU in f32 or f64 without mixed precision, not {:?} {:?} computing in {:?}",
                    self.device, self.dtype, self.compute_dtype
                )
            },
        )?;
        self.kernels = kernels;
        Ok(())
    }

    /// The kernels in use.
    pub fn kernels(&self) -> Kernels {
        self.kernels
    }

    /// The shape.
    pub fn config(&self) -> &LlamaConfig {
        &self.cfg
    }
    /// Parameter names, in order.
    pub fn names(&self) -> &[String] {
        &self.names
    }
    /// The device.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The parameters as tensors that record no autograd graph (sharing the variables' storage).
    pub(super) fn detached_vars(&self) -> Vec<Tensor> {
        self.vars.iter().map(|v| v.as_detached_tensor()).collect()
    }

    /// The fused rotary-embedding kernel with this model's tables.
    pub(super) fn rotary(&self) -> &QkvRope {
        &self.rope
    }

    fn var(&self, name: &str) -> Result<&Tensor> {
        self.names
            .iter()
            .position(|n| n == name)
            .map(|i| self.vars[i].as_tensor())
            .ok_or_else(|| Error::InvalidArgument {
                name: "parameter",
                reason: format!("no parameter `{name}`"),
            })
    }

    /// A detached copy of the parameters. It owns its storage: `as_detached_tensor` alone would
    /// share the variables' storage, which [`Llama::set_params`] overwrites in place.
    pub fn params(&self) -> Result<TensorParams> {
        Ok(TensorParams {
            tensors: self
                .vars
                .iter()
                .map(|v| v.as_detached_tensor().copy())
                .collect::<candle_core::Result<_>>()?,
        })
    }

    /// Overwrites the parameters in place.
    pub fn set_params(&self, p: &TensorParams) -> Result<()> {
        if p.tensors.len() != self.vars.len() {
            return Err(Error::DimensionMismatch {
                expected: self.vars.len(),
                got: p.tensors.len(),
            });
        }
        // Each variable is its own copy, so they run on rayon's threads.
        use rayon::prelude::*;
        self.vars
            .par_iter()
            .zip(&p.tensors)
            .try_for_each(|(v, t)| v.set(t))?;
        Ok(())
    }

    /// Logits `(batch, time, vocab)` for tokens `(batch, time)`.
    pub fn forward(&self, tokens: &Tensor) -> Result<Tensor> {
        let (b, t) = tokens.dims2()?;
        ensure(t <= self.cfg.max_position_embeddings, "sequence", || {
            format!(
                "length {t} exceeds max_position_embeddings {}",
                self.cfg.max_position_embeddings
            )
        })?;
        let h = self.cfg.hidden_size;
        let mut x = self
            .weight("model.embed_tokens.weight")?
            .index_select(&tokens.flatten_all()?, 0)?
            .reshape((b, t, h))?;
        if self.kernels == Kernels::Fused {
            for l in 0..self.cfg.num_hidden_layers {
                let p = format!("model.layers.{l}");
                let w = |name: &str| self.var(&format!("{p}.{name}.weight"));
                let eps = self.cfg.rms_norm_eps;
                let normed = x.apply_op2(w("input_layernorm")?, RmsNorm { eps })?;
                x = (x + self.attention_fused(&normed, &p)?)?;
                let normed = x.apply_op2(w("post_attention_layernorm")?, RmsNorm { eps })?;
                let gate_up = Tensor::cat(&[w("mlp.gate_proj")?, w("mlp.up_proj")?], 0)?;
                let act = linear(&normed, &gate_up)?.apply_op1(SwiGlu)?;
                x = (x + linear(&act, w("mlp.down_proj")?)?)?;
            }
            let eps = self.cfg.rms_norm_eps;
            let x = x.apply_op2(self.var("model.norm.weight")?, RmsNorm { eps })?;
            return linear(&x, self.var("lm_head.weight")?);
        }
        let mask = causal_mask(t, &self.device, self.compute_dtype)?;
        let (cos, sin) = (
            self.cos.narrow(0, 0, t)?.to_dtype(self.compute_dtype)?,
            self.sin.narrow(0, 0, t)?.to_dtype(self.compute_dtype)?,
        );
        for l in 0..self.cfg.num_hidden_layers {
            let p = format!("model.layers.{l}");
            let normed = rms_norm(
                &x,
                &self.weight(&format!("{p}.input_layernorm.weight"))?,
                self.cfg.rms_norm_eps,
            )?;
            x = (x + self.attention(&normed, &p, &mask, &cos, &sin)?)?;
            let normed = rms_norm(
                &x,
                &self.weight(&format!("{p}.post_attention_layernorm.weight"))?,
                self.cfg.rms_norm_eps,
            )?;
            let gate = silu(&linear(
                &normed,
                &self.weight(&format!("{p}.mlp.gate_proj.weight"))?,
            )?)?;
            let up = linear(&normed, &self.weight(&format!("{p}.mlp.up_proj.weight"))?)?;
            x = (x + linear(
                &(gate * up)?,
                &self.weight(&format!("{p}.mlp.down_proj.weight"))?,
            )?)?;
        }
        let x = rms_norm(
            &x,
            &self.weight("model.norm.weight")?,
            self.cfg.rms_norm_eps,
        )?;
        linear(&x, &self.weight("lm_head.weight")?)
    }

    /// Attention with the fused kernels: one product for queries, keys and values, the head
    /// split and rotary embedding in one pass, and the scale, mask and softmax in another.
    fn attention_fused(&self, x: &Tensor, prefix: &str) -> Result<Tensor> {
        let (b, t, h) = x.dims3()?;
        let hd = h / self.cfg.num_attention_heads;
        let w = |name: &str| self.var(&format!("{prefix}.self_attn.{name}.weight"));
        let qkv_w = Tensor::cat(&[w("q_proj")?, w("k_proj")?, w("v_proj")?], 0)?;
        let qkv = linear(x, &qkv_w)?.apply_op1(self.rope.clone())?;
        let (q, k, v) = (qkv.get(0)?, qkv.get(1)?, qkv.get(2)?);
        let probs = q.matmul(&k.t()?)?.apply_op1(CausalSoftmax {
            scale: 1.0 / (hd as f64).sqrt(),
        })?;
        let out = probs
            .matmul(&v)?
            .transpose(1, 2)?
            .contiguous()?
            .reshape((b, t, h))?;
        linear(&out, w("o_proj")?)
    }

    fn attention(
        &self,
        x: &Tensor,
        prefix: &str,
        mask: &Tensor,
        cos: &Tensor,
        sin: &Tensor,
    ) -> Result<Tensor> {
        let (b, t, h) = x.dims3()?;
        let nh = self.cfg.num_attention_heads;
        let hd = h / nh;
        let heads = |name: &str| -> Result<Tensor> {
            Ok(linear(
                x,
                &self.weight(&format!("{prefix}.self_attn.{name}.weight"))?,
            )?
            .reshape((b, t, nh, hd))?
            .transpose(1, 2)?
            .contiguous()?)
        };
        let q = rope(&heads("q_proj")?, cos, sin)?;
        let k = rope(&heads("k_proj")?, cos, sin)?;
        let v = heads("v_proj")?;
        let scores =
            (q.matmul(&k.t()?.contiguous()?)? / (hd as f64).sqrt())?.broadcast_add(mask)?;
        let probs = softmax_last_dim(&scores)?;
        let out = probs
            .matmul(&v)?
            .transpose(1, 2)?
            .contiguous()?
            .reshape((b, t, h))?;
        linear(
            &out,
            &self.weight(&format!("{prefix}.self_attn.o_proj.weight"))?,
        )
    }

    /// Mean next-token cross-entropy of `tokens (batch, time + 1)`.
    pub fn loss(&self, tokens: &Tensor) -> Result<Tensor> {
        let (_, t1) = tokens.dims2()?;
        ensure(t1 >= 2, "tokens", || {
            "need at least two tokens per row".into()
        })?;
        let inputs = tokens.narrow(1, 0, t1 - 1)?;
        let targets = tokens.narrow(1, 1, t1 - 1)?;
        let logits = self.forward(&inputs)?;
        let v = self.cfg.vocab_size;
        if self.kernels == Kernels::Fused {
            let targets = targets.flatten_all()?;
            return Ok(logits
                .reshape(((), v))?
                .apply_op2(&targets, CrossEntropy::default())?);
        }
        // Half-precision logits are promoted so the softmax sums stay accurate.
        let logits = match self.compute_dtype {
            DType::BF16 | DType::F16 => logits.to_dtype(DType::F32)?,
            _ => logits,
        };
        Ok(cross_entropy(
            &logits.reshape(((), v))?,
            &targets.flatten_all()?,
        )?)
    }

    /// Loss and gradients (in parameter order) of `tokens`: on the fused kernels by the
    /// hand-written backward pass of [`super::backprop`], otherwise by Candle's automatic
    /// differentiation; an error if a parameter receives no gradient, which is how an op
    /// without backward would show.
    pub fn loss_and_gradients(&self, tokens: &Tensor) -> Result<(f64, TensorParams)> {
        if self.kernels == Kernels::Fused {
            self.check_tokens(tokens)?;
            return self.fused_loss_and_gradients(&self.detached_vars(), tokens, Split::Rows);
        }
        let loss = self.loss(tokens)?;
        let grads = loss.backward()?;
        let mut tensors = Vec::with_capacity(self.vars.len());
        for (name, var) in self.names.iter().zip(&self.vars) {
            let g = grads
                .get(var.as_tensor())
                .ok_or_else(|| Error::Candle(format!("no gradient reached `{name}`")))?;
            tensors.push(g.detach());
        }
        Ok((
            loss.to_dtype(DType::F64)?.to_scalar::<f64>()?,
            TensorParams { tensors },
        ))
    }

    /// [`Llama::loss_and_gradients`] at the parameters `params` instead of the model's own. On
    /// the fused kernels the model is left as it was and `params` are not copied (Nexus's inner
    /// steps evaluate a new point per micro-batch); otherwise the model is set to `params`.
    pub fn loss_and_gradients_at(
        &self,
        params: &TensorParams,
        tokens: &Tensor,
    ) -> Result<(f64, TensorParams)> {
        if self.kernels != Kernels::Fused {
            self.set_params(params)?;
            return self.loss_and_gradients(tokens);
        }
        self.check_tokens(tokens)?;
        ensure(params.tensors.len() == self.vars.len(), "params", || {
            format!(
                "{} tensors for {} parameters",
                params.tensors.len(),
                self.vars.len()
            )
        })?;
        for ((t, v), name) in params.tensors.iter().zip(&self.vars).zip(&self.names) {
            ensure(
                t.dims() == v.dims() && t.dtype() == self.dtype,
                "params",
                || {
                    format!(
                        "`{name}` is {:?} {:?}, the model's is {:?} {:?}",
                        t.dims(),
                        t.dtype(),
                        v.dims(),
                        self.dtype
                    )
                },
            )?;
        }
        let detached: Vec<Tensor> = params.tensors.iter().map(Tensor::detach).collect();
        self.fused_loss_and_gradients(&detached, tokens, Split::Rows)
    }

    /// [`Llama::loss_and_gradients`] of several batches at the model's parameters, in order. On
    /// the fused kernels with more than one thread in the pool they run side by side, each
    /// pass's products on its own thread, with the same results bit for bit as one after
    /// another ([`super::serial`]); otherwise one after another. All the gradients are held
    /// at once: the caller bounds the batches.
    pub fn losses_and_gradients(&self, batches: &[Tensor]) -> Vec<Result<(f64, TensorParams)>> {
        use rayon::prelude::*;
        if self.kernels != Kernels::Fused || rayon::current_num_threads() < 2 {
            return batches.iter().map(|t| self.loss_and_gradients(t)).collect();
        }
        let vars = self.detached_vars();
        batches
            .par_iter()
            .map(|tokens| {
                self.check_tokens(tokens)?;
                self.fused_loss_and_gradients(&vars, tokens, Split::Here)
            })
            .collect()
    }

    fn check_tokens(&self, tokens: &Tensor) -> Result<()> {
        let (_, t1) = tokens.dims2()?;
        ensure(
            t1 >= 2 && t1 - 1 <= self.cfg.max_position_embeddings,
            "tokens",
            || {
                format!(
                    "need 2 to {} tokens per row, got {t1}",
                    self.cfg.max_position_embeddings + 1
                )
            },
        )
    }

    /// Loss without building a graph (evaluation).
    pub fn eval_loss(&self, tokens: &Tensor) -> Result<f64> {
        let detached = Llama {
            cfg: self.cfg.clone(),
            names: self.names.clone(),
            vars: self
                .vars
                .iter()
                .map(|v| Var::from_tensor(&v.as_detached_tensor()))
                .collect::<candle_core::Result<_>>()?,
            cos: self.cos.clone(),
            sin: self.sin.clone(),
            rope: self.rope.clone(),
            kernels: self.kernels,
            device: self.device.clone(),
            dtype: self.dtype,
            compute_dtype: self.compute_dtype,
        };
        Ok(detached
            .loss(tokens)?
            .detach()
            .to_dtype(DType::F64)?
            .to_scalar::<f64>()?)
    }

    /// Greedy continuation of `prompt` by `n` tokens.
    pub fn generate(&self, prompt: &[u8], n: usize) -> Result<Vec<u8>> {
        let mut seq: Vec<u32> = prompt.iter().map(|&b| u32::from(b)).collect();
        for _ in 0..n {
            let start = seq.len().saturating_sub(self.cfg.max_position_embeddings);
            let input = Tensor::new(&seq[start..], &self.device)?.unsqueeze(0)?;
            let logits = self.forward(&input)?.detach();
            let last = logits.squeeze(0)?.get(seq.len() - start - 1)?;
            let next = last.argmax(0)?.to_scalar::<u32>()?;
            seq.push(next);
        }
        Ok(seq[prompt.len()..]
            .iter()
            .map(|&t| t.min(255) as u8)
            .collect())
    }

    /// Writes the parameters as safetensors with Hugging Face names, and `config.json`.
    pub fn save(&self, dir: &std::path::Path) -> Result<()> {
        crate::fsio::create_dir_all(dir)?;
        let map: std::collections::HashMap<String, Tensor> = self
            .names
            .iter()
            .cloned()
            .zip(self.vars.iter().map(|v| v.as_detached_tensor()))
            .collect();
        crate::fsio::write_with(&dir.join("model.safetensors"), false, |tmp| {
            candle_core::safetensors::save(&map, tmp)
                .map_err(|e| Error::Data(format!("writing {}: {e}", tmp.display())))
        })?;
        let hf = serde_json::json!({
            "architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": self.cfg.vocab_size,
            "hidden_size": self.cfg.hidden_size, "intermediate_size": self.cfg.intermediate_size,
            "num_hidden_layers": self.cfg.num_hidden_layers, "num_attention_heads": self.cfg.num_attention_heads,
            "num_key_value_heads": self.cfg.num_attention_heads, "max_position_embeddings": self.cfg.max_position_embeddings,
            "rope_theta": self.cfg.rope_theta, "rms_norm_eps": self.cfg.rms_norm_eps, "hidden_act": "silu",
            "tie_word_embeddings": false, "torch_dtype": "float32"
        });
        crate::fsio::write_atomic(
            &dir.join("config.json"),
            serde_json::to_string_pretty(&hf)?.as_bytes(),
        )
    }

    /// Loads parameters saved by [`Llama::save`] (names must match).
    pub fn load_params(&self, dir: &std::path::Path) -> Result<()> {
        let path = dir.join("model.safetensors");
        let map = candle_core::safetensors::load(&path, &self.device)
            .map_err(|e| Error::Data(format!("{}: {e}", path.display())))?;
        let mut tensors = Vec::new();
        for (name, var) in self.names.iter().zip(&self.vars) {
            let t = map
                .get(name)
                .ok_or_else(|| Error::Data(format!("{}: no `{name}`", path.display())))?;
            if t.dims() != var.dims() {
                return Err(Error::Data(format!(
                    "{}: `{name}` has shape {:?}, the model's is {:?}",
                    path.display(),
                    t.dims(),
                    var.dims()
                )));
            }
            tensors.push(t.to_dtype(self.dtype)?);
        }
        self.set_params(&TensorParams { tensors })
    }
}

/// `x W^T` for `x (..., in)` and `W (out, in)`, as one 2-D product (a broadcast product would
/// expand `W` per batch row and sum its gradient back).
fn linear(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    let mut dims = x.dims().to_vec();
    let inner = dims.pop().unwrap_or(1);
    let rows: usize = dims.iter().product();
    dims.push(w.dim(0)?);
    Ok(x.reshape((rows, inner))?.matmul(&w.t()?)?.reshape(dims)?)
}

/// `x / sqrt(mean(x^2) + eps) * w` over the last dimension.
fn rms_norm(x: &Tensor, w: &Tensor, eps: f64) -> Result<Tensor> {
    let inv = (x.sqr()?.mean_keepdim(D::Minus1)? + eps)?.sqrt()?.recip()?;
    Ok(x.broadcast_mul(&inv)?.broadcast_mul(w)?)
}

/// `x sigmoid(x)` from differentiable primitives.
fn silu(x: &Tensor) -> Result<Tensor> {
    Ok((x / (x.neg()?.exp()? + 1.0)?)?)
}

/// Rotate-half rotary embedding on `(b, heads, t, hd)` with tables `(t, hd)`.
fn rope(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
    let hd = x.dim(D::Minus1)?;
    let (x1, x2) = (
        x.narrow(D::Minus1, 0, hd / 2)?,
        x.narrow(D::Minus1, hd / 2, hd / 2)?,
    );
    let rotated = Tensor::cat(&[&x2.neg()?, &x1], D::Minus1)?;
    Ok((x.broadcast_mul(cos)? + rotated.broadcast_mul(sin)?)?)
}

fn rotary_tables(cfg: &LlamaConfig, device: &Device, dtype: DType) -> Result<(Tensor, Tensor)> {
    let hd = cfg.hidden_size / cfg.num_attention_heads;
    let t = cfg.max_position_embeddings;
    let mut cos = Vec::with_capacity(t * hd);
    let mut sin = Vec::with_capacity(t * hd);
    for pos in 0..t {
        for j in 0..hd {
            let freq = 1.0 / cfg.rope_theta.powf((2 * (j % (hd / 2))) as f64 / hd as f64);
            cos.push((pos as f64 * freq).cos());
            sin.push((pos as f64 * freq).sin());
        }
    }
    Ok((
        Tensor::from_vec(cos, (t, hd), device)?.to_dtype(dtype)?,
        Tensor::from_vec(sin, (t, hd), device)?.to_dtype(dtype)?,
    ))
}

/// The rotary angles' cosines and sines, `(max_positions, head_dim / 2)`, for the fused kernel.
fn fused_rotary(cfg: &LlamaConfig) -> QkvRope {
    let hd = cfg.hidden_size / cfg.num_attention_heads;
    let (mut cos, mut sin) = (Vec::new(), Vec::new());
    for pos in 0..cfg.max_position_embeddings {
        for j in 0..hd / 2 {
            let angle = pos as f64 / cfg.rope_theta.powf((2 * j) as f64 / hd as f64);
            cos.push(angle.cos());
            sin.push(angle.sin());
        }
    }
    QkvRope {
        heads: cfg.num_attention_heads,
        cos: std::sync::Arc::new(cos),
        sin: std::sync::Arc::new(sin),
    }
}

fn causal_mask(t: usize, device: &Device, dtype: DType) -> Result<Tensor> {
    let values: Vec<f64> = (0..t * t)
        .map(|k| {
            if k % t > k / t {
                f64::NEG_INFINITY
            } else {
                0.0
            }
        })
        .collect();
    Ok(Tensor::from_vec(values, (t, t), device)?.to_dtype(dtype)?)
}

/// Softmax over the last dimension in plain differentiable ops, `exp(x - max) / sum exp(x - max)`
/// (the op sequence of `candle_nn::ops::softmax`).
pub fn softmax_last_dim(xs: &Tensor) -> candle_core::Result<Tensor> {
    let max = xs.max_keepdim(D::Minus1)?;
    let num = xs.broadcast_sub(&max)?.exp()?;
    let den = num.sum_keepdim(D::Minus1)?;
    num.broadcast_div(&den)
}

/// Mean cross-entropy of `logits (n, v)` at the class indices `targets (n)` in plain
/// differentiable ops: the log-softmax `x - max - log sum exp(x - max)`, then minus the mean of
/// the targets' entries (the op sequence of `candle_nn::loss::cross_entropy`).
pub fn cross_entropy(logits: &Tensor, targets: &Tensor) -> candle_core::Result<Tensor> {
    let n = targets.dim(0)?;
    let max = logits.max_keepdim(1)?;
    let diff = logits.broadcast_sub(&max)?;
    let log_softmax = diff.broadcast_sub(&diff.exp()?.sum_keepdim(1)?.log()?)?;
    log_softmax
        .gather(&targets.unsqueeze(1)?, 1)?
        .sum_all()?
        .affine(-1.0 / n as f64, 0.0)
}
