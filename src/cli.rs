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

/// A `clap` value parser for an output folder: a non-empty path.
pub fn output_dir(s: &str) -> std::result::Result<PathBuf, String> {
    if s.trim().is_empty() {
        Err("must name a directory".into())
    } else {
        Ok(PathBuf::from(s))
    }
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
    if x.is_finite() {
        Ok(x)
    } else {
        Err(format!("must be finite, got {x}"))
    }
}

/// A `clap` value parser: a finite number > 0.
pub fn positive(s: &str) -> std::result::Result<f64, String> {
    finite(s).and_then(|x| {
        if x > 0.0 {
            Ok(x)
        } else {
            Err(format!("must be > 0, got {x}"))
        }
    })
}

/// A `clap` value parser: a finite number >= 0.
pub fn non_negative(s: &str) -> std::result::Result<f64, String> {
    finite(s).and_then(|x| {
        if x >= 0.0 {
            Ok(x)
        } else {
            Err(format!("must be >= 0, got {x}"))
        }
    })
}

/// A `clap` value parser: a number in [0, 1].
pub fn fraction(s: &str) -> std::result::Result<f64, String> {
    finite(s).and_then(|x| {
        if (0.0..=1.0).contains(&x) {
            Ok(x)
        } else {
            Err(format!("must be in [0, 1], got {x}"))
        }
    })
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
