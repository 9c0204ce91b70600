//! Speed of the Candle Llama: step time of Nexus against AdamW on the same model and
//! micro-batches, of Candle against a JAX peer of the same model (`peers/jax_llama.py`), and
//! the checks `scripts/gpu-check.sh` runs on a GPU (gradients against the CPU, throughput at a
//! paper-like batch geometry). Every measurement runs in its own child process, so that its
//! peak memory is its own, and the runs of a comparison are interleaved, so that drifts in
//! machine load hit every column alike: read the ratios, not the absolute times.
//!
//! ```text
//! scripts/setup-peers.sh                                   # once: the JAX peer's virtualenv
//! cargo run --release --bin llama_bench -- --peer jax      # tiny and small, CPU, the table
//! cargo run --release --bin llama_bench -- grad-check --device cuda
//! cargo run --release --bin llama_bench -- throughput --preset base --seq-len 1024 --dtype bf16 --device cuda
//! ```

use candle_core::{DType, Device, Tensor};
use clap::{Args, Parser, Subcommand, ValueEnum};
use nexus_lab::bench::{child, fmt_ratio, median, ratio, write_outputs};
use nexus_lab::cli::limits as L;
use nexus_lab::cli::DeviceName;
use nexus_lab::llama::{Kernels, Llama, LlamaConfig, Precision, TrainConfig, Trainer};
use nexus_lab::params::ParamVec;
use nexus_lab::{Error, Result};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Command as Process, ExitCode};

#[derive(Parser)]
#[command(
    version,
    about = "Step time and throughput of the Candle Llama, against a JAX peer and on a GPU",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    compare: Compare,
}

#[derive(Subcommand)]
enum Command {
    /// Candle's AdamW and Nexus (and a peer's) interleaved: the comparison table. The default.
    Compare(Compare),
    /// One measurement in this process, printed as one JSON line.
    Step(Step),
    /// Gradients of a preset in f32 on --device against f64 on the CPU at the same point.
    GradCheck(GradCheck),
    /// Training throughput at a batch geometry, AdamW and Nexus interleaved: tokens/s, MFU,
    /// peak memory, Nexus/AdamW time.
    Throughput(Throughput),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Peer {
    /// No peer.
    None,
    /// `peers/jax_llama.py` under `jax.jit` (install with scripts/setup-peers.sh).
    Jax,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum KernelChoice {
    /// Fused on the CPU in f32, plain elsewhere.
    Auto,
    Fused,
    Plain,
}

#[derive(Args, Clone, Debug)]
struct Geometry {
    /// Micro-batches per outer step (Nexus's K).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=L::BATCH as i64))]
    accum: u32,
    /// Sequences per micro-batch.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=L::BATCH as i64))]
    micro_batch: u32,
    /// Tokens per sequence.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=L::SEQ_LEN as i64))]
    seq_len: u32,
}

impl Geometry {
    fn tokens_per_step(&self) -> f64 {
        f64::from(self.accum) * f64::from(self.micro_batch) * f64::from(self.seq_len)
    }
    fn flags(&self) -> Vec<String> {
        vec![
            "--accum".into(),
            self.accum.to_string(),
            "--micro-batch".into(),
            self.micro_batch.to_string(),
            "--seq-len".into(),
            self.seq_len.to_string(),
        ]
    }
}

#[derive(Args, Clone, Debug)]
struct Compare {
    /// Presets to measure, comma-separated.
    #[arg(long, default_value = "tiny,small", value_delimiter = ',')]
    presets: Vec<String>,
    /// Timed steps per run (after two warm-up steps).
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=L::STEPS as i64))]
    steps: u32,
    /// Interleaved repetitions.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=L::REPEATS as i64))]
    repeats: u32,
    /// The peer to run beside Candle.
    #[arg(long, value_enum, default_value_t = Peer::None)]
    peer: Peer,
    /// The peer's Python [default: .venv-peers/bin/python in the clone run from, where
    /// scripts/setup-peers.sh installs it].
    #[arg(long)]
    peer_python: Option<PathBuf>,
    /// Threads for Candle (default: every core; the peer uses its own default).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=L::THREADS as i64))]
    threads: Option<u32>,
    #[arg(long, value_enum, default_value_t = KernelChoice::Auto)]
    kernels: KernelChoice,
    #[arg(long, value_enum, default_value_t = DeviceName::Cpu)]
    device: DeviceName,
    #[command(flatten)]
    geometry: Geometry,
    /// Also write the table (`llama_bench.md`) and the measurements (`llama_bench.json`) here.
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Args, Clone, Debug)]
struct Step {
    #[arg(long, default_value = "tiny")]
    preset: String,
    /// adamw, nexus, nexus-dot, nsgd, random, muon or muon+nexus.
    #[arg(long, default_value = "adamw")]
    variant: String,
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=L::STEPS as i64))]
    steps: u32,
    /// Untimed steps first.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(0..=L::STEPS as i64))]
    warmup: u32,
    #[arg(long, value_enum, default_value_t = DeviceName::Cpu)]
    device: DeviceName,
    /// Compute precision: f32, or bf16 with f32 master weights and optimizer state.
    #[arg(long, default_value = "f32")]
    dtype: String,
    #[arg(long, value_enum, default_value_t = KernelChoice::Auto)]
    kernels: KernelChoice,
    /// The paper's optimizer hyperparameters (Table 6, 1B runs) instead of the defaults.
    #[arg(long)]
    paper_hyperparameters: bool,
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=L::THREADS as i64))]
    threads: Option<u32>,
    #[command(flatten)]
    geometry: Geometry,
}

#[derive(Args, Clone, Debug)]
struct GradCheck {
    #[arg(long, default_value = "micro")]
    preset: String,
    #[arg(long, value_enum, default_value_t = DeviceName::Cpu)]
    device: DeviceName,
    #[arg(long, value_enum, default_value_t = KernelChoice::Auto)]
    kernels: KernelChoice,
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

#[derive(Args, Clone, Debug)]
struct Throughput {
    #[arg(long, default_value = "base")]
    preset: String,
    #[arg(long, default_value = "bf16")]
    dtype: String,
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=L::STEPS as i64))]
    steps: u32,
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=L::REPEATS as i64))]
    repeats: u32,
    #[arg(long, value_enum, default_value_t = DeviceName::Cuda)]
    device: DeviceName,
    /// The device's dense peak in TFLOP/s at this precision, for the MFU column.
    #[arg(long, value_parser = nexus_lab::cli::positive)]
    peak_tflops: Option<f64>,
    #[command(flatten)]
    geometry: Geometry,
    /// Also write `throughput.md` and `throughput.json` here.
    #[arg(long)]
    out: Option<PathBuf>,
}

fn kernels(choice: KernelChoice) -> Option<Kernels> {
    match choice {
        KernelChoice::Auto => None,
        KernelChoice::Fused => Some(Kernels::Fused),
        KernelChoice::Plain => Some(Kernels::Plain),
    }
}

fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kib: f64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kib / 1024.0)
}

/// Polls `nvidia-smi` for the GPU memory in use while a measurement runs (the whole device,
/// CUDA context included); `None` where there is no `nvidia-smi`.
struct GpuMemory(std::process::Child);

impl GpuMemory {
    fn start() -> Option<Self> {
        Process::new("nvidia-smi")
            .args([
                "--query-gpu=memory.used",
                "--format=csv,noheader,nounits",
                "-i",
                "0",
                "-lms",
                "100",
            ])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .ok()
            .map(GpuMemory)
    }
    fn peak_mib(mut self) -> Option<f64> {
        self.0.kill().ok()?;
        let out = self.0.wait_with_output().ok()?;
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.trim().parse::<f64>().ok())
            .reduce(f64::max)
    }
}

fn step(a: &Step) -> Result<Value> {
    nexus_lab::llama::configure_cpu(a.threads.map(|t| t as usize));
    let dev = a.device.device()?;
    let mut cfg = TrainConfig {
        preset: a.preset.clone(),
        variant: a.variant.parse()?,
        steps: (a.steps + a.warmup) as usize,
        accum: a.geometry.accum as usize,
        micro_batch: a.geometry.micro_batch as usize,
        seq_len: a.geometry.seq_len as usize,
        eval_every: usize::MAX,
        checkpoint_every: usize::MAX,
        precision: a.dtype.parse::<Precision>()?,
        ..TrainConfig::default()
    };
    if a.paper_hyperparameters {
        cfg = cfg.with_paper_hyperparameters();
    }
    let tokens_per_step = a.geometry.tokens_per_step();
    let dir = std::env::temp_dir().join(format!("nexus-lab-bench-{}", std::process::id()));
    let mut t = Trainer::new(cfg, &dir, &dev, DType::F32)?;
    if let Some(k) = kernels(a.kernels) {
        t.model.set_kernels(k)?;
    }
    let gpu = (a.device == DeviceName::Cuda)
        .then(GpuMemory::start)
        .flatten();
    for _ in 0..a.warmup {
        t.step()?; // allocator, caches, CUDA kernel loading
    }
    dev.synchronize()?;
    let start = std::time::Instant::now();
    let mut loss = f64::NAN;
    for _ in 0..a.steps {
        loss = t.step()?.loss;
    }
    dev.synchronize()?;
    let secs = start.elapsed().as_secs_f64();
    std::fs::remove_dir_all(dir).ok();
    Ok(json!({
        "ms_per_step": 1e3 * secs / f64::from(a.steps),
        "tokens_per_s": tokens_per_step * f64::from(a.steps) / secs,
        "peak_rss_mib": peak_rss_mib(),
        "peak_gpu_mib": gpu.and_then(GpuMemory::peak_mib),
        "param_mib": t.params().numel() as f64 * 4.0 / (1024.0 * 1024.0),
        "last_loss": loss,
        "kernels": format!("{:?}", t.model.kernels()).to_lowercase(),
        "compute_dtype": format!("{:?}", t.model.compute_dtype()).to_lowercase(),
        "threads": std::env::var("RAYON_NUM_THREADS").ok(),
    }))
}

fn field(v: &[Value], key: &str) -> Vec<f64> {
    v.iter()
        .map(|r| r[key].as_f64().unwrap_or(f64::NAN))
        .collect()
}

fn me() -> Result<PathBuf> {
    std::env::current_exe().map_err(nexus_lab::fsio::io_error(Path::new("current executable")))
}

/// Before any long work: an output folder, if given, must be creatable and writable.
fn check_out(out: &Option<PathBuf>) -> Result<()> {
    out.as_deref()
        .map_or(Ok(()), nexus_lab::cli::check_writable)
}

fn compare(a: &Compare) -> Result<()> {
    check_out(&a.out)?;
    for p in &a.presets {
        LlamaConfig::preset(p)?;
    }
    let root = nexus_lab::bench::project_root()?;
    let peer_script = root.join("peers/jax_llama.py");
    let peer_python = nexus_lab::bench::peer_python(a.peer_python.as_deref())?;
    if a.peer == Peer::Jax && !peer_python.exists() {
        return Err(Error::InvalidArgument {
            name: "peer",
            reason: format!(
                "{} not found: run scripts/setup-peers.sh first (or pass --peer-python)",
                peer_python.display()
            ),
        });
    }
    let me = me()?;
    let candle = |preset: &str, variant: &str| -> Result<Value> {
        let mut args: Vec<String> = ["step", "--preset", preset, "--variant", variant, "--steps"]
            .map(String::from)
            .to_vec();
        args.push(a.steps.to_string());
        args.extend(["--device".into(), a.device.flag().into()]);
        args.extend([
            "--kernels".into(),
            format!("{:?}", a.kernels).to_lowercase(),
        ]);
        if let Some(t) = a.threads {
            args.extend(["--threads".into(), t.to_string()]);
        }
        args.extend(a.geometry.flags());
        child(&me, &args)
    };
    let jax = |preset: &str, variant: &str| -> Result<Value> {
        let mut args = vec![
            peer_script.display().to_string(),
            "--preset".into(),
            preset.into(),
            "--variant".into(),
            variant.into(),
            "--steps".into(),
            a.steps.to_string(),
        ];
        args.extend(a.geometry.flags());
        child(&peer_python, &args)
    };
    let g = &a.geometry;
    let threads = a
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()) as u32);
    let mut table = format!(
        "{} interleaved repetitions of {} timed steps per run, {} x {} x {} tokens per step, f32, {} thread(s) for Candle; medians, and [min, max] of the paired ratios\n\n",
        a.repeats, a.steps, g.accum, g.micro_batch, g.seq_len, threads
    );
    let with_peer = a.peer == Peer::Jax;
    table.push_str(if with_peer {
        "| preset | parameters | variant | Candle ms/step | JAX ms/step | Candle/JAX | Candle tokens/s | Candle peak RSS MiB |\n|---|---|---|---|---|---|---|---|\n"
    } else {
        "| preset | parameters | variant | Candle ms/step | Candle tokens/s | Candle peak RSS MiB |\n|---|---|---|---|---|---|\n"
    });
    let mut nexus_rows = String::from(
        "\n| preset | Nexus/AdamW time (Candle) | Nexus extra memory (parameter copies) |\n|---|---|---|\n",
    );
    let mut data = Vec::new();
    for preset in &a.presets {
        let n_params = LlamaConfig::preset(preset)?.num_parameters();
        let variants = ["adamw", "nexus"];
        let mut ours: Vec<Vec<Value>> = vec![Vec::new(); 2];
        let mut peer: Vec<Vec<Value>> = vec![Vec::new(); 2];
        for r in 0..a.repeats {
            for (i, v) in variants.iter().enumerate() {
                // Alternate which of the pair goes first, so neither always runs on a warm cache.
                if r % 2 == 0 || !with_peer {
                    ours[i].push(candle(preset, v)?);
                    if with_peer {
                        peer[i].push(jax(preset, v)?);
                    }
                } else {
                    peer[i].push(jax(preset, v)?);
                    ours[i].push(candle(preset, v)?);
                }
                eprintln!(
                    "llama_bench: {preset} {v} repetition {} of {}",
                    r + 1,
                    a.repeats
                );
            }
        }
        for (i, v) in variants.iter().enumerate() {
            let ms = field(&ours[i], "ms_per_step");
            let row_peer = if with_peer {
                let pms = field(&peer[i], "ms_per_step");
                format!(
                    " {:.2} | {} |",
                    median(pms.clone()),
                    fmt_ratio(ratio(&ms, &pms))
                )
            } else {
                String::new()
            };
            table.push_str(&format!(
                "| {preset} | {n_params} | {v} | {:.2} |{row_peer} {:.0} | {:.1} |\n",
                median(ms.clone()),
                median(field(&ours[i], "tokens_per_s")),
                median(field(&ours[i], "peak_rss_mib")),
            ));
        }
        let (a_ms, n_ms) = (
            field(&ours[0], "ms_per_step"),
            field(&ours[1], "ms_per_step"),
        );
        let param_mib = field(&ours[0], "param_mib")[0];
        let copies = (median(field(&ours[1], "peak_rss_mib"))
            - median(field(&ours[0], "peak_rss_mib")))
            / param_mib;
        nexus_rows.push_str(&format!(
            "| {preset} | {} | {copies:+.2} |\n",
            fmt_ratio(ratio(&n_ms, &a_ms))
        ));
        data.push(json!({"preset": preset, "parameters": n_params, "candle": {"adamw": ours[0], "nexus": ours[1]},
                         "peer": if with_peer { json!({"adamw": peer[0], "nexus": peer[1]}) } else { Value::Null }}));
    }
    table.push_str(&nexus_rows);
    print!("{table}");
    if let Some(dir) = &a.out {
        let command = format!(
            "cargo run --release --bin llama_bench -- {}",
            std::env::args().skip(1).collect::<Vec<_>>().join(" ")
        );
        let md = format!(
            "# Candle Llama step time\n\nCommand: `{command}` (crate {}).\n\n{table}",
            nexus_lab::VERSION
        );
        write_outputs(
            dir,
            "llama_bench",
            &md,
            &json!({"command": command, "crate_version": nexus_lab::VERSION, "steps": a.steps, "repeats": a.repeats,
                    "geometry": {"accum": g.accum, "micro_batch": g.micro_batch, "seq_len": g.seq_len}, "threads": threads, "presets": data}),
        )?;
    }
    Ok(())
}

/// Deterministic tokens `(rows, len + 1)` for the gradient check.
fn check_tokens(seed: u64, rows: usize, len: usize, device: &Device) -> Result<Tensor> {
    use rand::RngExt;
    let mut rng = nexus_lab::rng_for(seed, "grad-check-tokens");
    let data: Vec<u32> = (0..rows * (len + 1))
        .map(|_| rng.random_range(0..256u32))
        .collect();
    Ok(Tensor::from_vec(data, (rows, len + 1), device)?)
}

fn grad_check(a: &GradCheck) -> Result<()> {
    nexus_lab::llama::configure_cpu(None);
    let cfg = LlamaConfig::preset(&a.preset)?;
    let dev = a.device.device()?;
    let mut model = Llama::new(cfg.clone(), a.seed, &dev, DType::F32)?;
    if let Some(k) = kernels(a.kernels) {
        model.set_kernels(k)?;
    }
    // The reference holds the same f32 values, exactly, in f64.
    let reference = Llama::new(cfg.clone(), a.seed, &Device::Cpu, DType::F64)?;
    let params = model.params()?;
    reference.set_params(&nexus_lab::llama::TensorParams {
        tensors: params
            .tensors
            .iter()
            .map(|t| t.to_device(&Device::Cpu)?.to_dtype(DType::F64))
            .collect::<candle_core::Result<_>>()?,
    })?;
    let len = cfg.max_position_embeddings.min(64);
    let (loss, grads) = model.loss_and_gradients(&check_tokens(a.seed, 4, len, &dev)?)?;
    let (ref_loss, ref_grads) =
        reference.loss_and_gradients(&check_tokens(a.seed, 4, len, &Device::Cpu)?)?;
    let mut worst = 0.0f64;
    let mut per_parameter = serde_json::Map::new();
    for ((name, g), r) in model
        .names()
        .iter()
        .zip(&grads.tensors)
        .zip(&ref_grads.tensors)
    {
        let g: Vec<f64> = g
            .to_device(&Device::Cpu)?
            .to_dtype(DType::F64)?
            .flatten_all()?
            .to_vec1()?;
        let r: Vec<f64> = r.flatten_all()?.to_vec1()?;
        let scale = r
            .iter()
            .fold(0.0f64, |m, x| m.max(x.abs()))
            .max(f64::MIN_POSITIVE);
        let diff = g
            .iter()
            .zip(&r)
            .fold(0.0f64, |m, (x, y)| m.max((x - y).abs()))
            / scale;
        worst = worst.max(diff);
        per_parameter.insert(name.clone(), json!(diff));
    }
    let whole = grads.minus(&nexus_lab::llama::TensorParams {
        tensors: ref_grads
            .tensors
            .iter()
            .map(|t| t.to_dtype(DType::F32)?.to_device(&dev))
            .collect::<candle_core::Result<_>>()?,
    })?;
    println!(
        "{}",
        json!({
            "preset": a.preset, "device": a.device.flag(), "kernels": format!("{:?}", model.kernels()).to_lowercase(),
            "loss": loss, "reference_loss_f64_cpu": ref_loss,
            "max_relative_difference": worst,
            "relative_difference_of_whole_gradient": whole.norm()? / ref_grads.norm()?,
            "per_parameter": per_parameter,
        })
    );
    Ok(())
}

/// Model FLOPs per token of training (forward and backward): `6 N + 12 L h T` (PaLM, App. B),
/// with `N` the parameters outside the embedding table.
fn flops_per_token(cfg: &LlamaConfig, seq_len: usize) -> f64 {
    let n = (cfg.num_parameters() - cfg.vocab_size * cfg.hidden_size) as f64;
    6.0 * n + 12.0 * (cfg.num_hidden_layers * cfg.hidden_size * seq_len) as f64
}

fn throughput(a: &Throughput) -> Result<()> {
    check_out(&a.out)?;
    let cfg = LlamaConfig::preset(&a.preset)?;
    a.dtype.parse::<Precision>()?;
    let me = me()?;
    let g = &a.geometry;
    let run = |variant: &str| -> Result<Value> {
        let mut args: Vec<String> = vec![
            "step".into(),
            "--preset".into(),
            a.preset.clone(),
            "--variant".into(),
            variant.into(),
            "--steps".into(),
            a.steps.to_string(),
            "--device".into(),
            a.device.flag().into(),
            "--dtype".into(),
            a.dtype.clone(),
            "--paper-hyperparameters".into(),
        ];
        args.extend(g.flags());
        child(&me, &args)
    };
    let (mut adamw, mut nexus) = (Vec::new(), Vec::new());
    for r in 0..a.repeats {
        if r % 2 == 0 {
            adamw.push(run("adamw")?);
            nexus.push(run("nexus")?);
        } else {
            nexus.push(run("nexus")?);
            adamw.push(run("adamw")?);
        }
        eprintln!(
            "llama_bench: throughput repetition {} of {}",
            r + 1,
            a.repeats
        );
    }
    let flops = flops_per_token(&cfg, g.seq_len as usize);
    let memory_key = if a.device == DeviceName::Cuda {
        "peak_gpu_mib"
    } else {
        "peak_rss_mib"
    };
    let mut table = format!(
        "preset {} ({} parameters), {} precision, sequence length {}, micro-batch {}, {} micro-batches per step ({} tokens per step), paper hyperparameters; {} timed steps after 2 warm-up steps, {} interleaved repetitions, medians\n\n| variant | ms/step | tokens/s | MFU | peak memory MiB ({}) |\n|---|---|---|---|---|\n",
        a.preset, cfg.num_parameters(), a.dtype, g.seq_len, g.micro_batch, g.accum, g.tokens_per_step(), a.steps, a.repeats,
        if a.device == DeviceName::Cuda { "GPU, nvidia-smi" } else { "process RSS" }
    );
    for (name, runs) in [("adamw", &adamw), ("nexus", &nexus)] {
        let tps = median(field(runs, "tokens_per_s"));
        let mfu = a.peak_tflops.map_or("n/a".to_string(), |p| {
            format!("{:.1}%", 100.0 * tps * flops / (p * 1e12))
        });
        table.push_str(&format!(
            "| {name} | {:.1} | {tps:.0} | {mfu} | {:.0} |\n",
            median(field(runs, "ms_per_step")),
            median(field(runs, memory_key)),
        ));
    }
    table.push_str(&format!(
        "\nNexus/AdamW time: {} (median [min, max] of paired ratios). MFU counts {:.3e} FLOP per token (6N + 12 L h T){}.\n",
        fmt_ratio(ratio(&field(&nexus, "ms_per_step"), &field(&adamw, "ms_per_step"))),
        flops,
        a.peak_tflops.map_or(String::new(), |p| format!(" against a peak of {p} TFLOP/s"))
    ));
    print!("{table}");
    if let Some(dir) = &a.out {
        write_outputs(
            dir,
            "throughput",
            &format!("# Throughput\n\n{table}"),
            &json!({"preset": a.preset, "dtype": a.dtype, "geometry": {"accum": g.accum, "micro_batch": g.micro_batch, "seq_len": g.seq_len},
                    "steps": a.steps, "repeats": a.repeats, "flops_per_token": flops, "peak_tflops": a.peak_tflops,
                    "crate_version": nexus_lab::VERSION, "adamw": adamw, "nexus": nexus}),
        )?;
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        None => compare(&cli.compare),
        Some(Command::Compare(a)) => compare(a),
        Some(Command::Step(a)) => step(a).map(|v| println!("{v}")),
        Some(Command::GradCheck(a)) => grad_check(a),
        Some(Command::Throughput(a)) => throughput(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("llama_bench: {e}");
            ExitCode::from(2)
        }
    }
}
