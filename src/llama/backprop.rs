//! The loss and its gradients on the fused path, with the backward pass written out by hand.
//!
//! Candle's automatic backward pass adds every gradient contribution into a zero tensor it
//! first allocates and clears (`GradStore::or_insert`, then `add`): two extra passes over
//! memory per operation. On the small preset that was 15% of a training step (profiled with
//! `perf`: `binary_map_vec_par` 11%, `memset` 4%). Here the forward pass keeps what each block
//! needs, and the backward pass calls the matrix products and the fused kernels'
//! backward functions directly; a gradient that reaches a tensor by two paths (the residual
//! stream) is one addition. No autograd graph is recorded.
//!
//! `tests/fused.rs` checks these gradients against Candle's automatic differentiation of the
//! plain-op model and against finite differences, in f64.

use super::fused::{
    causal_softmax_backward, rms_norm_backward, swiglu_backward, CausalSoftmax, CrossEntropy,
    RmsNorm, SwiGlu,
};
use super::model::Llama;
use super::params::TensorParams;
use super::serial::{self, Split};
use crate::error::{Error, Result};
use candle_core::Tensor;

/// Parameters per transformer block, in [`super::LlamaConfig::parameter_shapes`] order:
/// input norm, q, k, v, o, post-attention norm, gate, up, down.
const PER_BLOCK: usize = 9;

/// What one block keeps from the forward pass.
struct BlockCache {
    /// Block input (the residual stream).
    x: Tensor,
    /// Normalised input.
    normed: Tensor,
    /// Query, key and value weights stacked, `(3h, h)`.
    qkv_weight: Tensor,
    /// Rotated heads, `(3, b, heads, t, hd)`.
    heads: Tensor,
    /// Attention probabilities, `(b, heads, t, t)`.
    probs: Tensor,
    /// Attention output with heads merged, `(n, h)`.
    attn: Tensor,
    /// Residual stream after attention.
    y: Tensor,
    /// Its normalised version.
    mlp_in: Tensor,
    /// Gate and up weights stacked, `(2i, h)`.
    gate_up_weight: Tensor,
    /// Gate and up projections, `(n, 2i)`.
    gate_up: Tensor,
    /// SwiGLU output, `(n, i)`.
    act: Tensor,
}

impl Llama {
    /// Mean next-token cross-entropy of `tokens (batch, time + 1)` and its gradients, in
    /// parameter order, at the parameters `p` (the model's shapes, not recording a graph), on
    /// the fused kernels.
    pub(super) fn fused_loss_and_gradients(
        &self,
        p: &[Tensor],
        tokens: &Tensor,
        split: Split,
    ) -> Result<(f64, TensorParams)> {
        let cfg = self.config();
        let (b, t1) = tokens.dims2()?;
        let t = t1 - 1;
        let n = b * t;
        let (h, nh, inter) = (
            cfg.hidden_size,
            cfg.num_attention_heads,
            cfg.intermediate_size,
        );
        let hd = h / nh;
        let (eps, scale) = (cfg.rms_norm_eps, 1.0 / (hd as f64).sqrt());
        let layers = cfg.num_hidden_layers;
        let (final_norm, head) = (1 + PER_BLOCK * layers, 2 + PER_BLOCK * layers);
        let inputs = tokens.narrow(1, 0, t)?.flatten_all()?;
        let targets = tokens.narrow(1, 1, t)?.flatten_all()?;

        let mut x = p[0].index_select(&inputs, 0)?;
        let mut caches = Vec::with_capacity(layers);
        for l in 0..layers {
            let w = |k: usize| &p[1 + PER_BLOCK * l + k];
            let normed = x.apply_op2_no_bwd(w(0), &RmsNorm { eps })?;
            let qkv_weight = Tensor::cat(&[w(1), w(2), w(3)], 0)?;
            let heads = split
                .matmul(&normed, &qkv_weight.t()?)?
                .reshape((b, t, 3 * h))?
                .apply_op1_no_bwd(self.rotary())?;
            let (q, k, v) = (heads.get(0)?, heads.get(1)?, heads.get(2)?);
            let probs = split
                .matmul(&q, &k.t()?)?
                .apply_op1_no_bwd(&CausalSoftmax { scale })?;
            let attn = split
                .matmul(&probs, &v)?
                .transpose(1, 2)?
                .contiguous()?
                .reshape((n, h))?;
            let y = serial::add(&x, &split.matmul(&attn, &w(4).t()?)?)?;
            let mlp_in = y.apply_op2_no_bwd(w(5), &RmsNorm { eps })?;
            let gate_up_weight = Tensor::cat(&[w(6), w(7)], 0)?;
            let gate_up = split.matmul(&mlp_in, &gate_up_weight.t()?)?;
            let act = gate_up.apply_op1_no_bwd(&SwiGlu)?;
            let next = serial::add(&y, &split.matmul(&act, &w(8).t()?)?)?;
            caches.push(BlockCache {
                x,
                normed,
                qkv_weight,
                heads,
                probs,
                attn,
                y,
                mlp_in,
                gate_up_weight,
                gate_up,
                act,
            });
            x = next;
        }
        let last = x.apply_op2_no_bwd(&p[final_norm], &RmsNorm { eps })?;
        let logits = split.matmul(&last, &p[head].t()?)?;
        let cross_entropy = CrossEntropy::default();
        let loss = logits.apply_op2_no_bwd(&targets, &cross_entropy)?;

        let mut grads: Vec<Option<Tensor>> = vec![None; p.len()];
        let dlogits = cross_entropy.backward(&logits, &targets, 1.0)?;
        // Each weight's gradient is computed beside the gradient of its layer's input.
        let (dhead, dlast) = split.matmul_pair((&dlogits.t()?, &last), (&dlogits, &p[head]))?;
        grads[head] = Some(dhead);
        let (mut dx, dw) = rms_norm_backward(&x, &p[final_norm], &dlast, eps)?;
        grads[final_norm] = Some(dw);
        for (l, c) in caches.iter().enumerate().rev() {
            let base = 1 + PER_BLOCK * l;
            let w = |k: usize| &p[base + k];
            // next = y + act W_down^T
            let (ddown, dact) = split.matmul_pair((&dx.t()?, &c.act), (&dx, w(8)))?;
            grads[base + 8] = Some(ddown);
            let dgate_up = swiglu_backward(&c.gate_up, &dact)?;
            let (dgu_weight, dmlp_in) =
                split.matmul_pair((&dgate_up.t()?, &c.mlp_in), (&dgate_up, &c.gate_up_weight))?;
            grads[base + 6] = Some(dgu_weight.narrow(0, 0, inter)?);
            grads[base + 7] = Some(dgu_weight.narrow(0, inter, inter)?);
            let (dy_norm, dw) = rms_norm_backward(&c.y, w(5), &dmlp_in, eps)?;
            grads[base + 5] = Some(dw);
            let dy = serial::add(&dx, &dy_norm)?;
            // y = x + attn W_o^T
            let (do_weight, dattn) = split.matmul_pair((&dy.t()?, &c.attn), (&dy, w(4)))?;
            grads[base + 4] = Some(do_weight);
            let dout = dattn
                .reshape((b, t, nh, hd))?
                .transpose(1, 2)?
                .contiguous()?;
            let (q, k, v) = (c.heads.get(0)?, c.heads.get(1)?, c.heads.get(2)?);
            let (dv, dprobs) = split.matmul_pair((&c.probs.t()?, &dout), (&dout, &v.t()?))?;
            let dscores = causal_softmax_backward(&c.probs, &dprobs, scale)?;
            let (dq, dk) = split.matmul_pair((&dscores, &k), (&dscores.t()?, &q))?;
            let dqkv = self
                .rotary()
                .backward(&Tensor::stack(&[dq, dk, dv], 0)?)?
                .reshape((n, 3 * h))?;
            let (dqkv_weight, dnormed) =
                split.matmul_pair((&dqkv.t()?, &c.normed), (&dqkv, &c.qkv_weight))?;
            for j in 0..3 {
                grads[base + 1 + j] = Some(dqkv_weight.narrow(0, j * h, h)?);
            }
            let (dx_norm, dw) = rms_norm_backward(&c.x, w(0), &dnormed, eps)?;
            grads[base] = Some(dw);
            dx = serial::add(&dy, &dx_norm)?;
        }
        grads[0] = Some(p[0].zeros_like()?.index_add(&inputs, &dx, 0)?);
        let tensors = grads
            .into_iter()
            .zip(self.names())
            .map(|(g, name)| g.ok_or_else(|| Error::Candle(format!("no gradient for `{name}`"))))
            .collect::<Result<Vec<_>>>()?;
        Ok((
            loss.to_dtype(candle_core::DType::F64)?.to_scalar::<f64>()?,
            TensorParams { tensors },
        ))
    }
}
