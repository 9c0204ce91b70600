//! The tightness report's data: per bound, the typical ratio (the claim's sampled grid), the
//! worst ratio a search found (with its instance), the sharp constant where it is proven or
//! attained, and the slack. Written by the `tightness` command (`src/tightness/`), read by the
//! main job's `REPORT.md` and README.

use serde::{Deserialize, Serialize};

/// How the sharp constant of a bound is known.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Sharpness {
    /// A closed-form instance attains the constant and a proof shows nothing exceeds it.
    Proven,
    /// A closed-form instance attains it; no proof that nothing exceeds it (a lower bound on the
    /// sharp constant; the search found nothing larger).
    Attained,
    /// Only the search's worst case is known.
    Searched,
}

impl Sharpness {
    pub fn label(self) -> &'static str {
        match self {
            Sharpness::Proven => "proven",
            Sharpness::Attained => "attained, not proven maximal",
            Sharpness::Searched => "search only",
        }
    }
}

/// One searched bound: a claim's inequality on one assumption class.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TightnessRow {
    /// The claim's id (`thm-3.1-cos`).
    pub claim: String,
    /// The inequality and the class searched (`K = 3, 2-D quadratics, spectra in [0.1, 1]`).
    pub problem: String,
    /// Median measured / claimed over the claim's sampled grid (its report), for a bound.
    pub typical: Option<f64>,
    /// The largest measured / claimed the search found.
    pub worst_found: f64,
    /// Whether the worst found is a counterexample (above 1 beyond rounding).
    pub violated: bool,
    /// The sharp constant: the supremum of measured / claimed over the class.
    pub sharp: f64,
    pub sharpness: Sharpness,
    /// Where the sharp constant is attained, in words.
    pub attained_at: String,
    /// The paper's constant over the sharp one (`1 / sharp`): how far the bound could shrink
    /// (NaN, written `null`, for a measured constant with no bound claimed).
    #[serde(deserialize_with = "nan_if_null")]
    pub slack: f64,
    /// The closed-form instance's own ratio through the claim's check (None without one).
    pub closed_form_ratio: Option<f64>,
    /// Search budget: Nelder-Mead starts, and evaluations of the claim's check in all.
    pub starts: usize,
    pub evaluations: usize,
    /// The saved worst instance (relative to the report folder) and its ratio re-checked from
    /// the file.
    pub instance_file: String,
    pub rechecked: f64,
}

/// Where the tightness rows are stored under a report folder.
pub const SUMMARY: &str = "tightness/summary.json";

/// The tightness rows stored under `dir` (none when the `tightness` command has not run there).
pub fn load(dir: &std::path::Path) -> crate::error::Result<Vec<TightnessRow>> {
    let path = dir.join(SUMMARY);
    if !path.exists() {
        return Ok(Vec::new());
    }
    let text = crate::fsio::read_to_string(&path)?;
    serde_json::from_str(&text)
        .map_err(|e| crate::error::Error::Data(format!("{}: {e}", path.display())))
}

fn nan_if_null<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

fn num(v: f64) -> String {
    if v.is_nan() {
        "-".into()
    } else if v == 0.0 {
        "0".into()
    } else if (1e-3..1e4).contains(&v.abs()) {
        format!("{v:.4}")
    } else {
        format!("{v:.3e}")
    }
}

/// The tightness table: one row per searched bound, with links under `prefix`.
pub fn table(rows: &[TightnessRow], prefix: &str) -> String {
    let mut s = String::from("| claim | bound and class searched | typical (grid median) | worst found (search) | sharp constant | how known | slack (paper / sharp) | attained at | search | worst instance |\n|---|---|---|---|---|---|---|---|---|---|\n");
    for r in rows {
        let worst = if r.violated {
            format!("**{} (violated)**", num(r.worst_found))
        } else {
            num(r.worst_found)
        };
        s.push_str(&format!(
            "| [{}]({prefix}REPORT.md#{}) | {} | {} | {} | {} | {} | {} | {} | {} starts, {} evaluations | [json]({prefix}{}) (re-checked: {}) |\n",
            r.claim,
            r.claim,
            r.problem,
            r.typical.map_or("-".into(), num),
            worst,
            num(r.sharp),
            r.sharpness.label(),
            num(r.slack),
            r.attained_at.replace('|', "\\|"),
            r.starts,
            r.evaluations,
            r.instance_file,
            num(r.rechecked),
        ));
    }
    s
}
