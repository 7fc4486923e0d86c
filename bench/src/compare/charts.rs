//! SVG charts for docs/RESULTS.md (plotters' SVG backend: no fonts or native
//! libraries needed).

use std::path::Path;

use plotters::prelude::*;

use super::markdown::fmt_ns;
use super::results::Results;
use super::rows::{Lat, SyncVariant, WriteRow};

/// A chart could not be drawn or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
#[error("cannot draw {file}: {reason}")]
pub struct ChartError {
    /// The chart's file name.
    pub file: String,
    /// What plotters said.
    pub reason: String,
}

const PALETTE: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

/// A grouped bar chart: one group per label, one bar per series.
struct Bars<'a> {
    title: &'a str,
    y_desc: &'a str,
    groups: Vec<String>,
    /// (series name, one value per group).
    series: Vec<(String, Vec<Option<f64>>)>,
    log: bool,
    fmt: fn(f64) -> String,
}

fn draw_bars(path: &Path, b: &Bars) -> Result<(), String> {
    let max = b.series.iter().flat_map(|(_, v)| v.iter().flatten().copied()).fold(0.0f64, f64::max);
    if max <= 0.0 {
        return Err("no data".into());
    }
    let root = SVGBackend::new(path, (860, 420)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let n = b.groups.len() as f64;
    let k = b.series.len().max(1) as f64;
    let width = 0.8 / k;
    let groups = b.groups.clone();
    let label = move |x: &f64| {
        if (x - x.round()).abs() < 1e-6 && x.round() >= 0.0 {
            groups.get(x.round() as usize).cloned().unwrap_or_default()
        } else {
            String::new()
        }
    };
    let fmt = b.fmt;
    macro_rules! body {
        ($chart:expr, $base:expr) => {{
            let mut chart = $chart;
            chart
                .configure_mesh()
                .disable_x_mesh()
                .x_labels(b.groups.len() * 2 + 1)
                .x_label_formatter(&label)
                .y_desc(b.y_desc)
                .y_label_formatter(&|y: &f64| fmt(*y))
                .draw()
                .map_err(|e| e.to_string())?;
            for (si, (name, values)) in b.series.iter().enumerate() {
                let color = PALETTE[si % PALETTE.len()];
                let x0 = |gi: usize| gi as f64 - 0.4 + si as f64 * width;
                chart
                    .draw_series(values.iter().enumerate().filter_map(|(gi, v)| {
                        v.map(|v| Rectangle::new([(x0(gi), $base), (x0(gi) + width * 0.92, v.max($base))], color.filled()))
                    }))
                    .map_err(|e| e.to_string())?
                    .label(name.as_str())
                    .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], color.filled()));
            }
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperLeft)
                .border_style(BLACK)
                .background_style(WHITE.mix(0.9))
                .draw()
                .map_err(|e| e.to_string())?;
        }};
    }
    let mut builder = ChartBuilder::on(&root);
    builder.caption(b.title, ("sans-serif", 20)).margin(12).x_label_area_size(36).y_label_area_size(80);
    if b.log {
        let min = b.series.iter().flat_map(|(_, v)| v.iter().flatten().copied()).fold(f64::MAX, f64::min);
        let lo = 10f64.powf(min.max(1e-9).log10().floor());
        let hi = 10f64.powf((max * 1.01).log10().ceil() + 0.5);
        let chart = builder.build_cartesian_2d(-0.5f64..(n - 0.5), (lo..hi).log_scale()).map_err(|e| e.to_string())?;
        body!(chart, lo);
    } else {
        let chart = builder.build_cartesian_2d(-0.5f64..(n - 0.5), 0f64..max * 1.25).map_err(|e| e.to_string())?;
        body!(chart, 0.0);
    }
    root.present().map_err(|e| e.to_string())
}

fn draw_lines(path: &Path, title: &str, lines: &[(String, Vec<f64>)]) -> Result<(), String> {
    let max_len = lines.iter().map(|(_, v)| v.len()).max().unwrap_or(0);
    let max = lines.iter().flat_map(|(_, v)| v.iter().copied()).fold(0.0f64, f64::max);
    if max_len < 2 || max <= 0.0 {
        return Err("no data".into());
    }
    let root = SVGBackend::new(path, (860, 420)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..(max_len - 1) as f64, 0f64..max * 1.2)
        .map_err(|e| e.to_string())?;
    chart.configure_mesh().x_desc("seconds into the write phase").y_desc("RSS, MiB").draw().map_err(|e| e.to_string())?;
    for (i, (name, values)) in lines.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        let style = if name.starts_with("kube-rs") { ShapeStyle::from(&color).stroke_width(2) } else { color.stroke_width(3) };
        chart
            .draw_series(LineSeries::new(values.iter().enumerate().map(|(x, y)| (x as f64, *y)), style))
            .map_err(|e| e.to_string())?
            .label(name.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 14, y)], color.stroke_width(3)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .border_style(BLACK)
        .background_style(WHITE.mix(0.9))
        .draw()
        .map_err(|e| e.to_string())?;
    root.present().map_err(|e| e.to_string())
}

fn mib(x: f64) -> String {
    format!("{x:.0} MiB")
}

/// Draws every chart the results have data for into `dir`; returns the file
/// names written. A chart without data is skipped, not an error.
///
/// # Errors
/// When plotters fails to draw or write a chart that has data.
pub fn draw_all(r: &Results, dir: &Path) -> Result<Vec<String>, ChartError> {
    std::fs::create_dir_all(dir).map_err(|e| ChartError { file: dir.display().to_string(), reason: e.to_string() })?;
    let mut written = Vec::new();
    let mut emit = |file: &str, result: Result<(), String>| -> Result<(), ChartError> {
        match result {
            Ok(()) => {
                written.push(file.to_owned());
                Ok(())
            }
            Err(reason) if reason == "no data" => Ok(()),
            Err(reason) => Err(ChartError { file: file.to_owned(), reason }),
        }
    };

    // Reads, log scale.
    let p99 = |l: &Option<Lat>| l.map(|l| l.p99);
    let reads = Bars {
        title: "Read latency p99 (log scale, lower is better)",
        y_desc: "p99",
        groups: vec!["Get one pod".into(), "List 1,000 pods".into()],
        series: vec![
            ("direct REST".into(), vec![p99(&r.reads.get.direct), p99(&r.reads.list.direct)]),
            ("kcache".into(), vec![p99(&r.reads.get.kcache), p99(&r.reads.list.kcache)]),
            ("kube-rs Store".into(), vec![p99(&r.reads.get.kube_rs), p99(&r.reads.list.kube_rs)]),
        ],
        log: true,
        fmt: fmt_ns,
    };
    emit("reads.svg", draw_bars(&dir.join("reads.svg"), &reads))?;

    // Event p99 per handler style.
    let p99_ns = |engine: fn(&WriteRow) -> Option<f64>| -> Vec<Option<f64>> { r.writes.iter().map(engine).collect() };
    let events = Bars {
        title: "Event latency p99 at 2,000 writes/s (lower is better)",
        y_desc: "p99",
        groups: r.writes.iter().map(|w| format!("{} handler", w.handler)).collect(),
        series: vec![
            ("kcache".into(), p99_ns(|w| w.sides.kcache.as_ref().map(|s| s.p99_ms * 1e6))),
            ("kube-rs".into(), p99_ns(|w| w.sides.kube_rs.as_ref().map(|s| s.p99_ms * 1e6))),
        ],
        log: false,
        fmt: fmt_ns,
    };
    emit("event_p99.svg", draw_bars(&dir.join("event_p99.svg"), &events))?;

    // RSS timelines.
    let mut lines = Vec::new();
    for w in &r.writes {
        for (name, side) in w.sides.named() {
            if let Some(s) = side {
                lines.push((format!("{name} / {}", w.handler), s.timeline.clone()));
            }
        }
    }
    emit("rss_timeline.svg", draw_lines(&dir.join("rss_timeline.svg"), "Engine process RSS at 2,000 writes/s", &lines))?;

    // Memory and sync per size.
    let groups: Vec<String> = r.sync.iter().map(|s| format!("{} pods", s.pods)).collect();
    let variant = |v: &str, figure: fn(&SyncVariant) -> f64| -> Vec<Option<f64>> {
        r.sync.iter().map(|s| s.variants.get(v).map(figure)).collect()
    };
    let in_mib = |v: Vec<Option<f64>>| v.into_iter().map(|x| x.map(|b| b / 1_048_576.0)).collect::<Vec<_>>();
    let memory = Bars {
        title: "Memory to hold the pods (log scale, lower is better)",
        y_desc: "RSS added by the synced cache",
        groups: groups.clone(),
        series: vec![
            ("kcache".into(), in_mib(variant("kcache", |x| x.cache_bytes))),
            ("kcache, managedFields stripped".into(), in_mib(variant("kcache-strip", |x| x.cache_bytes))),
            ("kube-rs".into(), in_mib(variant("kube-rs", |x| x.cache_bytes))),
            ("wire JSON".into(), in_mib(r.sync.iter().map(|s| s.wire_bytes).collect())),
        ],
        log: true,
        fmt: mib,
    };
    emit("memory.svg", draw_bars(&dir.join("memory.svg"), &memory))?;
    let sync = Bars {
        title: "Initial sync time (log scale, lower is better)",
        y_desc: "seconds",
        groups,
        series: vec![
            ("kcache paginated".into(), variant("kcache", |x| x.sync_seconds)),
            ("kcache streaming".into(), variant("kcache-streaming", |x| x.sync_seconds)),
            ("kube-rs paginated".into(), variant("kube-rs", |x| x.sync_seconds)),
            ("kube-rs streaming".into(), variant("kube-rs-streaming", |x| x.sync_seconds)),
        ],
        log: true,
        fmt: |s| format!("{s:.2} s"),
    };
    emit("sync.svg", draw_bars(&dir.join("sync.svg"), &sync))?;
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compare::machine::Machine;
    use crate::compare::results::build;
    use crate::compare::synthetic::synthetic;

    #[test]
    fn every_chart_with_data_is_written_as_svg() {
        let r = build(&synthetic(), Machine::default(), false, 1.0);
        let dir = std::env::temp_dir().join(format!("kcache-charts-{}", std::process::id()));
        let written = draw_all(&r, &dir).unwrap();
        assert_eq!(written, ["reads.svg", "event_p99.svg", "rss_timeline.svg", "memory.svg", "sync.svg"]);
        for f in &written {
            let svg = std::fs::read_to_string(dir.join(f)).unwrap();
            assert!(svg.starts_with("<svg") && svg.contains("kcache"), "{f}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn charts_without_data_are_skipped() {
        let r = Results::default();
        let dir = std::env::temp_dir().join(format!("kcache-charts-empty-{}", std::process::id()));
        assert!(draw_all(&r, &dir).unwrap().is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
