//! The reminder loop (behaviour §6.12, throttled as design.md §8 decides): a worker with offers
//! still open to them gets one DM listing them, at most once per `staffbot.reminder_interval`,
//! and not before the oldest of those offers is that old.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbErr, FromQueryResult, TransactionTrait};
use serde_json::Value;

use crate::db::statement;
use crate::loops::LeaseProof;
use crate::outbox::SlackWrite;
use crate::slack::blocks;
use crate::slack::mrkdwn::Mrkdwn;

/// Offers listed in one reminder at most (Slack allows 50 blocks; two per offer plus a header).
pub const MAX_LISTED: usize = 20;

/// Workers reminded in one transaction at most.
const WORKERS_PER_TRANSACTION: usize = 2000;

pub const REMINDER_HEADER: &str = "Tasks are still available for you to work on, if you'd like!";

/// Open offers of workers who are due a reminder: one row per (worker, offer).
const DUE: &str = "
SELECT w.id AS worker_id, w.slack_user_id, w.last_reminded_at, i.id AS inquiry_id, r.task_id,
       s.description AS step_description, p.short_description AS project_description,
       r.required_role_counter
FROM staffing_inquiries i
JOIN workers w ON w.id = i.worker_id
JOIN staffing_requests r ON r.id = i.request_id
JOIN tasks t ON t.id = r.task_id
JOIN steps s ON s.id = t.step_id
JOIN projects p ON p.id = t.project_id
WHERE r.status <> 'closed'
  AND t.status NOT IN ('complete', 'aborted')
  AND p.status NOT IN ('completed', 'aborted')
  AND w.slack_user_id IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM staffing_responses x WHERE x.inquiry_id = i.id)
  AND (w.last_reminded_at IS NULL OR w.last_reminded_at <= $1)
  AND w.id IN (
      SELECT i2.worker_id FROM staffing_inquiries i2
      JOIN staffing_requests r2 ON r2.id = i2.request_id
      WHERE r2.status <> 'closed'
        AND NOT EXISTS (SELECT 1 FROM staffing_responses x2 WHERE x2.inquiry_id = i2.id)
      GROUP BY i2.worker_id
      HAVING MIN(i2.created_at) <= $1)
ORDER BY w.id, p.priority DESC, r.created_at, i.id";

#[derive(Debug, Clone, FromQueryResult)]
struct DueOffer {
    worker_id: i64,
    slack_user_id: String,
    last_reminded_at: Option<DateTime<Utc>>,
    inquiry_id: i64,
    task_id: i64,
    step_description: String,
    project_description: String,
    required_role_counter: i32,
}

/// The reminder DM for one worker's open offers: a line per offer, each with its buttons.
fn reminder(offers: &[&DueOffer]) -> (Mrkdwn, Value) {
    let header = Mrkdwn::text(REMINDER_HEADER);
    let mut text = header.clone();
    let mut blocks_out = vec![blocks::section(header)];
    for o in offers.iter().take(MAX_LISTED) {
        let line = crate::mrkdwn!(
            "• {}{} ({}), task {}",
            o.step_description,
            if o.required_role_counter > 0 {
                " [Review]"
            } else {
                ""
            },
            o.project_description,
            o.task_id
        );
        blocks_out.push(blocks::section(line.clone()));
        blocks_out.push(blocks::offer_buttons(
            o.inquiry_id,
            format!("offer:{}:reminder", o.inquiry_id),
        ));
        text.push_line(&line);
    }
    if offers.len() > MAX_LISTED {
        let more = crate::mrkdwn!(
            "… and {} more: see the offers above.",
            offers.len() - MAX_LISTED
        );
        blocks_out.push(blocks::context(more.clone()));
        text.push_line(&more);
    }
    (text, blocks::message_blocks(blocks_out))
}

/// One round: remind every worker who is due. Returns how many were reminded.
pub async fn run_once<C: TransactionTrait + ConnectionTrait>(
    db: &C,
    lease: &LeaseProof,
    interval: std::time::Duration,
    now: DateTime<Utc>,
) -> Result<usize, DbErr> {
    let cutoff = now - chrono::Duration::from_std(interval).unwrap_or_default();
    let rows = DueOffer::find_by_statement(statement(
        db.get_database_backend(),
        DUE,
        vec![cutoff.into()],
    ))
    .all(db)
    .await?;
    let mut by_worker: BTreeMap<i64, Vec<&DueOffer>> = BTreeMap::new();
    for row in &rows {
        by_worker.entry(row.worker_id).or_default().push(row);
    }
    if by_worker.is_empty() {
        return Ok(0);
    }
    // In chunks of workers, each in its own transaction: memory stays bounded and the write
    // lock short however many workers are due.
    let workers: Vec<(&i64, &Vec<&DueOffer>)> = by_worker.iter().collect();
    for chunk in workers.chunks(WORKERS_PER_TRANSACTION) {
        let writes: Vec<(String, SlackWrite)> = chunk
            .iter()
            .map(|(_, offers)| {
                let (text, blocks) = reminder(offers);
                (
                    // The worker's next reminder after the previous one: two runs over the same
                    // state queue it once.
                    format!(
                        "remind:{}:{}",
                        offers[0].worker_id,
                        offers[0].last_reminded_at.map_or_else(
                            || "first".to_string(),
                            |at| at.timestamp_micros().to_string()
                        )
                    ),
                    SlackWrite::message(&offers[0].slack_user_id, text, blocks),
                )
            })
            .collect();
        let ids = chunk.iter().map(|(id, _)| **id);
        super::queue_and_stamp(db, lease, writes, "workers", "last_reminded_at", ids, now).await?;
    }
    Ok(by_worker.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_reminder_stays_within_slacks_limits() {
        let offers: Vec<DueOffer> = (0..25)
            .map(|i| DueOffer {
                worker_id: 1,
                slack_user_id: "U1".into(),
                last_reminded_at: None,
                inquiry_id: i,
                task_id: i,
                step_description: "Write <it> & check it".into(),
                project_description: "p".repeat(4500),
                required_role_counter: 0,
            })
            .collect();
        let refs: Vec<&DueOffer> = offers.iter().collect();
        let (text, blocks) = reminder(&refs);
        let list = blocks.as_array().expect("blocks");
        assert!(list.len() <= blocks::MAX_MESSAGE_BLOCKS, "{}", list.len());
        for b in list {
            let t = b["text"]["text"].as_str().unwrap_or("");
            assert!(t.chars().count() <= blocks::MAX_SECTION_CHARS);
        }
        assert!(
            list[1]["text"]["text"]
                .as_str()
                .is_some_and(|t| t.starts_with("• Write &lt;it&gt; &amp; check it (ppp"))
        );
        match SlackWrite::message("U1", text, blocks) {
            SlackWrite::PostMessage { text, .. } => {
                assert_eq!(text.chars().count(), blocks::MAX_TEXT_CHARS)
            }
            other => panic!("{other:?}"),
        }
    }
}
