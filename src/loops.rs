//! The periodic loops: which there are, and running one once under its lease (see
//! [`crate::lease`]); the daemon schedules them.

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbErr};

pub use crate::lease::LeaseProof;

// TEMPORARY (until the parallel branches of issue 11 are merged): the old paths.
pub use crate::db::{db_now, db_now_plus, duration_param};
pub use crate::lease::{LEASE_LOST, is_lease_lost, release, try_lease};

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
