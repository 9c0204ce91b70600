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
    let Ok(repeats) = get("--repeats", "5").parse::<usize>() else {
        eprintln!("llama_bench: --repeats must be a number");
        return ExitCode::from(2);
    };
    let me = std::env::current_exe().expect("own path");
    let run = |preset: &str, variant: &str| -> Option<serde_json::Value> {
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
        out.ok()
            .filter(|o| o.status.success())
            .and_then(|o| serde_json::from_slice::<serde_json::Value>(&o.stdout).ok())
    };
    let median = |mut v: Vec<f64>| -> f64 {
        v.sort_by(|a, b| a.total_cmp(b));
        let n = v.len();
        if n % 2 == 1 {
            v[n / 2]
        } else {
            0.5 * (v[n / 2 - 1] + v[n / 2])
        }
    };
    println!("{repeats} interleaved repetitions of {steps} steps per variant; medians, and the range of the paired time ratios");
    println!(
        "{:<7} {:>10} {:>12} {:>12} {:>11} {:>11} {:>9} {:>9} {:>22} {:>13}",
        "preset",
        "params",
        "adamw ms",
        "nexus ms",
        "adamw tok/s",
        "nexus tok/s",
        "adamw MiB",
        "nexus MiB",
        "nexus/adamw time",
        "extra copies"
    );
    for preset in get("--presets", "tiny,small").split(',') {
        let Ok(cfg) = LlamaConfig::preset(preset) else {
            eprintln!("llama_bench: unknown preset `{preset}`");
            return ExitCode::from(2);
        };
        let (mut a, mut n) = (Vec::new(), Vec::new());
        for _ in 0..repeats {
            // Interleaved, so that drifts in machine load hit both variants alike.
            match (run(preset, "adamw"), run(preset, "nexus")) {
                (Some(x), Some(y)) => {
                    a.push(x);
                    n.push(y);
                }
                _ => {
                    eprintln!("llama_bench: a {preset} run failed");
                    return ExitCode::from(2);
                }
            }
        }
        let col = |v: &[serde_json::Value], k: &str| -> Vec<f64> {
            v.iter()
                .map(|r| r[k].as_f64().unwrap_or(f64::NAN))
                .collect()
        };
        let ratios: Vec<f64> = col(&n, "ms_per_step")
            .iter()
            .zip(col(&a, "ms_per_step"))
            .map(|(x, y)| x / y)
            .collect();
        let (lo, hi) = ratios
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), r| {
                (l.min(*r), h.max(*r))
            });
        let param_mib = col(&a, "param_mib")[0];
        let copies =
            (median(col(&n, "peak_rss_mib")) - median(col(&a, "peak_rss_mib"))) / param_mib;
        println!(
            "{preset:<7} {:>10} {:>12.2} {:>12.2} {:>11.0} {:>11.0} {:>9.1} {:>9.1} {:>22} {:>+13.2}",
            cfg.num_parameters(),
            median(col(&a, "ms_per_step")),
            median(col(&n, "ms_per_step")),
            median(col(&a, "tokens_per_s")),
            median(col(&n, "tokens_per_s")),
            median(col(&a, "peak_rss_mib")),
            median(col(&n, "peak_rss_mib")),
            format!("{:+.1}% [{:+.1}, {:+.1}]", 100.0 * (median(ratios.clone()) - 1.0), 100.0 * (lo - 1.0), 100.0 * (hi - 1.0)),
            copies
        );
    }
    ExitCode::SUCCESS
}
