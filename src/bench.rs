//! What the benchmark binaries (`llama_bench`, `expectation_bench`) share: running a peer in a
//! child process, paired ratios of interleaved timings, and writing the table. Timings on a
//! shared machine drift; ratios of runs interleaved round by round do not, so tables report
//! the median of paired ratios with their range.

use crate::error::{io_error, Error, Result};
use serde_json::Value;
use std::path::Path;
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
    crate::report::write_atomic(&dir.join(format!("{stem}.md")), table.as_bytes())?;
    crate::report::write_atomic(
        &dir.join(format!("{stem}.json")),
        serde_json::to_string_pretty(data)?.as_bytes(),
    )
}
