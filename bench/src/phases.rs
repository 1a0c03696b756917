//! The database phases, each timed with its SQL statements counted and its peak RSS: a staffing
//! tick, Accept (winning and late) and Reject clicks and `/staffbot staff` through the same
//! dispatcher the daemon uses, a reminder round and a warning round.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use chrono::{DateTime, Utc};
use rand::SeedableRng;
use sea_orm::{ConnectionTrait, DatabaseConnection, FromQueryResult};
use serde_json::{Value, json};
use staffbot::clock::ManualClock;
use staffbot::db::statement;
use staffbot::slack::dispatch::{Ack, Dispatcher};
use staffbot::slack::envelope::Envelope;
use staffbot::slack::slash::SlashSettings;
use staffbot::staffing::batch::{self, BatchSettings};

use crate::data::{self, ADMIN_SLACK_ID};

/// The staffing round runs a minute after the data was made; clicks a minute later; reminders
/// and warnings a day later (when every open offer is due a reminder).
pub fn tick_time() -> DateTime<Utc> {
    data::t0() + chrono::Duration::minutes(1)
}

fn click_time() -> DateTime<Utc> {
    data::t0() + chrono::Duration::minutes(2)
}

fn loops_time() -> DateTime<Utc> {
    data::t0() + chrono::Duration::hours(25)
}

pub const STAFFING_CHANNEL: &str = "C0STAFFING";

/// A connection whose statements are counted (sea-orm's metric callback: every statement,
/// not `BEGIN`/`COMMIT`).
pub struct Counted {
    pub db: DatabaseConnection,
    count: Arc<AtomicU64>,
}

impl Counted {
    pub async fn connect(url: &str) -> Result<Counted> {
        let mut db = staffbot::db::connect_and_migrate(url)
            .await
            .context("connecting to the benchmark database")?;
        let count = Arc::new(AtomicU64::new(0));
        let seen = count.clone();
        // `BENCH_SLOW_MS=N`: every statement slower than N ms goes to stderr with its time (to
        // find what a phase spends its time on).
        let slow = std::env::var("BENCH_SLOW_MS")
            .ok()
            .and_then(|v| v.parse::<f64>().ok());
        db.set_metric_callback(move |info| {
            seen.fetch_add(1, Ordering::Relaxed);
            if let Some(limit) = slow {
                let ms = info.elapsed.as_secs_f64() * 1000.0;
                if ms >= limit {
                    let sql: String = info
                        .statement
                        .sql
                        .split_whitespace()
                        .collect::<Vec<_>>()
                        .join(" ")
                        .chars()
                        .take(160)
                        .collect();
                    let values = info.statement.values.as_ref().map_or(0, |v| v.0.len());
                    eprintln!("    slow: {ms:9.1} ms, {values} values: {sql}");
                }
            }
        });
        Ok(Counted { db, count })
    }

    fn take(&self) -> u64 {
        self.count.swap(0, Ordering::Relaxed)
    }
}

/// One operation of a phase.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    pub wall: Duration,
    pub statements: u64,
}

/// A phase: its total, its operations (when it has several) and what it did.
#[derive(Debug, Clone)]
pub struct Phase {
    pub name: &'static str,
    pub total: Sample,
    pub samples: Vec<Sample>,
    pub rss_before_mib: Option<f64>,
    pub peak_rss_mib: Option<f64>,
    pub timed_out: bool,
    pub detail: Value,
}

/// Runs `f` with a fresh peak-RSS mark and the statement counter at zero.
pub async fn measure<T>(
    c: &Counted,
    f: impl Future<Output = T>,
) -> (T, Sample, Option<f64>, Option<f64>) {
    crate::sys::trim_heap();
    let before = crate::sys::rss_mib();
    let peak_known = crate::sys::reset_peak();
    c.take();
    let started = Instant::now();
    let out = f.await;
    let sample = Sample {
        wall: started.elapsed(),
        statements: c.take(),
    };
    let peak = if peak_known {
        crate::sys::peak_mib()
    } else {
        None
    };
    (out, sample, before, peak)
}

#[derive(Debug, FromQueryResult)]
struct Count {
    n: i64,
}

async fn count(db: &DatabaseConnection, sql: &str) -> Result<i64> {
    Ok(
        Count::find_by_statement(statement(db.get_database_backend(), sql, vec![]))
            .one(db)
            .await?
            .map(|c| c.n)
            .unwrap_or(0),
    )
}

/// Builds the data and reports it as the `build` phase; then `ANALYZE`s the database (a real
/// database has fresh planner statistics; bulk-loaded tables have none yet), timed apart.
pub async fn build(c: &Counted, shape: data::Shape, quiet: bool) -> Result<(data::Built, Phase)> {
    let (built, total, before, peak) = measure(c, data::build(&c.db, shape, quiet)).await;
    let built = built?;
    let started = Instant::now();
    c.db.execute_unprepared("ANALYZE")
        .await
        .context("ANALYZE after loading")?;
    let analyze_ms = started.elapsed().as_secs_f64() * 1000.0;
    c.take();
    Ok((
        built,
        Phase {
            name: "build",
            total,
            samples: Vec::new(),
            rss_before_mib: before,
            peak_rss_mib: peak,
            timed_out: false,
            detail: json!({"analyze_ms": analyze_ms}),
        },
    ))
}

/// One staffing round over every open request, under the `staffing` lease. A round that takes
/// longer than `timeout` is abandoned (its open transaction rolls back) and reported with how
/// far it got.
pub async fn tick(
    c: &Counted,
    batch_size: u32,
    requests: usize,
    timeout: Duration,
    name: &'static str,
) -> Result<Phase> {
    let now = tick_time();
    let lease = staffbot::lease::try_lease(&c.db, "staffing", "bench", Duration::from_secs(3600))
        .await?
        .context("the staffing lease is free")?;
    let mut rng = rand::rngs::StdRng::seed_from_u64(6);
    let settings = BatchSettings {
        batch_size,
        frequency: Duration::from_secs(120),
        email: false,
        ..Default::default()
    };
    let round = batch::run_once(&c.db, &lease, settings, now, &mut rng);
    let (result, total, before, peak) = measure(c, tokio::time::timeout(timeout, round)).await;
    let (timed_out, detail) = match result {
        Ok(report) => {
            let report = report.context("the staffing round")?;
            if report.requests != requests {
                bail!(
                    "the round batched {} requests, expected {requests}",
                    report.requests
                );
            }
            (
                false,
                json!({"requests_batched": report.requests, "offers": report.offers,
                       "exhausted": report.exhausted, "auto_staffed": report.auto_staffed}),
            )
        }
        Err(_) => {
            let done = count(
                &c.db,
                "SELECT COUNT(*) AS n FROM staffing_requests WHERE last_batch_at IS NOT NULL",
            )
            .await?;
            let estimate = (done > 0)
                .then(|| total.wall.as_secs_f64() * 1000.0 * requests as f64 / done as f64);
            (
                true,
                json!({"requests_batched": done, "estimated_full_ms": estimate}),
            )
        }
    };
    Ok(Phase {
        name,
        total,
        samples: Vec::new(),
        rss_before_mib: before,
        peak_rss_mib: peak,
        timed_out,
        detail: detail_with_batch(detail, batch_size),
    })
}

fn detail_with_batch(mut detail: Value, batch_size: u32) -> Value {
    detail["batch"] = json!(batch_size);
    detail
}

#[derive(Debug, Clone, FromQueryResult)]
struct Offer {
    inquiry_id: i64,
    request_id: i64,
    slack_user_id: String,
}

/// The offers of the first `requests` batched requests, grouped by request.
async fn offers(db: &DatabaseConnection, requests: usize) -> Result<Vec<Vec<Offer>>> {
    let rows = Offer::find_by_statement(statement(
        db.get_database_backend(),
        "SELECT i.id AS inquiry_id, i.request_id, w.slack_user_id
         FROM staffing_inquiries i JOIN workers w ON w.id = i.worker_id
         WHERE i.request_id IN (SELECT r.id FROM staffing_requests r
                                WHERE r.last_batch_at IS NOT NULL ORDER BY r.id LIMIT $1)
         ORDER BY i.request_id, i.id",
        vec![(requests as i64).into()],
    ))
    .all(db)
    .await?;
    let mut grouped: Vec<Vec<Offer>> = Vec::new();
    for row in rows {
        match grouped.last_mut() {
            Some(group) if group[0].request_id == row.request_id => group.push(row),
            _ => grouped.push(vec![row]),
        }
    }
    Ok(grouped)
}

/// Envelopes as Socket Mode delivers them, handled by the daemon's dispatcher.
struct Envelopes {
    dispatcher: Dispatcher,
    next: u64,
}

impl Envelopes {
    fn new(c: &Counted) -> Envelopes {
        Envelopes {
            dispatcher: Dispatcher {
                db: c.db.clone(),
                clock: Arc::new(ManualClock::new(click_time())),
                slash: SlashSettings {
                    verification_token: None,
                    allowed: Default::default(),
                    random_seed: None,
                    policy: Default::default(),
                    working: Default::default(),
                },
                outbox_wake: Arc::new(tokio::sync::Notify::new()),
                notices: Default::default(),
            },
            next: 0,
        }
    }

    fn envelope(&mut self, kind: &str, payload: Value) -> Envelope {
        self.next += 1;
        Envelope {
            envelope_id: format!("bench-{:08}", self.next),
            kind: kind.to_string(),
            accepts_response_payload: true,
            payload,
        }
    }

    async fn click(&mut self, offer: &Offer, accept: bool) -> Ack {
        let action = if accept {
            "offer_accept"
        } else {
            "offer_reject"
        };
        let envelope = self.envelope(
            "interactive",
            json!({
                "type": "block_actions",
                "user": {"id": offer.slack_user_id},
                "team": {"id": "T0TEAM"},
                "container": {"type": "message", "message_ts": "1.1",
                              "channel_id": format!("D{}", offer.slack_user_id)},
                "response_url": "http://127.0.0.1:9/response/1",
                "actions": [{"action_id": action, "block_id": "offer",
                             "value": offer.inquiry_id.to_string(), "action_ts": "1.2"}],
            }),
        );
        self.dispatcher.dispatch(&envelope).await
    }

    async fn slash(&mut self, text: &str) -> Ack {
        let envelope = self.envelope(
            "slash_commands",
            json!({
                "command": "/staffbot", "text": text, "user_id": ADMIN_SLACK_ID,
                "user_name": "admin", "team_id": "T0TEAM", "channel_id": "C0ADMIN",
                "response_url": "http://127.0.0.1:9/response/2",
            }),
        );
        self.dispatcher.dispatch(&envelope).await
    }
}

/// Records one operation at a time; the peak RSS covers them all.
struct Recorder {
    samples: Vec<Sample>,
    rss_before_mib: Option<f64>,
    peak_known: bool,
}

impl Recorder {
    fn start() -> Recorder {
        crate::sys::trim_heap();
        Recorder {
            samples: Vec::new(),
            rss_before_mib: crate::sys::rss_mib(),
            peak_known: crate::sys::reset_peak(),
        }
    }

    fn begin(&self, c: &Counted) -> Instant {
        c.take();
        Instant::now()
    }

    fn end(&mut self, c: &Counted, started: Instant) {
        self.samples.push(Sample {
            wall: started.elapsed(),
            statements: c.take(),
        });
    }

    fn finish(self, name: &'static str) -> Phase {
        let total = Sample {
            wall: self.samples.iter().map(|s| s.wall).sum(),
            statements: self.samples.iter().map(|s| s.statements).sum(),
        };
        Phase {
            name,
            total,
            samples: self.samples,
            rss_before_mib: self.rss_before_mib,
            peak_rss_mib: if self.peak_known {
                crate::sys::peak_mib()
            } else {
                None
            },
            timed_out: false,
            detail: Value::Null,
        }
    }
}

/// The click, `staff`, reminder and warning phases, after a tick.
pub async fn after_tick(c: &Counted, built: &data::Built, samples: usize) -> Result<Vec<Phase>> {
    let groups: Vec<Vec<Offer>> = offers(&c.db, samples * 2 + 1)
        .await?
        .into_iter()
        .filter(|g| g.len() >= 2)
        .collect();
    let n = samples.min(groups.len() / 2);
    if n == 0 {
        bail!("too few batched requests with two offers for the click phases");
    }
    let (first, second) = groups.split_at(n);
    let mut envelopes = Envelopes::new(c);
    let mut phases = Vec::new();

    // The first Accept on an offer: wins the task.
    let mut rec = Recorder::start();
    for group in first {
        let started = rec.begin(c);
        envelopes.click(&group[0], true).await;
        rec.end(c, started);
    }
    expect_count(
        c,
        "SELECT COUNT(*) AS n FROM staffing_responses WHERE is_winner = TRUE",
        n,
        "winners",
    )
    .await?;
    phases.push(rec.finish("accept_win"));

    // Another offer of the same requests, accepted after the task was taken.
    let mut rec = Recorder::start();
    for group in first {
        let started = rec.begin(c);
        envelopes.click(&group[1], true).await;
        rec.end(c, started);
    }
    expect_count(
        c,
        "SELECT COUNT(*) AS n FROM staffing_responses WHERE is_available = TRUE AND is_winner = FALSE",
        n,
        "late accepts",
    )
    .await?;
    phases.push(rec.finish("accept_late"));

    // Rejects on requests nobody has taken.
    let mut rec = Recorder::start();
    for group in &second[..n] {
        let started = rec.begin(c);
        envelopes.click(&group[0], false).await;
        rec.end(c, started);
    }
    expect_count(
        c,
        "SELECT COUNT(*) AS n FROM staffing_responses WHERE is_available = FALSE",
        n,
        "rejects",
    )
    .await?;
    phases.push(rec.finish("reject"));

    // `/staffbot staff <task>` on tasks without a request.
    let mut rec = Recorder::start();
    for task in built.spare_task_ids.iter().take(samples) {
        let started = rec.begin(c);
        let ack = envelopes.slash(&format!("staff {task}")).await;
        rec.end(c, started);
        match ack {
            Ack::WithPayload(p) if p.to_string().contains("Got it!") => {}
            other => bail!("`staff {task}` did not succeed: {other:?}"),
        }
    }
    phases.push(rec.finish("staff"));

    let now = loops_time();
    let lease = staffbot::lease::try_lease(&c.db, "reminders", "bench", Duration::from_secs(3600))
        .await?
        .context("the reminders lease is free")?;
    let (reminded, total, before, peak) = measure(
        c,
        staffbot::staffing::reminders::run_once(
            &c.db,
            &lease,
            Duration::from_secs(86_400),
            false,
            now,
        ),
    )
    .await;
    phases.push(Phase {
        name: "reminders",
        total,
        samples: Vec::new(),
        rss_before_mib: before,
        peak_rss_mib: peak,
        timed_out: false,
        detail: match reminded {
            Ok(n) => json!({"workers_reminded": n}),
            Err(e) => json!({"error": format!("{e:?}")}),
        },
    });

    let lease = staffbot::lease::try_lease(&c.db, "warnings", "bench", Duration::from_secs(3600))
        .await?
        .context("the warnings lease is free")?;
    let (warned, total, before, peak) = measure(
        c,
        staffbot::staffing::warnings::run_once(
            &c.db,
            &lease,
            Some(STAFFING_CHANNEL),
            Duration::from_secs(1800),
            now,
        ),
    )
    .await;
    phases.push(Phase {
        name: "warnings",
        total,
        samples: Vec::new(),
        rss_before_mib: before,
        peak_rss_mib: peak,
        timed_out: false,
        detail: match warned {
            Ok(n) => json!({"tasks_reported": n}),
            Err(e) => json!({"error": format!("{e:?}")}),
        },
    });
    Ok(phases)
}

async fn expect_count(c: &Counted, sql: &str, expected: usize, what: &str) -> Result<()> {
    let found = count(&c.db, sql).await?;
    if found != expected as i64 {
        bail!("expected {expected} {what}, found {found}");
    }
    Ok(())
}
