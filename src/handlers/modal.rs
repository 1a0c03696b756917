//! Forms submitted (Slack's modals): the restaff form (which worker of a task to replace) and
//! the availability form (hours per weekday, working hours and days). A submission is done
//! (the form closes and the Home says so) or refused (the form stays open and says why).

use chrono::{DateTime, NaiveDate, Utc};
use sea_orm::ConnectionTrait;

use super::command::WorkerRef;
use crate::availability::WeekHours;
use crate::db::{self, workers};
use crate::error::Error;
use crate::messages::wording::NOT_AUTHORIZED;
use crate::outbox;

/// What a submission answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FormAnswer {
    /// Done (or ignored): the form closes.
    Close,
    /// The form stays open and says why.
    Refused(String),
}

/// The restaff form of task `task` (as displayed in the form's metadata), by `user`, naming
/// the worker `chosen` to replace.
pub async fn restaff_submitted<C: ConnectionTrait>(
    conn: &C,
    user: &str,
    task: &str,
    chosen: &str,
    now: DateTime<Utc>,
) -> Result<FormAnswer, Error> {
    let admin = workers::by_slack_id(conn, user).await?;
    if !admin.is_some_and(|w| w.is_admin) {
        tracing::warn!(user, "restaff form from a non-admin; refused");
        return Ok(FormAnswer::Refused(NOT_AUTHORIZED.to_string()));
    }
    let worker = WorkerRef::Name(chosen.to_string());
    Ok(
        match super::slash::restaff(conn, task, &worker, now).await? {
            Ok(text) => {
                outbox::publish_home(conn, user, Some(text), now).await?;
                FormAnswer::Close
            }
            Err(text) => FormAnswer::Refused(text),
        },
    )
}

/// What a submitted availability form holds, checked: the weeks' hours, the working hours and
/// days (`None`: the configured ones).
#[derive(Debug, Clone, PartialEq)]
pub struct Availability {
    pub weeks: Vec<(NaiveDate, WeekHours)>,
    pub working_hours: Option<String>,
    pub working_days: Option<String>,
}

/// The availability form, read and checked, by `user`: stored, and the Home says so.
pub async fn availability_submitted<C: ConnectionTrait>(
    conn: &C,
    user: Option<&str>,
    form: Availability,
    now: DateTime<Utc>,
) -> Result<FormAnswer, Error> {
    let worker = match user {
        Some(u) => workers::by_slack_id(conn, u).await?,
        None => None,
    };
    let Some(worker) = worker else {
        tracing::warn!(
            ?user,
            "availability form from a Slack user who is no worker"
        );
        return Ok(FormAnswer::Close);
    };
    for (week, hours) in &form.weeks {
        db::availability::set(conn, worker.id, *week, *hours, now).await?;
    }
    let change = crate::workers::WorkerChange {
        working_hours: Some(form.working_hours),
        working_days: Some(form.working_days),
        ..Default::default()
    };
    crate::workers::update(conn, &worker.username, change).await?;
    if let Some(u) = user {
        let notice = "Your availability is saved.".to_string();
        outbox::publish_home(conn, u, Some(notice), now).await?;
    }
    Ok(FormAnswer::Close)
}
