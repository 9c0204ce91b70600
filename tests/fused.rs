//! The fused CPU kernels (`src/llama/fused.rs`) and the hand-written backward pass
//! (`src/llama/backprop.rs`): each op's value and gradient against the plain Candle ops it
//! replaces and against central finite differences, in f64; the whole model's gradients
//! against Candle's automatic differentiation of the plain-op model; the f32 exponential
//! against f64; the single-pass parameter-vector operations against their Candle-op versions.
//!
//! Tolerances: in f64 the fused and plain versions differ only by the order of roundings
//! (relative 1e-12 leaves a margin of 1e3 over 1e-15-scale differences); central differences
//! with h = 1e-6 have truncation ~h^2 and rounding ~1e-16/h, both below 1e-9, so 1e-7 relative
//! is a margin of 100 (a wrong or missing gradient is off by O(1)).

use candle_core::{DType, Device, Tensor, Var, D};
use nexus_lab::llama::fused::{exp_f32, CausalSoftmax, CrossEntropy, QkvRope, RmsNorm, SwiGlu};
use nexus_lab::llama::{
    cross_entropy, softmax_last_dim, Kernels, Llama, LlamaConfig, TensorParams,
};
use nexus_lab::params::{adam_update_by_ops, AdamUpdate, ParamVec};
use rand::RngExt;
use std::sync::Arc;

fn random(shape: &[usize], seed: u64, scale: f64) -> Tensor {
    let mut rng = nexus_lab::rng_for(seed, "fused-test");
    let n: usize = shape.iter().product();
    let v: Vec<f64> = (0..n)
        .map(|_| scale * (2.0 * rng.random::<f64>() - 1.0))
        .collect();
    Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
}

fn values(t: &Tensor) -> Vec<f64> {
    t.to_dtype(DType::F64)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap()
}

fn max_rel_diff(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.dims(), b.dims());
    let (a, b) = (values(a), values(b));
    let scale = b.iter().fold(0.0f64, |m, x| m.max(x.abs())).max(1e-300);
    a.iter()
        .zip(&b)
        .fold(0.0f64, |m, (x, y)| m.max((x - y).abs()))
        / scale
}

type Op = dyn Fn(&[Tensor]) -> Tensor;

/// Gradients of `sum(f(inputs) * weights)` with respect to every input, by autograd.
fn gradients(f: &Op, inputs: &[Tensor], weights: &Tensor) -> Vec<Tensor> {
    let vars: Vec<Var> = inputs
        .iter()
        .map(|t| Var::from_tensor(t).unwrap())
        .collect();
    let ts: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
    let loss = (f(&ts) * weights).unwrap().sum_all().unwrap();
    let grads = loss.backward().unwrap();
    vars.iter()
        .map(|v| grads.get(v.as_tensor()).expect("a gradient").clone())
        .collect()
}

/// Checks a fused op against its plain version (value and gradients) and against central
/// finite differences, in f64.
fn check(name: &str, fused: &Op, plain: &Op, inputs: &[Tensor]) {
    let (yf, yp) = (fused(inputs), plain(inputs));
    let d = max_rel_diff(&yf, &yp);
    assert!(
        d <= 1e-12,
        "{name}: value differs from the plain ops by {d:e}"
    );
    let weights = random(yf.dims(), 99, 1.0);
    let gf = gradients(fused, inputs, &weights);
    let gp = gradients(plain, inputs, &weights);
    let h = 1e-6;
    for (k, (a, b)) in gf.iter().zip(&gp).enumerate() {
        let d = max_rel_diff(a, b);
        assert!(
            d <= 1e-12,
            "{name}: gradient {k} differs from the plain ops by {d:e}"
        );
        let g = values(a);
        let scale = g.iter().fold(0.0f64, |m, x| m.max(x.abs()));
        for i in 0..g.len() {
            let shifted = |delta: f64| -> f64 {
                let mut v = values(&inputs[k]);
                v[i] += delta;
                let mut xs = inputs.to_vec();
                xs[k] = Tensor::from_vec(v, inputs[k].dims(), &Device::Cpu).unwrap();
                let y = fused(&xs);
                values(&(y * &weights).unwrap().sum_all().unwrap())[0]
            };
            let fd = (shifted(h) - shifted(-h)) / (2.0 * h);
            assert!(
                (fd - g[i]).abs() <= 1e-7 * (1.0 + scale),
                "{name}: input {k}[{i}]: backward {} vs finite difference {fd}",
                g[i]
            );
        }
    }
}

#[test]
fn rms_norm_matches_plain_ops_and_finite_differences() {
    let eps = 1e-5;
    check(
        "rms-norm",
        &move |x| x[0].apply_op2(&x[1], RmsNorm { eps }).unwrap(),
        &move |x| {
            let inv = (x[0].sqr().unwrap().mean_keepdim(D::Minus1).unwrap() + eps)
                .unwrap()
                .sqrt()
                .unwrap()
                .recip()
                .unwrap();
            x[0].broadcast_mul(&inv)
                .unwrap()
                .broadcast_mul(&x[1])
                .unwrap()
        },
        &[random(&[2, 3, 6], 1, 1.0), random(&[6], 2, 1.5)],
    );
}

#[test]
fn causal_softmax_matches_plain_ops_and_finite_differences() {
    let (t, scale) = (5, 0.7);
    let mask: Vec<f64> = (0..t * t)
        .map(|k| {
            if k % t > k / t {
                f64::NEG_INFINITY
            } else {
                0.0
            }
        })
        .collect();
    let mask = Tensor::from_vec(mask, (t, t), &Device::Cpu).unwrap();
    check(
        "causal-softmax",
        &move |x| x[0].apply_op1(CausalSoftmax { scale }).unwrap(),
        &move |x| {
            let s = (&x[0] * scale).unwrap().broadcast_add(&mask).unwrap();
            softmax_last_dim(&s).unwrap()
        },
        &[random(&[2, 2, t, t], 3, 3.0)],
    );
}

#[test]
fn swiglu_matches_plain_ops_and_finite_differences() {
    check(
        "swiglu",
        &|x| x[0].apply_op1(SwiGlu).unwrap(),
        &|x| {
            let i = x[0].dim(D::Minus1).unwrap() / 2;
            let (a, b) = (
                x[0].narrow(D::Minus1, 0, i).unwrap(),
                x[0].narrow(D::Minus1, i, i).unwrap(),
            );
            let silu = (&a / (a.neg().unwrap().exp().unwrap() + 1.0).unwrap()).unwrap();
            (silu * b).unwrap()
        },
        &[random(&[3, 2, 8], 4, 4.0)],
    );
}

#[test]
fn qkv_rope_matches_plain_ops_and_finite_differences() {
    let (b, t, heads, hd) = (2, 3, 2, 4);
    let h = heads * hd;
    let theta = 10_000.0f64;
    let (mut cos, mut sin, mut cos_full, mut sin_full) = (vec![], vec![], vec![], vec![]);
    for p in 0..t {
        for j in 0..hd / 2 {
            let a = p as f64 / theta.powf((2 * j) as f64 / hd as f64);
            cos.push(a.cos());
            sin.push(a.sin());
        }
        for j in 0..hd {
            let a = p as f64 / theta.powf((2 * (j % (hd / 2))) as f64 / hd as f64);
            cos_full.push(a.cos());
            sin_full.push(a.sin());
        }
    }
    let op = QkvRope {
        heads,
        cos: Arc::new(cos),
        sin: Arc::new(sin),
    };
    let cos_t = Tensor::from_vec(cos_full, (t, hd), &Device::Cpu).unwrap();
    let sin_t = Tensor::from_vec(sin_full, (t, hd), &Device::Cpu).unwrap();
    check(
        "qkv-rope",
        &move |x| x[0].apply_op1(op.clone()).unwrap(),
        &move |x| {
            // The model's plain path: split, heads first, rotate-half on queries and keys.
            let part = |k: usize| {
                x[0].narrow(2, k * h, h)
                    .unwrap()
                    .reshape((b, t, heads, hd))
                    .unwrap()
                    .transpose(1, 2)
                    .unwrap()
                    .contiguous()
                    .unwrap()
            };
            let rope = |v: Tensor| {
                let (x1, x2) = (
                    v.narrow(3, 0, hd / 2).unwrap(),
                    v.narrow(3, hd / 2, hd / 2).unwrap(),
                );
                let rot = Tensor::cat(&[&x2.neg().unwrap(), &x1], 3).unwrap();
                (v.broadcast_mul(&cos_t).unwrap() + rot.broadcast_mul(&sin_t).unwrap()).unwrap()
            };
            Tensor::stack(&[rope(part(0)), rope(part(1)), part(2)], 0).unwrap()
        },
        &[random(&[b, t, 3 * h], 5, 1.0)],
    );
}

#[test]
fn cross_entropy_matches_plain_ops_and_finite_differences() {
    let targets = Tensor::from_vec(vec![3u32, 0, 6, 6, 1], 5, &Device::Cpu).unwrap();
    let t2 = targets.clone();
    check(
        "cross-entropy",
        &move |x| x[0].apply_op2(&targets, CrossEntropy::default()).unwrap(),
        &move |x| cross_entropy(&x[0], &t2).unwrap(),
        &[random(&[5, 7], 6, 5.0)],
    );
}

fn micro_tokens(rows: usize, len: usize) -> Tensor {
    let data: Vec<u32> = (0..rows * (len + 1))
        .map(|i| ((i * 37 + 11) % 256) as u32)
        .collect();
    Tensor::from_vec(data, (rows, len + 1), &Device::Cpu).unwrap()
}

/// The hand-written backward pass of the fused path against Candle's automatic
/// differentiation of the plain-op model, every parameter, in f64.
#[test]
fn fused_model_gradients_match_autograd_of_the_plain_model() {
    for preset in ["micro", "tiny"] {
        let cfg = LlamaConfig::preset(preset).unwrap();
        let fused = Llama::new(cfg.clone(), 7, &Device::Cpu, DType::F64).unwrap();
        let mut plain = Llama::new(cfg, 7, &Device::Cpu, DType::F64).unwrap();
        assert_eq!(fused.kernels(), Kernels::Fused);
        plain.set_kernels(Kernels::Plain).unwrap();
        let toks = micro_tokens(3, 9);
        let (lf, gf) = fused.loss_and_gradients(&toks).unwrap();
        let (lp, gp) = plain.loss_and_gradients(&toks).unwrap();
        assert!(
            (lf - lp).abs() <= 1e-12 * lp.abs(),
            "{preset}: loss {lf} vs {lp}"
        );
        for ((name, a), b) in fused.names().iter().zip(&gf.tensors).zip(&gp.tensors) {
            let d = max_rel_diff(a, b);
            assert!(
                d <= 1e-10,
                "{preset} {name}: fused gradient differs by {d:e}"
            );
        }
        // Evaluating at given parameters is the same as setting them first.
        let mut p = fused.params().unwrap();
        p.scale(1.1).unwrap();
        let (la, ga) = fused.loss_and_gradients_at(&p, &toks).unwrap();
        fused.set_params(&p).unwrap();
        let (ls, gs) = fused.loss_and_gradients(&toks).unwrap();
        assert_eq!(la.to_bits(), ls.to_bits());
        for (a, b) in ga.tensors.iter().zip(&gs.tensors) {
            assert_eq!(values(a), values(b));
        }
    }
}

/// In f32 the fused path agrees with the plain one to f32 rounding.
#[test]
fn fused_and_plain_agree_in_f32() {
    let cfg = LlamaConfig::preset("tiny").unwrap();
    let fused = Llama::new(cfg.clone(), 3, &Device::Cpu, DType::F32).unwrap();
    let mut plain = Llama::new(cfg, 3, &Device::Cpu, DType::F32).unwrap();
    plain.set_kernels(Kernels::Plain).unwrap();
    let toks = micro_tokens(4, 32);
    let (lf, gf) = fused.loss_and_gradients(&toks).unwrap();
    let (lp, gp) = plain.loss_and_gradients(&toks).unwrap();
    assert!((lf - lp).abs() <= 1e-5 * lp, "loss {lf} vs {lp}");
    // Relative 1e-3 of each tensor's largest entry: f32 has 6e-8 unit rounding, and the
    // differences accumulate over sums of up to 256 terms and two layers.
    for ((name, a), b) in fused.names().iter().zip(&gf.tensors).zip(&gp.tensors) {
        let d = max_rel_diff(a, b);
        assert!(d <= 1e-3, "{name}: {d:e}");
    }
}

#[test]
fn bf16_compute_keeps_f32_gradients_close_to_f32() {
    let cfg = LlamaConfig::preset("micro").unwrap();
    let f32_model = Llama::new(cfg.clone(), 5, &Device::Cpu, DType::F32).unwrap();
    let mut mixed = Llama::new(cfg, 5, &Device::Cpu, DType::F32).unwrap();
    mixed.set_compute_dtype(DType::BF16);
    assert_eq!(mixed.kernels(), Kernels::Plain);
    let toks = micro_tokens(2, 8);
    let (l32, g32) = f32_model.loss_and_gradients(&toks).unwrap();
    let (l16, g16) = mixed.loss_and_gradients(&toks).unwrap();
    assert!(g16.tensors.iter().all(|t| t.dtype() == DType::F32));
    // bf16 keeps 8 significant bits (relative rounding 2^-9 = 2e-3 per operation).
    assert!((l32 - l16).abs() <= 2e-2 * l32, "loss {l32} vs {l16}");
    let rel = g32.minus(&g16).unwrap().norm().unwrap() / g32.norm().unwrap();
    assert!(rel <= 0.1, "whole-gradient relative difference {rel}");
}

/// `exp_f32` against f64 `exp` over the whole normal range: within 2 ulp.
#[test]
fn exp_f32_is_within_two_ulp() {
    let mut worst = 0.0f64;
    let n = 200_000;
    for i in 0..=n {
        let x = -87.0 + 175.5 * i as f64 / n as f64;
        let x32 = x as f32;
        let exact = f64::from(x32).exp();
        let got = f64::from(exp_f32(x32));
        let ulp = f64::from(f32::EPSILON) * exact;
        worst = worst.max((got - exact).abs() / ulp);
    }
    assert!(worst <= 2.0, "worst error {worst} ulp");
    assert_eq!(exp_f32(f32::NEG_INFINITY), 0.0);
    assert_eq!(exp_f32(-1000.0), 0.0);
    assert_eq!(exp_f32(f32::INFINITY), f32::INFINITY);
    assert!(exp_f32(f32::NAN).is_nan());
    assert_eq!(exp_f32(0.0), 1.0);
}

fn params(seed: u64, dtype: DType) -> TensorParams {
    TensorParams {
        tensors: vec![
            random(&[7, 5], seed, 1.0).to_dtype(dtype).unwrap(),
            random(&[33], seed + 1, 1.0).to_dtype(dtype).unwrap(),
        ],
    }
}

/// The single-pass operations give the values of their Candle-op definitions, bit for bit:
/// each element goes through the same floating-point operations in the same order.
#[test]
fn single_pass_parameter_ops_equal_their_definitions() {
    for dtype in [DType::F32, DType::F64] {
        let (x, y) = (params(1, dtype), params(2, dtype));
        let mut a = x.clone();
        a.axpy(-0.37, &y).unwrap();
        for ((t, xt), yt) in a.tensors.iter().zip(&x.tensors).zip(&y.tensors) {
            let reference = (xt + yt.affine(-0.37, 0.0).unwrap()).unwrap();
            assert_eq!(values(t), values(&reference));
        }
        let mut s = x.clone();
        s.scale(1.7).unwrap();
        for (t, xt) in s.tensors.iter().zip(&x.tensors) {
            assert_eq!(values(t), values(&xt.affine(1.7, 0.0).unwrap()));
        }
        let dot: f64 = x
            .tensors
            .iter()
            .zip(&y.tensors)
            .map(|(a, b)| {
                values(a)
                    .iter()
                    .zip(values(b))
                    .map(|(p, q)| p * q)
                    .sum::<f64>()
            })
            .sum();
        assert!((x.dot(&y).unwrap() - dot).abs() <= 1e-13 * dot.abs().max(1.0));

        let c = AdamUpdate {
            beta1: 0.9,
            beta2: 0.95,
            eps: 1e-8,
            keep: 0.999,
            step: 1e-3,
        };
        let (mut p1, mut m1, mut v1) = (
            x.clone(),
            y.clone(),
            params(3, dtype).mul_elem(&params(3, dtype)).unwrap(),
        );
        let (mut p2, mut m2, mut v2) = (p1.clone(), m1.clone(), v1.clone());
        let g = params(4, dtype);
        p1.adam_update(&mut m1, &mut v1, &g, c).unwrap();
        adam_update_by_ops(&mut p2, &mut m2, &mut v2, &g, c).unwrap();
        for (a, b) in [(&p1, &p2), (&m1, &m2), (&v1, &v2)] {
            for (s, t) in a.tensors.iter().zip(&b.tensors) {
                assert_eq!(values(s), values(t), "{dtype:?}");
            }
        }
    }
}

fn bits(t: &Tensor) -> Vec<u64> {
    values(t).iter().map(|x| x.to_bits()).collect()
}

/// The products of `nexus_lab::llama::serial` are Candle's, bit for bit, on the calling thread
/// and split over a pool of 1, 2 and 3 threads, in f32 and f64: at the shapes of the `small`
/// preset's passes (its 256 rows; a weight's transpose; a gradient's transpose as the left
/// operand; the down projection's 688-long sums, which gemm cuts in two; the attention's
/// batches of heads read through strides) and at row counts that are not whole blocks. Sums are
/// one addition per element, so `serial::add` equals Candle's `+` bit for bit too.
#[test]
fn serial_products_are_candles_bit_for_bit() {
    use nexus_lab::llama::serial::{self, Split};
    let pools: Vec<rayon::ThreadPool> = [1, 2, 3]
        .map(|n| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(n)
                .build()
                .unwrap()
        })
        .into();
    for dtype in [DType::F32, DType::F64] {
        let r = |shape: &[usize], seed: u64| random(shape, seed, 1.0).to_dtype(dtype).unwrap();
        let (x, w, wide, g) = (
            r(&[256, 256], 1),
            r(&[768, 256], 2),
            r(&[256, 688], 3),
            r(&[256, 768], 4),
        );
        let heads = r(&[3, 8, 8, 32, 32], 5);
        let (q, k) = (heads.get(0).unwrap(), heads.get(1).unwrap());
        let odd = r(&[200, 256], 6);
        let cases: Vec<(Tensor, Tensor)> = vec![
            (x.clone(), w.t().unwrap()),
            (g.t().unwrap(), x.clone()),
            (wide.clone(), r(&[688, 256], 7)),
            (q.clone(), k.t().unwrap()),
            (r(&[8, 8, 32, 32], 8), k.clone()),
            (odd.clone(), w.t().unwrap()),
            (r(&[1, 256], 9), w.t().unwrap()),
        ];
        for (a, b) in &cases {
            let want = bits(&a.matmul(b).unwrap());
            for pool in &pools {
                for split in [Split::Rows, Split::Here] {
                    let got = pool.install(|| split.matmul(a, b)).unwrap();
                    assert_eq!(got.dims(), a.matmul(b).unwrap().dims());
                    assert_eq!(bits(&got), want, "{dtype:?} {:?} {split:?}", a.dims());
                }
            }
        }
        for split in [Split::Rows, Split::Here] {
            let (p, s) = pools[1]
                .install(|| split.matmul_pair((&g.t().unwrap(), &x), (&x, &w.t().unwrap())))
                .unwrap();
            assert_eq!(bits(&p), bits(&g.t().unwrap().matmul(&x).unwrap()));
            assert_eq!(bits(&s), bits(&x.matmul(&w.t().unwrap()).unwrap()));
        }
        let padded = odd.pad_with_zeros(0, 0, 56).unwrap();
        assert_eq!(
            bits(&serial::add(&x, &padded).unwrap()),
            bits(&(&x + &padded).unwrap())
        );
        // Shapes that do not fit are errors, not panics.
        assert!(serial::matmul(&x, &wide.t().unwrap()).is_err());
        assert!(serial::matmul(&q, &w).is_err());
        assert!(serial::add(&x, &odd).is_err());
        assert!(serial::add(&x, &w.t().unwrap().narrow(1, 0, 256).unwrap()).is_err());
    }
}
