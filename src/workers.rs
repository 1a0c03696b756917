//! Workers and their certifications (behaviour §2.2).

use chrono::{DateTime, Utc};
use sea_orm::ConnectionTrait;

use crate::db::entities::{certification, worker, worker_certification};
use crate::db::{Notify, Role, workers as store, workflows};
use crate::error::{Result, UserError};

pub use crate::db::workers::{Holding as Certify, NewWorker, WorkerChange};

pub async fn add<C: ConnectionTrait>(
    conn: &C,
    new: NewWorker,
    now: DateTime<Utc>,
) -> Result<worker::Model> {
    if store::by_username(conn, &new.username).await?.is_some() {
        return Err(UserError::WorkerExists(new.username).into());
    }
    check_email(&new.username, new.notify, &new.email)?;
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

/// A preference that includes email needs an address.
fn check_email(username: &str, notify: Notify, email: &str) -> Result<()> {
    if notify.email() && email.trim().is_empty() {
        return Err(UserError::EmailNeeded {
            username: username.to_string(),
            notify: notify.to_string(),
        }
        .into());
    }
    Ok(())
}

/// Checks and normalises a worker's own working hours, days and time zone (`09:00-18:00`,
/// `mon,tue`, `Europe/Berlin`): what the CLI and the App Home's form store.
pub fn check_working_week(change: &mut WorkerChange) -> Result<()> {
    use crate::availability::{Days, Hours, parse_tz};
    let invalid = |e: String| crate::error::Error::from(UserError::InvalidAvailability(e));
    if let Some(Some(h)) = &mut change.working_hours {
        *h = Hours::parse(h).map_err(invalid)?.to_string();
    }
    if let Some(Some(d)) = &mut change.working_days {
        *d = Days::parse(d).map_err(invalid)?.to_string();
    }
    if let Some(Some(tz)) = &mut change.tz {
        *tz = parse_tz(tz).map_err(invalid)?.name().to_string();
    }
    if let Some(h) = change.max_autostaff_hours_per_day
        && !(0.0..=24.0).contains(&h)
    {
        return Err(invalid(format!(
            "--max-autostaff-hours must be between 0 and 24 (not {h})"
        )));
    }
    Ok(())
}

/// Changes worker `username`'s details.
pub async fn update<C: ConnectionTrait>(
    conn: &C,
    username: &str,
    change: WorkerChange,
) -> Result<worker::Model> {
    let mut change = change;
    check_working_week(&mut change)?;
    let w = store::by_username(conn, username)
        .await?
        .ok_or_else(|| UserError::WorkerNotFound(username.to_string()))?;
    if let Some(Some(slack_id)) = &change.slack_user_id
        && let Some(other) = store::by_slack_id(conn, slack_id).await?
        && other.id != w.id
    {
        return Err(UserError::SlackIdTaken {
            slack_user_id: slack_id.clone(),
            username: other.username,
        }
        .into());
    }
    let notify = change.notify.unwrap_or(w.notify);
    let email = change.email.clone().unwrap_or_else(|| w.email.clone());
    check_email(username, notify, &email)?;
    Ok(store::update(conn, w, change, email, notify).await?)
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
