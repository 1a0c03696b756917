//! Pins what the report writes for a tiny hand-made set of records: the JSON lines, the markdown
//! and the console's target lines, each against a file in `testdata/`.

use std::time::Duration;

use serde_json::{Value, json};

use super::{JsonLines, MarkdownInput, Record, from_phase, target_lines, write_markdown};
use crate::phases::{Phase, Sample};

const MID: (usize, usize) = (1000, 200);
const BIG: (usize, usize) = (100_000, 10_000);

fn sample(wall_us: u64, statements: u64) -> Sample {
    Sample {
        wall: Duration::from_micros(wall_us),
        statements,
    }
}

fn phase(name: &'static str, total: Sample, samples: Vec<Sample>, detail: Value) -> Phase {
    Phase {
        name,
        total,
        samples,
        rss_before_mib: Some(18.04),
        peak_rss_mib: Some(20.06),
        timed_out: false,
        detail,
    }
}

/// Phase records: single-shot, several operations, stopped, failed, and without a size.
fn phase_records() -> Vec<Record> {
    let batched = json!({"requests_batched": 200, "offers": 1000});
    let ops = vec![sample(1200, 7), sample(500, 6), sample(900, 8)];
    let mut stopped = phase("tick_b20", sample(30_000_000, 9000), vec![], json!({}));
    stopped.timed_out = true;
    stopped.detail = json!({"requests_batched": 50, "estimated_full_ms": 120000.0});
    let failed = json!({"error": "database is locked"});
    let mut big_reminders = phase("reminders", sample(700_000, 40), vec![], json!({}));
    big_reminders.peak_rss_mib = Some(90.0);
    let mut sanity = from_phase(
        "sqlite",
        0,
        0,
        &phase(
            "sanity_first",
            sample(800_000, 12345),
            vec![],
            json!({"projects": 10000, "checks_fired": 100}),
        ),
    );
    sanity.workers = None;
    sanity.requests = None;
    vec![
        from_phase(
            "sqlite",
            MID.0,
            MID.1,
            &phase("tick_b5", sample(12_345, 600), vec![], batched.clone()),
        ),
        from_phase(
            "sqlite",
            MID.0,
            MID.1,
            &phase("accept_win", sample(2600, 21), ops.clone(), json!({})),
        ),
        from_phase("sqlite", MID.0, MID.1, &stopped),
        from_phase(
            "sqlite",
            BIG.0,
            BIG.1,
            &phase("tick_b5", sample(2_000_000, 10), vec![], failed),
        ),
        from_phase("sqlite", BIG.0, BIG.1, &big_reminders),
        sanity,
        from_phase(
            "postgres",
            MID.0,
            MID.1,
            &phase("tick_b5", sample(45_000, 1200), vec![], batched),
        ),
        from_phase(
            "postgres",
            MID.0,
            MID.1,
            &phase("accept_win", sample(3600, 24), ops, json!({})),
        ),
    ]
}

/// Socket Mode records on SQLite.
fn socket_records() -> Vec<Record> {
    let rec = |phase: &str| Record {
        backend: "sqlite".into(),
        phase: phase.into(),
        ..Default::default()
    };
    let startup = Record {
        wall_ms: Some(120.0),
        detail: json!({"runs_ms": [110.0, 120.0, 130.5]}),
        ..rec("startup")
    };
    let idle = Record {
        peak_rss_mib: Some(14.2),
        detail: json!({"idle_s": 5, "connections": 4, "rss_anon_mib": 3.1, "rss_file_mib": 11.1, "threads": 6}),
        ..rec("idle_rss")
    };
    let acks = |phase: &str, p99: f64, missing: u64| Record {
        samples: Some(3000),
        p50_ms: Some(1.5),
        p90_ms: Some(3.25),
        p99_ms: Some(p99),
        max_ms: Some(250.0),
        detail: json!({"sent": 6000, "duration_s": 30, "rate": 200, "achieved_rate": 199.9,
                       "winners": 40, "daemon_peak_rss_mib": 30.5, "daemon_errors": 0,
                       "over_1s": 0, "missing": missing}),
        ..rec(phase)
    };
    let scripted = Record {
        p50_ms: Some(2.0),
        p90_ms: Some(4.0),
        p99_ms: Some(8.0),
        max_ms: Some(20.0),
        detail: json!({"tasks_staffed": 20, "script_call_ms": 1000, "script_call": "sleep(1000)",
                       "help_sent": 600, "help_rate": 20, "stream_s": 30, "details_stored": 20,
                       "all_stored_at_s": 12, "script_limit_failures": 0,
                       "script_limit_failures_by_stream_end": 0, "missing": 1,
                       "staff_ack_max_ms": 15.0, "daemon_errors": 0}),
        ..rec("ack_scripted")
    };
    vec![
        startup,
        idle,
        acks("ack_slash", 12.5, 0),
        acks("ack_all", 9.75, 0),
        scripted,
    ]
}

/// A short soak on SQLite: its summary, two minutes and two samples.
fn soak_records() -> Vec<Record> {
    let rec = |phase: &str, detail: Value| Record {
        backend: "sqlite".into(),
        phase: phase.into(),
        detail,
        ..Default::default()
    };
    let flat = |middle: f64, last: f64| json!({"middle": middle, "last": last, "flat": true});
    let verdict = json!({
        "rss_mib": flat(20.0, 20.5),
        "outbox": flat(100.0, 101.0),
        "outbox_pending": flat(0.0, 0.0),
        "handled_envelopes": {"middle": 500.0, "last": 900.0, "flat": false},
        "open_offers": flat(30.0, 31.0),
        "ack_p99_ms": {"middle": 4.0, "last": 4.5, "worst_minute": 6.0, "steady": true},
    });
    let summary = Record {
        p50_ms: Some(1.0),
        p90_ms: Some(2.0),
        p99_ms: Some(5.0),
        max_ms: Some(40.0),
        ..rec(
            "soak",
            json!({"duration_s": 120, "rate": 50, "achieved_rate": 49.8, "sent": 6000,
                   "by_kind": {"help": 5000, "staff": 20}, "missing": 0, "winners": 20,
                   "daemon_peak_rss_mib": 25.5, "daemon_errors": 0, "verdict": verdict}),
        )
    };
    let minute = |n: u64, p99: f64| Record {
        samples: Some(3000),
        p50_ms: Some(1.0),
        p99_ms: Some(p99),
        max_ms: Some(30.0),
        ..rec("soak_minute", json!({"minute": n, "missing": 0}))
    };
    let at = |t: u64, outbox: u64| Record {
        peak_rss_mib: Some(20.0 + t as f64 / 100.0),
        ..rec(
            "soak_sample",
            json!({"t_s": t, "outbox": outbox, "outbox_pending": 0, "handled_envelopes": t * 50,
                   "inquiries": 60, "open_offers": 30}),
        )
    };
    vec![
        summary,
        minute(1, 4.0),
        minute(2, 4.5),
        at(50, 100),
        at(110, 101),
    ]
}

fn records() -> Vec<Record> {
    let mut all = phase_records();
    all.extend(socket_records());
    all.extend(soak_records());
    all
}

/// Compares with the pinned file; on a difference, leaves the output in the temp dir to diff.
fn assert_pinned(actual: &str, expected: &str, name: &str) {
    if actual != expected {
        let kept = std::env::temp_dir().join(format!("staffbot-bench-{name}"));
        std::fs::write(&kept, actual).unwrap();
        panic!(
            "{name} differs from testdata/{name}; the output is in {}",
            kept.display()
        );
    }
}

#[test]
fn tiny_report_is_pinned() {
    let dir = tempfile::tempdir().unwrap();
    let jsonl = dir.path().join("out/results.jsonl");
    let mut lines = JsonLines::create(&jsonl).unwrap();
    for r in records() {
        lines.push(r).unwrap();
    }
    let written = std::fs::read_to_string(&jsonl).unwrap();
    assert_pinned(&written, include_str!("testdata/tiny.jsonl"), "tiny.jsonl");

    let md = dir.path().join("docs/benchmarks.md");
    std::fs::create_dir_all(dir.path().join("docs")).unwrap();
    std::fs::write(
        dir.path().join("docs/benchmarks-notes.md"),
        "## Notes\n\nKept.\n\n",
    )
    .unwrap();
    let input = MarkdownInput {
        records: &lines.records,
        machine: &json!({"nproc": 2, "cpu": "Test CPU", "memory_gib": 4, "kernel": "6.1.0",
                         "rustc": "rustc 1.95.0"}),
        command: "cargo run --release -p staffbot-bench -- --sizes 1000x200",
        date: "2026-01-02",
        jsonl: "docs/bench-results.jsonl",
        tick_timeout_s: 30.0,
    };
    write_markdown(&md, &input).unwrap();
    let markdown = std::fs::read_to_string(&md).unwrap();
    assert_pinned(&markdown, include_str!("testdata/tiny.md"), "tiny.md");

    let targets = target_lines(&lines.records).join("\n") + "\n";
    assert_pinned(
        &targets,
        include_str!("testdata/tiny-targets.txt"),
        "tiny-targets.txt",
    );
}
