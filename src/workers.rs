//! Workers and their certifications (behaviour §2.2).

use chrono::{DateTime, Utc};
use sea_orm::ConnectionTrait;

use crate::db::entities::{certification, worker, worker_certification};
use crate::db::{Role, workers as store, workflows};
use crate::error::{Result, UserError};

pub use crate::db::workers::{Holding as Certify, NewWorker};

pub async fn add<C: ConnectionTrait>(
    conn: &C,
    new: NewWorker,
    now: DateTime<Utc>,
) -> Result<worker::Model> {
    if store::by_username(conn, &new.username).await?.is_some() {
        return Err(UserError::WorkerExists(new.username).into());
    }
    if let Some(slack_id) = &new.slack_user_id
        && let Some(other) = store::by_slack_id(conn, slack_id).await?
    {
        return Err(UserError::SlackIdTaken {
            slack_user_id: slack_id.clone(),
            username: other.username,
        }
        .into());
    }
    Ok(store::insert(conn, new, now).await?)
}

/// Finds a certification by slug, within `workflow_slug` when given.
pub async fn find_certification<C: ConnectionTrait>(
    conn: &C,
    slug: &str,
    workflow_slug: Option<&str>,
) -> Result<certification::Model> {
    let workflow_id = match workflow_slug {
        Some(wf) => Some(
            workflows::by_slug(conn, wf)
                .await?
                .ok_or_else(|| UserError::WorkflowNotFound(wf.to_string()))?
                .id,
        ),
        None => None,
    };
    let mut found = workflows::certifications_by_slug(conn, slug, workflow_id).await?;
    match found.len() {
        0 => Err(UserError::CertificationNotFound(slug.to_string()).into()),
        1 => Ok(found.remove(0)),
        _ => {
            let ids: Vec<i64> = found.iter().map(|c| c.workflow_id).collect();
            let names: Vec<String> = workflows::by_ids(conn, ids)
                .await?
                .into_iter()
                .map(|w| w.slug)
                .collect();
            Err(UserError::AmbiguousCertification {
                slug: slug.to_string(),
                workflows: names.join(", "),
            }
            .into())
        }
    }
}

/// Grants (or updates) a certification. A reviewer certification needs the entry-level one.
pub async fn certify<C: ConnectionTrait>(
    conn: &C,
    worker: &worker::Model,
    cert: &certification::Model,
    how: Certify,
    now: DateTime<Utc>,
) -> Result<worker_certification::Model> {
    let held = store::certification_rows(conn, worker.id, cert.id).await?;
    if how.role == Role::Reviewer && !held.iter().any(|c| c.role == Role::EntryLevel) {
        return Err(UserError::ReviewerWithoutEntryLevel(cert.slug.clone()).into());
    }
    match held.into_iter().find(|c| c.role == how.role) {
        Some(existing) => Ok(store::update_certification(conn, existing, how).await?),
        None => Ok(store::insert_certification(conn, worker.id, cert.id, how, now).await?),
    }
}
