//! Figures, drawn with plotters into PNG with an embedded DejaVu font (no system font library).

use super::claim_report::{ClaimReport, EffectPanel, Figure, Series};
use crate::error::{Error, Result};
use crate::fsio::write_with;
use plotters::coord::ranged1d::Ranged;
use plotters::prelude::*;
use std::path::Path;
use std::sync::Once;

static FONTS: Once = Once::new();

/// Registers the DejaVu Sans font shipped by the `dejavu` crate under the name `sans-serif`.
pub fn register_fonts() {
    FONTS.call_once(|| {
        // The font bytes are compiled in, so failure would be a packaging bug.
        plotters::style::register_font("sans-serif", FontStyle::Normal, dejavu::sans::regular())
            .unwrap_or_else(|_| panic!("the bundled DejaVu Sans font failed to parse"));
    });
}

fn plot_err<E: std::fmt::Display>(e: E) -> Error {
    Error::Plot(e.to_string())
}

const PALETTE: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(255, 127, 14),
    RGBColor(23, 190, 207),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
];

/// Draws the report's figure to `path` (PNG), atomically ([`write_with`]: synced, renamed, the
/// temporary file removed on failure).
pub fn draw_figure(report: &ClaimReport, path: &Path) -> Result<()> {
    register_fonts();
    let title = format!("{}: {}", report.id, report.verdict.label());
    // The encoder picks the format from the extension, so the temporary name keeps `.png`.
    write_with(path, true, |tmp| match &report.figure {
        Figure::MeasuredVsClaimed => draw_ratios(report, tmp, &title),
        Figure::Curves {
            x_label,
            y_label,
            series,
            ..
        } => draw_curves(series, x_label, y_label, tmp, &title),
        Figure::Effects {
            x_label,
            y_label,
            log_x,
            panels,
        } => draw_effects(panels, x_label, y_label, *log_x, tmp, &title),
    })
    .map_err(|e| naming(path, e))
}

/// A drawing error with the figure's path in it (the plotting library's own errors name none).
fn naming(path: &Path, e: Error) -> Error {
    match e {
        Error::Plot(m) => Error::Plot(format!("{}: {m}", path.display())),
        other => other,
    }
}

/// A figure of curves that is not a claim's main figure (an experiment's second figure), drawn
/// like [`Figure::Curves`] and written the same way (a temporary file, then a rename).
pub fn draw_curve_figure(
    series: &[Series],
    x_label: &str,
    y_label: &str,
    title: &str,
    path: &Path,
) -> Result<()> {
    register_fonts();
    write_with(path, true, |tmp| {
        draw_curves(series, x_label, y_label, tmp, title)
    })
    .map_err(|e| naming(path, e))
}

fn bounds(values: impl Iterator<Item = f64>, positive: bool) -> (f64, f64) {
    let (lo, hi) = values
        .filter(|v| v.is_finite() && (!positive || *v > 0.0))
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    if !lo.is_finite() {
        return (1e-3, 1.0);
    }
    if positive {
        let (lo, hi) = if lo == hi {
            (lo / 2.0, hi * 2.0)
        } else {
            (lo, hi)
        };
        (lo / 1.5, hi * 1.5)
    } else {
        let pad = ((hi - lo) * 0.08).max(0.05);
        (lo - pad, hi + pad)
    }
}

/// A tick label people can read: `0`, up to four significant digits between 1e-3 and 1e4, and
/// `1e-11` or `2.5e14` (no trailing zeros, no float noise like `1.0000000000000001e-11`)
/// outside.
pub fn tick(v: f64) -> String {
    if v == 0.0 {
        return "0".into();
    }
    let a = v.abs();
    if (1e-3..1e4).contains(&a) {
        let s = format!("{v:.4}");
        let s = s.trim_end_matches('0').trim_end_matches('.');
        return s.to_string();
    }
    let e = a.log10().floor() as i32;
    let m = v / 10f64.powi(e);
    let m = format!("{m:.2}");
    let m = m.trim_end_matches('0').trim_end_matches('.');
    if m == "1" {
        format!("1e{e}")
    } else if m == "-1" {
        format!("-1e{e}")
    } else {
        format!("{m}e{e}")
    }
}

/// The label of a position `v` on an axis drawn as log10: `tick(10^v)` where `10^v` is 1, 2, 3
/// or 5 times a power of ten (within 2%), printed as that round value; empty elsewhere, so an
/// axis given many candidate positions shows only round labels.
fn log_label(v: f64) -> String {
    let x = 10f64.powf(v);
    let decade = 10f64.powf(v.floor());
    [1.0, 2.0, 3.0, 5.0, 10.0]
        .iter()
        .find(|m| (x / (*m * decade) - 1.0).abs() < 0.02)
        .map_or(String::new(), |m| tick(m * decade))
}

/// measured / claimed against claimed, one colour per reading, with the line ratio = 1. The
/// ratio axis is logarithmic (drawn as log10 with labels `1e-11`, `1e3`) when the positive
/// ratios span more than two decades, else linear; on a log axis a ratio of 0 or below cannot be
/// drawn, and the reading's legend entry says how many were left out.
fn draw_ratios(report: &ClaimReport, path: &Path, title: &str) -> Result<()> {
    let root = BitMapBackend::new(path, (1000, 640)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_err)?;
    // (position in the report, claimed, ratio) of every drawable instance.
    let pts: Vec<(usize, f64, f64)> = report
        .instances
        .iter()
        .enumerate()
        .filter(|(_, i)| i.claimed > 0.0)
        .filter_map(|(k, i)| Some((k, i.claimed, i.ratio?)))
        .collect();
    let (rmin, rmax) = pts
        .iter()
        .filter(|p| p.2 > 0.0)
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), p| {
            (lo.min(p.2), hi.max(p.2))
        });
    let log_y = rmin > 0.0 && rmax / rmin > 100.0;
    let ty = move |r: f64| if log_y { r.log10() } else { r };
    // When every claimed side is the same (a tolerance), the instances are spread along x by
    // their position instead of piling up on one abscissa; otherwise x is log10(claimed).
    let (cmin, cmax) = pts
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), p| {
            (lo.min(p.1), hi.max(p.1))
        });
    let by_position = cmax <= cmin * 1.01;
    let tx = move |k: usize, claimed: f64| {
        if by_position {
            k as f64
        } else {
            claimed.log10()
        }
    };
    let (xlo, xhi) = if by_position {
        (-1.0, report.instances.len() as f64)
    } else {
        let (lo, hi) = bounds(pts.iter().map(|p| p.1), true);
        (lo.log10(), hi.log10())
    };
    let (ylo, yhi) = if log_y {
        let (lo, hi) = (rmin.min(1.0).log10(), rmax.max(1.0).log10());
        let pad = ((hi - lo) * 0.05).max(0.1);
        (lo - pad, hi + pad)
    } else {
        bounds(pts.iter().map(|p| p.2).chain([1.0, 0.0]), false)
    };
    // The legend's band above the data.
    let yhi = yhi + 0.4 * (yhi - ylo);
    let yspan = yhi - ylo;
    let y_tick = move |v: &f64| {
        if log_y {
            log_label(*v)
        } else {
            // Tick positions are sums of steps: a zero comes out as 1e-16 or so.
            tick(if v.abs() < 1e-9 * yspan { 0.0 } else { *v })
        }
    };
    let x_tick = move |v: &f64| {
        if by_position {
            format!("{v:.0}")
        } else {
            log_label(*v)
        }
    };
    let x_desc = if by_position {
        format!("instance (every claimed side is {})", tick(cmin))
    } else {
        "claimed side (log scale)".to_string()
    };
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 24))
        .margin(16)
        .x_label_area_size(50)
        .y_label_area_size(80)
        .build_cartesian_2d(xlo..xhi, ylo..yhi)
        .map_err(plot_err)?;
    let mut mesh = chart.configure_mesh();
    if !by_position {
        mesh.disable_x_mesh();
    }
    if log_y {
        mesh.disable_y_mesh();
    }
    mesh.x_desc(x_desc)
        .x_labels(if by_position { 10 } else { 40 })
        .y_labels(if log_y { 40 } else { 10 })
        .y_desc(if log_y {
            "measured / claimed (log scale)"
        } else {
            "measured / claimed"
        })
        .x_label_formatter(&x_tick)
        .y_label_formatter(&y_tick)
        .label_style(("sans-serif", 16))
        .draw()
        .map_err(plot_err)?;
    chart
        .draw_series(DashedLineSeries::new(
            [(xlo, ty(1.0)), (xhi, ty(1.0))],
            8,
            5,
            BLACK.stroke_width(2),
        ))
        .map_err(plot_err)?
        .label("measured = claimed")
        .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], BLACK));
    for (vi, reading) in report.readings.iter().enumerate() {
        let color = PALETTE[vi % PALETTE.len()];
        let all: Vec<&(usize, f64, f64)> = pts
            .iter()
            .filter(|p| report.instances[p.0].reading == reading.name)
            .collect();
        let data: Vec<(f64, f64)> = all
            .iter()
            .filter(|p| !log_y || p.2 > 0.0)
            .map(|&&(k, claimed, r)| (tx(k, claimed), ty(r)))
            .collect();
        if data.is_empty() {
            continue;
        }
        let left_out = all.len() - data.len();
        let role = if left_out > 0 {
            format!(
                "{}; {left_out} at ratio <= 0 not drawn",
                reading.role.label()
            )
        } else {
            reading.role.label().to_string()
        };
        chart
            .draw_series(
                data.iter()
                    .map(|&(x, y)| Circle::new((x, y), 4, color.mix(0.75).filled())),
            )
            .map_err(plot_err)?
            .label(format!("{} ({role})", reading.name))
            .legend(move |(x, y)| Circle::new((x + 10, y), 5, color.filled()));
    }
    chart
        .configure_series_labels()
        .label_font(("sans-serif", 15))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperRight)
        .draw()
        .map_err(plot_err)?;
    root.present().map_err(plot_err)
}

/// Curves with dashed guides and shaded bands: log x when the abscissae span a decade or more
/// (linear when narrower, or when one is 0 or below);
/// the legend in a band of its own above the data;
/// log y when the data span a decade or more, else linear y (a log axis over a narrow range
/// gets no tick labels).
fn draw_curves(
    series: &[Series],
    x_label: &str,
    y_label: &str,
    path: &Path,
    title: &str,
) -> Result<()> {
    let data_series = series.iter().filter(|s| !s.guide).count();
    if data_series > MAX_SERIES_PER_PANEL {
        return Err(Error::Plot(format!(
            "{data_series} curves in one panel; at most {MAX_SERIES_PER_PANEL} can be told apart"
        )));
    }
    let root = BitMapBackend::new(path, (1000, 640)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_err)?;
    // Log x, like log y, only over a decade or more: within one, plotters' log axis labels at
    // most one power of ten (training steps 200 to 1200 had the single label 1000).
    let xs = || series.iter().flat_map(|s| s.x.iter().copied());
    let (xmin, xmax) = (
        xs().fold(f64::INFINITY, f64::min),
        xs().fold(f64::NEG_INFINITY, f64::max),
    );
    let linear_x = xmin <= 0.0 || xmax / xmin < 10.0;
    let (xlo, xhi) = if linear_x {
        (xmin, xmax)
    } else {
        bounds(xs(), true)
    };
    let data_y = || {
        series.iter().filter(|s| !s.guide).flat_map(|s| {
            s.y.iter().map(|y| y.abs()).chain(
                s.band
                    .iter()
                    .flat_map(|(lo, hi)| lo.iter().chain(hi))
                    .copied()
                    .filter(|y| *y > 0.0),
            )
        })
    };
    let (ylo, yhi) = bounds(data_y(), true);
    // The legend gets a band of its own above the data: the y range grows by 45% (in log units
    // on a log axis).
    let yhi_log = yhi * (yhi / ylo).powf(0.45);
    let mut builder = ChartBuilder::on(&root);
    builder
        .caption(title, ("sans-serif", 24))
        .margin(16)
        .x_label_area_size(50)
        .y_label_area_size(80);
    macro_rules! finish {
        ($chart:expr, $yfmt:expr, $xfmt:expr, $yrange:expr) => {{
            let mut chart = $chart.map_err(plot_err)?;
            chart
                .configure_mesh()
                .x_desc(x_label)
                .y_desc(y_label)
                .y_label_formatter($yfmt)
                .x_label_formatter($xfmt)
                .label_style(("sans-serif", 16))
                .draw()
                .map_err(plot_err)?;
            plot_series(&mut chart, series, $yrange, linear_x)?;
        }};
    }
    let fmt = |v: &f64| tick(*v);
    if yhi / ylo >= 10.0 {
        let yhi = yhi_log;
        if linear_x {
            finish!(
                builder.build_cartesian_2d(xlo..xhi, (ylo..yhi).log_scale()),
                &fmt,
                &fmt,
                (ylo, yhi)
            );
        } else {
            finish!(
                builder.build_cartesian_2d((xlo..xhi).log_scale(), (ylo..yhi).log_scale()),
                &fmt,
                &fmt,
                (ylo, yhi)
            );
        }
    } else {
        let (ylo, yhi) = bounds(data_y(), false);
        let yhi = yhi + 0.45 * (yhi - ylo);
        if linear_x {
            finish!(
                builder.build_cartesian_2d(xlo..xhi, ylo..yhi),
                &fmt,
                &fmt,
                (ylo, yhi)
            );
        } else {
            finish!(
                builder.build_cartesian_2d((xlo..xhi).log_scale(), ylo..yhi),
                &fmt,
                &fmt,
                (ylo, yhi)
            );
        }
    }
    root.present().map_err(plot_err)
}

fn plot_series<'a, DB, X, Y>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<X, Y>>,
    series: &[Series],
    (ylo, yhi): (f64, f64),
    linear_x: bool,
) -> Result<()>
where
    DB: DrawingBackend + 'a,
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64>,
{
    let mut data_index = 0;
    for s in series {
        let pts: Vec<(f64, f64)> =
            s.x.iter()
                .zip(&s.y)
                .map(|(&x, &y)| (x, y.abs()))
                .filter(|&(x, y)| (linear_x || x > 0.0) && y >= ylo && y <= yhi)
                .collect();
        if pts.is_empty() {
            continue;
        }
        if s.guide {
            chart
                .draw_series(DashedLineSeries::new(
                    pts,
                    6,
                    5,
                    BLACK.mix(0.6).stroke_width(1),
                ))
                .map_err(plot_err)?
                .label(s.label.clone())
                .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], BLACK.mix(0.6)));
        } else {
            let color = PALETTE[data_index % PALETTE.len()];
            data_index += 1;
            if let Some((lo, hi)) = &s.band {
                // The interval as one closed polygon: along the upper edge, back along the lower.
                let clamp = |y: f64| y.clamp(ylo, yhi);
                let mut outline: Vec<(f64, f64)> =
                    s.x.iter().zip(hi).map(|(&x, &y)| (x, clamp(y))).collect();
                outline.extend(s.x.iter().zip(lo).rev().map(|(&x, &y)| (x, clamp(y))));
                chart
                    .draw_series(std::iter::once(Polygon::new(
                        outline,
                        color.mix(0.18).filled(),
                    )))
                    .map_err(plot_err)?;
            }
            chart
                .draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))
                .map_err(plot_err)?
                .label(s.label.clone())
                .legend(move |(x, y)| {
                    PathElement::new([(x, y), (x + 20, y)], color.stroke_width(2))
                });
            chart
                .draw_series(pts.iter().map(|&p| Circle::new(p, 3, color.filled())))
                .map_err(plot_err)?;
        }
    }
    chart
        .configure_series_labels()
        .label_font(("sans-serif", 14))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperRight)
        .draw()
        .map_err(plot_err)
}

/// Series per panel: more would need more colours than a reader can tell apart.
pub const MAX_SERIES_PER_PANEL: usize = PALETTE.len();

/// Paired differences with their intervals: one panel per group (side by side, two rows past
/// three panels), each point a dot on a vertical interval, the series of a panel joined by
/// thin lines, dashed reference lines, and the legend above the data (the y range leaves it a
/// band of its own).
fn draw_effects(
    panels: &[EffectPanel],
    x_label: &str,
    y_label: &str,
    log_x: bool,
    path: &Path,
    title: &str,
) -> Result<()> {
    if let Some(p) = panels
        .iter()
        .find(|p| p.series.len() > MAX_SERIES_PER_PANEL)
    {
        return Err(Error::Plot(format!(
            "panel `{}` has {} series, at most {MAX_SERIES_PER_PANEL} can be told apart",
            p.title,
            p.series.len()
        )));
    }
    let n = panels.len().max(1);
    let (rows, cols) = if n <= 3 { (1, n) } else { (2, n.div_ceil(2)) };
    let root = BitMapBackend::new(path, (520 * cols as u32 + 40, 560 * rows as u32 + 60))
        .into_drawing_area();
    root.fill(&WHITE).map_err(plot_err)?;
    let root = root.titled(title, ("sans-serif", 24)).map_err(plot_err)?;
    let tx = |x: f64| if log_x { x.log10() } else { x };
    for (panel, area) in panels.iter().zip(root.split_evenly((rows, cols))) {
        let xs: Vec<f64> = panel
            .series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| tx(p.0)))
            .filter(|x| x.is_finite())
            .collect();
        let (xmin, xmax) = xs
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &x| {
                (lo.min(x), hi.max(x))
            });
        let (xmin, xmax) = if xmin.is_finite() {
            (xmin, xmax)
        } else {
            (0.0, 1.0)
        };
        let xpad = ((xmax - xmin) * 0.08).max(if log_x { 0.1 } else { 0.5 });
        let ys = panel
            .series
            .iter()
            .flat_map(|s| s.points.iter().flat_map(|p| [p.2, p.3]))
            .chain(panel.references.iter().map(|r| r.1))
            .filter(|y| y.is_finite());
        let (ymin, ymax) = ys.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), y| {
            (lo.min(y), hi.max(y))
        });
        let (ymin, ymax) = if ymin.is_finite() {
            (ymin, ymax)
        } else {
            (-1.0, 1.0)
        };
        let span = (ymax - ymin).max(1e-12);
        // The legend's band: a third of the height above the data.
        let (ylo, yhi) = (ymin - 0.06 * span, ymax + 0.5 * span);
        // On a log axis (drawn as log10) only round values get a label: 1, 2, 3 or 5 times a
        // power of ten.
        let x_tick = move |v: &f64| if log_x { log_label(*v) } else { tick(*v) };
        // Tick positions are sums of steps: a zero comes out as 1e-16 or so.
        let y_tick = move |v: &f64| tick(if v.abs() < 1e-9 * span { 0.0 } else { *v });
        let mut chart = ChartBuilder::on(&area)
            .caption(&panel.title, ("sans-serif", 18))
            .margin(14)
            .x_label_area_size(46)
            .y_label_area_size(76)
            .build_cartesian_2d((xmin - xpad)..(xmax + xpad), ylo..yhi)
            .map_err(plot_err)?;
        let mut mesh = chart.configure_mesh();
        if log_x {
            // Forty candidate positions carry the round labels; their grid lines would be noise.
            mesh.disable_x_mesh();
        }
        mesh.x_desc(if log_x {
            format!("{x_label} (log scale)")
        } else {
            x_label.to_string()
        })
        .y_desc(y_label)
        .x_label_formatter(&x_tick)
        .y_label_formatter(&y_tick)
        .x_labels(if log_x { 40 } else { 6 })
        .max_light_lines(1)
        .label_style(("sans-serif", 14))
        .draw()
        .map_err(plot_err)?;
        for (label, y) in &panel.references {
            let line = chart
                .draw_series(DashedLineSeries::new(
                    [(xmin - xpad, *y), (xmax + xpad, *y)],
                    6,
                    5,
                    BLACK.mix(0.6).stroke_width(1),
                ))
                .map_err(plot_err)?;
            // A second line of one meaning (the other side of a margin) has no legend entry.
            if !label.is_empty() {
                line.label(label.clone())
                    .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], BLACK.mix(0.6)));
            }
        }
        // Points of different series at one abscissa are drawn side by side.
        let nseries = panel.series.len().max(1) as f64;
        let dodge = if xs.len() > 1 {
            (xmax - xmin + 2.0 * xpad) * 0.008
        } else {
            0.0
        };
        for (k, s) in panel.series.iter().enumerate() {
            let color = PALETTE[k % PALETTE.len()];
            let shift = (k as f64 - (nseries - 1.0) / 2.0) * dodge;
            let pts: Vec<(f64, f64, f64, f64)> = s
                .points
                .iter()
                .map(|&(x, m, lo, hi)| (tx(x) + shift, m, lo, hi))
                .filter(|p| p.0.is_finite() && p.1.is_finite())
                .collect();
            chart
                .draw_series(LineSeries::new(
                    pts.iter().map(|p| (p.0, p.1)),
                    color.mix(0.5).stroke_width(1),
                ))
                .map_err(plot_err)?;
            chart
                .draw_series(pts.iter().map(|&(x, _, lo, hi)| {
                    PathElement::new([(x, lo), (x, hi)], color.stroke_width(2))
                }))
                .map_err(plot_err)?;
            chart
                .draw_series(
                    pts.iter()
                        .map(|&(x, m, _, _)| Circle::new((x, m), 4, color.filled())),
                )
                .map_err(plot_err)?
                .label(s.label.clone())
                .legend(move |(x, y)| Circle::new((x + 10, y), 5, color.filled()));
        }
        chart
            .configure_series_labels()
            .label_font(("sans-serif", 13))
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK)
            .position(SeriesLabelPosition::UpperLeft)
            .draw()
            .map_err(plot_err)?;
    }
    root.present().map_err(plot_err)
}

#[cfg(test)]
mod tests {
    use super::tick;

    /// Tick labels carry no float noise and no trailing zeros.
    #[test]
    fn ticks_are_readable() {
        for (v, s) in [
            (0.0, "0"),
            (1e-11, "1e-11"),
            (1.0000000000000001e-11, "1e-11"),
            (2.5e14, "2.5e14"),
            (-3e-5, "-3e-5"),
            (0.5, "0.5"),
            (1234.5, "1234.5"),
            (0.001, "0.001"),
            (1.0, "1"),
        ] {
            assert_eq!(tick(v), s, "{v}");
        }
    }
}
