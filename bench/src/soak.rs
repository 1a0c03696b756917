//! The soak phase (issue 14): the release `staffbot serve` binary under a steady mixed stream of
//! envelopes through the fake Slack for minutes, with the daemon's memory, the bookkeeping
//! tables and the ack latency sampled as it goes.
//!
//! The stream, per cycle of 300 envelopes (6 s at 50/s): one `/staffbot staff` of a fresh task;
//! up to six offer clicks (each staffed request gets a Reject on its first offer, an Accept on its
//! second, which wins, and a late Accept on its third, which is told the task is taken); three
//! App Home opens; the rest `/staffbot help` and `/staffbot tasks` from workers, alternating.
//! The staffing part stays inside Slack's published limits (about 50 `chat.update` calls a
//! minute per workspace: each staffed request updates its three offers), as it must in a real
//! workspace; the volume comes from the commands. The daemon runs its loops every 2 s: batches
//! (3 offers a round), reminders (every minute), unstaffed-task warnings (after a minute).
//!
//! Retention: the daemon's shortest is an hour and it runs hourly, so the benchmark runs the same
//! `retention::run_once` every 30 s under the `retention` lease with a clock 58 minutes ahead:
//! rows sent (outbox) or handled (envelopes) more than about two minutes ago are deleted.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use sea_orm::{DatabaseConnection, FromQueryResult};
use serde_json::json;
use slack_sim::{FakeSlack, FakeSlackConfig};
use staffbot::db::statement;

use crate::data::{self, ADMIN_SLACK_ID, Shape};
use crate::phases::STAFFING_CHANNEL;
use crate::report::{Record, percentile};
use crate::socket::{spawn, stop};

const WORKERS: usize = 1000;
const OPEN_REQUESTS: usize = 4;
const CYCLE: usize = 300;
const SAMPLE_EVERY: Duration = Duration::from_secs(10);
const RETENTION_EVERY: Duration = Duration::from_secs(30);
/// How far ahead of the wall clock retention runs (the effective retention is 1 h minus this).
const RETENTION_AHEAD: Duration = Duration::from_secs(58 * 60);
const ACK_WAIT: Duration = Duration::from_secs(10);
const CONNECT_WAIT: Duration = Duration::from_secs(30);

const CONFIG: &str = r#"
[staffbot]
worker_batch_size = 3
batch_frequency = "20s"
reminder_interval = "1m"
staffing_min_time = "1m"
staffing_group_id = "C0STAFFING"

[loops]
tick_interval = "2s"
"#;

pub struct Options {
    pub binary: std::path::PathBuf,
    pub duration: Duration,
    pub rate: u32,
    /// Where the SVG plot goes (`docs/soak.svg`).
    pub plot: std::path::PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    Help,
    Tasks,
    Staff,
    Click,
    Home,
}

impl Kind {
    fn label(self) -> &'static str {
        match self {
            Kind::Help => "help",
            Kind::Tasks => "tasks",
            Kind::Staff => "staff",
            Kind::Click => "click",
            Kind::Home => "home",
        }
    }
}

/// One click the stream will send: on offer `inquiry` to `user`.
#[derive(Debug, Clone)]
struct Click {
    inquiry: i64,
    user: String,
    accept: bool,
}

#[derive(Debug, Clone, FromQueryResult)]
struct NewOffer {
    inquiry_id: i64,
    request_id: i64,
    slack_user_id: String,
}

/// Offers the daemon made since the last look, turned into the clicks of the plan: per request,
/// Reject the first, Accept the second (wins), Accept the third (late).
#[derive(Default)]
struct Planner {
    last_seen: i64,
    per_request: HashMap<i64, Vec<NewOffer>>,
    queue: VecDeque<Click>,
}

impl Planner {
    async fn refresh(&mut self, db: &DatabaseConnection) -> Result<()> {
        let rows = NewOffer::find_by_statement(statement(
            db.get_database_backend(),
            "SELECT i.id AS inquiry_id, i.request_id, w.slack_user_id
             FROM staffing_inquiries i JOIN workers w ON w.id = i.worker_id
             WHERE i.id > $1 ORDER BY i.id",
            vec![self.last_seen.into()],
        ))
        .all(db)
        .await?;
        for row in rows {
            self.last_seen = self.last_seen.max(row.inquiry_id);
            let request = row.request_id;
            let offers = self.per_request.entry(request).or_default();
            offers.push(row);
            if offers.len() == 3 {
                let offers = self.per_request.remove(&request);
                for (k, o) in offers.into_iter().flatten().enumerate() {
                    self.queue.push_back(Click {
                        inquiry: o.inquiry_id,
                        user: o.slack_user_id,
                        accept: k > 0,
                    });
                }
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Default, FromQueryResult)]
struct Sizes {
    outbox: i64,
    outbox_pending: i64,
    handled_envelopes: i64,
    inquiries: i64,
    responses: i64,
    open_requests: i64,
    open_offers: i64,
}

async fn sizes(db: &DatabaseConnection) -> Result<Sizes> {
    Sizes::find_by_statement(statement(
        db.get_database_backend(),
        "SELECT (SELECT COUNT(*) FROM outbox) AS outbox,
                (SELECT COUNT(*) FROM outbox WHERE status = 'pending') AS outbox_pending,
                (SELECT COUNT(*) FROM handled_envelopes) AS handled_envelopes,
                (SELECT COUNT(*) FROM staffing_inquiries) AS inquiries,
                (SELECT COUNT(*) FROM staffing_responses) AS responses,
                (SELECT COUNT(*) FROM staffing_requests WHERE status <> 'closed') AS open_requests,
                (SELECT COUNT(*) FROM staffing_inquiries i
                  JOIN staffing_requests q ON q.id = i.request_id AND q.status <> 'closed'
                  WHERE NOT EXISTS (SELECT 1 FROM staffing_responses r
                                    WHERE r.inquiry_id = i.id)) AS open_offers",
        vec![],
    ))
    .one(db)
    .await?
    .context("the sizes query returned no row")
}

/// One sample of the daemon and the tables.
#[derive(Debug, Clone)]
struct Sample {
    t_s: f64,
    rss_mib: f64,
    rss_anon_mib: f64,
    sizes: Sizes,
}

fn take_sample(pid: &str, started: Instant, sizes: Sizes) -> Sample {
    let mib = |field| crate::sys::status_mib(pid, field).unwrap_or(f64::NAN);
    Sample {
        t_s: started.elapsed().as_secs_f64().round(),
        rss_mib: (mib("VmRSS") * 10.0).round() / 10.0,
        rss_anon_mib: (mib("RssAnon") * 10.0).round() / 10.0,
        sizes,
    }
}

/// What the stream sent: kind, seconds since the start, envelope id.
type Sent = (Kind, f64, String);

/// The fake Slack with the benchmark's users and channels, and the data in the database.
async fn prepare(db: &DatabaseConnection, staff_tasks: usize) -> Result<(FakeSlack, Vec<i64>)> {
    let built = data::build(
        db,
        Shape {
            workers: WORKERS,
            requests: OPEN_REQUESTS,
            spare_tasks: staff_tasks,
        },
        false,
    )
    .await?;
    let fake = FakeSlack::start(FakeSlackConfig::default()).await;
    fake.add_user(ADMIN_SLACK_ID, "admin");
    for i in 0..WORKERS {
        fake.add_user(&data::slack_id(i), &format!("w{i}"));
    }
    for i in 0..OPEN_REQUESTS + staff_tasks {
        fake.add_channel(&data::channel_id(i), &format!("story-{i}"), &[]);
    }
    fake.add_channel(STAFFING_CHANNEL, "staffing", &[]);
    Ok((fake, built.spare_task_ids))
}

/// Every second: new offers into the click plan; every 30 s retention (a clock 58 minutes
/// ahead); every 10 s a sample of the daemon and the tables. Runs until aborted.
fn background(
    db: DatabaseConnection,
    planner: Arc<tokio::sync::Mutex<Planner>>,
    samples: Arc<Mutex<Vec<Sample>>>,
    pid: String,
    started: Instant,
    lease: staffbot::lease::LeaseProof,
) -> tokio::task::JoinHandle<Result<()>> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let retention = staffbot::config::RetentionConfig {
            envelopes: staffbot::config::MIN_RETENTION,
            outbox: staffbot::config::MIN_RETENTION,
        };
        let ahead = chrono::Duration::from_std(RETENTION_AHEAD)?;
        for n in 0u64.. {
            tick.tick().await;
            planner.lock().await.refresh(&db).await?;
            if n.is_multiple_of(RETENTION_EVERY.as_secs()) && n > 0 {
                let now = chrono::Utc::now() + ahead;
                staffbot::retention::run_once(&db, &lease, &retention, now).await?;
            }
            if n.is_multiple_of(SAMPLE_EVERY.as_secs()) {
                let s = take_sample(&pid, started, sizes(&db).await?);
                samples.lock().unwrap_or_else(|e| e.into_inner()).push(s);
            }
        }
        Ok(())
    })
}

/// The soak on `backend`, with the (fresh, empty) database at `url`.
pub async fn run(opts: &Options, backend: &str, url: &str) -> Result<Vec<Record>> {
    let total = (opts.duration.as_secs_f64() * f64::from(opts.rate)).round() as usize;
    let staff_tasks = total / CYCLE + 10;
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("staffbot.toml"), CONFIG)?;
    let db = staffbot::db::connect_and_migrate(url).await?;
    eprintln!("  {backend} soak data: W={WORKERS}, {staff_tasks} tasks to staff");
    let (fake, spare) = prepare(&db, staff_tasks).await?;
    let ttl = opts.duration + Duration::from_secs(3 * 3600);
    let lease = staffbot::lease::try_lease(&db, "retention", "soak", ttl)
        .await?
        .context("the retention lease")?;

    let child = spawn(&opts.binary, &fake, url, dir.path(), "serve.log")?;
    let pid = child.id().to_string();
    if !fake.wait_for_connections(2, CONNECT_WAIT).await {
        stop(child).await?;
        bail!("the daemon did not open two connections");
    }
    eprintln!(
        "  soak: {total} envelopes at {}/s for {:?}",
        opts.rate, opts.duration
    );
    let started = Instant::now();
    let planner = Arc::new(tokio::sync::Mutex::new(Planner::default()));
    let samples = Arc::new(Mutex::new(Vec::<Sample>::new()));
    let background = background(
        db.clone(),
        planner.clone(),
        samples.clone(),
        pid.clone(),
        started,
        lease,
    );

    let sent = stream(&fake, &planner, &spare, total, opts.rate, started).await?;
    let send_time = started.elapsed();
    let deadline = Instant::now() + ACK_WAIT;
    for (_, _, id) in &sent {
        let left = deadline.saturating_duration_since(Instant::now());
        if fake.wait_ack(id, left).await.is_none() {
            break;
        }
    }
    if background.is_finished() {
        background.await??;
        bail!("the soak's sampler stopped");
    }
    background.abort();
    let last = take_sample(&pid, started, sizes(&db).await?);
    let peak = crate::sys::status_mib(&pid, "VmHWM");
    stop(child).await?;
    let mut samples = samples.lock().unwrap_or_else(|e| e.into_inner()).clone();
    samples.push(last);

    let log = std::fs::read_to_string(dir.path().join("serve.log")).unwrap_or_default();
    let errors: Vec<&str> = log.lines().filter(|l| l.contains("ERROR")).collect();
    if let Some(first) = errors.first() {
        eprintln!(
            "  the daemon logged {} ERROR line(s); first: {first}",
            errors.len()
        );
    }
    let acks: HashMap<String, f64> = fake
        .acks()
        .into_iter()
        .map(|a| (a.envelope_id, a.latency.as_secs_f64() * 1000.0))
        .collect();
    let winners = crate::socket::winners(&db).await?;
    db.close().await?;

    let summary = json!({
        "duration_s": opts.duration.as_secs_f64(),
        "rate": opts.rate,
        "sent": sent.len(),
        "achieved_rate": (sent.len() as f64 / send_time.as_secs_f64() * 10.0).round() / 10.0,
        "by_kind": by_kind(&sent),
        "winners": winners,
        "daemon_peak_rss_mib": peak.map(|p| (p * 10.0).round() / 10.0),
        "daemon_errors": errors.len(),
        "config": CONFIG.trim(),
    });
    let records = records(backend, &samples, &sent, &acks, summary);
    crate::plot::soak(&opts.plot, &records)?;
    Ok(records)
}

fn by_kind(sent: &[Sent]) -> serde_json::Value {
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for (kind, _, _) in sent {
        *counts.entry(kind.label()).or_default() += 1;
    }
    json!(counts)
}

/// Sends `total` envelopes at `rate` a second; returns what was sent, in order.
async fn stream(
    fake: &FakeSlack,
    planner: &tokio::sync::Mutex<Planner>,
    spare: &[i64],
    total: usize,
    rate: u32,
    started: Instant,
) -> Result<Vec<Sent>> {
    let mut interval = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(rate)));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut sends = Vec::with_capacity(total);
    let mut next_task = 0usize;
    for k in 0..total {
        interval.tick().await;
        let at = started.elapsed().as_secs_f64();
        let slot = k % CYCLE;
        let worker = data::slack_id((k * 7919) % WORKERS);
        let click = if slot % 50 == 40 {
            planner.lock().await.queue.pop_front()
        } else {
            None
        };
        let fake = fake.clone();
        let task = spare.get(next_task).copied();
        let kind = match (slot, click.is_some()) {
            (0, _) if task.is_some() => Kind::Staff,
            (_, true) => Kind::Click,
            (s, _) if s % 100 == 25 => Kind::Home,
            _ if k % 2 == 0 => Kind::Help,
            _ => Kind::Tasks,
        };
        if kind == Kind::Staff {
            next_task += 1;
        }
        sends.push(tokio::spawn(async move {
            let id = match kind {
                Kind::Staff => {
                    let text = format!("staff {}", task.unwrap_or_default());
                    fake.send_slash(ADMIN_SLACK_ID, "admin", &text).await
                }
                Kind::Click => {
                    let c = click.unwrap_or_else(|| Click {
                        inquiry: 0,
                        user: worker.clone(),
                        accept: true,
                    });
                    let action = if c.accept {
                        "offer_accept"
                    } else {
                        "offer_reject"
                    };
                    let channel = format!("D{}", c.user);
                    fake.send_block_action(&c.user, action, &c.inquiry.to_string(), &channel, "1.1")
                        .await
                }
                Kind::Home => fake.send_app_home_opened(&worker).await,
                Kind::Help => fake.send_slash(&worker, &worker, "help").await,
                Kind::Tasks => fake.send_slash(&worker, &worker, "tasks").await,
            };
            (kind, at, id)
        }));
    }
    let mut sent = Vec::with_capacity(total);
    for send in sends {
        sent.push(send.await.context("an envelope send panicked")?);
    }
    Ok(sent)
}

/// The records: one `soak_sample` per sample, one `soak_minute` per minute of the stream, and
/// the `soak` summary with the verdict.
fn records(
    backend: &str,
    samples: &[Sample],
    sent: &[Sent],
    acks: &HashMap<String, f64>,
    mut summary: serde_json::Value,
) -> Vec<Record> {
    let mut out = Vec::new();
    for s in samples {
        out.push(Record {
            backend: backend.into(),
            phase: "soak_sample".into(),
            peak_rss_mib: Some(s.rss_mib),
            detail: json!({
                "t_s": s.t_s,
                "rss_anon_mib": s.rss_anon_mib,
                "outbox": s.sizes.outbox,
                "outbox_pending": s.sizes.outbox_pending,
                "handled_envelopes": s.sizes.handled_envelopes,
                "inquiries": s.sizes.inquiries,
                "responses": s.sizes.responses,
                "open_requests": s.sizes.open_requests,
                "open_offers": s.sizes.open_offers,
            }),
            ..Default::default()
        });
    }
    let minutes = sent
        .last()
        .map(|(_, at, _)| (*at / 60.0) as usize + 1)
        .unwrap_or(0);
    let mut per_minute: Vec<(Vec<f64>, usize)> = vec![Default::default(); minutes];
    for (_, at, id) in sent {
        let (lat, missing) = &mut per_minute[(*at / 60.0) as usize];
        match acks.get(id) {
            Some(l) => lat.push(*l),
            None => *missing += 1,
        }
    }
    let mut all = Vec::new();
    let mut missing_total = 0;
    for (m, (mut lat, missing)) in per_minute.into_iter().enumerate() {
        missing_total += missing;
        all.extend_from_slice(&lat);
        let detail = json!({"minute": m + 1, "missing": missing});
        out.push(ack_record(backend, "soak_minute", &mut lat, detail));
    }
    summary["missing"] = json!(missing_total);
    summary["verdict"] = verdict(samples, &out);
    out.push(ack_record(backend, "soak", &mut all, summary));
    out
}

fn ack_record(backend: &str, phase: &str, lat: &mut [f64], detail: serde_json::Value) -> Record {
    lat.sort_by(f64::total_cmp);
    let r3 = |v: Option<f64>| v.map(|v| (v * 1000.0).round() / 1000.0);
    Record {
        backend: backend.into(),
        phase: phase.into(),
        samples: Some(lat.len()),
        p50_ms: r3(percentile(lat, 50.0)),
        p90_ms: r3(percentile(lat, 90.0)),
        p99_ms: r3(percentile(lat, 99.0)),
        max_ms: r3(lat.last().copied()),
        detail,
        ..Default::default()
    }
}

/// Flat after warm-up: the mean of the last third of the samples (after the first fifth of the
/// run) against the mean of the middle third; the per-minute ack p99 the same way.
fn verdict(samples: &[Sample], minutes: &[Record]) -> serde_json::Value {
    let warm = samples.len() / 5;
    let rest = &samples[warm.min(samples.len())..];
    let third = rest.len() / 3;
    let mean = |xs: &[Sample], f: &dyn Fn(&Sample) -> f64| {
        if xs.is_empty() {
            f64::NAN
        } else {
            xs.iter().map(f).sum::<f64>() / xs.len() as f64
        }
    };
    let (middle, last) = (&rest[third..2 * third], &rest[rest.len() - third..]);
    let grow = |f: &dyn Fn(&Sample) -> f64, slack: f64, floor: f64| {
        let (a, b) = (mean(middle, f), mean(last, f));
        let flat = b <= a * (1.0 + slack) + floor;
        json!({"middle": (a * 10.0).round() / 10.0, "last": (b * 10.0).round() / 10.0, "flat": flat})
    };
    let p99: Vec<f64> = minutes
        .iter()
        .filter(|r| r.phase == "soak_minute")
        .filter_map(|r| r.p99_ms)
        .collect();
    let warm_minutes = p99.len() / 5;
    let p99 = &p99[warm_minutes.min(p99.len())..];
    let p99_third = p99.len() / 3;
    let avg = |xs: &[f64]| xs.iter().sum::<f64>() / xs.len().max(1) as f64;
    let (pm, pl) = (
        avg(&p99[p99_third..2 * p99_third]),
        avg(&p99[p99.len() - p99_third..]),
    );
    json!({
        "warm_up_samples": warm,
        "rss_mib": grow(&|s| s.rss_mib, 0.05, 1.0),
        "outbox": grow(&|s| s.sizes.outbox as f64, 0.10, 50.0),
        "outbox_pending": grow(&|s| s.sizes.outbox_pending as f64, 0.25, 20.0),
        "handled_envelopes": grow(&|s| s.sizes.handled_envelopes as f64, 0.10, 50.0),
        "open_offers": grow(&|s| s.sizes.open_offers as f64, 0.25, 10.0),
        "ack_p99_ms": {
            "middle": (pm * 1000.0).round() / 1000.0,
            "last": (pl * 1000.0).round() / 1000.0,
            "worst_minute": p99.iter().copied().fold(0.0, f64::max),
            "steady": pl <= pm * 1.5 + 1.0,
        },
    })
}
