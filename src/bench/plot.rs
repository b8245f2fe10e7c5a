//! SVG plots (plotters, SVG backend only: no system fonts needed): latency percentile curve
//! (one line per result, x in "nines"), latency over time, throughput over time.

use std::path::Path;

use plotters::prelude::*;

use super::report::BenchResult;

const COLORS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

fn err<E: std::fmt::Display>(path: &Path) -> impl Fn(E) -> String + '_ {
    move |e| format!("plot {}: {e}", path.display())
}

/// x = number of nines of a percentile (90 → 1, 99 → 2, 99.9 → 3 ...); 100 sits at the end.
fn nines(p: f64, last: f64) -> f64 {
    if p >= 100.0 {
        last
    } else {
        -(1.0 - p / 100.0).log10()
    }
}

/// Percentile curves of `lines` = (label, points [percentile, µs]).
pub fn percentile_curves(
    path: &Path,
    title: &str,
    lines: &[(String, Vec<[f64; 2]>)],
) -> Result<(), String> {
    let e = err(path);
    let mut max_n = 1.0f64;
    let (mut lo, mut hi) = (f64::MAX, 0.0f64);
    for (_, pts) in lines {
        for p in pts {
            if p[0] < 100.0 {
                max_n = max_n.max(nines(p[0], 0.0));
            }
            lo = lo.min(p[1].max(1.0));
            hi = hi.max(p[1]);
        }
    }
    if hi <= 0.0 {
        return Ok(());
    }
    let last = max_n + 0.3;
    let root = SVGBackend::new(path, (900, 520)).into_drawing_area();
    root.fill(&WHITE).map_err(&e)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d(
            0f64..last,
            ((lo / 1000.0) * 0.8..(hi / 1000.0) * 1.3).log_scale(),
        )
        .map_err(&e)?;
    chart
        .configure_mesh()
        .x_desc("percentile")
        .y_desc("latency (ms)")
        .x_label_formatter(&|x| {
            let p = 100.0 * (1.0 - 10f64.powf(-x));
            format!("{p:.3}")
                .trim_end_matches('0')
                .trim_end_matches('.')
                .to_string()
        })
        .draw()
        .map_err(&e)?;
    for (i, (label, pts)) in lines.iter().enumerate() {
        let c = COLORS[i % COLORS.len()];
        chart
            .draw_series(LineSeries::new(
                pts.iter().map(|p| (nines(p[0], last), p[1] / 1000.0)),
                c.stroke_width(2),
            ))
            .map_err(&e)?
            .label(label.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(&e)?;
    root.present().map_err(&e)?;
    Ok(())
}

/// Per-second lines: `series` = (label, points (t s, value)).
fn over_time(
    path: &Path,
    title: &str,
    y_desc: &str,
    log: bool,
    series: &[(String, Vec<(f64, f64)>)],
) -> Result<(), String> {
    let e = err(path);
    let tmax = series
        .iter()
        .flat_map(|s| s.1.iter().map(|p| p.0))
        .fold(1.0f64, f64::max);
    let ymax = series
        .iter()
        .flat_map(|s| s.1.iter().map(|p| p.1))
        .fold(0.0f64, f64::max);
    if ymax <= 0.0 {
        return Ok(());
    }
    let root = SVGBackend::new(path, (900, 420)).into_drawing_area();
    root.fill(&WHITE).map_err(&e)?;
    let mut b = ChartBuilder::on(&root);
    b.caption(title, ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(70);
    macro_rules! body {
        ($chart:expr) => {{
            let mut chart = $chart;
            chart
                .configure_mesh()
                .x_desc("time (s)")
                .y_desc(y_desc)
                .draw()
                .map_err(&e)?;
            for (i, (label, pts)) in series.iter().enumerate() {
                let c = COLORS[i % COLORS.len()];
                chart
                    .draw_series(LineSeries::new(
                        pts.iter()
                            .map(|p| (p.0, if log { p.1.max(0.001) } else { p.1 })),
                        c.stroke_width(2),
                    ))
                    .map_err(&e)?
                    .label(label.clone())
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2))
                    });
            }
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperRight)
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .draw()
                .map_err(&e)?;
        }};
    }
    if log {
        body!(b
            .build_cartesian_2d(0f64..tmax + 1.0, (0.001f64..ymax * 1.5).log_scale())
            .map_err(&e)?);
    } else {
        body!(b
            .build_cartesian_2d(0f64..tmax + 1.0, 0f64..ymax * 1.1)
            .map_err(&e)?);
    }
    root.present().map_err(&e)?;
    Ok(())
}

/// The three plots of one result into `dir` (`<prefix>-percentiles.svg`, `-latency.svg`,
/// `-throughput.svg`).
pub fn plot_result(dir: &Path, prefix: &str, r: &BenchResult) -> Result<Vec<String>, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    let mut out = Vec::new();
    let p = dir.join(format!("{prefix}-percentiles.svg"));
    percentile_curves(
        &p,
        &format!("latency by percentile ({}, {})", r.label, r.mode),
        &[
            ("publish".to_string(), r.percentile_curve.publish.clone()),
            ("end-to-end".to_string(), r.percentile_curve.e2e.clone()),
        ],
    )?;
    out.push(p.display().to_string());
    let ms = |v: u64| v as f64 / 1000.0;
    let col = |f: &dyn Fn(&super::report::SecondRow) -> f64| -> Vec<(f64, f64)> {
        r.series.iter().map(|s| (s.t as f64, f(s))).collect()
    };
    let p = dir.join(format!("{prefix}-latency.svg"));
    over_time(
        &p,
        &format!("publish latency over time ({})", r.label),
        "latency (ms)",
        true,
        &[
            ("p50".into(), col(&|s| ms(s.publish_p50_us))),
            ("p99".into(), col(&|s| ms(s.publish_p99_us))),
            ("max".into(), col(&|s| ms(s.publish_max_us))),
            ("e2e p99".into(), col(&|s| ms(s.e2e_p99_us))),
        ],
    )?;
    out.push(p.display().to_string());
    let p = dir.join(format!("{prefix}-throughput.svg"));
    over_time(
        &p,
        &format!("throughput over time ({})", r.label),
        "messages/s",
        false,
        &[
            ("acked".into(), col(&|s| s.acked as f64)),
            ("received".into(), col(&|s| s.received as f64)),
            ("errors".into(), col(&|s| s.errors as f64)),
        ],
    )?;
    out.push(p.display().to_string());
    Ok(out)
}

/// Publish percentile curves of several results on one plot.
pub fn compare_curves(path: &Path, title: &str, results: &[BenchResult]) -> Result<(), String> {
    let lines: Vec<(String, Vec<[f64; 2]>)> = results
        .iter()
        .map(|r| (r.label.clone(), r.percentile_curve.publish.clone()))
        .collect();
    percentile_curves(path, title, &lines)
}
