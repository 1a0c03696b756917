//! The batching loop (behaviour §6.2–6.3 with design.md §8's fixes): open requests get a batch
//! of offers when they never had one or their last one is older than `batch_frequency`.
//!
//! Set-based: one query lists the due requests with everything the offers show; each request
//! then costs four statements whatever the number of candidates (candidates, inquiries, outbox
//! rows, the request update), in a transaction of its own.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use rand::Rng;
use sea_orm::{
    ActiveValue::Set, ConnectionTrait, DbErr, EntityTrait, FromQueryResult, TransactionSession,
    TransactionTrait,
};
use serde_json::Value;

use crate::db::entities::staffing_inquiry;
use crate::db::{InquiryMethod, RequestStatus, Role, statement};
use crate::loops::LeaseProof;
use crate::outbox::SlackWrite;
use crate::slack::blocks::{self, OfferContent};
use crate::workflow::functions::DescriptionFunction;
use crate::workflow::lifecycle::task_display;

/// A Mersenne prime: the modulus of the per-request pseudo-random order among equal priorities.
const PRIME: i64 = 2_147_483_647;

#[derive(Debug, Clone, FromQueryResult)]
pub struct DueRequest {
    pub request_id: i64,
    pub task_id: i64,
    pub required_role_counter: i32,
    pub step_id: i64,
    pub project_id: i64,
    pub short_description: String,
    pub priority: i32,
    pub slack_channel_id: Option<String>,
    pub step_slug: String,
    pub step_description: String,
    pub detailed_description_function: Value,
    pub version_slug: String,
    pub workflow_slug: String,
    pub workflow_description: String,
    pub required_count: i64,
}

impl DueRequest {
    pub fn display(&self) -> String {
        task_display(&self.version_slug, &self.short_description, &self.step_slug)
    }

    /// The detailed description; a function that cannot be used shows nothing (and says why
    /// in the log), it never blocks the offer.
    pub fn details(&self) -> String {
        if self
            .detailed_description_function
            .as_object()
            .is_none_or(|o| o.is_empty())
        {
            return String::new();
        }
        let function: DescriptionFunction =
            match serde_json::from_value(self.detailed_description_function.clone()) {
                Ok(f) => f,
                Err(e) => {
                    tracing::warn!(task_id = self.task_id, "detailed description unusable: {e}");
                    return String::new();
                }
            };
        let template = match function.template() {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(task_id = self.task_id, "detailed description unusable: {e}");
                return String::new();
            }
        };
        let mut values: HashMap<String, String> = function
            .kwargs
            .iter()
            .map(|(k, v)| {
                let text = match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                (k.clone(), text)
            })
            .collect();
        for (k, v) in [
            ("task.id", self.task_id.to_string()),
            ("task.step", self.step_slug.clone()),
            ("project.id", self.project_id.to_string()),
            ("project.description", self.short_description.clone()),
            ("project.priority", self.priority.to_string()),
            ("workflow.slug", self.workflow_slug.clone()),
            ("workflow.description", self.workflow_description.clone()),
        ] {
            values.insert(k.to_string(), v);
        }
        template.render(&values)
    }

    pub fn offer(&self, first_name: &str) -> OfferContent {
        OfferContent {
            first_name: first_name.to_string(),
            workflow_description: self.workflow_description.clone(),
            project_description: self.short_description.clone(),
            step_description: self.step_description.clone(),
            review: self.required_role_counter > 0,
            details: self.details(),
        }
    }
}

/// What offers and channel messages show about a request.
const REQUEST_CONTEXT: &str = "
SELECT r.id AS request_id, r.task_id, r.required_role_counter, t.step_id, t.project_id,
       p.short_description, p.priority, p.slack_channel_id, s.slug AS step_slug,
       s.description AS step_description, s.detailed_description_function,
       v.slug AS version_slug, w.slug AS workflow_slug, w.description AS workflow_description,
       (SELECT COUNT(*) FROM step_certifications sc WHERE sc.step_id = t.step_id) AS required_count
FROM staffing_requests r
JOIN tasks t ON t.id = r.task_id
JOIN projects p ON p.id = t.project_id
JOIN steps s ON s.id = t.step_id
JOIN workflow_versions v ON v.id = p.workflow_version_id
JOIN workflows w ON w.id = v.workflow_id";

/// Requests due a batch (`$1`: the last batch must be older than this).
const DUE_FILTER: &str = "
WHERE r.status = 'sending'
  AND t.status NOT IN ('complete', 'aborted')
  AND p.status NOT IN ('completed', 'aborted')
  AND (r.last_batch_at IS NULL OR r.last_batch_at <= $1)
ORDER BY p.priority DESC, r.created_at ASC, r.id ASC";

/// Loads one request with the same context as the batching query (for messages elsewhere).
pub async fn request_context<C: ConnectionTrait>(
    conn: &C,
    request_id: i64,
) -> Result<Option<DueRequest>, DbErr> {
    DueRequest::find_by_statement(statement(
        conn.get_database_backend(),
        &format!("{REQUEST_CONTEXT} WHERE r.id = $1"),
        vec![request_id.into()],
    ))
    .one(conn)
    .await
}

/// Candidates: every required certification at the request's role, staffbot enabled, a Slack
/// id, not on the task, not already asked, no returned work waiting. Highest priority first;
/// equal priorities in a per-request pseudo-random order (`$6`, `$7`).
const CANDIDATES: &str = "
SELECT w.id AS worker_id, w.slack_user_id, w.first_name, MAX(wc.staffing_priority) AS priority
FROM workers w
JOIN worker_certifications wc ON wc.worker_id = w.id AND wc.role = $1 AND wc.staffbot_enabled = TRUE
JOIN step_certifications sc ON sc.certification_id = wc.certification_id AND sc.step_id = $2
WHERE w.slack_user_id IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM task_assignments a WHERE a.task_id = $3 AND a.worker_id = w.id)
  AND NOT EXISTS (SELECT 1 FROM staffing_inquiries i WHERE i.request_id = $4 AND i.worker_id = w.id)
  AND NOT EXISTS (SELECT 1 FROM task_assignments ra JOIN tasks rt ON rt.id = ra.task_id
                  WHERE ra.worker_id = w.id AND ra.status = 'processing'
                    AND rt.status = 'post_review_processing')
GROUP BY w.id, w.slack_user_id, w.first_name
HAVING COUNT(DISTINCT sc.certification_id) = $5
ORDER BY priority DESC, (w.id * $6 + $7) % 2147483647, w.id
LIMIT $8";

#[derive(Debug, Clone, FromQueryResult)]
pub struct Candidate {
    pub worker_id: i64,
    pub slack_user_id: String,
    pub first_name: String,
    pub priority: i32,
}

/// What one round did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct BatchReport {
    pub requests: usize,
    pub offers: usize,
    pub exhausted: usize,
}

/// Settings of the batching loop.
#[derive(Debug, Clone, Copy)]
pub struct BatchSettings {
    pub batch_size: u32,
    pub frequency: std::time::Duration,
}

/// One round over every due request. Only the holder of the `staffing` lease may run it.
pub async fn run_once<C: TransactionTrait + ConnectionTrait>(
    db: &C,
    _lease: &LeaseProof,
    settings: BatchSettings,
    now: DateTime<Utc>,
    rng: &mut impl Rng,
) -> Result<BatchReport, DbErr> {
    let cutoff = now - chrono::Duration::from_std(settings.frequency).unwrap_or_default();
    let due = DueRequest::find_by_statement(statement(
        db.get_database_backend(),
        &format!("{REQUEST_CONTEXT}{DUE_FILTER}"),
        vec![cutoff.into()],
    ))
    .all(db)
    .await?;
    let mut report = BatchReport::default();
    for request in due {
        let tx = crate::db::begin_write(db).await?;
        let (offers, exhausted) = batch(&tx, &request, settings.batch_size, now, rng).await?;
        tx.commit().await?;
        report.requests += 1;
        report.offers += offers;
        report.exhausted += usize::from(exhausted);
    }
    Ok(report)
}

/// One batch for one request; returns (offers queued, pool exhausted).
async fn batch<C: ConnectionTrait>(
    conn: &C,
    request: &DueRequest,
    batch_size: u32,
    now: DateTime<Utc>,
    rng: &mut impl Rng,
) -> Result<(usize, bool), DbErr> {
    let role = Role::for_counter(request.required_role_counter);
    let multiplier: i64 = rng.random_range(1..PRIME);
    let offset: i64 = rng.random_range(0..PRIME);
    // A step without required certifications has no candidates (Orchestra's rule).
    let candidates = if request.required_count == 0 {
        Vec::new()
    } else {
        Candidate::find_by_statement(statement(
            conn.get_database_backend(),
            CANDIDATES,
            vec![
                role.as_str().into(),
                request.step_id.into(),
                request.task_id.into(),
                request.request_id.into(),
                request.required_count.into(),
                multiplier.into(),
                offset.into(),
                i64::from(batch_size + 1).into(),
            ],
        ))
        .all(conn)
        .await?
    };
    // One more than a batch was asked for: if it is not there, this batch empties the pool.
    let exhausted = candidates.len() <= batch_size as usize;
    let chosen: Vec<&Candidate> = candidates.iter().take(batch_size as usize).collect();

    let mut writes: Vec<(String, SlackWrite)> = Vec::new();
    if !chosen.is_empty() {
        let inquiries = staffing_inquiry::Entity::insert_many(chosen.iter().map(|c| {
            staffing_inquiry::ActiveModel {
                request_id: Set(request.request_id),
                worker_id: Set(c.worker_id),
                method: Set(InquiryMethod::Slack),
                created_at: Set(now),
                ..Default::default()
            }
        }))
        .exec_with_returning(conn)
        .await?;
        let by_worker: HashMap<i64, &Candidate> =
            chosen.iter().map(|c| (c.worker_id, *c)).collect();
        for inquiry in &inquiries {
            let Some(c) = by_worker.get(&inquiry.worker_id) else {
                continue;
            };
            let offer = request.offer(&c.first_name);
            writes.push((
                format!("offer:{}", inquiry.id),
                SlackWrite::PostMessage {
                    channel: c.slack_user_id.clone(),
                    text: blocks::offer_text(&offer),
                    blocks: Some(blocks::offer_blocks(&offer, inquiry.id)),
                },
            ));
        }
    }
    if exhausted {
        match &request.slack_channel_id {
            Some(channel) => writes.push((
                format!("all-sent:{}", request.request_id),
                SlackWrite::post(
                    channel,
                    format!(
                        "All staffing requests for task {} have been sent!",
                        request.display()
                    ),
                ),
            )),
            None => tracing::warn!(
                project_id = request.project_id,
                "project has no Slack channel; not announcing that task {}'s pool is exhausted",
                request.task_id
            ),
        }
    }
    crate::outbox::enqueue_many(conn, &writes, now).await?;
    let status = if exhausted {
        RequestStatus::DoneSending
    } else {
        RequestStatus::Sending
    };
    conn.execute_raw(statement(
        conn.get_database_backend(),
        "UPDATE staffing_requests SET last_batch_at = $1, status = $2 WHERE id = $3 AND status = 'sending'",
        vec![now.into(), status.as_str().into(), request.request_id.into()],
    ))
    .await?;
    if exhausted {
        super::respond::close_if_everyone_declined(conn, request.request_id, now).await?;
    }
    Ok((chosen.len(), exhausted))
}
