//! The App Home (issue 12): opened, and its buttons other than an offer's (Submit, Approve, Send
//! back, Staff, Restaff, Edit availability). Every button is checked against the state at click
//! time by the same code the command line and `/staffbot` use; a refusal changes nothing and is
//! told to the person who pressed it only.

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbErr};

use crate::availability::week_of;
use crate::config::NoticeSettings;
use crate::db::{self, AssignmentStatus, workers};
use crate::error::Error;
use crate::home::status_text;
use crate::lifecycle;
use crate::messages::wording::{NO_TRIGGER, NOT_A_WORKER, NOT_AUTHORIZED};
use crate::messages::{Modal, Outgoing, task_display};
use crate::outbox;
use crate::workflow::rules::SubmitKind;

/// A button of the Home (or of `/staffbot tasks` and `availability`) other than an offer's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HomeAction {
    Submit(i64),
    Approve(i64),
    SendBack(i64),
    Staff(i64),
    Restaff(i64),
    /// "Edit" under "Your availability".
    EditAvailability,
}

impl HomeAction {
    fn for_admins(self) -> bool {
        matches!(self, HomeAction::Staff(_) | HomeAction::Restaff(_))
    }
}

/// Who pressed a button, and what opening a form in answer needs.
#[derive(Debug, Clone, Copy)]
pub struct Pressed<'a> {
    /// Their Slack user id.
    pub user: &'a str,
    /// What opens a form in answer to this press (Slack's `trigger_id`), if anything does.
    pub trigger_id: Option<&'a str>,
    /// Names this press in once-only keys (the envelope id).
    pub key: &'a str,
}

/// What the buttons need from the configuration.
#[derive(Debug, Clone, Copy)]
pub struct HomeSettings<'a> {
    pub notices: &'a NoticeSettings,
    /// `staffbot.random_seed`, for the review sampling of tasks submitted from the Home.
    pub random_seed: Option<u64>,
}

/// `user` opened their Home: remembered (their Home is kept up to date from now on) and
/// published.
pub async fn opened<C: ConnectionTrait>(
    conn: &C,
    user: &str,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    db::home::record_opened(conn, user, now).await?;
    outbox::publish_home(conn, user, None, now).await
}

/// Runs one press (`None`: the button named no task) inside the caller's transaction; returns
/// what the person is told (None: a form opens, nothing to say). A refusal the lifecycle raises
/// is an `Error::User` ([`super::refusable`] undoes everything and tells it).
pub async fn act<C: ConnectionTrait>(
    conn: &C,
    pressed: Pressed<'_>,
    action: Option<HomeAction>,
    settings: HomeSettings<'_>,
    now: DateTime<Utc>,
) -> Result<Option<String>, Error> {
    let Some(action) = action else {
        return Ok(Some("Sorry! That button does not name a task.".to_string()));
    };
    let Some(worker) = workers::by_slack_id(conn, pressed.user).await? else {
        return Ok(Some(
            match action {
                HomeAction::EditAvailability => NOT_A_WORKER,
                _ => NOT_AUTHORIZED,
            }
            .to_string(),
        ));
    };
    if action.for_admins() && !worker.is_admin {
        tracing::warn!(
            user = pressed.user,
            ?action,
            "admin button from a non-admin; refused"
        );
        return Ok(Some(NOT_AUTHORIZED.to_string()));
    }
    let mut rng = crate::clock::rng_for(settings.random_seed);
    let notices = settings.notices;
    let (task, status) = match action {
        HomeAction::Submit(task) => {
            let kind = SubmitKind::RequestedReview;
            let status =
                lifecycle::submit(conn, task, &worker, kind, notices, now, &mut rng).await?;
            (task, status)
        }
        HomeAction::Approve(task) | HomeAction::SendBack(task) => {
            let approve = matches!(action, HomeAction::Approve(_));
            let status =
                lifecycle::review(conn, task, &worker, approve, notices, now, &mut rng).await?;
            (task, status)
        }
        HomeAction::Staff(task) => {
            return Ok(Some(
                match super::slash::staff(conn, &task.to_string(), now).await? {
                    Ok(text) | Err(text) => text,
                },
            ));
        }
        HomeAction::Restaff(task) => return open_restaff(conn, pressed, task, now).await,
        HomeAction::EditAvailability => {
            return open_availability(conn, pressed, &worker, now).await;
        }
    };
    outbox::refresh_homes(conn, &[task], now).await?;
    Ok(Some(format!("Task {task} is now {}.", status_text(status))))
}

/// Restaff: asks which of the task's workers to replace, in a form.
async fn open_restaff<C: ConnectionTrait>(
    conn: &C,
    pressed: Pressed<'_>,
    task_id: i64,
    now: DateTime<Utc>,
) -> Result<Option<String>, Error> {
    let Some((version, project, step)) = db::home::task_names(conn, task_id).await? else {
        return Ok(Some(format!("Task {task_id} does not exist")));
    };
    let working: Vec<i64> = db::tasks::assignments_of(conn, task_id)
        .await?
        .into_iter()
        .filter(|a| a.status == AssignmentStatus::Processing)
        .map(|a| a.worker_id)
        .collect();
    let workers: Vec<String> = workers::by_ids(conn, working)
        .await?
        .into_iter()
        .map(|w| w.username)
        .collect();
    if workers.is_empty() {
        return Ok(Some(format!(
            "Nobody is working on task {task_id} now; there is nobody to replace."
        )));
    }
    let Some(trigger_id) = pressed.trigger_id else {
        return Ok(Some(NO_TRIGGER.to_string()));
    };
    let modal = Modal::Restaff {
        task_id,
        task: task_display(&version, &project, &step),
        workers,
    };
    open_form(conn, pressed, trigger_id, modal, now).await?;
    Ok(Some(format!("Choose who to replace on task {task_id}.")))
}

/// "Edit" under "Your availability": opens the form, filled with what is stored.
async fn open_availability<C: ConnectionTrait>(
    conn: &C,
    pressed: Pressed<'_>,
    worker: &db::entities::worker::Model,
    now: DateTime<Utc>,
) -> Result<Option<String>, Error> {
    let Some(trigger_id) = pressed.trigger_id else {
        return Ok(Some(NO_TRIGGER.to_string()));
    };
    let this_week = week_of(now.date_naive());
    let weeks = [this_week, this_week + chrono::Duration::days(7)];
    let stored = db::availability::of_worker(conn, worker.id, &weeks).await?;
    let modal = Modal::Availability {
        weeks: stored
            .into_iter()
            .map(|(w, h)| (w, h.unwrap_or_default().0))
            .collect(),
        working_hours: worker.working_hours.clone().unwrap_or_default(),
        working_days: worker.working_days.clone().unwrap_or_default(),
    };
    open_form(conn, pressed, trigger_id, modal, now).await?;
    Ok(None)
}

/// Queues the opening of `modal` in answer to `pressed`.
async fn open_form<C: ConnectionTrait>(
    conn: &C,
    pressed: Pressed<'_>,
    trigger_id: &str,
    modal: Modal,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    let open = Outgoing::OpenModal {
        trigger_id: trigger_id.to_string(),
        user: pressed.user.to_string(),
        modal,
    };
    outbox::enqueue(conn, &format!("modal:{}", pressed.key), open, now).await?;
    Ok(())
}
