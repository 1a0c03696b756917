//! Running SanityBot (behaviour §9.2, with W-22 fixed): for active and paused projects whose
//! workflow version has checks, evaluate the check function, keep the checks due under the
//! repetition rule, post each handler's message, and store the check. One project's failure is
//! logged and never stops the others.

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbErr, TransactionTrait};

use crate::db::entities::task;
use crate::db::sanity::{self as store, CheckedProject};
use crate::db::{TaskStatus, tasks, workers, workflows};
use crate::error::{Error, StoredDataInvalid};
use crate::lease::LeaseProof;
use crate::messages::{Message, Outgoing};
use crate::outbox;
use crate::workflow::sanity::{SanityConfig, SanityFunction};

impl SanityFunction {
    /// The slugs this function emits for a project whose tasks are `(status, since)`.
    pub fn evaluate(
        &self,
        tasks: &[(TaskStatus, DateTime<Utc>)],
        now: DateTime<Utc>,
    ) -> Vec<String> {
        let older = |after: u64, statuses: &[TaskStatus]| {
            let cutoff = now - chrono::Duration::seconds(i64::try_from(after).unwrap_or(i64::MAX));
            tasks
                .iter()
                .any(|(status, since)| statuses.contains(status) && *since < cutoff)
        };
        match self {
            SanityFunction::Always { checks } => checks.clone(),
            SanityFunction::TaskUnstaffed { after_secs } => {
                if older(
                    *after_secs,
                    &[TaskStatus::AwaitingProcessing, TaskStatus::PendingReview],
                ) {
                    vec!["task_unstaffed".into()]
                } else {
                    vec![]
                }
            }
            SanityFunction::TaskInProgressTooLong { after_secs } => {
                if older(*after_secs, &[TaskStatus::Processing]) {
                    vec!["task_in_progress_too_long".into()]
                } else {
                    vec![]
                }
            }
            SanityFunction::ReviewWaiting { after_secs } => {
                if older(*after_secs, &[TaskStatus::Reviewing]) {
                    vec!["review_waiting".into()]
                } else {
                    vec![]
                }
            }
        }
    }
}

/// Orchestra's repetition rule: a check is due when its slug never fired for the project, or it
/// has `repetition_seconds` and the last one is strictly older than that.
pub fn is_due(
    latest: Option<DateTime<Utc>>,
    repetition_seconds: Option<u64>,
    now: DateTime<Utc>,
) -> bool {
    match (latest, repetition_seconds) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(at), Some(secs)) => {
            (now - at).num_milliseconds() > i64::try_from(secs).unwrap_or(i64::MAX / 1000) * 1000
        }
    }
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SanityReport {
    pub projects: usize,
    pub checks: usize,
    pub messages: usize,
    pub failed_projects: usize,
}

/// One SanityBot round over every active or paused project with checks.
pub async fn run_once<C: TransactionTrait + ConnectionTrait>(
    db: &C,
    lease: &LeaseProof,
    now: DateTime<Utc>,
) -> Result<SanityReport, crate::error::Error> {
    let projects = store::projects_with_checks(db).await?;
    let mut report = SanityReport::default();
    for p in projects {
        report.projects += 1;
        match check_project(db, lease, &p, now).await {
            Ok((checks, messages)) => {
                report.checks += checks;
                report.messages += messages;
            }
            // The lease passed to another process: stop here, write nothing more.
            Err(e @ Error::LeaseLost(_)) => return Err(e),
            Err(e) => {
                report.failed_projects += 1;
                tracing::error!(project_id = p.id, "SanityBot failed for this project: {e}");
            }
        }
    }
    Ok(report)
}

async fn check_project<C: TransactionTrait + ConnectionTrait>(
    db: &C,
    lease: &LeaseProof,
    p: &CheckedProject,
    now: DateTime<Utc>,
) -> Result<(usize, usize), Error> {
    let config: SanityConfig =
        serde_json::from_value(p.sanity_checks.clone()).map_err(|e| StoredDataInvalid {
            what: format!("sanity_checks of project {}'s workflow version", p.id),
            detail: e.to_string(),
        })?;
    let tasks = tasks::of_project(db, p.id).await?;
    // Machine tasks wait for automation, not for a worker: the checks are about people's work.
    let machine_steps: std::collections::HashSet<i64> =
        workflows::machine_step_ids(db, tasks.iter().map(|t| t.step_id))
            .await?
            .into_iter()
            .collect();
    let states: Vec<(TaskStatus, DateTime<Utc>)> = tasks
        .iter()
        .filter(|t| !machine_steps.contains(&t.step_id))
        .map(|t| (t.status, t.status_changed_at))
        .collect();
    let slugs = config.function.evaluate(&states, now);
    if slugs.is_empty() {
        return Ok((0, 0));
    }
    let mut latest: HashMap<String, DateTime<Utc>> = HashMap::new();
    for c in store::checks_of(db, p.id).await? {
        let entry = latest.entry(c.check_slug).or_insert(c.created_at);
        *entry = (*entry).max(c.created_at);
    }
    let tx = crate::db::begin_write(db).await?;
    let written = write_checks(&tx, lease, p, &config, &tasks, slugs, &latest, now).await;
    crate::db::settle(tx, written).await
}

/// The writes of one project's round: its posts and the checks fired, fenced by the lease.
#[allow(clippy::too_many_arguments)]
async fn write_checks<C: ConnectionTrait>(
    tx: &C,
    lease: &LeaseProof,
    p: &CheckedProject,
    config: &SanityConfig,
    tasks: &[task::Model],
    slugs: Vec<String>,
    latest: &HashMap<String, DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<(usize, usize), crate::error::Error> {
    lease.fence(tx).await?;
    let mut checks = 0;
    let mut messages = 0;
    let mut handled = BTreeSet::new();
    for slug in slugs {
        // The same slug twice in one run is handled once.
        if !handled.insert(slug.clone()) {
            continue;
        }
        let Some(conf) = config.checks.iter().find(|c| c.slug == slug) else {
            tracing::warn!(
                project_id = p.id,
                "no configuration for check {slug}; skipped"
            );
            continue;
        };
        if !is_due(latest.get(&slug).copied(), conf.repetition_seconds, now) {
            continue;
        }
        let previous = latest.get(&slug).map_or_else(
            || "first".to_string(),
            |at| at.timestamp_micros().to_string(),
        );
        for (n, handler) in conf.handlers.iter().enumerate() {
            let mentions = mentions(tx, tasks, &handler.steps).await?;
            match &p.slack_channel_id {
                Some(channel) => {
                    outbox::enqueue(
                        tx,
                        // One post per handler per firing: the firing is named by the check's
                        // previous firing, so two runs over the same state queue it once.
                        &format!("sanity:{}:{slug}:{}:{n}", p.id, previous),
                        Outgoing::post(
                            channel,
                            Message::SanityAlert {
                                mentions: mentions.iter().cloned().collect(),
                                message: handler.message.clone(),
                            },
                        ),
                        now,
                    )
                    .await?;
                    messages += 1;
                }
                None => tracing::warn!(
                    project_id = p.id,
                    "project has no Slack channel; SanityBot check {slug} not posted"
                ),
            }
        }
        store::record_fired(tx, p.id, &slug, now).await?;
        checks += 1;
    }
    Ok((checks, messages))
}

/// Slack ids of every worker assigned (any level, any status) to the project's tasks of `steps`.
async fn mentions<C: ConnectionTrait>(
    conn: &C,
    tasks: &[task::Model],
    steps: &[String],
) -> Result<BTreeSet<String>, DbErr> {
    let step_ids =
        workflows::step_ids_with_slugs(conn, tasks.iter().map(|t| t.step_id), steps).await?;
    let task_ids: Vec<i64> = tasks
        .iter()
        .filter(|t| step_ids.contains(&t.step_id))
        .map(|t| t.id)
        .collect();
    if task_ids.is_empty() {
        return Ok(BTreeSet::new());
    }
    let worker_ids = tasks::assigned_worker_ids(conn, task_ids).await?;
    Ok(workers::by_ids(conn, worker_ids)
        .await?
        .into_iter()
        .filter_map(|w| w.slack_user_id)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + secs, 0).expect("valid")
    }

    #[test]
    fn repetition_rule() {
        assert!(is_due(None, None, at(0)));
        assert!(
            !is_due(Some(at(0)), None, at(1_000_000)),
            "no repetition: once ever"
        );
        assert!(
            !is_due(Some(at(0)), Some(3600), at(3600)),
            "strictly greater"
        );
        assert!(is_due(Some(at(0)), Some(3600), at(3601)));
    }

    #[test]
    fn check_functions() {
        let tasks = vec![
            (TaskStatus::Processing, at(0)),
            (TaskStatus::PendingReview, at(500)),
        ];
        let f = SanityFunction::TaskInProgressTooLong { after_secs: 100 };
        assert_eq!(f.evaluate(&tasks, at(50)), Vec::<String>::new());
        assert_eq!(
            f.evaluate(&tasks, at(101)),
            vec!["task_in_progress_too_long"]
        );
        let f = SanityFunction::TaskUnstaffed { after_secs: 100 };
        assert!(f.evaluate(&tasks, at(550)).is_empty());
        assert_eq!(f.evaluate(&tasks, at(601)), vec!["task_unstaffed"]);
        assert!(
            SanityFunction::ReviewWaiting { after_secs: 1 }
                .evaluate(&tasks, at(9999))
                .is_empty()
        );
        let always = SanityFunction::Always {
            checks: vec!["a".into(), "b".into()],
        };
        assert_eq!(always.evaluate(&[], at(0)), vec!["a", "b"]);
    }
}
