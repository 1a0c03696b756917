//! What `staffbot simulate` reports per policy: time to staff, unstaffed share, offers per
//! staffed task, offers outside working hours, and the load per worker; as a table, as JSON
//! (`--json`), and as markdown with SVG plots (`--report DIR`).

use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;

use super::Run;

/// A task not staffed within this long counts as unstaffed (a working day).
pub const WORKING_DAY_HOURS: i64 = 8;

/// One policy's figures. `--json` prints these keys, exactly.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PolicyReport {
    /// Median minutes from a task's arrival to its winner's accept (staffed tasks).
    pub median_minutes: f64,
    /// 90th percentile of the same.
    pub p90_minutes: f64,
    /// Tasks not staffed within a working day (8 hours) of their arrival.
    pub unstaffed_share: f64,
    /// Offers sent, per task staffed.
    pub offers_per_staffed_task: f64,
    /// Offers that reached their worker outside their working hours.
    pub offers_outside_hours: usize,
    /// The Gini coefficient of tasks won per worker (0: even; 1: one worker won everything).
    pub load_gini: f64,
    /// Tasks that arrived.
    pub tasks: usize,
    #[serde(skip)]
    pub max_minutes: f64,
    #[serde(skip)]
    pub minutes: Vec<f64>,
    #[serde(skip)]
    pub offers: Vec<usize>,
    #[serde(skip)]
    pub wins: Vec<u32>,
}

/// Every policy's figures, in the order run.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub population: String,
    pub days: u32,
    pub seed: u64,
    pub workers: usize,
    pub policies: Vec<(String, PolicyReport)>,
    /// Wall time of the whole run, in seconds.
    pub seconds: f64,
}

/// The `p`th percentile (0–100) of sorted `values`, nearest rank.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// The Gini coefficient of `values` (0 when all are equal or all zero).
pub fn gini(values: &[u32]) -> f64 {
    let n = values.len() as f64;
    let total: f64 = values.iter().map(|&v| f64::from(v)).sum();
    if values.is_empty() || total == 0.0 {
        return 0.0;
    }
    let mut sorted: Vec<f64> = values.iter().map(|&v| f64::from(v)).collect();
    sorted.sort_by(f64::total_cmp);
    let weighted: f64 = sorted
        .iter()
        .enumerate()
        .map(|(i, v)| (2.0 * (i as f64 + 1.0) - n - 1.0) * v)
        .sum();
    weighted / (n * total)
}

fn round(v: f64, places: i32) -> f64 {
    let f = 10f64.powi(places);
    (v * f).round() / f
}

impl PolicyReport {
    pub fn of(run: &Run) -> PolicyReport {
        let mut minutes: Vec<f64> = run
            .tasks
            .iter()
            .filter_map(|t| {
                t.staffed
                    .map(|s| (s - t.arrived).num_seconds() as f64 / 60.0)
            })
            .collect();
        minutes.sort_by(f64::total_cmp);
        let staffed = minutes.len();
        let unstaffed = run
            .tasks
            .iter()
            .filter(|t| {
                t.staffed
                    .is_none_or(|s| s - t.arrived > chrono::Duration::hours(WORKING_DAY_HOURS))
            })
            .count();
        let offers: usize = run.tasks.iter().map(|t| t.offers).sum();
        PolicyReport {
            median_minutes: round(percentile(&minutes, 50.0), 1),
            p90_minutes: round(percentile(&minutes, 90.0), 1),
            unstaffed_share: round(unstaffed as f64 / run.tasks.len().max(1) as f64, 3),
            offers_per_staffed_task: round(offers as f64 / staffed.max(1) as f64, 1),
            offers_outside_hours: run.tasks.iter().map(|t| t.offers_outside_hours).sum(),
            load_gini: round(gini(&run.wins), 3),
            tasks: run.tasks.len(),
            max_minutes: round(minutes.last().copied().unwrap_or(0.0), 1),
            offers: run.tasks.iter().map(|t| t.offers).collect(),
            minutes,
            wins: run.wins.clone(),
        }
    }
}

impl Report {
    /// `{"orchestra": {…}, "adaptive": {…}}`: one object per policy.
    pub fn json(&self) -> serde_json::Value {
        let mut out = serde_json::Map::new();
        for (name, r) in &self.policies {
            out.insert(name.clone(), serde_json::to_value(r).unwrap_or_default());
        }
        serde_json::Value::Object(out)
    }

    /// The figures as a table (what `simulate` prints).
    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{}: {} workers, {} days, seed {} ({:.1} s)",
            self.population, self.workers, self.days, self.seed, self.seconds
        );
        let _ = writeln!(
            out,
            "{:<12} {:>6} {:>8} {:>8} {:>8} {:>10} {:>12} {:>8} {:>6}",
            "policy",
            "tasks",
            "median",
            "p90",
            "max",
            "unstaffed",
            "offers/task",
            "outside",
            "gini"
        );
        for (name, r) in &self.policies {
            let _ = writeln!(
                out,
                "{:<12} {:>6} {:>6.1}m {:>6.1}m {:>6.1}m {:>9.1}% {:>12.1} {:>8} {:>6.3}",
                name,
                r.tasks,
                r.median_minutes,
                r.p90_minutes,
                r.max_minutes,
                r.unstaffed_share * 100.0,
                r.offers_per_staffed_task,
                r.offers_outside_hours,
                r.load_gini
            );
        }
        out
    }

    /// Writes `DIR/report.md` and its plots (`cdf.svg`, `offers.svg`, `load.svg`).
    pub fn write(&self, dir: &Path) -> anyhow::Result<()> {
        std::fs::create_dir_all(dir)
            .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))?;
        plots::cdf(self, &dir.join("cdf.svg"))?;
        plots::offers(self, &dir.join("offers.svg"))?;
        plots::load(self, &dir.join("load.svg"))?;
        let mut md = String::new();
        let _ = writeln!(md, "# Simulation: {}\n", self.population);
        let _ = writeln!(
            md,
            "{} workers, {} days, seed {}; one run per policy on the same population and arrivals ({:.1} s).\n",
            self.workers, self.days, self.seed, self.seconds
        );
        let _ = writeln!(
            md,
            "| policy | tasks | median | p90 | max | unstaffed (8 h) | offers / staffed task | offers outside hours | load Gini |\n|---|---|---|---|---|---|---|---|---|"
        );
        for (name, r) in &self.policies {
            let _ = writeln!(
                md,
                "| {name} | {} | {:.1} min | {:.1} min | {:.1} min | {:.1} % | {:.1} | {} | {:.3} |",
                r.tasks,
                r.median_minutes,
                r.p90_minutes,
                r.max_minutes,
                r.unstaffed_share * 100.0,
                r.offers_per_staffed_task,
                r.offers_outside_hours,
                r.load_gini
            );
        }
        let _ = writeln!(
            md,
            "\n![time to staff](cdf.svg)\n\n![offers per task](offers.svg)\n\n![load per worker](load.svg)"
        );
        std::fs::write(dir.join("report.md"), md)
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", dir.join("report.md").display()))
    }
}

mod plots {
    use std::path::Path;

    use plotters::prelude::*;

    use super::Report;

    const COLOURS: [RGBColor; 4] = [
        RGBColor(31, 119, 180),
        RGBColor(255, 127, 14),
        RGBColor(44, 160, 44),
        RGBColor(214, 39, 40),
    ];

    fn err(e: impl std::fmt::Display) -> anyhow::Error {
        anyhow::anyhow!("plot: {e}")
    }

    /// Each policy's `points` as a line, over `x` and `y` ranges.
    fn lines(
        path: &Path,
        caption: &str,
        (x_label, y_label): (&str, &str),
        (x_max, y_max): (f64, f64),
        series: Vec<(String, Vec<(f64, f64)>)>,
    ) -> anyhow::Result<()> {
        let root = SVGBackend::new(path, (720, 420)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(caption, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(48)
            .build_cartesian_2d(0.0..x_max.max(1.0), 0.0..y_max.max(1.0))
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc(x_label)
            .y_desc(y_label)
            .draw()
            .map_err(err)?;
        for (i, (name, points)) in series.into_iter().enumerate() {
            let colour = COLOURS[i % COLOURS.len()];
            chart
                .draw_series(LineSeries::new(points, colour.stroke_width(2)))
                .map_err(err)?
                .label(name)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], colour));
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(err)?;
        root.present().map_err(err)
    }

    /// The share of tasks staffed within x minutes, per policy.
    pub fn cdf(report: &Report, path: &Path) -> anyhow::Result<()> {
        let x_max = report
            .policies
            .iter()
            .map(|(_, r)| super::percentile(&r.minutes, 98.0))
            .fold(10.0, f64::max);
        let series = report
            .policies
            .iter()
            .map(|(name, r)| {
                let n = r.tasks.max(1) as f64;
                let mut points = vec![(0.0, 0.0)];
                points.extend(
                    r.minutes
                        .iter()
                        .enumerate()
                        .map(|(i, m)| (m.min(x_max), (i + 1) as f64 / n)),
                );
                (name.clone(), points)
            })
            .collect();
        lines(
            path,
            "Tasks staffed within x minutes",
            ("minutes after arrival", "share of tasks"),
            (x_max, 1.0),
            series,
        )
    }

    /// How many tasks needed x offers or fewer, per policy.
    pub fn offers(report: &Report, path: &Path) -> anyhow::Result<()> {
        let x_max = report
            .policies
            .iter()
            .flat_map(|(_, r)| r.offers.iter().copied())
            .max()
            .unwrap_or(1) as f64;
        let series = report
            .policies
            .iter()
            .map(|(name, r)| {
                let mut sorted = r.offers.clone();
                sorted.sort_unstable();
                let n = sorted.len().max(1) as f64;
                let points = sorted
                    .iter()
                    .enumerate()
                    .map(|(i, o)| (*o as f64, (i + 1) as f64 / n))
                    .collect();
                (name.clone(), points)
            })
            .collect();
        lines(
            path,
            "Offers per task",
            ("offers sent for a task", "share of tasks"),
            (x_max, 1.0),
            series,
        )
    }

    /// Tasks won per worker, busiest first, per policy.
    pub fn load(report: &Report, path: &Path) -> anyhow::Result<()> {
        let y_max = report
            .policies
            .iter()
            .flat_map(|(_, r)| r.wins.iter().copied())
            .max()
            .unwrap_or(1) as f64;
        let x_max = report.workers as f64;
        let series = report
            .policies
            .iter()
            .map(|(name, r)| {
                let mut sorted = r.wins.clone();
                sorted.sort_unstable_by(|a, b| b.cmp(a));
                let points = sorted
                    .iter()
                    .enumerate()
                    .map(|(i, w)| (i as f64 + 1.0, f64::from(*w)))
                    .collect();
                (name.clone(), points)
            })
            .collect();
        lines(
            path,
            "Tasks won per worker",
            ("workers, busiest first", "tasks won"),
            (x_max, y_max),
            series,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_and_gini() {
        let v = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0];
        assert_eq!(percentile(&v, 50.0), 5.0);
        assert_eq!(percentile(&v, 90.0), 9.0);
        assert_eq!(percentile(&[], 50.0), 0.0);
        assert_eq!(gini(&[3, 3, 3]), 0.0);
        assert_eq!(gini(&[0, 0, 0]), 0.0);
        assert!((gini(&[0, 0, 0, 9]) - 0.75).abs() < 1e-9);
    }
}
