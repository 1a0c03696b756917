//! Periodic work behind leases: one holder at a time across replicas, taken over when the
//! holder stops renewing it (a dead replica) after `loops.lease_ttl`.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DatabaseBackend, DbErr};

use crate::db::statement;

/// Proof that the caller held a loop's lease: only [`try_lease`] makes one. Work that must not
/// run twice at once demands it, and every transaction that writes under the lease calls
/// [`LeaseProof::fence`] first, which fails once the lease has passed to another holder (or
/// lapsed), so a holder that stalled past its lease writes nothing.
#[derive(Debug, Clone)]
pub struct LeaseProof {
    pub name: String,
    pub holder: String,
    /// The fencing token: bumped every time the lease changes hands (or is taken again after
    /// it lapsed).
    pub token: i64,
    ttl: Duration,
}

/// The error a write under a lost lease fails with (see [`is_lease_lost`]).
pub const LEASE_LOST: &str = "the lease is no longer held by this process";

/// True when `err` is a write refused because its lease was lost.
pub fn is_lease_lost(err: &DbErr) -> bool {
    matches!(err, DbErr::Custom(m) if m.starts_with(LEASE_LOST))
}

/// The database's current time, in SQL: leases and claims are compared on one clock, the
/// database's, whatever the hosts' clocks say.
pub fn db_now(backend: DatabaseBackend) -> &'static str {
    match backend {
        DatabaseBackend::Postgres => "clock_timestamp()",
        // Stored timestamps are RFC 3339 text; this compares with them as text.
        _ => "(strftime('%Y-%m-%dT%H:%M:%f', 'now') || '+00:00')",
    }
}

/// The database's current time plus the duration bound as parameter `$n` (see
/// [`duration_param`]).
pub fn db_now_plus(backend: DatabaseBackend, n: usize) -> String {
    match backend {
        DatabaseBackend::Postgres => format!("(clock_timestamp() + make_interval(secs => ${n}))"),
        _ => format!("(strftime('%Y-%m-%dT%H:%M:%f', 'now', ${n}) || '+00:00')"),
    }
}

/// The parameter [`db_now_plus`] expects for `d`.
pub fn duration_param(backend: DatabaseBackend, d: Duration) -> sea_orm::Value {
    match backend {
        DatabaseBackend::Postgres => d.as_secs_f64().into(),
        _ => format!("+{:.3} seconds", d.as_secs_f64()).into(),
    }
}

/// Takes or renews the lease `name` for `holder` until the database's now + `ttl`. `None` when
/// another holder's lease has not expired. Taking a lease that was another's, or that lapsed,
/// bumps its fencing token.
pub async fn try_lease<C: ConnectionTrait>(
    conn: &C,
    name: &str,
    holder: &str,
    ttl: Duration,
) -> Result<Option<LeaseProof>, DbErr> {
    let backend = conn.get_database_backend();
    let now = db_now(backend);
    let expires = db_now_plus(backend, 3);
    let row = conn
        .query_one_raw(statement(
            backend,
            &format!(
                "INSERT INTO leases (name, holder, expires_at, token) VALUES ($1, $2, {expires}, 1)
                 ON CONFLICT (name) DO UPDATE SET
                     token = CASE WHEN leases.holder = excluded.holder AND leases.expires_at > {now}
                                  THEN leases.token ELSE leases.token + 1 END,
                     holder = excluded.holder, expires_at = excluded.expires_at
                 WHERE leases.expires_at <= {now} OR leases.holder = excluded.holder
                 RETURNING token"
            ),
            vec![name.into(), holder.into(), duration_param(backend, ttl)],
        ))
        .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    Ok(Some(LeaseProof {
        name: name.to_string(),
        holder: holder.to_string(),
        token: row.try_get("", "token")?,
        ttl,
    }))
}

impl LeaseProof {
    /// How long the lease lasts after each renewal.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Inside a transaction that writes under this lease: checks that the lease is still held
    /// with this token and has not lapsed, and extends it by its time to live. The lease's row
    /// stays locked until the transaction ends, so nobody takes the lease over in between.
    /// Fails with [`LEASE_LOST`] otherwise: the caller's transaction must roll back.
    pub async fn fence<C: ConnectionTrait>(&self, conn: &C) -> Result<(), DbErr> {
        let backend = conn.get_database_backend();
        let now = db_now(backend);
        let expires = db_now_plus(backend, 4);
        let renewed = conn
            .execute_raw(statement(
                backend,
                &format!(
                    "UPDATE leases SET expires_at = {expires}
                     WHERE name = $1 AND holder = $2 AND token = $3 AND expires_at > {now}"
                ),
                vec![
                    self.name.as_str().into(),
                    self.holder.as_str().into(),
                    self.token.into(),
                    duration_param(backend, self.ttl),
                ],
            ))
            .await?
            .rows_affected();
        if renewed == 1 {
            Ok(())
        } else {
            Err(DbErr::Custom(format!(
                "{LEASE_LOST} (lease {}, token {})",
                self.name, self.token
            )))
        }
    }
}

/// Gives a lease up (at shutdown), so another replica need not wait for it to expire.
pub async fn release<C: ConnectionTrait>(conn: &C, name: &str, holder: &str) -> Result<(), DbErr> {
    conn.execute_raw(statement(
        conn.get_database_backend(),
        "UPDATE leases SET expires_at = $3 WHERE name = $1 AND holder = $2",
        vec![
            name.into(),
            holder.into(),
            DateTime::<Utc>::UNIX_EPOCH.into(),
        ],
    ))
    .await?;
    Ok(())
}

/// The periodic loops, by lease name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Loop {
    Staffing,
    Reminders,
    Warnings,
    Sanity,
    Retention,
    Machine,
}

impl Loop {
    pub const ALL: [Loop; 6] = [
        Loop::Staffing,
        Loop::Machine,
        Loop::Reminders,
        Loop::Warnings,
        Loop::Sanity,
        Loop::Retention,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Loop::Staffing => "staffing",
            Loop::Reminders => "reminders",
            Loop::Warnings => "warnings",
            Loop::Sanity => "sanity",
            Loop::Retention => "retention",
            Loop::Machine => "machine",
        }
    }
}

/// What one run of a loop did, in words (for `tick` and the logs), and whether it queued
/// anything for Slack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoopOutcome {
    pub summary: String,
    pub queued: bool,
}

/// Runs one loop once, under its lease (already held).
pub async fn run_loop_once<C: sea_orm::TransactionTrait + ConnectionTrait>(
    db: &C,
    which: Loop,
    lease: &LeaseProof,
    config: &crate::config::Config,
    now: DateTime<Utc>,
    rng: &mut impl rand::Rng,
) -> Result<LoopOutcome, DbErr> {
    Ok(match which {
        Loop::Staffing => {
            let settings = crate::staffing::batch::BatchSettings {
                batch_size: config.staffbot.worker_batch_size,
                frequency: config.staffbot.batch_frequency,
            };
            let r = crate::staffing::batch::run_once(db, lease, settings, now, rng).await?;
            LoopOutcome {
                summary: format!(
                    "{} request(s) batched, {} offer(s) queued, {} pool(s) exhausted",
                    r.requests, r.offers, r.exhausted
                ),
                queued: r.offers > 0 || r.exhausted > 0,
            }
        }
        Loop::Reminders => {
            let n = crate::staffing::reminders::run_once(
                db,
                lease,
                config.staffbot.reminder_interval,
                now,
            )
            .await?;
            LoopOutcome {
                summary: format!("{n} worker(s) reminded"),
                queued: n > 0,
            }
        }
        Loop::Warnings => {
            let n = crate::staffing::warnings::run_once(
                db,
                lease,
                config.staffbot.staffing_group_id.as_deref(),
                config.staffbot.staffing_min_time,
                now,
            )
            .await?;
            let summary = if config.staffbot.staffing_group_id.is_none() {
                "off (staffbot.staffing_group_id is not set)".to_string()
            } else {
                format!("{n} unstaffed task(s) reported")
            };
            LoopOutcome {
                summary,
                queued: n > 0,
            }
        }
        Loop::Sanity => {
            let r = crate::sanity::run::run_once(db, lease, now).await?;
            LoopOutcome {
                summary: format!(
                    "{} project(s) checked, {} check(s) fired, {} message(s) queued{}",
                    r.projects,
                    r.checks,
                    r.messages,
                    if r.failed_projects > 0 {
                        format!(", {} project(s) failed (see the log)", r.failed_projects)
                    } else {
                        String::new()
                    }
                ),
                queued: r.messages > 0,
            }
        }
        Loop::Machine => {
            let r = crate::machine::run_once(db, lease, &config.machine, now).await?;
            LoopOutcome {
                summary: format!(
                    "{} machine task(s) completed, {} failed (will retry), {} waiting for `task complete`",
                    r.completed, r.failed, r.external
                ),
                queued: r.completed > 0,
            }
        }
        Loop::Retention => {
            let r = crate::retention::run_once(db, lease, &config.retention, now).await?;
            LoopOutcome {
                summary: format!(
                    "{} handled envelope(s) and {} sent or failed outbox row(s) deleted{}",
                    r.envelopes,
                    r.outbox,
                    if r.more { ", more in the next run" } else { "" }
                ),
                queued: false,
            }
        }
    })
}
