//! Every numeric flag of every binary at its extremes (0, -1, one past its limit, the type's
//! largest value, and for reals NaN, infinities and +-1e308), with everything else set small:
//! each run ends by itself with exit code 0 or 2, and never with a panic, an abort, a signal or
//! a backtrace. The limits are `nexus_lab::cli::limits`; counts beyond them are refused by the
//! flag parser, and sizes within them by the memory estimates.

use nexus_lab::cli::limits as L;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A binary, a subcommand if any, and the flags that keep a run small.
struct Target {
    bin: &'static str,
    base: &'static [&'static str],
    /// Flags that take an output folder (`--out` here), given a fresh scratch folder.
    out: bool,
    /// Numeric flags and whether they are integers (`true`) or reals, with the limit of an
    /// integer flag (`0` for none below the type's largest value).
    flags: &'static [(&'static str, bool, u64)],
}

const TARGETS: &[Target] = &[
    Target {
        bin: env!("CARGO_BIN_EXE_train"),
        base: &[
            "--preset",
            "micro",
            "--steps",
            "1",
            "--accum",
            "1",
            "--micro-batch",
            "1",
            "--seq-len",
            "8",
            "--eval-every",
            "1",
            "--languages",
            "2",
            "--held-out-languages",
            "1",
        ],
        out: true,
        flags: &[
            ("--steps", true, L::STEPS),
            ("--accum", true, L::BATCH),
            ("--micro-batch", true, L::BATCH),
            ("--seq-len", true, L::SEQ_LEN),
            ("--lr", false, 0),
            ("--inner-lr", false, 0),
            ("--muon-lr", false, 0),
            ("--weight-decay", false, 0),
            ("--clip", false, 0),
            ("--warmup", true, L::STEPS),
            ("--decay-fraction", false, 0),
            ("--seed", true, 0),
            ("--eval-every", true, L::STEPS),
            ("--checkpoint-every", true, L::STEPS),
            ("--languages", true, L::COUNT),
            ("--held-out-languages", true, L::COUNT),
            ("--language-spread", false, 0),
        ],
    },
    Target {
        bin: env!("CARGO_BIN_EXE_nexus_run"),
        base: &[
            "--dim",
            "2",
            "--tasks",
            "2",
            "--steps",
            "2",
            "--every",
            "1",
            "--held-out",
            "2",
        ],
        out: false,
        flags: &[
            ("--dim", true, L::COUNT),
            ("--tasks", true, L::COUNT),
            ("--K", true, L::COUNT),
            ("--gamma", false, 0),
            ("--spread", false, 0),
            ("--steps", true, L::STEPS),
            ("--every", true, L::STEPS),
            ("--lr", false, 0),
            ("--weight-decay", false, 0),
            ("--held-out", true, L::COUNT),
            ("--seed", true, 0),
        ],
    },
    Target {
        bin: env!("CARGO_BIN_EXE_reproduce"),
        base: &["--only", "ctl-descent", "--quick", "--seeds", "1"],
        out: true,
        flags: &[("--seed", true, 0), ("--seeds", true, L::SEEDS)],
    },
    Target {
        bin: env!("CARGO_BIN_EXE_tightness"),
        base: &[
            "--quick",
            "--only",
            "ctl-descent",
            "--starts",
            "1",
            "--iterations",
            "1",
        ],
        out: true,
        flags: &[
            ("--seed", true, 0),
            ("--starts", true, L::SEEDS),
            ("--iterations", true, L::STEPS),
        ],
    },
    Target {
        bin: env!("CARGO_BIN_EXE_pretrain"),
        base: &[
            "--quick",
            "--preset",
            "micro",
            "--steps",
            "6",
            "--seeds",
            "2",
            "--headline-seeds",
            "2",
            "--master-seeds",
            "1",
        ],
        out: true,
        flags: &[
            ("--seed", true, 0),
            ("--master-seeds", true, L::MASTER_SEEDS),
            ("--seeds", true, L::SEEDS),
            ("--headline-seeds", true, L::SEEDS),
            ("--jobs", true, L::THREADS),
            ("--steps", true, L::STEPS),
        ],
    },
    Target {
        bin: env!("CARGO_BIN_EXE_llama_bench"),
        base: &[
            "step",
            "--preset",
            "micro",
            "--steps",
            "1",
            "--warmup",
            "0",
            "--accum",
            "1",
            "--micro-batch",
            "1",
            "--seq-len",
            "8",
        ],
        out: false,
        flags: &[
            ("--steps", true, L::STEPS),
            ("--warmup", true, L::STEPS),
            ("--threads", true, L::THREADS),
            ("--accum", true, L::BATCH),
            ("--micro-batch", true, L::BATCH),
            ("--seq-len", true, L::SEQ_LEN),
        ],
    },
    Target {
        bin: env!("CARGO_BIN_EXE_llama_bench"),
        base: &["grad-check", "--preset", "micro"],
        out: false,
        flags: &[("--seed", true, 0)],
    },
    Target {
        bin: env!("CARGO_BIN_EXE_llama_bench"),
        base: &[
            "compare",
            "--presets",
            "micro",
            "--steps",
            "1",
            "--repeats",
            "1",
        ],
        out: false,
        flags: &[
            ("--steps", true, L::STEPS),
            ("--repeats", true, L::REPEATS),
            ("--threads", true, L::THREADS),
        ],
    },
    Target {
        bin: env!("CARGO_BIN_EXE_llama_bench"),
        base: &[
            "throughput",
            "--preset",
            "micro",
            "--device",
            "cpu",
            "--steps",
            "1",
            "--repeats",
            "1",
            "--accum",
            "1",
            "--micro-batch",
            "1",
            "--seq-len",
            "8",
            "--dtype",
            "f32",
        ],
        out: false,
        flags: &[
            ("--steps", true, L::STEPS),
            ("--repeats", true, L::REPEATS),
            ("--peak-tflops", false, 0),
        ],
    },
    Target {
        bin: env!("CARGO_BIN_EXE_expectation_bench"),
        base: &["--python", "/nonexistent/python"],
        out: false,
        flags: &[("--rounds", true, L::REPEATS)],
    },
];

/// The extreme values of one flag.
fn extremes(integer: bool, limit: u64) -> Vec<String> {
    let mut v: Vec<String> = if integer {
        vec![
            "0".into(),
            "-1".into(),
            u64::MAX.to_string(),
            "18446744073709551616".into(),
        ]
    } else {
        ["0", "-1", "NaN", "inf", "-inf", "1e308", "-1e308"]
            .map(String::from)
            .to_vec()
    };
    if integer && limit > 0 && limit < u64::MAX {
        v.push((limit + 1).to_string());
    }
    v
}

/// Runs one command to its end (or kills it after `limit`): exit code and standard error.
fn run(cmd: &mut Command, limit: Duration) -> (Option<i32>, String, bool) {
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .env("RAYON_NUM_THREADS", "1")
        .env("RUST_BACKTRACE", "1")
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || std::io::read_to_string(stderr).unwrap_or_default());
    let started = Instant::now();
    let (status, timed_out) = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break (s, false);
        }
        if started.elapsed() > limit {
            child.kill().ok();
            break (child.wait().unwrap(), true);
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    (status.code(), reader.join().unwrap_or_default(), timed_out)
}

#[test]
fn every_numeric_flag_at_its_extremes_ends_cleanly() {
    let scratch = std::env::temp_dir().join(format!("nexus-lab-extremes-{}", std::process::id()));
    let mut jobs: Vec<(String, Vec<String>, Option<PathBuf>)> = Vec::new();
    for (t, target) in TARGETS.iter().enumerate() {
        for &(flag, integer, limit) in target.flags {
            for value in extremes(integer, limit) {
                let mut args: Vec<String> = target.base.iter().map(|s| s.to_string()).collect();
                // The flag's value replaces the base's, if the base sets it.
                if let Some(i) = args.iter().position(|a| a == flag) {
                    args.remove(i);
                    args.remove(i);
                }
                args.push(flag.into());
                args.push(value.clone());
                let out = target
                    .out
                    .then(|| scratch.join(format!("{t}{flag}{}", jobs.len())));
                jobs.push((target.bin.to_string(), args, out));
            }
        }
    }
    let next = std::sync::atomic::AtomicUsize::new(0);
    let failures = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let Some((bin, args, out)) = jobs.get(i) else {
                    return;
                };
                let mut cmd = Command::new(bin);
                cmd.args(args);
                if let Some(out) = out {
                    cmd.arg("--out").arg(out);
                }
                let (code, err, timed_out) = run(&mut cmd, Duration::from_secs(120));
                if std::env::var_os("NEXUS_LAB_EXTREMES_VERBOSE").is_some() {
                    eprintln!(
                        "{code:?} {} {}",
                        args.join(" "),
                        err.lines().last().unwrap_or("")
                    );
                }
                let name = bin.rsplit('/').next().unwrap_or(bin);
                let line = format!("{name} {}", args.join(" "));
                if timed_out {
                    failures
                        .lock()
                        .unwrap()
                        .push(format!("{line}: still running after 120 s"));
                } else if !matches!(code, Some(0) | Some(2)) {
                    failures
                        .lock()
                        .unwrap()
                        .push(format!("{line}: exit {code:?}: {err}"));
                } else if err.contains("panicked") || err.contains("stack backtrace") {
                    failures.lock().unwrap().push(format!("{line}: {err}"));
                }
            });
        }
    });
    std::fs::remove_dir_all(&scratch).ok();
    let failures = failures.into_inner().unwrap();
    assert!(
        failures.is_empty(),
        "{} of {} runs did not end cleanly:\n{}",
        failures.len(),
        jobs.len(),
        failures.join("\n")
    );
}
