//! Worst-case search: how tight each bound is, found by maximizing measured / claimed over the
//! claim's own assumption class, not by sampling it.
//!
//! A [`Problem`] maps an unconstrained vector `z` to an instance of the class (a
//! [`QuadInstance`]: quadratic tasks, a point, a step size) and scores it with the claim's own
//! `check`. [`search`] runs argmin's Nelder-Mead from several seeded starts and keeps the best;
//! every evaluation goes through the same `ratio` a saved instance is re-checked with
//! ([`recheck`]). Problems with a known worst case also construct it in closed form
//! ([`Problem::closed_form`]), checked by the same `ratio`.
//!
//! Bounded quantities are mapped with `lo + (hi - lo) (1 + sin z) / 2`, which reaches both ends
//! at finite `z` (worst cases sit on the boundary of a spectrum interval more often than not).

pub mod problems;
pub mod search;

pub use search::{
    bounded, recheck, row, search, spd2, Budget, ClosedForm, Problem, QuadInstance, WorstCase,
    ROUNDING,
};

use crate::error::{Error, Result};
use crate::report::tightness::TightnessRow;

/// The problems whose key starts with one of `only` (all when empty); an error names a prefix
/// that selects none.
pub fn select(only: &[&str]) -> Result<Vec<Box<dyn Problem>>> {
    let all = problems::all();
    for o in only {
        if !all.iter().any(|p| p.key().starts_with(o)) {
            return Err(Error::InvalidArgument {
                name: "only",
                reason: format!(
                    "no problem's key starts with `{o}` (keys: {})",
                    all.iter().map(|p| p.key()).collect::<Vec<_>>().join(", ")
                ),
            });
        }
    }
    Ok(all
        .into_iter()
        .filter(|p| only.is_empty() || only.iter().any(|o| p.key().starts_with(o)))
        .collect())
}

/// Searches the selected problems and writes their worst instances
/// (`<staged>/tightness/<key>.json`), the table's rows (`<staged>/tightness/summary.json`, rows
/// of problems not searched now kept from `<out>`) and Thm 8.1's figure
/// (`<staged>/thm-8.1-sharp.png`); returns the rows. `reports` give each claim's typical ratio.
pub fn publish(
    staged: &std::path::Path,
    out: &std::path::Path,
    reports: &[crate::report::ClaimReport],
    budget: Budget,
    seed: u64,
    only: &[&str],
) -> Result<Vec<TightnessRow>> {
    let all_problems = problems::all();
    let selected = select(only)?;
    // The median ratio of the claim's report: over one reading when the problem names one,
    // else the report's own (its deciding reading's).
    let typical = |p: &dyn Problem| -> Option<f64> {
        let r = reports.iter().find(|r| r.id == p.claim())?;
        match p.typical_reading() {
            Some(reading) => {
                let ratios: Vec<f64> = r.instances_of(reading).filter_map(|i| i.ratio).collect();
                crate::stats::min_median_max(&ratios).map(|t| t.1)
            }
            None => r.tightness.as_ref().map(|t| t.median),
        }
    };
    let bar = indicatif::ProgressBar::new(selected.len() as u64);
    let found = crate::claims::common::par_map(&selected, &bar, |p| {
        let started = std::time::Instant::now();
        let worst = search(p.as_ref(), budget, seed)?;
        Ok((worst, started.elapsed().as_secs_f64()))
    })?;
    bar.finish_and_clear();
    let mut rows: Vec<TightnessRow> = crate::report::tightness::load(out)?;
    for (p, (worst, seconds)) in selected.iter().zip(found) {
        let file = format!("tightness/{}.json", p.key());
        let mut text = serde_json::to_string_pretty(&worst)?;
        text.push('\n');
        let path = staged.join(&file);
        crate::fsio::write_atomic(&path, text.as_bytes())?;
        // Re-checked from the file as written, through the claim's own check.
        let rechecked = recheck(p.as_ref(), &crate::fsio::read_to_string(&path)?)?;
        let row = row(
            p.as_ref(),
            &worst,
            p.is_bound().then(|| typical(p.as_ref())).flatten(),
            &file,
            rechecked,
        )?;
        eprintln!(
            "{:>28}: worst found {:.6} (sharp {:.6}, {}), {:.0} s",
            p.key(),
            row.worst_found,
            row.sharp,
            row.sharpness.label(),
            seconds
        );
        rows.retain(|r| r.instance_file != row.instance_file);
        rows.push(row);
    }
    // Rows in the problems' order; rows of problems no longer defined are dropped.
    let order: Vec<String> = all_problems
        .iter()
        .map(|p| format!("tightness/{}.json", p.key()))
        .collect();
    rows.retain(|r| order.contains(&r.instance_file));
    rows.sort_by_key(|r| order.iter().position(|o| *o == r.instance_file));
    let mut text = serde_json::to_string_pretty(&rows)?;
    text.push('\n');
    crate::fsio::write_atomic(
        &staged.join(crate::report::tightness::SUMMARY),
        text.as_bytes(),
    )?;
    draw_thm81(&rows, &staged.join("thm-8.1-sharp.png"))?;
    Ok(rows)
}

/// Thm 8.1's ratio against gamma: the tight rate over Eq. 15's factor, to the power T, for
/// T = 1, 2, 30 (closed form), and the search's worst at the searched gammas.
fn draw_thm81(rows: &[TightnessRow], path: &std::path::Path) -> Result<()> {
    let (mu, l) = (0.1, 1.0);
    let shares: Vec<f64> = (1..=100).map(|i| i as f64 / 100.0).collect();
    let mut series: Vec<crate::report::Series> = [1usize, 2, 30]
        .iter()
        .map(|&t| crate::report::Series {
            label: format!("sharp rate / Eq. 15, T = {t} (closed form)"),
            x: shares.clone(),
            y: shares
                .iter()
                .map(|s| {
                    let g = s * 2.0 / (l + mu);
                    crate::claims::thm_8_1::sharp_rate(mu, l, g, t)
                        / crate::claims::thm_8_1::bound(mu, l, g, t, 1.0)
                })
                .collect(),
            guide: false,
            band: None,
        })
        .collect();
    for t in [1usize, 2] {
        let pts: Vec<(f64, f64)> = rows
            .iter()
            .filter(|r| {
                r.instance_file
                    .starts_with(&format!("tightness/thm-8.1-t{t}-"))
            })
            .filter_map(|r| {
                let share: f64 = r
                    .instance_file
                    .rsplit("share")
                    .next()?
                    .trim_end_matches(".json")
                    .parse()
                    .ok()?;
                Some((share, r.worst_found))
            })
            .collect();
        if !pts.is_empty() {
            series.push(crate::report::Series {
                label: format!("worst found by the search, T = {t}"),
                x: pts.iter().map(|p| p.0).collect(),
                y: pts.iter().map(|p| p.1).collect(),
                guide: false,
                band: None,
            });
        }
    }
    crate::report::draw_curve_figure(
        &series,
        "gamma / (2/(L+mu))  (mu = 0.1, L = 1)",
        "worst E||x_T - x*||^2 / Eq. 15's bound",
        "thm-8.1: where the bound is attained (only at gamma = 2/(L+mu))",
        path,
    )
}
