//! The reminder loop (behaviour §6.12, throttled as design.md §8 decides): a worker with offers
//! still open to them gets one DM listing them, at most once per `staffbot.reminder_interval`,
//! and not before the oldest of those offers is that old.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbErr, FromQueryResult, TransactionSession, TransactionTrait};
use serde_json::{Value, json};

use crate::db::statement;
use crate::loops::LeaseProof;
use crate::outbox::{self, SlackWrite};
use crate::slack::blocks::{self, escape};

/// Offers listed in one reminder at most (Slack allows 50 blocks; two per offer plus a header).
pub const MAX_LISTED: usize = 20;

/// Workers reminded in one transaction at most.
const WORKERS_PER_TRANSACTION: usize = 2000;

pub const REMINDER_HEADER: &str = "Tasks are still available for you to work on, if you'd like!";

/// Open offers of workers who are due a reminder: one row per (worker, offer).
const DUE: &str = "
SELECT w.id AS worker_id, w.slack_user_id, i.id AS inquiry_id, r.task_id,
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
    inquiry_id: i64,
    task_id: i64,
    step_description: String,
    project_description: String,
    required_role_counter: i32,
}

/// The reminder DM for one worker's open offers: a line per offer, each with its buttons.
fn reminder(offers: &[&DueOffer]) -> (String, Value) {
    let mut lines = vec![REMINDER_HEADER.to_string()];
    let mut blocks_out =
        vec![json!({"type": "section", "text": {"type": "mrkdwn", "text": REMINDER_HEADER}})];
    for o in offers.iter().take(MAX_LISTED) {
        let line = format!(
            "• {}{} ({}), task {}",
            escape(&o.step_description),
            if o.required_role_counter > 0 {
                " [Review]"
            } else {
                ""
            },
            escape(&o.project_description),
            o.task_id
        );
        blocks_out.push(json!({"type": "section", "text": {"type": "mrkdwn", "text": line}}));
        blocks_out.push(json!({
            "type": "actions",
            "block_id": format!("offer:{}:reminder", o.inquiry_id),
            "elements": [
                {"type": "button", "action_id": blocks::ACCEPT, "style": "primary",
                 "text": {"type": "plain_text", "text": "Accept"}, "value": o.inquiry_id.to_string()},
                {"type": "button", "action_id": blocks::REJECT,
                 "text": {"type": "plain_text", "text": "Reject"}, "value": o.inquiry_id.to_string()}
            ]
        }));
        lines.push(line);
    }
    if offers.len() > MAX_LISTED {
        let more = format!(
            "… and {} more: see the offers above.",
            offers.len() - MAX_LISTED
        );
        blocks_out.push(json!({"type": "context", "elements": [{"type": "mrkdwn", "text": more}]}));
        lines.push(more);
    }
    (lines.join("\n"), Value::Array(blocks_out))
}

/// One round: remind every worker who is due. Returns how many were reminded.
pub async fn run_once<C: TransactionTrait + ConnectionTrait>(
    db: &C,
    _lease: &LeaseProof,
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
                    format!("remind:{}:{}", offers[0].worker_id, now.timestamp_millis()),
                    SlackWrite::PostMessage {
                        channel: offers[0].slack_user_id.clone(),
                        text,
                        blocks: Some(blocks),
                    },
                )
            })
            .collect();
        let ids: Vec<String> = chunk.iter().map(|(id, _)| id.to_string()).collect();
        let tx = crate::db::begin_write(db).await?;
        outbox::enqueue_owned(&tx, writes, now).await?;
        tx.execute_raw(statement(
            tx.get_database_backend(),
            &format!(
                "UPDATE workers SET last_reminded_at = $1 WHERE id IN ({})",
                ids.join(", ")
            ),
            vec![now.into()],
        ))
        .await?;
        tx.commit().await?;
    }
    Ok(by_worker.len())
}
