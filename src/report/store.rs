//! Reports on disk: `reports/<id>.json` per claim, read back in a caller's order, and the
//! README's verdict table.

use super::claim_report::ClaimReport;
use super::markdown::verdict_table;
use crate::error::{Error, Result};
use crate::fsio::{read_to_string, write_atomic};
use std::path::Path;

/// Every report in `dir/reports/`: those whose id is in `order` in that order (the caller's
/// registry), then any other report (an experiment's) sorted by id. A file that is not a report
/// is an error naming it.
pub fn load_all(dir: &Path, order: &[&str]) -> Result<Vec<ClaimReport>> {
    load_layered(&[dir], order)
}

/// [`load_all`] over several folders: a report in an earlier folder replaces one with the same
/// id in a later folder (a run's staged reports over those already published).
pub fn load_layered(dirs: &[&Path], order: &[&str]) -> Result<Vec<ClaimReport>> {
    let mut found: Vec<ClaimReport> = Vec::new();
    for dir in dirs {
        let reports_dir = dir.join("reports");
        let Ok(entries) = std::fs::read_dir(&reports_dir) else {
            continue;
        };
        let mut paths: Vec<_> = entries.flatten().map(|e| e.path()).collect();
        paths.sort();
        for path in paths {
            if path.extension().and_then(|x| x.to_str()) != Some("json") {
                continue;
            }
            let text = read_to_string(&path)?;
            // The verdict is re-derived from the instances, so a report written by an older
            // version reads under the current rules.
            let mut report: ClaimReport = serde_json::from_str(&text).map_err(|e| {
                Error::Data(format!("{}: not a nexus-lab report ({e})", path.display()))
            })?;
            report
                .derive()
                .map_err(|e| Error::Data(format!("{}: {e}", path.display())))?;
            if !found.iter().any(|r| r.id == report.id) {
                found.push(report);
            }
        }
    }
    found.sort_by_key(|r| {
        (
            order
                .iter()
                .position(|id| *id == r.id)
                .unwrap_or(usize::MAX),
            r.id.clone(),
        )
    });
    Ok(found)
}

/// Replaces the verdict table between the README's markers `<!-- verdicts:start -->` and
/// `<!-- verdicts:end -->`; a README without them is left alone.
pub fn update_readme(readme: &Path, reports: &[ClaimReport]) -> Result<()> {
    update_readme_into(readme, reports, readme)
}

/// [`update_readme`], writing the result to `dest` (a staged copy) instead of in place.
pub fn update_readme_into(readme: &Path, reports: &[ClaimReport], dest: &Path) -> Result<()> {
    const START: &str = "<!-- verdicts:start -->";
    const END: &str = "<!-- verdicts:end -->";
    let Ok(text) = std::fs::read_to_string(readme) else {
        return Ok(());
    };
    let (Some(a), Some(b)) = (text.find(START), text.find(END)) else {
        return Ok(());
    };
    if b < a {
        return Ok(());
    }
    let new = format!(
        "{}{START}\n{}{}",
        &text[..a],
        verdict_table(reports, "figures/"),
        &text[b..]
    );
    write_atomic(dest, new.as_bytes())
}

/// Writes a report as pretty JSON to `dir/reports/<id>.json`.
pub fn write_json(report: &ClaimReport, dir: &Path) -> Result<()> {
    let path = dir.join("reports").join(format!("{}.json", report.id));
    let mut text = serde_json::to_string_pretty(report)?;
    text.push('\n');
    write_atomic(&path, text.as_bytes())
}
