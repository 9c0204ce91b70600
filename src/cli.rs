//! What the binaries share: their ending (a message and exit code 2 for a failed run, never a
//! panic) and the checks of output folders made before any long work. Flags are parsed by
//! `clap` (derive), which exits with code 2 and names the flag on bad input.

use crate::error::{Error, Result};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Turns a run's result into an exit code, printing the error as one line.
pub fn finish(program: &str, result: Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{program}: {e}");
            ExitCode::from(2)
        }
    }
}

/// Upper bounds of the count flags: far above any run this toolkit is meant for, and low enough
/// that nothing sized by them overflows or allocates before the checks that follow (the
/// memory estimates of `nexus_run --dim` and of the Llama's batch, [`available_memory`]).
pub mod limits {
    /// Training or optimization steps, and the intervals counted in steps.
    pub const STEPS: u64 = 1_000_000_000;
    /// Training seeds of a study, and master seeds of `reproduce`.
    pub const SEEDS: u64 = 10_000;
    /// Master seeds of a Llama study (each one the whole study).
    pub const MASTER_SEEDS: u64 = 100;
    /// Threads, and runs at once.
    pub const THREADS: u64 = 1024;
    /// Repetitions and rounds of a benchmark.
    pub const REPEATS: u64 = 100_000;
    /// Micro-batches per step and sequences per micro-batch (the memory estimate bounds their
    /// product with the sequence length).
    pub const BATCH: u64 = 1 << 20;
    /// Sequence length (a preset's positions bound it further).
    pub const SEQ_LEN: u64 = 1 << 20;
    /// Built-in synthetic languages, tasks and Nexus's inner steps.
    pub const COUNT: u64 = 1 << 20;
}

/// The memory this machine has available, in bytes (Linux's `MemAvailable`; `None` elsewhere).
pub fn available_memory() -> Option<f64> {
    std::fs::read_to_string("/proc/meminfo").ok().and_then(|m| {
        m.lines()
            .find(|l| l.starts_with("MemAvailable:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .map(|kib| kib * 1024.0)
    })
}

/// A `clap` value parser for an output folder: a non-empty path, in any encoding the operating
/// system allows (a path that is not UTF-8 is a path).
pub fn output_dir() -> impl clap::builder::TypedValueParser<Value = PathBuf> {
    use clap::builder::TypedValueParser as _;
    clap::builder::OsStringValueParser::new().try_map(|s| {
        if s.to_string_lossy().trim().is_empty() {
            Err("must name a directory".to_string())
        } else {
            Ok(PathBuf::from(s))
        }
    })
}

/// Creates `dir` if needed and checks that a file can be written there, so that a bad output
/// folder fails before the work rather than after it.
pub fn check_writable(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(crate::fsio::io_error(dir))?;
    let probe = dir.join(format!(".nexus-lab-probe-{}", std::process::id()));
    std::fs::write(&probe, b"").map_err(crate::fsio::io_error(dir))?;
    std::fs::remove_file(&probe).map_err(crate::fsio::io_error(dir))
}

/// A `clap` value parser: a finite number.
pub fn finite(s: &str) -> std::result::Result<f64, String> {
    let x: f64 = s.parse().map_err(|_| format!("`{s}` is not a number"))?;
    range::finite(x)
}

/// The ranges of real-valued settings, one definition for the flags (the value parsers below)
/// and for configuration files (`llama::TrainConfig::validate`): each returns the value, or
/// what is wrong with it.
pub mod range {
    /// A finite number.
    pub fn finite(x: f64) -> Result<f64, String> {
        if x.is_finite() {
            Ok(x)
        } else {
            Err(format!("must be finite, got {x}"))
        }
    }

    /// A finite number > 0.
    pub fn positive(x: f64) -> Result<f64, String> {
        finite(x).and_then(|x| {
            if x > 0.0 {
                Ok(x)
            } else {
                Err(format!("must be > 0, got {x}"))
            }
        })
    }

    /// A finite number >= 0.
    pub fn non_negative(x: f64) -> Result<f64, String> {
        finite(x).and_then(|x| {
            if x >= 0.0 {
                Ok(x)
            } else {
                Err(format!("must be >= 0, got {x}"))
            }
        })
    }

    /// A number in [0, 1].
    pub fn fraction(x: f64) -> Result<f64, String> {
        if (0.0..=1.0).contains(&x) {
            Ok(x)
        } else {
            Err(format!("must be in [0, 1], got {x}"))
        }
    }
}

/// A `clap` value parser: a finite number > 0.
pub fn positive(s: &str) -> std::result::Result<f64, String> {
    finite(s).and_then(range::positive)
}

/// A `clap` value parser: a finite number >= 0.
pub fn non_negative(s: &str) -> std::result::Result<f64, String> {
    finite(s).and_then(range::non_negative)
}

/// A `clap` value parser: a number in [0, 1].
pub fn fraction(s: &str) -> std::result::Result<f64, String> {
    finite(s).and_then(range::fraction)
}

/// Where a training binary runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum DeviceName {
    /// The CPU.
    Cpu,
    /// The first CUDA GPU (needs a build with `--features cuda`).
    Cuda,
}

impl DeviceName {
    /// The Candle device; a clear error when CUDA is not available.
    pub fn device(self) -> Result<candle_core::Device> {
        match self {
            DeviceName::Cpu => Ok(candle_core::Device::Cpu),
            DeviceName::Cuda => {
                candle_core::Device::new_cuda(0).map_err(|e| Error::InvalidArgument {
                    name: "device",
                    reason: format!("cuda unavailable ({e}); build with --features cuda"),
                })
            }
        }
    }

    /// The flag's spelling.
    pub fn flag(self) -> &'static str {
        match self {
            DeviceName::Cpu => "cpu",
            DeviceName::Cuda => "cuda",
        }
    }
}
