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
    let io = |e| Error::Io {
        path: dir.display().to_string(),
        source: e,
    };
    std::fs::create_dir_all(dir).map_err(io)?;
    let probe = dir.join(format!(".nexus-lab-probe-{}", std::process::id()));
    std::fs::write(&probe, b"").map_err(io)?;
    std::fs::remove_file(&probe).map_err(io)
}
