//! Markdown: `docs/benchmarks.md`, with a table per backend, the SanityBot, Socket Mode and soak
//! sections, the targets (met or missed), the machine and the command.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};
use serde_json::Value;

use super::recording::Record;
use super::targets::{Outcome, SOAK_TABLES, outcomes, soak_verdict};

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

pub(super) fn fmt_ms(v: f64) -> String {
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

/// A time in ms, or "–" without one.
fn ms_or_dash(v: Option<f64>) -> String {
    v.map(fmt_ms).unwrap_or_else(|| "–".into())
}

/// A phase's wall time, or how far it got before it was stopped or failed.
pub(super) fn time_cell(r: &Record) -> String {
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

fn target_cell(t: &Outcome) -> String {
    match (&t.measured, t.met) {
        (Some(m), Some(true)) => format!("{m} (met)"),
        (Some(m), Some(false)) => format!("**{m} (missed)**"),
        (Some(m), None) => m.clone(),
        (None, _) => "not run".into(),
    }
}

/// The targets table: one row per target, a column per backend.
fn targets_table(out: &mut String, records: &[Record]) {
    let _ = writeln!(
        out,
        "\n## Targets (issue 14, both backends)\n\n| target | limit | SQLite | PostgreSQL |\n|---|---|---|---|"
    );
    for (s, p) in outcomes(records, "sqlite")
        .into_iter()
        .zip(outcomes(records, "postgres"))
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

/// One backend's Socket Mode phases: startup, idle RSS, the load's acks and `ack_scripted`.
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
        load_lines(out, load, records);
    }
    if let Some(r) = get("ack_scripted") {
        scripted_line(out, r);
    }
}

/// The Socket Mode load: what was sent, the daemon, and a table of the acks.
fn load_lines(out: &mut String, load: &Record, records: &[Record]) {
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
        if let Some(r) = records.iter().find(|r| r.phase == phase) {
            let f = ms_or_dash;
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

/// `ack_scripted`: acks while description scripts run to their wall time.
fn scripted_line(out: &mut String, r: &Record) {
    let d = &r.detail;
    let f = ms_or_dash;
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

/// The soak phase (issue 14): what ran, the verdict, the plot and a row per minute.
fn soak_section(out: &mut String, records: &[Record]) {
    for (backend, title) in [("sqlite", "SQLite"), ("postgres", "PostgreSQL")] {
        let Some(summary) = records
            .iter()
            .find(|r| r.backend == backend && r.phase == "soak")
        else {
            continue;
        };
        soak_summary(out, summary, title);
        soak_verdict_lines(out, summary);
        let _ = writeln!(
            out,
            "\n![the soak: memory, rows and ack latency over the run](soak.svg)\n"
        );
        soak_minutes(out, records, backend);
    }
}

/// What the soak ran, what it sent and its acks over the whole run.
fn soak_summary(out: &mut String, summary: &Record, title: &str) {
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
    let f = ms_or_dash;
    let _ = writeln!(
        out,
        "- acks over the whole run: p50 {}, p90 {}, p99 {}, max {}",
        f(summary.p50_ms),
        f(summary.p90_ms),
        f(summary.p99_ms),
        f(summary.max_ms)
    );
}

/// The soak's verdict, then the middle and last figures it compared.
fn soak_verdict_lines(out: &mut String, summary: &Record) {
    let v = &summary.detail["verdict"];
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
        let f = ms_or_dash;
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

/// Writes the report to `path`, with `benchmarks-notes.md` beside it appended when there is one.
pub fn write_markdown(path: &Path, input: &MarkdownInput<'_>) -> Result<()> {
    let mut out = String::new();
    header(&mut out, input);
    targets_table(&mut out, input.records);
    what_is_measured(&mut out, input.tick_timeout_s);

    let _ = writeln!(out, "\n## SQLite (file, WAL)");
    backend_tables(&mut out, "sqlite", input.records);
    if input.records.iter().any(|r| r.backend == "postgres") {
        let _ = writeln!(out, "\n## PostgreSQL");
        backend_tables(&mut out, "postgres", input.records);
    }

    sanity_section(&mut out, input.records);
    socket_sections(&mut out, input.records);
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

/// The title, where the report comes from, the date, the command and the machine.
fn header(out: &mut String, input: &MarkdownInput<'_>) {
    let m = input.machine;
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
}

/// What the data is and what each phase does.
fn what_is_measured(out: &mut String, tick_timeout_s: f64) {
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
        tick_timeout_s
    );
}

/// The Socket Mode phases: what runs, then a subsection per backend that ran them.
fn socket_sections(out: &mut String, all: &[Record]) {
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
        let records: Vec<Record> = all
            .iter()
            .filter(|r| r.backend == backend)
            .cloned()
            .collect();
        if records.iter().any(|r| r.phase == "startup") {
            let _ = writeln!(out, "\n### {title}");
            socket_section(out, &records);
        }
    }
    if !all.iter().any(|r| r.phase == "startup") {
        socket_section(out, &[]);
    }
}
