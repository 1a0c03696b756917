//! The Socket Mode phases: the real `staffbot serve` binary as a child process against the fake
//! Slack in this process. Start-up time (spawn → first connection at the fake), idle RSS of the
//! connected daemon, then a steady stream of envelopes (half slash commands, half Accept clicks
//! on real offers) with the ack latency the fake sees.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use rand::SeedableRng;
use sea_orm::{ConnectionTrait, DatabaseConnection, FromQueryResult};
use serde_json::json;
use slack_sim::{FakeSlack, FakeSlackConfig};
use staffbot::db::statement;

use crate::data::{self, ADMIN_SLACK_ID, Shape};
use crate::report::{Record, percentile};

const WORKERS: usize = 1000;
const REQUESTS: usize = 1500;
const SPARE: usize = 500;
const STARTUP_RUNS: usize = 3;
const IDLE: Duration = Duration::from_secs(5);
const CONNECT_WAIT: Duration = Duration::from_secs(30);
/// How long to wait for stragglers after the last envelope.
const ACK_WAIT: Duration = Duration::from_secs(10);

pub struct Options {
    pub binary: PathBuf,
    pub duration: Duration,
    pub rate: u32,
}

/// The release `staffbot` binary: `--staffbot-bin`, else beside this benchmark's binary. When run
/// through `cargo run`, it is (re)built first so it matches the sources.
pub fn locate_binary(explicit: Option<PathBuf>) -> Result<PathBuf> {
    if let Some(path) = explicit {
        // Absolute: the daemon is spawned in a temporary directory.
        return std::fs::canonicalize(&path)
            .with_context(|| format!("--staffbot-bin {}", path.display()));
    }
    let exe = std::env::current_exe().context("locating the benchmark binary")?;
    let dir = exe
        .parent()
        .context("the benchmark binary has no directory")?;
    let binary = dir.join("staffbot");
    if let Ok(cargo) = std::env::var("CARGO") {
        let mut build = Command::new(cargo);
        build
            .args(["build", "-p", "staffbot", "--bin", "staffbot"])
            .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
        // The profile this benchmark was built with (`target/<profile>/bench`).
        if let Some(profile) = dir.file_name().and_then(|n| n.to_str())
            && profile != "debug"
        {
            build.args(["--profile", profile]);
        }
        eprintln!("building the staffbot binary for the socket phases: {build:?}");
        let status = build.status().context("running cargo build")?;
        if !status.success() {
            bail!("`cargo build -p staffbot` failed");
        }
    }
    if !binary.exists() {
        bail!(
            "{} not found: run `cargo build --release` first, or pass --staffbot-bin",
            binary.display()
        );
    }
    Ok(binary)
}

fn signal(child: &Child, sig: i32) {
    // SAFETY: kill(2) on the pid of a child this process spawned and has not reaped yet.
    unsafe {
        libc::kill(child.id() as i32, sig);
    }
}

/// Stops a daemon with SIGTERM and waits for it (SIGKILL after 15 s).
pub async fn stop(mut child: Child) -> Result<()> {
    signal(&child, libc::SIGTERM);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if child.try_wait()?.is_some() {
            return Ok(());
        }
        if Instant::now() > deadline {
            child.kill()?;
            child.wait()?;
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub fn spawn(binary: &Path, fake: &FakeSlack, url: &str, dir: &Path, log: &str) -> Result<Child> {
    let log = std::fs::File::create(dir.join(log))?;
    Command::new(binary)
        .arg("serve")
        .env_clear()
        .env("STAFFBOT_DATABASE_URL", url)
        .env("SLACK_API_URL", fake.api_url())
        .env("SLACK_BOT_TOKEN", "xoxb-test")
        .env("SLACK_APP_TOKEN", "xapp-test")
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .with_context(|| format!("spawning {}", binary.display()))
}

async fn wait_disconnected(fake: &FakeSlack) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while fake.connections() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[derive(Debug, Clone, FromQueryResult)]
struct Offer {
    inquiry_id: i64,
    request_id: i64,
    slack_user_id: String,
}

/// The Accept clicks, ordered so that about half win: the first offer of request k, then the
/// second offer of request k-1 (taken by then), and so on.
async fn clicks(db: &DatabaseConnection) -> Result<Vec<Offer>> {
    let rows = Offer::find_by_statement(statement(
        db.get_database_backend(),
        "SELECT i.id AS inquiry_id, i.request_id, w.slack_user_id
         FROM staffing_inquiries i JOIN workers w ON w.id = i.worker_id
         ORDER BY i.request_id, i.id",
        vec![],
    ))
    .all(db)
    .await?;
    let mut groups: Vec<Vec<Offer>> = Vec::new();
    for row in rows {
        match groups.last_mut() {
            Some(g) if g[0].request_id == row.request_id => g.push(row),
            _ => groups.push(vec![row]),
        }
    }
    let mut order = Vec::new();
    for k in 0..=groups.len() {
        if let Some(first) = groups.get(k).and_then(|g| g.first()) {
            order.push(first.clone());
        }
        if let Some(second) = k
            .checked_sub(1)
            .and_then(|p| groups.get(p))
            .and_then(|g| g.get(1))
        {
            order.push(second.clone());
        }
    }
    Ok(order)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    Slash,
    Accept,
}

pub fn ack_record(
    backend: &str,
    phase: &str,
    latencies: &[f64],
    missing: usize,
    detail: serde_json::Value,
) -> Record {
    let mut sorted = latencies.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mut detail = detail;
    detail["over_1s"] = json!(sorted.iter().filter(|v| **v > 1000.0).count());
    detail["missing"] = json!(missing);
    Record {
        backend: backend.into(),
        phase: phase.into(),
        samples: Some(sorted.len()),
        wall_ms: percentile(&sorted, 50.0),
        p50_ms: percentile(&sorted, 50.0),
        p90_ms: percentile(&sorted, 90.0),
        p99_ms: percentile(&sorted, 99.0),
        max_ms: sorted.last().copied(),
        detail,
        ..Default::default()
    }
}

/// The count a `SELECT COUNT(*) AS n …` statement returns.
pub async fn count(db: &DatabaseConnection, sql: &str) -> Result<i64> {
    #[derive(FromQueryResult)]
    struct N {
        n: i64,
    }
    Ok(
        N::find_by_statement(statement(db.get_database_backend(), sql, vec![]))
            .one(db)
            .await?
            .map_or(0, |n| n.n),
    )
}

/// Accepts that won a request so far.
pub async fn winners(db: &DatabaseConnection) -> Result<i64> {
    count(
        db,
        "SELECT COUNT(*) AS n FROM staffing_responses WHERE is_winner = TRUE",
    )
    .await
}

/// The socket phases on `backend`, with the (fresh, empty) database at `url`.
pub async fn run(opts: &Options, backend: &str, url: &str) -> Result<Vec<Record>> {
    let mut records = Vec::new();
    let dir = tempfile::tempdir()?;
    let db = staffbot::db::connect_and_migrate(url).await?;
    eprintln!("  {backend} socket data: W={WORKERS}, {REQUESTS} requests with two offers each");
    let built = data::build(
        &db,
        Shape {
            workers: WORKERS,
            requests: REQUESTS,
            spare_tasks: SPARE,
        },
        false,
    )
    .await?;
    // One staffing round now (two offers per request), as the daemon would have done; its DMs
    // are taken as delivered so the daemon starts idle.
    let now = chrono::Utc::now();
    let lease = staffbot::lease::try_lease(&db, "staffing", "bench", Duration::from_secs(60))
        .await?
        .context("the staffing lease")?;
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    staffbot::staffing::batch::run_once(
        &db,
        &lease,
        staffbot::staffing::batch::BatchSettings {
            batch_size: 2,
            frequency: Duration::from_secs(120),
            email: false,
            ..Default::default()
        },
        now,
        &mut rng,
    )
    .await?;
    staffbot::lease::release(&db, "staffing", "bench").await?;
    db.execute_unprepared("DELETE FROM outbox").await?;
    let clicks = clicks(&db).await?;

    let fake = FakeSlack::start(FakeSlackConfig::default()).await;
    fake.add_user(ADMIN_SLACK_ID, "admin");
    for i in 0..WORKERS {
        fake.add_user(&data::slack_id(i), &format!("w{i}"));
    }
    for i in 0..REQUESTS + SPARE {
        fake.add_channel(&data::channel_id(i), &format!("story-{i}"), &[]);
    }

    // Start-up: spawn → first Socket Mode connection, a few times.
    let mut runs = Vec::new();
    for run in 0..STARTUP_RUNS {
        let started = Instant::now();
        let child = spawn(
            &opts.binary,
            &fake,
            url,
            dir.path(),
            &format!("startup-{run}.log"),
        )?;
        let connected = fake.wait_for_connections(1, CONNECT_WAIT).await;
        let elapsed = started.elapsed();
        stop(child).await?;
        if !connected {
            bail!(
                "the daemon did not connect within {CONNECT_WAIT:?}; see {}",
                dir.path().join(format!("startup-{run}.log")).display()
            );
        }
        runs.push((elapsed.as_secs_f64() * 1e6).round() / 1000.0);
        wait_disconnected(&fake).await;
    }
    let mut sorted = runs.clone();
    sorted.sort_by(f64::total_cmp);
    let startup = Record {
        backend: backend.into(),
        phase: "startup".into(),
        wall_ms: percentile(&sorted, 50.0),
        samples: Some(runs.len()),
        detail: json!({"runs_ms": runs}),
        ..Default::default()
    };
    eprintln!("  {}", serde_json::to_string(&startup)?);
    records.push(startup);

    // The daemon for the load run: connected, then idle for a while.
    let child = spawn(&opts.binary, &fake, url, dir.path(), "serve.log")?;
    let pid = child.id().to_string();
    if !fake.wait_for_connections(2, CONNECT_WAIT).await {
        stop(child).await?;
        bail!("the daemon did not open two connections");
    }
    tokio::time::sleep(IDLE).await;
    let idle = Record {
        backend: backend.into(),
        phase: "idle_rss".into(),
        peak_rss_mib: crate::sys::status_mib(&pid, "VmRSS").map(|v| (v * 10.0).round() / 10.0),
        detail: json!({
            "idle_s": IDLE.as_secs(),
            "connections": fake.connections(),
            "rss_anon_mib": crate::sys::status_mib(&pid, "RssAnon").map(|v| (v * 10.0).round() / 10.0),
            "rss_file_mib": crate::sys::status_mib(&pid, "RssFile").map(|v| (v * 10.0).round() / 10.0),
            "threads": std::fs::read_to_string(format!("/proc/{pid}/status")).ok().and_then(|s| {
                s.lines().find(|l| l.starts_with("Threads:")).and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
            }),
        }),
        ..Default::default()
    };
    eprintln!("  {}", serde_json::to_string(&idle)?);
    records.push(idle);

    // The load: `rate` envelopes per second for `duration`.
    let total = (opts.duration.as_secs_f64() * f64::from(opts.rate)).round() as usize;
    eprintln!(
        "  load: {total} envelopes at {}/s for {:?}",
        opts.rate, opts.duration
    );
    let mut interval = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(opts.rate)));
    let started = Instant::now();
    let mut sends = Vec::with_capacity(total);
    for k in 0..total {
        interval.tick().await;
        let fake = fake.clone();
        if k % 2 == 0 {
            let text = if (k / 2) % 2 == 0 {
                "help".to_string()
            } else {
                let spare = &built.spare_task_ids;
                format!("staff {}", spare[(k / 4) % spare.len()])
            };
            sends.push(tokio::spawn(async move {
                (
                    Kind::Slash,
                    fake.send_slash(ADMIN_SLACK_ID, "admin", &text).await,
                )
            }));
        } else {
            let offer = clicks[(k / 2) % clicks.len()].clone();
            sends.push(tokio::spawn(async move {
                let id = fake
                    .send_block_action(
                        &offer.slack_user_id,
                        "offer_accept",
                        &offer.inquiry_id.to_string(),
                        &format!("D{}", offer.slack_user_id),
                        "1.1",
                    )
                    .await;
                (Kind::Accept, id)
            }));
        }
    }
    let mut sent: Vec<(Kind, String)> = Vec::with_capacity(total);
    for send in sends {
        sent.push(send.await.context("an envelope send panicked")?);
    }
    let send_time = started.elapsed();
    let deadline = Instant::now() + ACK_WAIT;
    for (_, id) in &sent {
        let left = deadline.saturating_duration_since(Instant::now());
        if fake.wait_ack(id, left).await.is_none() {
            break;
        }
    }
    let peak = crate::sys::status_mib(&pid, "VmHWM");
    stop(child).await?;

    let acks: HashMap<String, f64> = fake
        .acks()
        .into_iter()
        .map(|a| {
            let ms = (a.latency.as_secs_f64() * 1e6).round() / 1000.0;
            (a.envelope_id, ms)
        })
        .collect();
    let log = std::fs::read_to_string(dir.path().join("serve.log")).unwrap_or_default();
    let errors = log.lines().filter(|l| l.contains("ERROR")).count();
    let winners = winners(&db).await?;
    let mut by_kind: HashMap<Kind, (Vec<f64>, usize)> = HashMap::new();
    for (kind, id) in &sent {
        let entry = by_kind.entry(*kind).or_default();
        match acks.get(id) {
            Some(l) => entry.0.push(*l),
            None => entry.1 += 1,
        }
    }
    let common = json!({
        "sent": sent.len(),
        "duration_s": opts.duration.as_secs_f64(),
        "rate": opts.rate,
        "achieved_rate": (sent.len() as f64 / send_time.as_secs_f64()).round(),
        "winners": winners,
        "daemon_peak_rss_mib": peak.map(|p| (p * 10.0).round() / 10.0),
        "daemon_errors": errors,
    });
    for (kind, phase) in [(Kind::Slash, "ack_slash"), (Kind::Accept, "ack_accept")] {
        let (lat, missing) = by_kind.get(&kind).cloned().unwrap_or_default();
        records.push(ack_record(backend, phase, &lat, missing, json!({})));
    }
    let all: Vec<f64> = by_kind.values().flat_map(|(l, _)| l.clone()).collect();
    let missing: usize = by_kind.values().map(|(_, m)| m).sum();
    records.push(ack_record(backend, "ack_all", &all, missing, common));
    for r in &records[records.len() - 3..] {
        eprintln!("  {}", serde_json::to_string(r)?);
    }
    if errors > 0 {
        eprintln!(
            "  the daemon logged {errors} ERROR line(s); first: {}",
            log.lines().find(|l| l.contains("ERROR")).unwrap_or("")
        );
    }
    db.close().await?;
    Ok(records)
}
