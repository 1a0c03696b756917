//! The reminder loop (behaviour §6.12, throttled as design.md §8 decides): a worker with offers
//! still open to them gets one DM listing them, at most once per `staffbot.reminder_interval`,
//! and not before the oldest of those offers is that old.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, TransactionTrait};

use crate::availability::WorkingRule;
use crate::db;
use crate::db::offers::DueReminder;
use crate::db::requests::Stamp;
use crate::lease::LeaseProof;
use crate::messages::{MAX_REMINDER_ITEMS, Message, Outgoing, ReminderItem};

/// Workers reminded in one transaction at most.
const WORKERS_PER_TRANSACTION: usize = 2000;

/// The reminder of one worker's open offers: the first [`MAX_REMINDER_ITEMS`] of them, and how
/// many more there are.
fn reminder(offers: &[&DueReminder]) -> Message {
    let items = offers
        .iter()
        .take(MAX_REMINDER_ITEMS)
        .map(|o| ReminderItem::from(*o))
        .collect();
    Message::Reminder {
        items,
        more: offers.len().saturating_sub(MAX_REMINDER_ITEMS),
    }
}

/// Worker ids whose due offers are read at once: memory is bounded by the offers of this many
/// consecutive ids, however many workers are due.
const WORKER_IDS_PER_READ: i64 = 10_000;

/// One round: remind every worker who is due. Returns how many were reminded.
///
/// The due offers are read a range of worker ids at a time (each worker's offers all in one
/// read, as a reminder lists them all), and queued in transactions of at most
/// [`WORKERS_PER_TRANSACTION`] workers.
pub async fn run_once<C: TransactionTrait + ConnectionTrait>(
    db: &C,
    lease: &LeaseProof,
    interval: std::time::Duration,
    email: bool,
    now: DateTime<Utc>,
) -> Result<usize, crate::error::Error> {
    run_once_with_hours(db, lease, interval, email, WorkingRule::default(), now).await
}

/// [`run_once`], reminding only workers inside their working hours (`working`): the others
/// stay due, and are reminded once their hours start.
pub async fn run_once_with_hours<C: TransactionTrait + ConnectionTrait>(
    db: &C,
    lease: &LeaseProof,
    interval: std::time::Duration,
    email: bool,
    working: WorkingRule,
    now: DateTime<Utc>,
) -> Result<usize, crate::error::Error> {
    let cutoff = now - chrono::Duration::from_std(interval).unwrap_or_default();
    let Some((lowest, highest)) = db::offers::offered_worker_ids(db).await? else {
        return Ok(0);
    };
    let mut reminded = 0;
    let mut start = lowest;
    while start <= highest {
        let end = start.saturating_add(WORKER_IDS_PER_READ);
        reminded += remind_range(db, lease, cutoff, start..end, email, working, now).await?;
        if end == i64::MAX {
            break;
        }
        start = end;
    }
    Ok(reminded)
}

/// Reminds the due workers with ids in `workers`; returns how many.
async fn remind_range<C: TransactionTrait + ConnectionTrait>(
    db: &C,
    lease: &LeaseProof,
    cutoff: DateTime<Utc>,
    workers: std::ops::Range<i64>,
    email: bool,
    working: WorkingRule,
    now: DateTime<Utc>,
) -> Result<usize, crate::error::Error> {
    let rows = db::offers::due_reminders(db, cutoff, workers).await?;
    let mut by_worker: BTreeMap<i64, Vec<&DueReminder>> = BTreeMap::new();
    for row in &rows {
        by_worker.entry(row.worker_id).or_default().push(row);
    }
    // Outside their working hours a worker is not reminded (unless an offer is urgent).
    by_worker.retain(|_, offers| {
        let first = offers[0];
        offers
            .iter()
            .any(|o| !working.applies_to(o.project_priority))
            || first.tz.is_none()
            || working
                .week_of(
                    first.tz.as_deref(),
                    first.working_hours.as_deref(),
                    first.working_days.as_deref(),
                )
                .is_working(now)
    });
    if by_worker.is_empty() {
        return Ok(0);
    }
    // In chunks of workers, each in its own transaction: the write lock stays short however
    // many workers are due.
    let workers: Vec<(&i64, &Vec<&DueReminder>)> = by_worker.iter().collect();
    for chunk in workers.chunks(WORKERS_PER_TRANSACTION) {
        let mut messages: Vec<(String, Outgoing)> = Vec::with_capacity(chunk.len());
        for (_, offers) in chunk {
            let first = offers[0];
            // The worker's next reminder after the previous one: two runs over the same state
            // queue it once.
            let key = format!(
                "remind:{}:{}",
                first.worker_id,
                first.last_reminded_at.map_or_else(
                    || "first".to_string(),
                    |at| at.timestamp_micros().to_string()
                )
            );
            let reach = crate::notify::reach(
                first.notify,
                first.slack_user_id.as_deref(),
                &first.email,
                email,
            );
            if let Some(slack) = reach.slack {
                messages.push((key.clone(), Outgoing::post(slack, reminder(offers))));
            }
            if let Some(address) = reach.email {
                let to = crate::notify::EmailTo {
                    to: address,
                    token: None,
                    in_reply_to: None,
                    slack_user: first.slack_user_id.as_deref(),
                    only_channel: false,
                };
                messages.push((format!("{key}:email"), to.outgoing(reminder(offers))));
            }
        }
        let ids: Vec<i64> = chunk.iter().map(|(id, _)| **id).collect();
        let stamps = [(Stamp::WorkersReminded, ids)];
        super::queue_and_stamp(db, lease, messages, &stamps, now).await?;
    }
    Ok(by_worker.len())
}
