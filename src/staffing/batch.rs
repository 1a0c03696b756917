//! The batching loop (behaviour §6.2–6.3 with design.md §8's fixes): open requests get a batch
//! of offers when they never had one or their last one is older than `batch_frequency`.
//!
//! Set-based: one query lists the due requests with everything the offers show, one query per
//! (step, role) reads the candidate pool, and each chunk of requests costs four statements
//! (exclusions, inquiries, outbox rows, the request updates) in a transaction of its own,
//! whatever the number of workers. Choosing among the pool happens in memory.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use rand::Rng;
use sea_orm::{
    ActiveValue::Set, ConnectionTrait, DbErr, EntityTrait, FromQueryResult, TransactionTrait,
};
use serde_json::Value;

use crate::db::entities::staffing_inquiry;
use crate::db::{InquiryMethod, RequestStatus, Role, statement};
use crate::loops::LeaseProof;
use crate::outbox::SlackWrite;
use crate::slack::blocks::{self, OfferContent};
use crate::workflow::functions::DescriptionFunction;
use crate::workflow::lifecycle::task_display;

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

/// What offers and channel messages show about a request ([`DueRequest`]'s columns), given
/// `r` (the request) and [`REQUEST_JOINS`].
pub(crate) const REQUEST_COLUMNS: &str = "
r.id AS request_id, r.task_id, r.required_role_counter, t.step_id, t.project_id,
p.short_description, p.priority, p.slack_channel_id, s.slug AS step_slug,
s.description AS step_description, s.detailed_description_function,
v.slug AS version_slug, w.slug AS workflow_slug, w.description AS workflow_description,
(SELECT COUNT(*) FROM step_certifications sc WHERE sc.step_id = t.step_id) AS required_count";

/// From a request `r` to its task `t`, project `p`, step `s`, version `v` and workflow `w`.
pub(crate) const REQUEST_JOINS: &str = "
JOIN tasks t ON t.id = r.task_id
JOIN projects p ON p.id = t.project_id
JOIN steps s ON s.id = t.step_id
JOIN workflow_versions v ON v.id = p.workflow_version_id
JOIN workflows w ON w.id = v.workflow_id";

fn request_context_sql() -> String {
    format!("SELECT {REQUEST_COLUMNS} FROM staffing_requests r {REQUEST_JOINS}")
}

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
        &format!("{} WHERE r.id = $1", request_context_sql()),
        vec![request_id.into()],
    ))
    .one(conn)
    .await
}

/// The candidate pool of one step at one role: every required certification at that role,
/// staffbot enabled, a Slack id, no returned work waiting. Per-request exclusions (on the task
/// already, asked already) are applied in memory.
const POOL: &str = "
SELECT w.id AS worker_id, w.slack_user_id, w.first_name, MAX(wc.staffing_priority) AS priority
FROM workers w
JOIN worker_certifications wc ON wc.worker_id = w.id AND wc.role = $1 AND wc.staffbot_enabled = TRUE
JOIN step_certifications sc ON sc.certification_id = wc.certification_id AND sc.step_id = $2
WHERE w.slack_user_id IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM task_assignments ra JOIN tasks rt ON rt.id = ra.task_id
                  WHERE ra.worker_id = w.id AND ra.status = 'processing'
                    AND rt.status = 'post_review_processing')
GROUP BY w.id, w.slack_user_id, w.first_name
HAVING COUNT(DISTINCT sc.certification_id) = $3";

/// Requests handled in one transaction at most, and offers in one transaction at most (both
/// keep multi-row statements under every backend's bound-parameter limit and keep the write
/// lock short).
const CHUNK_REQUESTS: usize = 200;
const CHUNK_OFFERS: usize = 1000;

#[derive(Debug, Clone, FromQueryResult)]
pub struct Candidate {
    pub worker_id: i64,
    pub slack_user_id: String,
    pub first_name: String,
    pub priority: i32,
}

#[derive(Debug, FromQueryResult)]
struct Exclusion {
    request_id: i64,
    worker_id: i64,
}

/// A step's candidates, highest priority first, grouped in tiers of equal priority.
#[derive(Debug, Default)]
pub struct Pool {
    candidates: Vec<Candidate>,
    /// `(start, end)` ranges of `candidates` with one priority, highest first.
    tiers: Vec<(usize, usize)>,
    /// worker id → tier index.
    tier_of: HashMap<i64, usize>,
}

impl Pool {
    pub fn new(mut candidates: Vec<Candidate>) -> Pool {
        candidates.sort_by(|a, b| {
            b.priority
                .cmp(&a.priority)
                .then(a.worker_id.cmp(&b.worker_id))
        });
        let mut tiers = Vec::new();
        let mut tier_of = HashMap::with_capacity(candidates.len());
        let mut start = 0;
        for i in 0..candidates.len() {
            if i > start && candidates[i].priority != candidates[start].priority {
                tiers.push((start, i));
                start = i;
            }
            tier_of.insert(candidates[i].worker_id, tiers.len());
        }
        if start < candidates.len() {
            tiers.push((start, candidates.len()));
        }
        Pool {
            candidates,
            tiers,
            tier_of,
        }
    }

    pub fn len(&self) -> usize {
        self.candidates.len()
    }

    pub fn is_empty(&self) -> bool {
        self.candidates.is_empty()
    }

    /// Up to `n` candidates not in `excluded`: highest priority first, in a random order among
    /// equal priorities. Costs O(n) per tier when few of a tier are excluded, O(tier) otherwise.
    pub fn choose(&self, n: usize, excluded: &HashSet<i64>, rng: &mut impl Rng) -> Vec<&Candidate> {
        let mut chosen: Vec<&Candidate> = Vec::with_capacity(n);
        let mut excluded_in_tier = vec![0usize; self.tiers.len()];
        for w in excluded {
            if let Some(&t) = self.tier_of.get(w) {
                excluded_in_tier[t] += 1;
            }
        }
        for (t, &(start, end)) in self.tiers.iter().enumerate() {
            let wanted = n - chosen.len();
            if wanted == 0 {
                break;
            }
            let tier = &self.candidates[start..end];
            let available = tier.len() - excluded_in_tier[t];
            if available == 0 {
                continue;
            }
            if available <= wanted || available * 2 < tier.len() || tier.len() <= 64 {
                // Few left (or a small tier): shuffle what is left and take the first ones.
                let mut left: Vec<&Candidate> = tier
                    .iter()
                    .filter(|c| !excluded.contains(&c.worker_id))
                    .collect();
                let take = wanted.min(left.len());
                for i in 0..take {
                    let j = rng.random_range(i..left.len());
                    left.swap(i, j);
                }
                chosen.extend(left.into_iter().take(take));
            } else {
                // Most of the tier is left: sample without replacement by rejection; every
                // draw succeeds with probability > 1/2.
                let mut picked: HashSet<usize> = HashSet::with_capacity(wanted);
                while picked.len() < wanted {
                    let i = rng.random_range(0..tier.len());
                    if excluded.contains(&tier[i].worker_id) || !picked.insert(i) {
                        continue;
                    }
                    chosen.push(&tier[i]);
                }
            }
        }
        chosen
    }
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
///
/// Set-based: one query lists the due requests; each (step, role) pool of candidates is read
/// once; then, per chunk of requests, one query reads who is excluded (asked already, on the
/// task already), and one transaction inserts the inquiries, the outbox rows and updates the
/// requests, each as one multi-row statement. The cost in statements does not grow with the
/// number of workers, and barely with the number of requests.
pub async fn run_once<C: TransactionTrait + ConnectionTrait>(
    db: &C,
    lease: &LeaseProof,
    settings: BatchSettings,
    now: DateTime<Utc>,
    rng: &mut impl Rng,
) -> Result<BatchReport, DbErr> {
    let backend = db.get_database_backend();
    let cutoff = now - chrono::Duration::from_std(settings.frequency).unwrap_or_default();
    let due = DueRequest::find_by_statement(statement(
        backend,
        &format!("{}{DUE_FILTER}", request_context_sql()),
        vec![cutoff.into()],
    ))
    .all(db)
    .await?;
    let mut report = BatchReport::default();
    if due.is_empty() {
        return Ok(report);
    }

    // One pool per (step, role); a step without required certifications has no candidates
    // (Orchestra's rule).
    let mut pools: HashMap<(i64, Role), Pool> = HashMap::new();
    for request in &due {
        let role = Role::for_counter(request.required_role_counter);
        if pools.contains_key(&(request.step_id, role)) {
            continue;
        }
        let pool = if request.required_count == 0 {
            Pool::default()
        } else {
            Pool::new(
                Candidate::find_by_statement(statement(
                    backend,
                    POOL,
                    vec![
                        role.as_str().into(),
                        request.step_id.into(),
                        request.required_count.into(),
                    ],
                ))
                .all(db)
                .await?,
            )
        };
        pools.insert((request.step_id, role), pool);
    }

    let per_request = settings.batch_size as usize + 1;
    let chunk_len = (CHUNK_OFFERS / per_request).clamp(1, CHUNK_REQUESTS);
    for chunk in due.chunks(chunk_len) {
        let excluded = exclusions(db, chunk).await?;
        let empty = HashSet::new();
        let mut plans: Vec<(&DueRequest, Vec<&Candidate>, bool)> = Vec::with_capacity(chunk.len());
        for request in chunk {
            let role = Role::for_counter(request.required_role_counter);
            let Some(pool) = pools.get(&(request.step_id, role)) else {
                continue;
            };
            let mut candidates = pool.choose(
                per_request,
                excluded.get(&request.request_id).unwrap_or(&empty),
                rng,
            );
            // One more than a batch was looked for: if it is not there, this batch empties
            // the pool.
            let exhausted = candidates.len() < per_request;
            candidates.truncate(settings.batch_size as usize);
            plans.push((request, candidates, exhausted));
        }
        let tx = crate::db::begin_write(db).await?;
        let written = async {
            lease.fence(&tx).await?;
            write_batches(&tx, &plans, now).await
        }
        .await;
        crate::db::settle(tx, written).await?;
        for (_, chosen, exhausted) in &plans {
            report.requests += 1;
            report.offers += chosen.len();
            report.exhausted += usize::from(*exhausted);
        }
    }
    Ok(report)
}

/// Who may not be asked, per request: workers asked already, workers on the task already,
/// workers whose offers of it Slack refused too often.
async fn exclusions<C: ConnectionTrait>(
    conn: &C,
    chunk: &[DueRequest],
) -> Result<HashMap<i64, HashSet<i64>>, DbErr> {
    let placeholders: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
    let list = placeholders.join(", ");
    let sql = format!(
        "SELECT i.request_id, i.worker_id FROM staffing_inquiries i WHERE i.request_id IN ({list})
         UNION ALL
         SELECT r.id AS request_id, a.worker_id FROM staffing_requests r
         JOIN task_assignments a ON a.task_id = r.task_id WHERE r.id IN ({list})
         UNION ALL
         SELECT f.request_id, f.worker_id FROM offer_failures f WHERE f.request_id IN ({list})
         GROUP BY f.request_id, f.worker_id HAVING COUNT(*) >= {max_failures}",
        max_failures = super::respond::MAX_OFFER_FAILURES
    );
    let rows = Exclusion::find_by_statement(statement(
        conn.get_database_backend(),
        &sql,
        chunk.iter().map(|r| r.request_id.into()).collect(),
    ))
    .all(conn)
    .await?;
    let mut map: HashMap<i64, HashSet<i64>> = HashMap::new();
    for row in rows {
        map.entry(row.request_id).or_default().insert(row.worker_id);
    }
    Ok(map)
}

/// Writes the batches of one chunk: the inquiries, the offers and announcements (outbox), the
/// requests' new state; requests whose pool ran out and whose every offer was declined close.
async fn write_batches<C: ConnectionTrait>(
    conn: &C,
    plans: &[(&DueRequest, Vec<&Candidate>, bool)],
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    let backend = conn.get_database_backend();
    let rows: Vec<staffing_inquiry::ActiveModel> = plans
        .iter()
        .flat_map(|(request, chosen, _)| {
            chosen.iter().map(|c| staffing_inquiry::ActiveModel {
                request_id: Set(request.request_id),
                worker_id: Set(c.worker_id),
                method: Set(InquiryMethod::Slack),
                created_at: Set(now),
                ..Default::default()
            })
        })
        .collect();
    let inquiry_ids: HashMap<(i64, i64), i64> = if rows.is_empty() {
        HashMap::new()
    } else {
        staffing_inquiry::Entity::insert_many(rows)
            .exec_with_returning(conn)
            .await?
            .into_iter()
            .map(|i| ((i.request_id, i.worker_id), i.id))
            .collect()
    };

    let mut writes: Vec<(String, SlackWrite)> = Vec::new();
    let mut sending: Vec<i64> = Vec::new();
    let mut done: Vec<i64> = Vec::new();
    for (request, chosen, exhausted) in plans {
        if !chosen.is_empty() {
            // Everything but the greeting is the same for every worker asked.
            let body = blocks::offer_body(&request.offer(""));
            for c in chosen {
                let Some(&inquiry_id) = inquiry_ids.get(&(request.request_id, c.worker_id)) else {
                    continue;
                };
                let text = blocks::offer_text_for(&c.first_name, &body);
                let blocks = blocks::offer_blocks_with_text(&text, inquiry_id);
                writes.push((
                    format!("offer:{inquiry_id}"),
                    SlackWrite::message(&c.slack_user_id, text, blocks),
                ));
            }
        }
        if *exhausted {
            done.push(request.request_id);
            match &request.slack_channel_id {
                Some(channel) => writes.push((
                    format!("all-sent:{}", request.request_id),
                    SlackWrite::post(
                        channel,
                        crate::mrkdwn!(
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
        } else {
            sending.push(request.request_id);
        }
    }
    crate::outbox::enqueue_owned(conn, writes, now).await?;
    for (status, ids) in [
        (RequestStatus::Sending, &sending),
        (RequestStatus::DoneSending, &done),
    ] {
        if ids.is_empty() {
            continue;
        }
        let list: Vec<String> = (3..ids.len() + 3).map(|i| format!("${i}")).collect();
        let mut values: Vec<sea_orm::Value> = vec![now.into(), status.as_str().into()];
        values.extend(ids.iter().map(|&id| id.into()));
        conn.execute_raw(statement(
            backend,
            &format!(
                "UPDATE staffing_requests SET last_batch_at = $1, status = $2
                 WHERE status = 'sending' AND id IN ({})",
                list.join(", ")
            ),
            values,
        ))
        .await?;
    }
    for &request_id in &done {
        super::respond::close_if_everyone_declined(conn, request_id, now).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    fn pool(priorities: &[(i64, i32)]) -> Pool {
        Pool::new(
            priorities
                .iter()
                .map(|&(id, priority)| Candidate {
                    worker_id: id,
                    slack_user_id: format!("U{id}"),
                    first_name: format!("W{id}"),
                    priority,
                })
                .collect(),
        )
    }

    fn ids(chosen: &[&Candidate]) -> Vec<i64> {
        chosen.iter().map(|c| c.worker_id).collect()
    }

    #[test]
    fn highest_priority_first_and_never_an_excluded_worker() {
        let p = pool(&[(1, 1), (2, 9), (3, 5), (4, 9), (5, 5), (6, 0)]);
        let mut rng = StdRng::seed_from_u64(7);
        let excluded: HashSet<i64> = [4].into();
        let chosen = p.choose(3, &excluded, &mut rng);
        let got = ids(&chosen);
        assert_eq!(got[0], 2);
        let mut rest = got[1..].to_vec();
        rest.sort();
        assert_eq!(rest, vec![3, 5]);
        // Asking for more than there is gives everyone not excluded, in priority order.
        let all = p.choose(10, &excluded, &mut rng);
        let prios: Vec<i32> = all.iter().map(|c| c.priority).collect();
        assert_eq!(prios, vec![9, 5, 5, 1, 0]);
    }

    #[test]
    fn equal_priorities_are_chosen_at_random_without_repeats() {
        // A big tier takes the sampling path, a small one the shuffle path; both must be fair.
        for size in [10i64, 1000] {
            let p = pool(&(0..size).map(|i| (i, 3)).collect::<Vec<_>>());
            let mut rng = StdRng::seed_from_u64(size as u64);
            let mut firsts = HashSet::new();
            for _ in 0..200 {
                let chosen = ids(&p.choose(5, &HashSet::new(), &mut rng));
                let distinct: HashSet<i64> = chosen.iter().copied().collect();
                assert_eq!(distinct.len(), 5, "no worker twice in one batch");
                firsts.insert(chosen[0]);
            }
            assert!(
                firsts.len() as i64 >= size.min(50),
                "ties not random: {} distinct first picks out of {size}",
                firsts.len()
            );
        }
    }

    #[test]
    fn a_mostly_excluded_tier_still_finds_the_rest() {
        let p = pool(&(0..1000).map(|i| (i, 1)).collect::<Vec<_>>());
        let excluded: HashSet<i64> = (0..997).collect();
        let mut rng = StdRng::seed_from_u64(1);
        let mut got = ids(&p.choose(6, &excluded, &mut rng));
        got.sort();
        assert_eq!(got, vec![997, 998, 999]);
        assert!(Pool::default().choose(3, &excluded, &mut rng).is_empty());
    }
}
