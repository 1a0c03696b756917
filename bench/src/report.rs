//! Results: one JSON line per (backend, size, phase), and `docs/benchmarks.md` with a table per
//! backend, the socket measurements, the targets of issue 6 (met or missed), the machine and
//! the command.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;

use anyhow::{Context, Result};
use serde::Serialize;
use serde_json::Value;

use crate::phases::Phase;

#[derive(Debug, Clone, Default, Serialize)]
pub struct Record {
    pub backend: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workers: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requests: Option<usize>,
    pub phase: String,
    /// Single-shot phases: the wall time. Phases of several operations: the median one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wall_ms: Option<f64>,
    /// Single-shot phases: all statements. Phases of several operations: the median one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub statements: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub statements_per_request: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peak_rss_mib: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rss_before_mib: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub samples: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p50_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p90_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p99_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_ms: Option<f64>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub timed_out: bool,
    #[serde(skip_serializing_if = "Value::is_null")]
    pub detail: Value,
}

/// The `p`-th percentile (nearest rank) of sorted values.
pub fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

fn round(v: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (v * f).round() / f
}

fn ms(d: std::time::Duration) -> f64 {
    round(d.as_secs_f64() * 1000.0, 3)
}

pub fn from_phase(backend: &str, workers: usize, requests: usize, phase: &Phase) -> Record {
    let mut r = Record {
        backend: backend.to_string(),
        workers: Some(workers),
        requests: Some(requests),
        phase: phase.name.to_string(),
        peak_rss_mib: phase.peak_rss_mib.map(|v| round(v, 1)),
        rss_before_mib: phase.rss_before_mib.map(|v| round(v, 1)),
        timed_out: phase.timed_out,
        detail: phase.detail.clone(),
        ..Default::default()
    };
    if phase.samples.is_empty() {
        r.wall_ms = Some(ms(phase.total.wall));
        r.statements = Some(phase.total.statements);
        if phase.name.starts_with("tick") {
            let batched = phase.detail["requests_batched"]
                .as_f64()
                .unwrap_or(requests as f64);
            if batched > 0.0 {
                r.statements_per_request = Some(round(phase.total.statements as f64 / batched, 2));
            }
        }
    } else {
        let mut walls: Vec<f64> = phase.samples.iter().map(|s| ms(s.wall)).collect();
        walls.sort_by(f64::total_cmp);
        let mut statements: Vec<u64> = phase.samples.iter().map(|s| s.statements).collect();
        statements.sort_unstable();
        r.samples = Some(walls.len());
        r.wall_ms = percentile(&walls, 50.0);
        r.p50_ms = r.wall_ms;
        r.p90_ms = percentile(&walls, 90.0);
        r.max_ms = walls.last().copied();
        r.statements = Some(statements[(statements.len() - 1) / 2]);
        r.detail = serde_json::json!({
            "total_ms": ms(phase.total.wall),
            "statements_min": statements.first(),
            "statements_max": statements.last(),
        });
    }
    r
}

/// Appends JSON lines as results come in (a run cut short keeps what it measured).
pub struct JsonLines {
    file: std::fs::File,
    pub records: Vec<Record>,
}

impl JsonLines {
    pub fn create(path: &Path) -> Result<JsonLines> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let file = std::fs::File::create(path)
            .with_context(|| format!("cannot write {}", path.display()))?;
        Ok(JsonLines {
            file,
            records: Vec::new(),
        })
    }

    pub fn push(&mut self, record: Record) -> Result<()> {
        let line = serde_json::to_string(&record)?;
        eprintln!("  {line}");
        writeln!(self.file, "{line}")?;
        self.file.flush()?;
        self.records.push(record);
        Ok(())
    }
}

// ---- markdown ----

const PHASES: &[(&str, &str)] = &[
    ("build", "build the data"),
    ("tick_b5", "staffing tick, B=5"),
    ("tick_b20", "staffing tick, B=20"),
    (
        "tick_b5_available",
        "staffing tick, B=5, every worker with availability this week (auto-staffing looked at first)",
    ),
    ("accept_win", "winning accept"),
    ("accept_late", "late accept"),
    ("reject", "reject"),
    ("staff", "`/staffbot staff`"),
    ("reminders", "reminders"),
    ("warnings", "warnings"),
];

fn fmt_ms(v: f64) -> String {
    if v >= 10_000.0 {
        format!("{:.1} s", v / 1000.0)
    } else if v >= 100.0 {
        format!("{v:.0} ms")
    } else if v >= 10.0 {
        format!("{v:.1} ms")
    } else {
        format!("{v:.2} ms")
    }
}

fn time_cell(r: &Record) -> String {
    let Some(wall) = r.wall_ms else {
        return "–".into();
    };
    if let Some(error) = r.detail["error"].as_str() {
        let short: String = error.chars().take(80).collect();
        return format!("failed after {}: `{short}`", fmt_ms(wall));
    }
    if r.timed_out {
        let est = r.detail["estimated_full_ms"]
            .as_f64()
            .map(|e| format!(", est. {}", fmt_ms(e)))
            .unwrap_or_default();
        return format!(
            "stopped at {} ({} of {} requests{est})",
            fmt_ms(wall),
            r.detail["requests_batched"],
            r.requests.unwrap_or(0)
        );
    }
    fmt_ms(wall)
}

fn statements_cell(r: &Record) -> String {
    match (r.statements, r.statements_per_request) {
        (Some(s), Some(per)) => format!("{s} ({per}/req)"),
        (Some(s), None) => s.to_string(),
        _ => "–".into(),
    }
}

fn group_digits(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn backend_tables(out: &mut String, backend: &str, records: &[Record]) {
    let rows: Vec<&Record> = records
        .iter()
        .filter(|r| r.backend == backend && r.workers.is_some())
        .collect();
    if rows.is_empty() {
        return;
    }
    let mut sizes: Vec<(usize, usize)> = Vec::new();
    for r in &rows {
        let size = (r.workers.unwrap_or(0), r.requests.unwrap_or(0));
        if !sizes.contains(&size) {
            sizes.push(size);
        }
    }
    let find = |phase: &str, size: (usize, usize)| {
        rows.iter()
            .find(|r| r.phase == phase && (r.workers, r.requests) == (Some(size.0), Some(size.1)))
    };
    let header: Vec<String> = sizes
        .iter()
        .map(|&(w, t)| format!("W={} T={}", group_digits(w), group_digits(t)))
        .collect();
    for (title, cell) in [
        (
            "wall time (accept, reject, `staff`: median of the operations)",
            time_cell as fn(&Record) -> String,
        ),
        (
            "SQL statements (accept, reject, `staff`: median per operation)",
            statements_cell,
        ),
        (
            "peak RSS of the benchmark process during the phase (MiB)",
            |r: &Record| {
                r.peak_rss_mib
                    .map(|v| format!("{v:.1}"))
                    .unwrap_or_else(|| "–".into())
            },
        ),
    ] {
        let _ = writeln!(out, "\n**{backend}: {title}**\n");
        let _ = writeln!(out, "| phase | {} |", header.join(" | "));
        let _ = writeln!(out, "|---|{}", "---|".repeat(sizes.len()));
        for (phase, label) in PHASES {
            if !sizes.iter().any(|&s| find(phase, s).is_some()) {
                continue;
            }
            let cells: Vec<String> = sizes
                .iter()
                .map(|&s| {
                    find(phase, s)
                        .map(|r| cell(r))
                        .unwrap_or_else(|| "–".into())
                })
                .collect();
            let _ = writeln!(out, "| {label} | {} |", cells.join(" | "));
        }
    }
}

struct Target {
    what: &'static str,
    limit: &'static str,
    measured: Option<String>,
    met: Option<bool>,
}

fn find<'a>(
    records: &'a [Record],
    backend: &str,
    phase: &str,
    size: Option<(usize, usize)>,
) -> Option<&'a Record> {
    records.iter().find(|r| {
        r.backend == backend
            && r.phase == phase
            && size.is_none_or(|(w, t)| r.workers == Some(w) && r.requests == Some(t))
    })
}

fn target(
    what: &'static str,
    limit: &'static str,
    record: Option<&Record>,
    value: impl Fn(&Record) -> Option<f64>,
    show: impl Fn(f64) -> String,
    ok: impl Fn(f64) -> bool,
) -> Target {
    let timed_out = record.is_some_and(|r| r.timed_out || r.detail.get("error").is_some());
    let v = record.and_then(|r| if timed_out { None } else { value(r) });
    Target {
        what,
        limit,
        measured: if timed_out {
            record.map(time_cell)
        } else {
            v.map(&show)
        },
        met: if timed_out { Some(false) } else { v.map(&ok) },
    }
}

fn fmt_mib(v: f64) -> String {
    format!("{v:.1} MiB")
}

fn fmt_count(v: f64) -> String {
    format!("{v}")
}

/// The higher peak RSS of the two ticks at one size.
fn tick_peak(records: &[Record], backend: &str, size: (usize, usize)) -> Option<Record> {
    let peaks: Vec<&Record> = ["tick_b5", "tick_b20"]
        .iter()
        .filter_map(|p| find(records, backend, p, Some(size)))
        .collect();
    let worst = peaks.iter().max_by(|a, b| {
        a.peak_rss_mib
            .unwrap_or(0.0)
            .total_cmp(&b.peak_rss_mib.unwrap_or(0.0))
    })?;
    Some((*worst).clone())
}

/// The tables the soak's verdict judges (keys of its `verdict`).
const SOAK_TABLES: [&str; 5] = [
    "rss_mib",
    "outbox",
    "outbox_pending",
    "handled_envelopes",
    "open_offers",
];

/// The soak's verdict: whether RSS and every table were flat after warm-up and the ack p99
/// steady, and a cell saying so (or which were not).
fn soak_verdict(r: &Record) -> Option<(bool, String)> {
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

/// Issue 14's targets (and issue 6's that it keeps) on `backend`.
fn targets(records: &[Record], backend: &str) -> Vec<Target> {
    const MID: Option<(usize, usize)> = Some((1000, 200));
    const BIG: Option<(usize, usize)> = Some((100_000, 10_000));
    let at = |phase: &str, size| find(records, backend, phase, size);
    let ack = at("ack_all", None);
    let pg = backend == "postgres";
    let big_peak = tick_peak(records, backend, (100_000, 10_000));
    let soak = at("soak", None).and_then(soak_verdict);
    vec![
        target(
            "tick W=1,000/T=200/B=5",
            "≤ 40 ms",
            at("tick_b5", MID),
            |r| r.wall_ms,
            fmt_ms,
            |v| v <= 40.0,
        ),
        target(
            "tick W=1,000/T=200/B=5, statements per request",
            "≤ 5",
            at("tick_b5", MID),
            |r| r.statements_per_request,
            fmt_count,
            |v| v <= 5.0,
        ),
        target(
            "tick W=1,000/T=200/B=5, availability rows for every worker",
            "≤ 40 ms",
            at("tick_b5_available", MID),
            |r| r.wall_ms,
            fmt_ms,
            |v| v <= 40.0,
        ),
        target(
            "tick W=1,000/T=200/B=20",
            "≤ 100 ms",
            at("tick_b20", MID),
            |r| r.wall_ms,
            fmt_ms,
            |v| v <= 100.0,
        ),
        target(
            "winning accept (median, W=1,000/T=200)",
            "≤ 0.8 ms SQLite, ≤ 1.5 ms PostgreSQL",
            at("accept_win", MID),
            |r| r.wall_ms,
            fmt_ms,
            move |v| v <= if pg { 1.5 } else { 0.8 },
        ),
        target(
            "winning accept, statements for the whole envelope (median)",
            "≤ 8",
            at("accept_win", MID),
            |r| r.statements.map(|s| s as f64),
            fmt_count,
            |v| v <= 8.0,
        ),
        target(
            "reminders W=1,000/T=200",
            "≤ 50 ms",
            at("reminders", MID),
            |r| r.wall_ms,
            fmt_ms,
            |v| v <= 50.0,
        ),
        target(
            "tick W=100,000/T=10,000/B=5",
            "≤ 1.5 s",
            at("tick_b5", BIG),
            |r| r.wall_ms,
            fmt_ms,
            |v| v <= 1500.0,
        ),
        target(
            "tick W=100,000/T=10,000/B=5, availability rows for every worker",
            "≤ 1.5 s",
            at("tick_b5_available", BIG),
            |r| r.wall_ms,
            fmt_ms,
            |v| v <= 1500.0,
        ),
        target(
            "tick W=100,000/T=10,000/B=20",
            "≤ 5 s",
            at("tick_b20", BIG),
            |r| r.wall_ms,
            fmt_ms,
            |v| v <= 5000.0,
        ),
        target(
            "tick W=100,000/T=10,000, peak RSS (B=5 and B=20)",
            "≤ 120 MiB",
            big_peak.as_ref(),
            |r| r.peak_rss_mib,
            fmt_mib,
            |v| v <= 120.0,
        ),
        target(
            "warnings W=100,000/T=10,000",
            "≤ 200 ms",
            at("warnings", BIG),
            |r| r.wall_ms,
            fmt_ms,
            |v| v <= 200.0,
        ),
        target(
            "reminders W=100,000/T=10,000",
            "≤ 600 ms",
            at("reminders", BIG),
            |r| r.wall_ms,
            fmt_ms,
            |v| v <= 600.0,
        ),
        target(
            "reminders W=100,000/T=10,000, peak RSS",
            "≤ 100 MiB",
            at("reminders", BIG),
            |r| r.peak_rss_mib,
            fmt_mib,
            |v| v <= 100.0,
        ),
        target(
            "ack p99 at 200 envelopes/s",
            "≤ 10 ms",
            ack,
            |r| r.p99_ms,
            fmt_ms,
            |v| v <= 10.0,
        ),
        target(
            "ack p99 while description scripts run to their wall time (`ack_scripted`: 20 tasks \
             staffed, `help` at 20/s; a missing ack counts as too late)",
            "≤ 10 ms",
            at("ack_scripted", None),
            |r| {
                let missing = r.detail["missing"].as_u64().unwrap_or(0);
                r.p99_ms
                    .map(|p| if missing > 0 { f64::INFINITY } else { p })
            },
            |v| {
                if v.is_finite() {
                    fmt_ms(v)
                } else {
                    "acks missing".into()
                }
            },
            |v| v <= 10.0,
        ),
        target(
            "slowest ack (a missing ack counts as too late)",
            "≤ 1 s",
            ack,
            |r| {
                let missing = r.detail["missing"].as_u64().unwrap_or(0);
                r.max_ms
                    .map(|m| if missing > 0 { f64::INFINITY } else { m })
            },
            |v| {
                if v.is_finite() {
                    fmt_ms(v)
                } else {
                    "acks missing".into()
                }
            },
            |v| v <= 1000.0,
        ),
        target(
            "SanityBot round over 10,000 projects, script check (1 in 100 fire)",
            "< 1 s",
            at("sanity_first", None),
            |r| r.wall_ms,
            fmt_ms,
            |v| v < 1000.0,
        ),
        target(
            "SanityBot round over 10,000 projects, script check (steady: nothing due)",
            "< 1 s",
            at("sanity_steady", None),
            |r| r.wall_ms,
            fmt_ms,
            |v| v < 1000.0,
        ),
        target(
            "idle RSS of a connected daemon",
            "≤ 15 MiB",
            at("idle_rss", None),
            |r| r.peak_rss_mib,
            fmt_mib,
            |v| v <= 15.0,
        ),
        target(
            "`serve` start → first Socket Mode connection (median)",
            "≤ 150 ms",
            at("startup", None),
            |r| r.wall_ms,
            fmt_ms,
            |v| v <= 150.0,
        ),
        Target {
            what: "soak: RSS and tables flat after warm-up, ack p99 steady",
            limit: "flat",
            measured: soak.as_ref().map(|(_, cell)| cell.clone()),
            met: soak.as_ref().map(|(flat, _)| *flat),
        },
    ]
}

fn target_cell(t: &Target) -> String {
    match (&t.measured, t.met) {
        (Some(m), Some(true)) => format!("{m} (met)"),
        (Some(m), Some(false)) => format!("**{m} (missed)**"),
        (Some(m), None) => m.clone(),
        (None, _) => "not run".into(),
    }
}

/// The targets as lines for the console summary, per backend.
pub fn target_lines(records: &[Record]) -> Vec<String> {
    let mut lines = Vec::new();
    for backend in ["sqlite", "postgres"] {
        if !records.iter().any(|r| r.backend == backend) {
            continue;
        }
        lines.push(format!("{backend}:"));
        for t in targets(records, backend) {
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

/// The targets table: one row per target, a column per backend.
fn targets_table(out: &mut String, records: &[Record]) {
    let _ = writeln!(
        out,
        "\n## Targets (issue 14, both backends)\n\n| target | limit | SQLite | PostgreSQL |\n|---|---|---|---|"
    );
    for (s, p) in targets(records, "sqlite")
        .into_iter()
        .zip(targets(records, "postgres"))
    {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} |",
            s.what,
            s.limit,
            target_cell(&s),
            target_cell(&p)
        );
    }
}

const ORCHESTRA: &str = "\
| W workers | T open requests | B batch | one staffing tick | SQL statements | winning accept | reminders |
|---|---|---|---|---|---|---|
| 50 | 20 | 5 | 0.77 s | 1,062 | 19.7 ms (45 statements) | 0.26 s |
| 200 | 100 | 5 | 4.33 s | 5,302 | 19.5 ms | 1.24 s |
| 1000 | 200 | 5 | 11.6 s | 10,602 | 19.9 ms | 4.66 s (5,621 statements) |
| 1000 | 200 | 20 | 32.6 s | 37,602 | 17.1 ms | 10.3 s |

Its process idles at 94 MiB RSS and takes 0.88 s to be ready. A `/staffbot staff` call costs 3–5 ms.
";

/// The SanityBot phase (issue 15): one table, a row per backend and round.
fn sanity_section(out: &mut String, records: &[Record]) {
    let rows: Vec<&Record> = records
        .iter()
        .filter(|r| r.phase.starts_with("sanity_"))
        .collect();
    let _ = writeln!(
        out,
        "\n## SanityBot with a script check\n\n\
         `sanity::run_once` over every project of the rush-desk example workflow \
         (`examples/rush-desk`), whose `sanity_check_function` is the Rhai script \
         `checks.rhai`: each project has two tasks, its reporting task assigned (20 reporters), \
         and project data; one project in a hundred is a rush project more than a day old. The \
         first round fires `rush_stale` for those (one write transaction and one queued post \
         each); the second, a minute later, finds nothing due, as a daemon running every \
         `sanitybot.interval` mostly does. The round reads projects, versions, tasks, \
         assignments and the latest firings in five statements, compiles the script once and \
         runs it once per project under its limits."
    );
    if rows.is_empty() {
        let _ = writeln!(out, "\nNot run (`--sanity-projects 0`).");
        return;
    }
    let _ = writeln!(
        out,
        "\n| backend | round | projects | checks fired | wall time | SQL statements | peak RSS (MiB) |\n|---|---|---|---|---|---|---|"
    );
    for r in rows {
        let round = if r.phase == "sanity_first" {
            "first (1 in 100 fire)"
        } else {
            "steady (nothing due)"
        };
        let _ = writeln!(
            out,
            "| {} | {round} | {} | {} | {} | {} | {} |",
            r.backend,
            group_digits(r.detail["projects"].as_u64().unwrap_or(0) as usize),
            r.detail["checks_fired"].as_u64().unwrap_or(0),
            r.wall_ms.map(fmt_ms).unwrap_or_else(|| "–".into()),
            r.statements
                .map(|s| group_digits(s as usize))
                .unwrap_or_default(),
            r.peak_rss_mib
                .map(|v| format!("{v:.1}"))
                .unwrap_or_else(|| "–".into()),
        );
    }
}

fn socket_section(out: &mut String, records: &[Record]) {
    let get = |phase: &str| records.iter().find(|r| r.phase == phase);
    let Some(startup) = get("startup") else {
        let _ = writeln!(out, "\nNot run (`--skip-socket`).");
        return;
    };
    let runs = startup.detail["runs_ms"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_f64)
                .map(fmt_ms)
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "\n- `serve` start → first Socket Mode connection: **{}** (median of runs: {runs})",
        startup.wall_ms.map(fmt_ms).unwrap_or_default()
    );
    if let Some(idle) = get("idle_rss") {
        let _ = writeln!(
            out,
            "- idle RSS of the connected daemon ({} s after connecting, {} Socket Mode connections): \
             **{:.1} MiB** (anonymous {} MiB, file-backed {} MiB, i.e. the binary's pages; {} threads)",
            idle.detail["idle_s"],
            idle.detail["connections"],
            idle.peak_rss_mib.unwrap_or(f64::NAN),
            idle.detail["rss_anon_mib"],
            idle.detail["rss_file_mib"],
            idle.detail["threads"]
        );
    }
    if let Some(load) = get("ack_all") {
        let d = &load.detail;
        let _ = writeln!(
            out,
            "- load: {} envelopes in {} s (asked: {}/s; sent: {}/s), half slash commands (`help` and `staff`, alternating), half Accept clicks on real offers ({} won, the rest late)",
            d["sent"], d["duration_s"], d["rate"], d["achieved_rate"], d["winners"]
        );
        let _ = writeln!(
            out,
            "- daemon peak RSS (VmHWM, whole run): {} MiB; daemon log lines at ERROR: {}",
            d["daemon_peak_rss_mib"], d["daemon_errors"]
        );
        let _ = writeln!(
            out,
            "\n| acks | count | p50 | p90 | p99 | max | later than 1 s | missing |"
        );
        let _ = writeln!(out, "|---|---|---|---|---|---|---|---|");
        for (phase, label) in [
            ("ack_slash", "slash commands"),
            ("ack_accept", "Accept clicks"),
            ("ack_all", "all"),
        ] {
            if let Some(r) = get(phase) {
                let f = |v: Option<f64>| v.map(fmt_ms).unwrap_or_else(|| "–".into());
                let _ = writeln!(
                    out,
                    "| {label} | {} | {} | {} | {} | {} | {} | {} |",
                    r.samples.unwrap_or(0),
                    f(r.p50_ms),
                    f(r.p90_ms),
                    f(r.p99_ms),
                    f(r.max_ms),
                    r.detail["over_1s"],
                    r.detail["missing"]
                );
            }
        }
    }
    if let Some(r) = get("ack_scripted") {
        let d = &r.detail;
        let f = |v: Option<f64>| v.map(fmt_ms).unwrap_or_else(|| "–".into());
        let _ = writeln!(
            out,
            "\n- `ack_scripted` (a separate daemon and database, loops every second): `/staffbot \
             staff` for {} tasks whose step's detailed description is a script that runs to its \
             wall time (one call here: {} ms, `{}`), then {} `/staffbot help` at {}/s over {} s. \
             Descriptions stored by the round: {} (all by {} s; calls stopped at a limit: {}, {} \
             of them before the stream ended). `help` acks: p50 {}, p90 {}, p99 **{}**, max {}; \
             missing {}. Slowest `staff` ack: {} ms. Daemon log lines at ERROR: {}.",
            d["tasks_staffed"],
            d["script_call_ms"],
            d["script_call"].as_str().unwrap_or("?"),
            d["help_sent"],
            d["help_rate"],
            d["stream_s"],
            d["details_stored"],
            d["all_stored_at_s"],
            d["script_limit_failures"],
            d["script_limit_failures_by_stream_end"],
            f(r.p50_ms),
            f(r.p90_ms),
            f(r.p99_ms),
            f(r.max_ms),
            d["missing"],
            d["staff_ack_max_ms"],
            d["daemon_errors"]
        );
    }
}

/// The soak phase (issue 14): what ran, the verdict, the plot and a row per minute.
fn soak_section(out: &mut String, records: &[Record]) {
    for (backend, title) in [("sqlite", "SQLite"), ("postgres", "PostgreSQL")] {
        let Some(summary) = records
            .iter()
            .find(|r| r.backend == backend && r.phase == "soak")
        else {
            continue;
        };
        let d = &summary.detail;
        let _ = writeln!(
            out,
            "\n## Soak ({title})\n\n\
             The release `staffbot serve` binary against the fake Slack for {} s at {} envelopes/s \
             (sent: {}/s), W=1,000 workers. Every 300 envelopes: one `/staffbot staff` of a fresh \
             task; up to six offer clicks (per staffed request a Reject on its first offer, an Accept \
             on the second, which wins, a late Accept on the third); three App Home opens; the \
             rest `/staffbot help` and `/staffbot tasks` from workers. The staffing part stays \
             inside Slack's limits (about 50 `chat.update` a minute per workspace; each staffed \
             request updates three offers), as in a real workspace; the volume is the commands. \
             The daemon's loops run every 2 s (batches of 3 offers, reminders every minute, \
             warnings after a minute). Retention: the daemon's shortest is an hour, run hourly, \
             so the benchmark runs the same `retention::run_once` every 30 s under the \
             `retention` lease with a clock 58 minutes ahead (rows older than about 2 minutes go). \
             Samples every 10 s: the daemon's RSS, the table sizes.\n",
            d["duration_s"], d["rate"], d["achieved_rate"]
        );
        let _ = writeln!(
            out,
            "- sent: {} envelopes ({}); acks missing: {}; tasks staffed (winning accepts): {}; \
             daemon peak RSS (VmHWM): {} MiB; daemon log lines at ERROR: {}",
            d["sent"],
            d["by_kind"],
            d["missing"],
            d["winners"],
            d["daemon_peak_rss_mib"],
            d["daemon_errors"]
        );
        let f = |v: Option<f64>| v.map(fmt_ms).unwrap_or_else(|| "–".into());
        let _ = writeln!(
            out,
            "- acks over the whole run: p50 {}, p90 {}, p99 {}, max {}",
            f(summary.p50_ms),
            f(summary.p90_ms),
            f(summary.p99_ms),
            f(summary.max_ms)
        );
        let v = &d["verdict"];
        let _ = writeln!(
            out,
            "- verdict (mean of the last third of the samples against the middle third, after a \
             warm-up of the first fifth): {}",
            soak_verdict(summary).map_or_else(|| "–".into(), |(_, cell)| cell)
        );
        for key in SOAK_TABLES {
            let _ = writeln!(
                out,
                "  - `{key}`: {} → {} ({})",
                v[key]["middle"],
                v[key]["last"],
                if v[key]["flat"] == Value::Bool(true) {
                    "flat"
                } else {
                    "growing"
                }
            );
        }
        let _ = writeln!(
            out,
            "  - ack p99 per minute: {} → {} ms, worst minute after warm-up {} ms ({})",
            v["ack_p99_ms"]["middle"],
            v["ack_p99_ms"]["last"],
            v["ack_p99_ms"]["worst_minute"],
            if v["ack_p99_ms"]["steady"] == Value::Bool(true) {
                "steady"
            } else {
                "rising"
            }
        );
        let _ = writeln!(
            out,
            "\n![the soak: memory, rows and ack latency over the run](soak.svg)\n"
        );
        soak_minutes(out, records, backend);
    }
}

fn soak_minutes(out: &mut String, records: &[Record], backend: &str) {
    let samples: Vec<&Record> = records
        .iter()
        .filter(|r| r.backend == backend && r.phase == "soak_sample")
        .collect();
    let _ = writeln!(
        out,
        "| minute | envelopes | ack p50 | ack p99 | ack max | missing | RSS (MiB) | outbox | pending | handled_envelopes | offers (all) | open offers |\n|---|---|---|---|---|---|---|---|---|---|---|---|"
    );
    for m in records
        .iter()
        .filter(|r| r.backend == backend && r.phase == "soak_minute")
    {
        let minute = m.detail["minute"].as_f64().unwrap_or(0.0);
        // The sample nearest the minute's end.
        let s = samples.iter().min_by(|a, b| {
            let d = |r: &Record| (r.detail["t_s"].as_f64().unwrap_or(0.0) - minute * 60.0).abs();
            d(a).total_cmp(&d(b))
        });
        let col = |k: &str| {
            s.map(|s| s.detail[k].to_string())
                .unwrap_or_else(|| "–".into())
        };
        let f = |v: Option<f64>| v.map(fmt_ms).unwrap_or_else(|| "–".into());
        let _ = writeln!(
            out,
            "| {minute} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            m.samples.unwrap_or(0),
            f(m.p50_ms),
            f(m.p99_ms),
            f(m.max_ms),
            m.detail["missing"],
            s.and_then(|s| s.peak_rss_mib)
                .map(|v| format!("{v:.1}"))
                .unwrap_or_else(|| "–".into()),
            col("outbox"),
            col("outbox_pending"),
            col("handled_envelopes"),
            col("inquiries"),
            col("open_offers"),
        );
    }
}

pub struct MarkdownInput<'a> {
    pub records: &'a [Record],
    pub machine: &'a Value,
    pub command: &'a str,
    pub date: &'a str,
    pub jsonl: &'a str,
    pub tick_timeout_s: f64,
}

pub fn write_markdown(path: &Path, input: &MarkdownInput<'_>) -> Result<()> {
    let m = input.machine;
    let mut out = String::new();
    let _ = writeln!(out, "# Benchmarks\n");
    let _ = writeln!(
        out,
        "Written by the benchmark (`bench/`, issue 6); not part of the pass/fail suite. Rerun it \
         with the command below; it rewrites this file and the JSON lines in `{}`.\n",
        input.jsonl
    );
    let _ = writeln!(out, "- date: {}", input.date);
    let _ = writeln!(out, "- command: `{}`", input.command);
    let _ = writeln!(
        out,
        "- machine: {} CPUs ({}), {} GiB memory, {}; {}; {}",
        m["nproc"],
        m["cpu"].as_str().unwrap_or("?"),
        m["memory_gib"],
        m["kernel"].as_str().unwrap_or("?"),
        m["rustc"].as_str().unwrap_or("?"),
        m["postgres"].as_str().unwrap_or("no psql")
    );
    targets_table(&mut out, input.records);

    let _ = writeln!(out, "\n## What is measured\n");
    let _ = writeln!(
        out,
        "The data: one workflow step requiring one certification; W workers with Slack ids, all \
         certified for it with `staffing_priority = i % 10`; T projects with one task each and \
         one open staffing request (the rows `staff` writes, its channel announcement included), \
         50 spare tasks for `staff`, and one admin. It is bulk-inserted into a fresh database per \
         size and batch size: an SQLite file (WAL, `synchronous = NORMAL`, as `serve` opens it) or \
         a new PostgreSQL database, then `ANALYZE`d (fresh planner statistics, as a database in \
         use has; not part of the build time). The bulk rows are checked against what \
         staffbot's own functions write before every run.\n"
    );
    let _ = writeln!(
        out,
        "- **tick**: `staffing::batch::run_once` over all T requests under the `staffing` lease \
         (the daemon's staffing loop). B=20 runs on fresh data. A tick longer than {:.0} s \
         (`--tick-timeout`) is stopped; the table then shows how far it got and an estimate.\n\
         - **accept / reject / staff**: envelopes handled by the daemon's `Dispatcher` (duplicate \
         check, the handler, the stored ack, one transaction), without the socket: the first \
         Accept on an offer of 50 different requests (wins), a second Accept on each of those \
         requests (late), a Reject on 50 other requests, and `/staffbot staff` on 50 tasks \
         without a request. Medians.\n\
         - **reminders / warnings**: one round of each loop a day later (every open offer is due \
         a reminder; every unstaffed task is reported).\n\
         - **SQL statements**: sea-orm's metric callback (every statement; `BEGIN`/`COMMIT` are \
         not counted). **Peak RSS**: `VmHWM` of the benchmark process, reset before each phase \
         (`/proc/self/clear_refs`, after `malloc_trim`); on PostgreSQL the server's memory is not \
         included.",
        input.tick_timeout_s
    );

    let _ = writeln!(out, "\n## SQLite (file, WAL)");
    backend_tables(&mut out, "sqlite", input.records);
    if input.records.iter().any(|r| r.backend == "postgres") {
        let _ = writeln!(out, "\n## PostgreSQL");
        backend_tables(&mut out, "postgres", input.records);
    }

    sanity_section(&mut out, input.records);

    let _ = writeln!(
        out,
        "\n## Through Socket Mode\n\n\
         The real `staffbot serve` binary (release build) as a child process, against the fake \
         Slack (`crates/slack-sim`) running in the benchmark process: W=1000 workers, 1,500 open \
         requests with two offers each (one staffing round before the daemon starts; their DMs \
         are marked delivered), 500 spare tasks for `staff`. Ack latency is measured by the fake, \
         from writing the envelope to reading the ack. Default configuration (loops every 10 s, \
         `info` logs to a file). On each backend in turn, with a fresh database."
    );
    for (backend, title) in [("sqlite", "SQLite"), ("postgres", "PostgreSQL")] {
        let records: Vec<Record> = input
            .records
            .iter()
            .filter(|r| r.backend == backend)
            .cloned()
            .collect();
        if records.iter().any(|r| r.phase == "startup") {
            let _ = writeln!(out, "\n### {title}");
            socket_section(&mut out, &records);
        }
    }
    if !input.records.iter().any(|r| r.phase == "startup") {
        socket_section(&mut out, &[]);
    }

    soak_section(&mut out, input.records);

    let _ = writeln!(
        out,
        "\n## For comparison: Orchestra 1.0.61 (from issue 6)\n\nSame machine class, SQLite file \
         DB, Slack mocked, medians of 3 runs.\n\n{ORCHESTRA}"
    );
    // Hand-written findings (profiles, what was changed, why a target is missed) live beside
    // the report in `benchmarks-notes.md` and are carried into every rewrite.
    let notes = path.with_file_name("benchmarks-notes.md");
    if let Ok(text) = std::fs::read_to_string(&notes) {
        let _ = writeln!(out, "\n{}", text.trim_end());
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, out).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}
