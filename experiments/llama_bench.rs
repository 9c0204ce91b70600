//! Step time and peak memory of Nexus against AdamW on the same model and micro-batches, and
//! tokens per second. Each measurement runs in its own child process so that its peak resident
//! memory (VmHWM) is its own.
//!
//! ```text
//! cargo run --release --bin llama_bench                  # tiny and small presets, CPU
//! cargo run --release --bin llama_bench -- --presets base --steps 5 --device cuda
//! ```

use candle_core::{DType, Device};
use nexus_lab::llama::{LlamaConfig, TrainConfig, Trainer};
use nexus_lab::Result;
use std::process::{Command, ExitCode};

fn peak_rss_kib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(f64::NAN)
}

fn child(preset: &str, variant: &str, steps: usize, device: &str) -> Result<()> {
    let dev = if device == "cuda" {
        Device::new_cuda(0)?
    } else {
        Device::Cpu
    };
    let cfg = TrainConfig {
        preset: preset.into(),
        variant: variant.parse()?,
        steps: steps + 2,
        eval_every: usize::MAX,
        checkpoint_every: usize::MAX,
        ..TrainConfig::default()
    };
    let tokens_per_step = (cfg.accum * cfg.micro_batch * cfg.seq_len) as f64;
    let dir = std::env::temp_dir().join(format!("nexus-lab-bench-{}", std::process::id()));
    let mut t = Trainer::new(cfg, &dir, &dev, DType::F32)?;
    for _ in 0..2 {
        t.step()?; // warm-up: allocator and caches
    }
    let start = std::time::Instant::now();
    for _ in 0..steps {
        t.step()?;
    }
    let secs = start.elapsed().as_secs_f64();
    std::fs::remove_dir_all(dir).ok();
    println!(
        "{}",
        serde_json::json!({"ms_per_step": 1e3 * secs / steps as f64, "tokens_per_s": tokens_per_step * steps as f64 / secs,
            "peak_rss_mib": peak_rss_kib() / 1024.0, "param_mib": t.params().numel() as f64 * 4.0 / (1024.0 * 1024.0)})
    );
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let get = |flag: &str, default: &str| -> String {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .cloned()
            .unwrap_or_else(|| default.into())
    };
    let (steps, device) = (
        get("--steps", "20").parse::<usize>(),
        get("--device", "cpu"),
    );
    let Ok(steps) = steps else {
        eprintln!("llama_bench: --steps must be a number");
        return ExitCode::from(2);
    };
    if args.iter().any(|a| a == "--child") {
        return match child(
            &get("--preset", "tiny"),
            &get("--variant", "adamw"),
            steps,
            &device,
        ) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("llama_bench: {e}");
                ExitCode::from(2)
            }
        };
    }
    let me = std::env::current_exe().expect("own path");
    println!(
        "{:<7} {:<7} {:>12} {:>10} {:>13} {:>10} {:>12} {:>16}",
        "preset", "variant", "params", "ms/step", "tokens/s", "RSS MiB", "params MiB", "vs adamw"
    );
    for preset in get("--presets", "tiny,small").split(',') {
        if let Err(e) = LlamaConfig::preset(preset) {
            eprintln!("llama_bench: {e}");
            return ExitCode::from(2);
        }
        let mut base: Option<serde_json::Value> = None;
        for variant in ["adamw", "nexus"] {
            let out = Command::new(&me)
                .args([
                    "--child",
                    "--preset",
                    preset,
                    "--variant",
                    variant,
                    "--steps",
                    &steps.to_string(),
                    "--device",
                    &device,
                ])
                .output();
            let parsed = out
                .ok()
                .filter(|o| o.status.success())
                .and_then(|o| serde_json::from_slice::<serde_json::Value>(&o.stdout).ok());
            let Some(r) = parsed else {
                eprintln!("llama_bench: the {preset}/{variant} run failed");
                return ExitCode::from(2);
            };
            let f = |k: &str| r[k].as_f64().unwrap_or(f64::NAN);
            let versus = base.as_ref().map_or(String::from("-"), |b| {
                let g = |k: &str| b[k].as_f64().unwrap_or(f64::NAN);
                format!(
                    "{:+.1}% time, {:+.2} copies",
                    100.0 * (f("ms_per_step") / g("ms_per_step") - 1.0),
                    (f("peak_rss_mib") - g("peak_rss_mib")) / f("param_mib")
                )
            });
            let n = LlamaConfig::preset(preset)
                .map(|c| c.num_parameters())
                .unwrap_or(0);
            println!(
                "{preset:<7} {variant:<7} {n:>12} {:>10.2} {:>13.0} {:>10.1} {:>12.2} {versus:>16}",
                f("ms_per_step"),
                f("tokens_per_s"),
                f("peak_rss_mib"),
                f("param_mib")
            );
            if variant == "adamw" {
                base = Some(r);
            }
        }
    }
    ExitCode::SUCCESS
}
