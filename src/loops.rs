//! Periodic work behind leases: one holder at a time across replicas, taken over when the
//! holder stops renewing it (a dead replica) after `loops.lease_ttl`.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbErr};

use crate::db::statement;

/// Proof that the caller holds a loop's lease: only [`try_lease`] makes one, so work that must
/// not run twice at once can demand it.
#[derive(Debug)]
pub struct LeaseProof {
    pub name: String,
}

/// Takes or renews the lease `name` for `holder` until `now + ttl`. `None` when another holder's
/// lease has not expired.
pub async fn try_lease<C: ConnectionTrait>(
    conn: &C,
    name: &str,
    holder: &str,
    ttl: Duration,
    now: DateTime<Utc>,
) -> Result<Option<LeaseProof>, DbErr> {
    let expires = now + chrono::Duration::from_std(ttl).unwrap_or_default();
    let result = conn
        .execute_raw(statement(
            conn.get_database_backend(),
            "INSERT INTO leases (name, holder, expires_at) VALUES ($1, $2, $3)
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
             WHERE leases.expires_at < $4 OR leases.holder = excluded.holder",
            vec![name.into(), holder.into(), expires.into(), now.into()],
        ))
        .await?;
    Ok((result.rows_affected() == 1).then(|| LeaseProof {
        name: name.to_string(),
    }))
}

/// Gives a lease up (at shutdown), so another replica need not wait for it to expire.
pub async fn release<C: ConnectionTrait>(conn: &C, name: &str, holder: &str) -> Result<(), DbErr> {
    conn.execute_raw(statement(
        conn.get_database_backend(),
        "DELETE FROM leases WHERE name = $1 AND holder = $2",
        vec![name.into(), holder.into()],
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
}

impl Loop {
    pub const ALL: [Loop; 5] = [
        Loop::Staffing,
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
