//! Reports on disk: `reports/<id>.json` per claim, read back in a caller's order, and the
//! README's verdict table.

use super::claim_report::ClaimReport;
use super::markdown::verdict_table;
use crate::error::Result;
use crate::fsio::{read_to_string, write_atomic};
use std::path::Path;

/// Every report in `dir/reports/`: those whose id is in `order` in that order (the caller's
/// registry), then any other report (an experiment's) sorted by id.
pub fn load_all(dir: &Path, order: &[&str]) -> Result<Vec<ClaimReport>> {
    let reports_dir = dir.join("reports");
    let mut found: Vec<ClaimReport> = Vec::new();
    if let Ok(entries) = std::fs::read_dir(&reports_dir) {
        for e in entries.flatten() {
            let path = e.path();
            if path.extension().and_then(|x| x.to_str()) == Some("json") {
                let text = read_to_string(&path)?;
                // The verdict is re-derived from the instances, so a report written by an
                // older version reads under the current rules.
                let mut report: ClaimReport = serde_json::from_str(&text)?;
                report.derive()?;
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
    write_atomic(readme, new.as_bytes())
}

/// Writes a report as pretty JSON to `dir/reports/<id>.json`.
pub fn write_json(report: &ClaimReport, dir: &Path) -> Result<()> {
    let path = dir.join("reports").join(format!("{}.json", report.id));
    let mut text = serde_json::to_string_pretty(report)?;
    text.push('\n');
    write_atomic(&path, text.as_bytes())
}
