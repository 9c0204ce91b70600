//! What the benchmark binaries (`llama_bench`, `expectation_bench`) share: running a peer in a
//! child process, paired ratios of interleaved timings, and writing the table. Timings on a
//! shared machine drift; ratios of runs interleaved round by round do not, so tables report
//! the median of paired ratios with their range.

use crate::error::{Error, Result};
use crate::fsio::io_error;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Runs `program args` and parses the last line of its standard output as JSON.
pub fn child(program: &Path, args: &[String]) -> Result<Value> {
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(io_error(program))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(Error::Data(format!(
            "{} {} failed: {}",
            program.display(),
            args.join(" "),
            err.lines().last().unwrap_or("(no message)")
        )));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(serde_json::from_str(text.lines().last().unwrap_or(""))?)
}

/// The project folder, found at run time: the current folder or the nearest ancestor holding
/// `peers/` (this repository's peer scripts), else the same search from the executable's folder
/// (`target/release/` sits inside the clone that built it). Never the build folder baked in at
/// compile time, so a binary copied or built in one clone runs against the clone it runs in.
pub fn project_root() -> Result<PathBuf> {
    let holds_peers = |dir: &Path| dir.join("peers").is_dir();
    let cwd = std::env::current_dir().map_err(io_error(Path::new(".")))?;
    if let Some(dir) = cwd.ancestors().find(|d| holds_peers(d)) {
        return Ok(dir.to_path_buf());
    }
    let exe = std::env::current_exe().map_err(io_error(Path::new("current executable")))?;
    exe.ancestors()
        .find(|d| holds_peers(d))
        .map(Path::to_path_buf)
        .ok_or_else(|| {
            Error::Data(format!(
                "no peers/ folder above {} or {}: run from the nexus-lab clone",
                cwd.display(),
                exe.display()
            ))
        })
}

/// The peers' Python: `given` (a `--python` flag) or `.venv-peers/bin/python` in
/// [`project_root`] (where `scripts/setup-peers.sh` installs it).
pub fn peer_python(given: Option<&Path>) -> Result<PathBuf> {
    match given {
        Some(p) => Ok(p.to_path_buf()),
        None => Ok(project_root()?.join(".venv-peers/bin/python")),
    }
}

/// The median (NaN for no values).
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    }
}

/// Median and range of paired ratios `a[i] / b[i]`.
pub fn ratio(a: &[f64], b: &[f64]) -> (f64, f64, f64) {
    let r: Vec<f64> = a.iter().zip(b).map(|(x, y)| x / y).collect();
    let lo = r.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = r.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    (median(r), lo, hi)
}

/// `median [min, max]`.
pub fn fmt_ratio((m, lo, hi): (f64, f64, f64)) -> String {
    format!("{m:.2} [{lo:.2}, {hi:.2}]")
}

/// Writes `<dir>/<stem>.md` (the table) and `<stem>.json` (the data), each atomically.
pub fn write_outputs(dir: &Path, stem: &str, table: &str, data: &Value) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(io_error(dir))?;
    crate::fsio::write_atomic(&dir.join(format!("{stem}.md")), table.as_bytes())?;
    crate::fsio::write_atomic(
        &dir.join(format!("{stem}.json")),
        serde_json::to_string_pretty(data)?.as_bytes(),
    )
}
