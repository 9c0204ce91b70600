//! Figures, drawn with plotters into PNG with an embedded DejaVu font (no system font library).

use super::claim_report::{ClaimReport, Figure, Series};
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

/// measured / claimed against claimed, one colour per reading, with the line ratio = 1.
fn draw_ratios(report: &ClaimReport, path: &Path, title: &str) -> Result<()> {
    let root = BitMapBackend::new(path, (1000, 640)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_err)?;
    let pts: Vec<(f64, f64)> = report
        .instances
        .iter()
        .filter_map(|i| Some((i.claimed, i.ratio?)))
        .collect();
    let (xlo, xhi) = bounds(pts.iter().map(|p| p.0), true);
    let (ylo, yhi) = bounds(pts.iter().map(|p| p.1).chain([1.0, 0.0]), false);
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 24))
        .margin(16)
        .x_label_area_size(50)
        .y_label_area_size(70)
        .build_cartesian_2d((xlo..xhi).log_scale(), ylo..yhi)
        .map_err(plot_err)?;
    chart
        .configure_mesh()
        .x_desc("claimed side")
        .y_desc("measured / claimed")
        .label_style(("sans-serif", 16))
        .draw()
        .map_err(plot_err)?;
    chart
        .draw_series(DashedLineSeries::new(
            [(xlo, 1.0), (xhi, 1.0)],
            8,
            5,
            BLACK.stroke_width(2),
        ))
        .map_err(plot_err)?
        .label("measured = claimed")
        .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], BLACK));
    for (vi, reading) in report.readings.iter().enumerate() {
        let color = PALETTE[vi % PALETTE.len()];
        let data: Vec<(f64, f64)> = report
            .instances_of(&reading.name)
            .filter(|i| i.claimed > 0.0)
            .filter_map(|i| Some((i.claimed, i.ratio?)))
            .collect();
        if data.is_empty() {
            continue;
        }
        let role = reading.role.label();
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

/// Curves with dashed guides and shaded bands: log x (linear when an abscissa is 0 or below);
/// log y when the data span a decade or more, else linear y (a log axis over a narrow range
/// gets no tick labels).
fn draw_curves(
    series: &[Series],
    x_label: &str,
    y_label: &str,
    path: &Path,
    title: &str,
) -> Result<()> {
    let root = BitMapBackend::new(path, (1000, 640)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_err)?;
    let linear_x = series.iter().flat_map(|s| s.x.iter()).any(|&x| x <= 0.0);
    let (xlo, xhi) = if linear_x {
        let xs = || series.iter().flat_map(|s| s.x.iter().copied());
        (
            xs().fold(f64::INFINITY, f64::min),
            xs().fold(f64::NEG_INFINITY, f64::max),
        )
    } else {
        bounds(series.iter().flat_map(|s| s.x.iter().copied()), true)
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
    let log_fmt = |v: &f64| format!("{v:.0e}");
    let lin_fmt = |v: &f64| format!("{v:.4}");
    let x_fmt: &dyn Fn(&f64) -> String = if linear_x {
        &|v| format!("{v:.2}")
    } else {
        &log_fmt
    };
    if yhi / ylo >= 10.0 {
        if linear_x {
            finish!(
                builder.build_cartesian_2d(xlo..xhi, (ylo..yhi).log_scale()),
                &log_fmt,
                x_fmt,
                (ylo, yhi)
            );
        } else {
            finish!(
                builder.build_cartesian_2d((xlo..xhi).log_scale(), (ylo..yhi).log_scale()),
                &log_fmt,
                x_fmt,
                (ylo, yhi)
            );
        }
    } else {
        let (ylo, yhi) = bounds(data_y(), false);
        if linear_x {
            finish!(
                builder.build_cartesian_2d(xlo..xhi, ylo..yhi),
                &lin_fmt,
                x_fmt,
                (ylo, yhi)
            );
        } else {
            finish!(
                builder.build_cartesian_2d((xlo..xhi).log_scale(), ylo..yhi),
                &lin_fmt,
                x_fmt,
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
        .position(SeriesLabelPosition::LowerRight)
        .draw()
        .map_err(plot_err)
}
