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
/// `<!-- verdicts:end -->`, and the tightness table between `<!-- tightness:start -->` and
/// `<!-- tightness:end -->`, writing the result to `dest` (a staged copy, or the README itself);
/// a README without the markers is left alone.
pub fn update_readme_into(
    readme: &Path,
    reports: &[ClaimReport],
    tightness: &[super::tightness::TightnessRow],
    dest: &Path,
) -> Result<()> {
    let Ok(text) = std::fs::read_to_string(readme) else {
        return Ok(());
    };
    let text = replace_block(&text, "verdicts", &verdict_table(reports, "figures/"));
    let text = replace_block(
        &text,
        "llama",
        &super::markdown::llama_table(reports, "figures/"),
    );
    let text = if tightness.is_empty() {
        text
    } else {
        replace_block(
            &text,
            "tightness",
            &super::tightness::table(tightness, "figures/"),
        )
    };
    write_atomic(dest, text.as_bytes())
}

/// `text` with the lines between `<!-- name:start -->` and `<!-- name:end -->` replaced by
/// `body` (unchanged when the markers are missing or out of order).
fn replace_block(text: &str, name: &str, body: &str) -> String {
    let (start, end) = (
        format!("<!-- {name}:start -->"),
        format!("<!-- {name}:end -->"),
    );
    match (text.find(&start), text.find(&end)) {
        (Some(a), Some(b)) if a < b => format!("{}{start}\n{body}{}", &text[..a], &text[b..]),
        _ => text.to_string(),
    }
}

/// Writes a report as pretty JSON to `dir/reports/<id>.json`.
pub fn write_json(report: &ClaimReport, dir: &Path) -> Result<()> {
    let path = dir.join("reports").join(format!("{}.json", report.id));
    let mut text = serde_json::to_string_pretty(report)?;
    text.push('\n');
    write_atomic(&path, text.as_bytes())
}
