//! Targets: the limits of issue 14 (and those of issue 6 it keeps) in one table, [`TARGETS`],
//! checked against the records of a backend; the soak's verdict; the console's summary lines.

use serde_json::Value;

use super::markdown::{fmt_ms, time_cell};
use super::recording::Record;
use Limit::{AtMost, AtMostSqlitePostgres, Below, Flat};
use Metric::{
    MaxMissingLate, P99, P99MissingLate, PeakRss, SoakVerdict, Statements, StatementsPerRequest,
    Wall,
};
use Source::{At, TickPeak};

/// (workers, requests) of a data size.
type Size = (usize, usize);

const MID: Option<Size> = Some((1000, 200));
const BIG: Option<Size> = Some((100_000, 10_000));
/// Whichever size the record has (phases run once per backend).
const ANY: Option<Size> = None;

/// The record a target reads.
#[derive(Debug, Clone, Copy)]
pub(super) enum Source {
    /// The backend's record of this phase, at this size (or the first at any size).
    At(&'static str, Option<Size>),
    /// Of the two ticks (B=5 and B=20) at this size, the one with the higher peak RSS.
    TickPeak(Size),
}

/// The figure of the record that is checked, and how it is shown.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Metric {
    /// `wall_ms` (phases of several operations: the median).
    Wall,
    StatementsPerRequest,
    /// `statements` (phases of several operations: the median).
    Statements,
    PeakRss,
    P99,
    /// The ack p99, where a missing ack counts as too late.
    P99MissingLate,
    /// The slowest ack, where a missing ack counts as too late.
    MaxMissingLate,
    /// The soak's verdict ([`soak_verdict`]), not a number.
    SoakVerdict,
}

/// What the figure must be to meet the target.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Limit {
    AtMost(f64),
    Below(f64),
    /// At most the first on SQLite, the second on PostgreSQL.
    AtMostSqlitePostgres(f64, f64),
    /// The soak's verdict is "flat" (only with [`Metric::SoakVerdict`]).
    Flat,
}

/// One row of [`TARGETS`].
#[derive(Debug, Clone, Copy)]
pub(super) struct Target {
    pub source: Source,
    pub metric: Metric,
    pub limit: Limit,
    /// The limit as the report shows it.
    pub shown: &'static str,
    /// The target as the report names it.
    pub what: &'static str,
}

const fn row(
    source: Source,
    metric: Metric,
    limit: Limit,
    shown: &'static str,
    what: &'static str,
) -> Target {
    Target {
        source,
        metric,
        limit,
        shown,
        what,
    }
}

/// Issue 14's targets (and issue 6's that it keeps), in the order the report lists them.
#[rustfmt::skip]
pub(super) const TARGETS: &[Target] = &[
    //  record                              metric                 limit                            shown                                    what
    row(At("tick_b5", MID),                 Wall,                  AtMost(40.0),                    "≤ 40 ms",                               "tick W=1,000/T=200/B=5"),
    row(At("tick_b5", MID),                 StatementsPerRequest,  AtMost(5.0),                     "≤ 5",                                   "tick W=1,000/T=200/B=5, statements per request"),
    row(At("tick_b5_available", MID),       Wall,                  AtMost(40.0),                    "≤ 40 ms",                               "tick W=1,000/T=200/B=5, availability rows for every worker"),
    row(At("tick_b20", MID),                Wall,                  AtMost(100.0),                   "≤ 100 ms",                              "tick W=1,000/T=200/B=20"),
    row(At("accept_win", MID),              Wall,                  AtMostSqlitePostgres(0.8, 1.5),  "≤ 0.8 ms SQLite, ≤ 1.5 ms PostgreSQL",  "winning accept (median, W=1,000/T=200)"),
    row(At("accept_win", MID),              Statements,            AtMost(8.0),                     "≤ 8",                                   "winning accept, statements for the whole envelope (median)"),
    row(At("reminders", MID),               Wall,                  AtMost(50.0),                    "≤ 50 ms",                               "reminders W=1,000/T=200"),
    row(At("tick_b5", BIG),                 Wall,                  AtMost(1500.0),                  "≤ 1.5 s",                               "tick W=100,000/T=10,000/B=5"),
    row(At("tick_b5_available", BIG),       Wall,                  AtMost(1500.0),                  "≤ 1.5 s",                               "tick W=100,000/T=10,000/B=5, availability rows for every worker"),
    row(At("tick_b20", BIG),                Wall,                  AtMost(5000.0),                  "≤ 5 s",                                 "tick W=100,000/T=10,000/B=20"),
    row(TickPeak((100_000, 10_000)),        PeakRss,               AtMost(120.0),                   "≤ 120 MiB",                             "tick W=100,000/T=10,000, peak RSS (B=5 and B=20)"),
    row(At("warnings", BIG),                Wall,                  AtMost(200.0),                   "≤ 200 ms",                              "warnings W=100,000/T=10,000"),
    row(At("reminders", BIG),               Wall,                  AtMost(600.0),                   "≤ 600 ms",                              "reminders W=100,000/T=10,000"),
    row(At("reminders", BIG),               PeakRss,               AtMost(100.0),                   "≤ 100 MiB",                             "reminders W=100,000/T=10,000, peak RSS"),
    row(At("ack_all", ANY),                 P99,                   AtMost(10.0),                    "≤ 10 ms",                               "ack p99 at 200 envelopes/s"),
    row(At("ack_scripted", ANY),            P99MissingLate,        AtMost(10.0),                    "≤ 10 ms",                               "ack p99 while description scripts run to their wall time (`ack_scripted`: 20 tasks staffed, `help` at 20/s; a missing ack counts as too late)"),
    row(At("ack_all", ANY),                 MaxMissingLate,        AtMost(1000.0),                  "≤ 1 s",                                 "slowest ack (a missing ack counts as too late)"),
    row(At("sanity_first", ANY),            Wall,                  Below(1000.0),                   "< 1 s",                                 "SanityBot round over 10,000 projects, script check (1 in 100 fire)"),
    row(At("sanity_steady", ANY),           Wall,                  Below(1000.0),                   "< 1 s",                                 "SanityBot round over 10,000 projects, script check (steady: nothing due)"),
    row(At("idle_rss", ANY),                PeakRss,               AtMost(15.0),                    "≤ 15 MiB",                              "idle RSS of a connected daemon"),
    row(At("startup", ANY),                 Wall,                  AtMost(150.0),                   "≤ 150 ms",                              "`serve` start → first Socket Mode connection (median)"),
    row(At("soak", ANY),                    SoakVerdict,           Flat,                            "flat",                                  "soak: RSS and tables flat after warm-up, ack p99 steady"),
];

/// A target checked on one backend.
pub(super) struct Outcome {
    pub what: &'static str,
    pub limit: &'static str,
    /// `None`: not run.
    pub measured: Option<String>,
    /// `None`: not run, or nothing to judge.
    pub met: Option<bool>,
}

/// Every target of [`TARGETS`], checked on `backend`.
pub(super) fn outcomes(records: &[Record], backend: &str) -> Vec<Outcome> {
    TARGETS.iter().map(|t| t.check(records, backend)).collect()
}

impl Target {
    fn check(&self, records: &[Record], backend: &str) -> Outcome {
        let record = self.source.record(records, backend);
        let (measured, met) = if self.metric == SoakVerdict {
            let soak = record.and_then(soak_verdict);
            (
                soak.as_ref().map(|(_, cell)| cell.clone()),
                soak.as_ref().map(|(flat, _)| *flat),
            )
        } else if record.is_some_and(|r| r.timed_out || r.detail.get("error").is_some()) {
            // A stopped or failed phase misses its targets, and says how far it got.
            (record.map(time_cell), Some(false))
        } else {
            let v = record.and_then(|r| self.metric.value(r));
            (
                v.map(|v| self.metric.show(v)),
                v.map(|v| self.limit.met(v, backend)),
            )
        };
        Outcome {
            what: self.what,
            limit: self.shown,
            measured,
            met,
        }
    }
}

impl Source {
    fn record<'a>(&self, records: &'a [Record], backend: &str) -> Option<&'a Record> {
        match *self {
            At(phase, size) => find(records, backend, phase, size),
            TickPeak(size) => tick_peak(records, backend, size),
        }
    }
}

impl Metric {
    fn value(&self, r: &Record) -> Option<f64> {
        let missing_late = |v: Option<f64>| {
            let missing = r.detail["missing"].as_u64().unwrap_or(0);
            v.map(|v| if missing > 0 { f64::INFINITY } else { v })
        };
        match self {
            Wall => r.wall_ms,
            StatementsPerRequest => r.statements_per_request,
            Statements => r.statements.map(|s| s as f64),
            PeakRss => r.peak_rss_mib,
            P99 => r.p99_ms,
            P99MissingLate => missing_late(r.p99_ms),
            MaxMissingLate => missing_late(r.max_ms),
            SoakVerdict => None,
        }
    }

    fn show(&self, v: f64) -> String {
        match self {
            Wall | P99 => fmt_ms(v),
            StatementsPerRequest | Statements => format!("{v}"),
            PeakRss => format!("{v:.1} MiB"),
            P99MissingLate | MaxMissingLate if !v.is_finite() => "acks missing".into(),
            P99MissingLate | MaxMissingLate => fmt_ms(v),
            SoakVerdict => String::new(),
        }
    }
}

impl Limit {
    fn met(&self, v: f64, backend: &str) -> bool {
        match *self {
            AtMost(limit) => v <= limit,
            Below(limit) => v < limit,
            AtMostSqlitePostgres(sqlite, postgres) => match backend {
                "postgres" => v <= postgres,
                _ => v <= sqlite,
            },
            // Judged by the soak's verdict, never a number.
            Flat => false,
        }
    }
}

fn find<'a>(
    records: &'a [Record],
    backend: &str,
    phase: &str,
    size: Option<Size>,
) -> Option<&'a Record> {
    records.iter().find(|r| {
        r.backend == backend
            && r.phase == phase
            && size.is_none_or(|(w, t)| r.workers == Some(w) && r.requests == Some(t))
    })
}

/// The higher peak RSS of the two ticks at one size.
fn tick_peak<'a>(records: &'a [Record], backend: &str, size: Size) -> Option<&'a Record> {
    let peaks: Vec<&Record> = ["tick_b5", "tick_b20"]
        .iter()
        .filter_map(|p| find(records, backend, p, Some(size)))
        .collect();
    let worst = peaks.iter().max_by(|a, b| {
        a.peak_rss_mib
            .unwrap_or(0.0)
            .total_cmp(&b.peak_rss_mib.unwrap_or(0.0))
    })?;
    Some(*worst)
}

/// The tables the soak's verdict judges (keys of its `verdict`).
pub(super) const SOAK_TABLES: [&str; 5] = [
    "rss_mib",
    "outbox",
    "outbox_pending",
    "handled_envelopes",
    "open_offers",
];

/// The soak's verdict: whether RSS and every table were flat after warm-up and the ack p99
/// steady, and a cell saying so (or which were not).
pub(super) fn soak_verdict(r: &Record) -> Option<(bool, String)> {
    let v = &r.detail["verdict"];
    if v.is_null() {
        return None;
    }
    let mut not_flat: Vec<&str> = SOAK_TABLES
        .into_iter()
        .filter(|k| v[*k]["flat"] == Value::Bool(false))
        .collect();
    if v["ack_p99_ms"]["steady"] == Value::Bool(false) {
        not_flat.push("ack p99");
    }
    Some(if not_flat.is_empty() {
        let cell = format!(
            "flat (RSS {} → {} MiB; ack p99 {} → {} ms)",
            v["rss_mib"]["middle"],
            v["rss_mib"]["last"],
            v["ack_p99_ms"]["middle"],
            v["ack_p99_ms"]["last"]
        );
        (true, cell)
    } else {
        (false, format!("growing: {}", not_flat.join(", ")))
    })
}

/// The targets as lines for the console summary, per backend.
pub fn target_lines(records: &[Record]) -> Vec<String> {
    let mut lines = Vec::new();
    for backend in ["sqlite", "postgres"] {
        if !records.iter().any(|r| r.backend == backend) {
            continue;
        }
        lines.push(format!("{backend}:"));
        for t in outcomes(records, backend) {
            lines.push(format!(
                "  {:<8} {} {}: {}",
                match t.met {
                    Some(true) => "met",
                    Some(false) => "MISSED",
                    None => "not run",
                },
                t.what,
                t.limit,
                t.measured.unwrap_or_else(|| "–".into())
            ));
        }
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The soak's verdict and the "flat" limit go together, and only together.
    #[test]
    fn soak_verdict_rows_have_the_flat_limit() {
        for t in TARGETS {
            assert_eq!(t.metric == SoakVerdict, t.limit == Flat, "{}", t.what);
        }
    }
}
