//! The soak phase's plot: an SVG of the daemon's memory, the bookkeeping tables and the ack
//! latency over the run, from its records.

use std::path::Path;

use anyhow::{Result, anyhow};
use plotters::prelude::*;

use crate::report::Record;

/// One line of a panel: its label, colour and (minute, value) points.
type Line = (&'static str, RGBColor, Vec<(f64, f64)>);

/// A line over the samples (`soak_sample`, at their time) or the minutes (`soak_minute`, at
/// each minute's middle).
fn line(
    records: &[Record],
    phase: &str,
    label: &'static str,
    colour: RGBColor,
    value: &dyn Fn(&Record) -> Option<f64>,
) -> Line {
    let at = |r: &Record| match phase {
        "soak_minute" => Some(r.detail["minute"].as_f64()? - 0.5),
        _ => Some(r.detail["t_s"].as_f64()? / 60.0),
    };
    let points = records
        .iter()
        .filter(|r| r.phase == phase)
        .filter_map(|r| Some((at(r)?, value(r)?)))
        .collect();
    (label, colour, points)
}

/// Writes the soak plot to `path`: four panels over the run's minutes.
pub fn soak(path: &Path, records: &[Record]) -> Result<()> {
    let field = |name: &'static str| move |r: &Record| r.detail[name].as_f64();
    let panels: Vec<(&str, &str, Vec<Line>)> = vec![
        (
            "daemon memory",
            "MiB",
            vec![
                line(records, "soak_sample", "RSS", RED, &|r| r.peak_rss_mib),
                line(
                    records,
                    "soak_sample",
                    "anonymous",
                    BLUE,
                    &field("rss_anon_mib"),
                ),
            ],
        ),
        (
            "rows kept (retention about 2 min)",
            "rows",
            vec![
                line(
                    records,
                    "soak_sample",
                    "handled_envelopes",
                    MAGENTA,
                    &field("handled_envelopes"),
                ),
                line(records, "soak_sample", "outbox", GREEN, &field("outbox")),
            ],
        ),
        (
            "work in flight",
            "rows",
            vec![
                line(
                    records,
                    "soak_sample",
                    "open offers",
                    BLUE,
                    &field("open_offers"),
                ),
                line(
                    records,
                    "soak_sample",
                    "outbox pending",
                    RED,
                    &field("outbox_pending"),
                ),
                line(
                    records,
                    "soak_sample",
                    "open requests",
                    GREEN,
                    &field("open_requests"),
                ),
            ],
        ),
        (
            "ack latency per minute",
            "ms",
            vec![
                line(records, "soak_minute", "p50", BLUE, &|r| r.p50_ms),
                line(records, "soak_minute", "p99", RED, &|r| r.p99_ms),
            ],
        ),
    ];
    let x_max = panels
        .iter()
        .flat_map(|(_, _, lines)| lines.iter().flat_map(|(_, _, p)| p.iter().map(|(x, _)| *x)))
        .fold(1.0f64, f64::max)
        .ceil();
    let root = SVGBackend::new(path, (900, 1100)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| anyhow!("{e}"))?;
    for ((title, unit, lines), area) in panels.iter().zip(root.split_evenly((panels.len(), 1))) {
        let y_max = lines
            .iter()
            .flat_map(|(_, _, p)| p.iter().map(|(_, y)| *y))
            .filter(|y| y.is_finite())
            .fold(1.0f64, f64::max)
            * 1.15;
        let mut chart = ChartBuilder::on(&area)
            .caption(*title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(32)
            .y_label_area_size(64)
            .build_cartesian_2d(0.0..x_max, 0.0..y_max)
            .map_err(|e| anyhow!("{e}"))?;
        chart
            .configure_mesh()
            .x_desc("minutes")
            .y_desc(*unit)
            .light_line_style(WHITE.mix(0.0))
            .draw()
            .map_err(|e| anyhow!("{e}"))?;
        for (label, colour, points) in lines {
            let colour = *colour;
            chart
                .draw_series(LineSeries::new(
                    points.iter().copied(),
                    colour.stroke_width(2),
                ))
                .map_err(|e| anyhow!("{e}"))?
                .label(*label)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], colour.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(|e| anyhow!("{e}"))?;
    }
    root.present().map_err(|e| anyhow!("{e}"))?;
    Ok(())
}
