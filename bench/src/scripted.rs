//! The `ack_scripted` phase (issue 25, item 2): Socket Mode acks while the daemon's staffing
//! round renders detailed descriptions whose script runs to its wall time.
//!
//! A fresh database: one workflow whose step's `detailed_description_function` is
//! `script:describe.rhai`, a script that never ends (every call stops at its wall time, 250 ms,
//! with a limit error); a few certified workers, an admin and [`TASKS`] tasks. The real
//! `staffbot serve` (loops every second) gets `/staffbot staff` for every task at once, so its
//! next staffing round renders [`TASKS`] descriptions (about 5 s of script time), while
//! `/staffbot help` goes out at [`HELP_RATE`] a second for [`HELP_FOR`]. The phase's latencies
//! are those `help` acks.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use chrono::Utc;
use sea_orm::{DatabaseConnection, EntityTrait, QueryOrder, QuerySelect};
use serde_json::json;
use slack_sim::{FakeSlack, FakeSlackConfig};
use staffbot::db::Role;
use staffbot::db::entities::{task, workflow_version};
use staffbot::workers::{self, Certify, NewWorker};
use staffbot::workflow::script::{self, Purpose, ScriptSource};
use staffbot::workflow::{definition, load};

use crate::data::{self, ADMIN_SLACK_ID, CERTIFICATION};
use crate::report::Record;
use crate::socket::{ack_record, spawn, stop};

const WORKERS: usize = 5;
/// Tasks staffed at once: descriptions the round renders.
pub const TASKS: usize = 20;
/// `/staffbot help` envelopes a second.
pub const HELP_RATE: u32 = 20;
/// How long the `help` stream runs (the round's scripts take about `TASKS` × 250 ms).
pub const HELP_FOR: Duration = Duration::from_secs(8);
const CONNECT_WAIT: Duration = Duration::from_secs(30);
const ACK_WAIT: Duration = Duration::from_secs(10);
/// How long to wait for the round to store every description after the stream.
const ROUND_WAIT: Duration = Duration::from_secs(20);

/// A legal description script that runs until its wall time stops it. Each operation copies a
/// 60 KB string, so the call reaches the 250 ms wall time long before its million operations,
/// in a debug build and an optimised one alike (an empty `loop { }` may hit the operation
/// count first when optimised).
pub const SCRIPT: &str = r#"let s = "x";
s.pad(60000, "y");
loop {
    let t = s + "z";
}
"#;

const CONFIG: &str = r#"
[staffbot]
worker_batch_size = 2
batch_frequency = "10m"

[loops]
tick_interval = "1s"
"#;

/// Writes the workflow (`workflow.json`, `v1/version.json`, `v1/describe.rhai`) into `dir`.
fn write_workflow(dir: &Path) -> Result<()> {
    let workflow = json!({
        "slug": "scripted", "name": "Scripted", "description": "Stories with scripted details",
        "certifications": [{"slug": CERTIFICATION, "name": "Writer"}]
    });
    let version = json!({
        "slug": "v1", "name": "V1",
        "steps": [{"slug": "write", "name": "Write", "description": "Write the story",
                   "required_certifications": [CERTIFICATION],
                   "review_policy": {"policy": "no_review"},
                   "detailed_description_function": {"path": "script:describe.rhai"}}]
    });
    std::fs::write(dir.join("workflow.json"), workflow.to_string())?;
    std::fs::create_dir_all(dir.join("v1"))?;
    std::fs::write(dir.join("v1/version.json"), version.to_string())?;
    std::fs::write(dir.join("v1/describe.rhai"), SCRIPT)?;
    Ok(())
}

/// The data, through staffbot's own functions; returns the task ids.
async fn build(db: &DatabaseConnection) -> Result<Vec<i64>> {
    let now = Utc::now();
    let dir = tempfile::tempdir()?;
    write_workflow(dir.path())?;
    let def = definition::read(dir.path()).context("reading the scripted workflow")?;
    load::store(db, &def, false, now)
        .await
        .context("storing the scripted workflow")?;
    let version = workflow_version::Entity::find()
        .order_by_desc(workflow_version::Column::Id)
        .one(db)
        .await?
        .context("the workflow version just loaded")?;
    let cert = workers::find_certification(db, CERTIFICATION, None).await?;
    workers::add(
        db,
        NewWorker {
            username: "admin".into(),
            first_name: "Admin".into(),
            slack_user_id: Some(ADMIN_SLACK_ID.into()),
            is_admin: true,
            ..Default::default()
        },
        now,
    )
    .await?;
    for i in 0..WORKERS {
        let w = workers::add(
            db,
            NewWorker {
                username: format!("w{i}"),
                first_name: format!("W{i}"),
                slack_user_id: Some(data::slack_id(i)),
                ..Default::default()
            },
            now,
        )
        .await?;
        workers::certify(
            db,
            &w,
            &cert,
            Certify {
                role: Role::EntryLevel,
                staffing_priority: i as i32,
                staffbot_enabled: true,
            },
            now,
        )
        .await?;
    }
    for i in 0..TASKS {
        staffbot::lifecycle::create_project(
            db,
            &version,
            &format!("Story {i}"),
            0,
            Some(data::channel_id(i)),
            &Default::default(),
            now,
        )
        .await?;
    }
    let tasks: Vec<i64> = task::Entity::find()
        .select_only()
        .column(task::Column::Id)
        .order_by_asc(task::Column::Id)
        .into_tuple()
        .all(db)
        .await?;
    if tasks.len() != TASKS {
        bail!("expected {TASKS} tasks, found {}", tasks.len());
    }
    Ok(tasks)
}

/// One call of the script in this process: how long it ran and how it ended.
async fn one_call() -> Result<(f64, String)> {
    tokio::task::spawn_blocking(|| {
        let source = ScriptSource {
            file: "describe.rhai".into(),
            source: SCRIPT.into(),
        };
        let compiled = script::compile(Purpose::Description, &source)?;
        let started = Instant::now();
        let result = compiled.call(Vec::new());
        let ms = (started.elapsed().as_secs_f64() * 1e4).round() / 10.0;
        let outcome = match result {
            Ok(value) => format!("returned {value}"),
            Err(e) => e.to_string(),
        };
        Ok::<_, anyhow::Error>((ms, outcome))
    })
    .await?
}

/// Requests whose description the round stored.
async fn stored(db: &DatabaseConnection) -> Result<i64> {
    crate::socket::count(
        db,
        "SELECT COUNT(*) AS n FROM staffing_requests WHERE details IS NOT NULL",
    )
    .await
}

fn script_failures(log: &str) -> usize {
    log.lines()
        .filter(|l| l.contains("detailed description unusable") && l.contains("limit hit"))
        .count()
}

/// The phase on `backend`, with the (fresh, empty) database at `url`.
pub async fn run(binary: &Path, backend: &str, url: &str) -> Result<Record> {
    let (call_ms, call_outcome) = one_call().await?;
    eprintln!("  the description script, one call here: {call_ms} ms, {call_outcome}");
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("staffbot.toml"), CONFIG)?;
    let db = staffbot::db::connect_and_migrate(url).await?;
    let tasks = build(&db).await?;

    let fake = FakeSlack::start(FakeSlackConfig::default()).await;
    fake.add_user(ADMIN_SLACK_ID, "admin");
    for i in 0..WORKERS {
        fake.add_user(&data::slack_id(i), &format!("w{i}"));
    }
    for i in 0..TASKS {
        fake.add_channel(&data::channel_id(i), &format!("story-{i}"), &[]);
    }
    let child = spawn(binary, &fake, url, dir.path(), "scripted.log")?;
    let pid = child.id().to_string();
    if !fake.wait_for_connections(2, CONNECT_WAIT).await {
        stop(child).await?;
        bail!(
            "the daemon did not open two connections; see {}",
            dir.path().join("scripted.log").display()
        );
    }
    // Let its loops settle (their first round at start-up has nothing to do).
    tokio::time::sleep(Duration::from_secs(2)).await;

    let total = (HELP_FOR.as_secs_f64() * f64::from(HELP_RATE)).round() as usize;
    eprintln!(
        "  {TASKS} × `staff` (a description script each, run to its wall time), then {total} × `help` at {HELP_RATE}/s"
    );
    let started = Instant::now();
    let mut staffs = Vec::with_capacity(TASKS);
    for task_id in &tasks {
        let fake = fake.clone();
        let text = format!("staff {task_id}");
        staffs.push(tokio::spawn(async move {
            fake.send_slash(ADMIN_SLACK_ID, "admin", &text).await
        }));
    }
    // When the round has stored every description, seen from here (polled every 100 ms).
    let mut watcher = {
        let db = db.clone();
        tokio::spawn(async move {
            loop {
                if stored(&db).await.unwrap_or(0) >= TASKS as i64 {
                    return started.elapsed().as_secs_f64();
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    let mut interval = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(HELP_RATE)));
    let mut helps = Vec::with_capacity(total);
    for _ in 0..total {
        interval.tick().await;
        let fake = fake.clone();
        helps.push(tokio::spawn(async move {
            fake.send_slash(ADMIN_SLACK_ID, "admin", "help").await
        }));
    }
    let mut staff_ids = Vec::with_capacity(TASKS);
    for s in staffs {
        staff_ids.push(s.await.context("a `staff` send panicked")?);
    }
    let mut help_ids = Vec::with_capacity(total);
    for h in helps {
        help_ids.push(h.await.context("a `help` send panicked")?);
    }
    let stream_s = started.elapsed().as_secs_f64();
    let log_path = dir.path().join("scripted.log");
    let failures_in_stream =
        script_failures(&std::fs::read_to_string(&log_path).unwrap_or_default());
    let deadline = Instant::now() + ACK_WAIT;
    for id in staff_ids.iter().chain(&help_ids) {
        let left = deadline.saturating_duration_since(Instant::now());
        if fake.wait_ack(id, left).await.is_none() {
            break;
        }
    }
    let rendered_by_s = match tokio::time::timeout(ROUND_WAIT, &mut watcher).await {
        Ok(at) => Some((at.context("the watcher panicked")? * 10.0).round() / 10.0),
        Err(_) => {
            watcher.abort();
            None
        }
    };
    let peak = crate::sys::status_mib(&pid, "VmHWM");
    stop(child).await?;
    let details_stored = stored(&db).await?;
    db.close().await?;

    let acks: std::collections::HashMap<String, f64> = fake
        .acks()
        .into_iter()
        .map(|a| {
            let ms = (a.latency.as_secs_f64() * 1e6).round() / 1000.0;
            (a.envelope_id, ms)
        })
        .collect();
    let latencies = |ids: &[String]| {
        let lat: Vec<f64> = ids.iter().filter_map(|id| acks.get(id).copied()).collect();
        let missing = ids.len() - lat.len();
        (lat, missing)
    };
    let (help, missing) = latencies(&help_ids);
    let (staff, staff_missing) = latencies(&staff_ids);
    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
    let errors = log.lines().filter(|l| l.contains("ERROR")).count();
    let record = ack_record(
        backend,
        "ack_scripted",
        &help,
        missing,
        json!({
            "tasks_staffed": TASKS,
            "help_sent": help_ids.len(),
            "help_rate": HELP_RATE,
            "stream_s": (stream_s * 10.0).round() / 10.0,
            "script_call_ms": call_ms,
            "script_call": call_outcome,
            "script_limit_failures": script_failures(&log),
            "script_limit_failures_by_stream_end": failures_in_stream,
            "details_stored": details_stored,
            "all_stored_at_s": rendered_by_s,
            "staff_ack_max_ms": staff.iter().copied().fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v)))),
            "staff_missing": staff_missing,
            "daemon_peak_rss_mib": peak.map(|p| (p * 10.0).round() / 10.0),
            "daemon_errors": errors,
            "config": CONFIG.trim(),
        }),
    );
    if errors > 0 {
        eprintln!(
            "  the daemon logged {errors} ERROR line(s); first: {}",
            log.lines().find(|l| l.contains("ERROR")).unwrap_or("")
        );
    }
    Ok(record)
}
