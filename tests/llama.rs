//! The Candle Llama: gradients against finite differences (in f64, on a micro model), the
//! parameter-vector operations, and checkpoint round trips.

use candle_core::{DType, Device, Tensor};
use nexus_lab::llama::{Llama, LlamaConfig, TensorParams};
use nexus_lab::params::ParamVec;

fn tokens(device: &Device) -> Tensor {
    let data: Vec<u32> = vec![1, 7, 3, 250, 9, 4, 8, 2, 200, 13, 5, 0];
    Tensor::from_vec(data, (2, 6), device).unwrap()
}

fn with_element(p: &TensorParams, which: usize, index: usize, delta: f64) -> TensorParams {
    let mut q = p.clone();
    let t = &p.tensors[which];
    let shape = t.dims().to_vec();
    let mut v = t.flatten_all().unwrap().to_vec1::<f64>().unwrap();
    v[index] += delta;
    q.tensors[which] = Tensor::from_vec(v, shape, t.device()).unwrap();
    q
}

/// Central differences with h = 1e-6 in f64: truncation ~h^2 |f'''| and rounding ~1e-16/h
/// are both below 1e-9; a dropped or wrong gradient is off by O(|g|).
#[test]
fn every_parameter_gradient_matches_finite_differences() {
    let device = Device::Cpu;
    let model = Llama::new(
        LlamaConfig::preset("micro").unwrap(),
        3,
        &device,
        DType::F64,
    )
    .unwrap();
    let toks = tokens(&device);
    let (_, grads) = model.loss_and_gradients(&toks).unwrap();
    let base = model.params().unwrap();
    let h = 1e-6;
    for (which, name) in model.names().iter().enumerate() {
        let n = base.tensors[which].elem_count();
        let g = grads.tensors[which]
            .flatten_all()
            .unwrap()
            .to_vec1::<f64>()
            .unwrap();
        for index in [0, n / 2, n - 1] {
            model
                .set_params(&with_element(&base, which, index, h))
                .unwrap();
            let up = model.eval_loss(&toks).unwrap();
            model
                .set_params(&with_element(&base, which, index, -h))
                .unwrap();
            let down = model.eval_loss(&toks).unwrap();
            let fd = (up - down) / (2.0 * h);
            assert!(
                (fd - g[index]).abs() <= 1e-6 * (1.0 + fd.abs()),
                "{name}[{index}]: backprop {} vs finite difference {fd}",
                g[index]
            );
        }
        model.set_params(&base).unwrap();
    }
}

#[test]
fn tensor_params_are_a_vector_space() {
    let device = Device::Cpu;
    let model = Llama::new(
        LlamaConfig::preset("micro").unwrap(),
        1,
        &device,
        DType::F32,
    )
    .unwrap();
    let p = model.params().unwrap();
    let mut q = p.clone();
    q.axpy(-1.0, &p).unwrap();
    assert_eq!(q.norm().unwrap(), 0.0);
    let two = {
        let mut t = p.clone();
        t.scale(2.0).unwrap();
        t
    };
    let n = p.norm().unwrap();
    assert!((two.dot(&p).unwrap() - 2.0 * n * n).abs() <= 1e-5 * n * n);
    assert_eq!(p.numel(), model.config().num_parameters());
    assert!(p.all_finite().unwrap());
    let mut bad = p.clone();
    bad.scale(f64::NAN).unwrap();
    assert!(!bad.all_finite().unwrap());
}

#[test]
fn checkpoint_round_trip_keeps_every_parameter() {
    let device = Device::Cpu;
    let cfg = LlamaConfig::preset("micro").unwrap();
    let a = Llama::new(cfg.clone(), 1, &device, DType::F32).unwrap();
    let b = Llama::new(cfg, 2, &device, DType::F32).unwrap();
    let dir = std::env::temp_dir().join(format!("nexus-lab-llama-{}", std::process::id()));
    a.save(&dir).unwrap();
    b.load_params(&dir).unwrap();
    let diff = a
        .params()
        .unwrap()
        .minus(&b.params().unwrap())
        .unwrap()
        .norm()
        .unwrap();
    assert_eq!(diff, 0.0);
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["model_type"], "llama");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn presets_have_the_advertised_sizes() {
    assert!(LlamaConfig::preset("base").unwrap().num_parameters() > 100_000_000);
    assert!(LlamaConfig::preset("tiny").unwrap().num_parameters() < 200_000);
    assert!(LlamaConfig::preset("huge").is_err());
}
