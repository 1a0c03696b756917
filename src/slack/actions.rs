//! The App Home's side of the dispatcher (issue 12): the Home tab opened, its task and admin
//! buttons (Submit, Approve, Send back, Staff, Restaff), and the restaff modal's submission.
//! Every button is checked against the state at click time by the same code the command line
//! and `/staffbot` use; a click that is refused changes nothing and says why, to the clicker
//! only (through the `response_url` of a message, or on top of their Home).

use chrono::{DateTime, Utc};
use sea_orm::ConnectionTrait;
use serde_json::{Value, json};

use super::blocks::{
    APPROVE, RESTAFF, RESTAFF_CALLBACK, RESTAFF_INPUT, RESTAFF_SELECT, SEND_BACK, STAFF, SUBMIT,
};
use super::command::WorkerRef;
use super::dispatch::{Ack, Dispatcher};
use super::envelope::{BlockActions, Envelope};
use super::render::home::status_text;
use super::slash::{self, NOT_AUTHORIZED};
use crate::db::{self, AssignmentStatus, workers};
use crate::error::Error;
use crate::lifecycle;
use crate::messages::{Modal, Outgoing, task_display};
use crate::outbox;
use crate::workflow::rules::SubmitKind;

/// A button of the Home (or of `/staffbot tasks`) other than an offer's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HomeAction {
    Submit(i64),
    Approve(i64),
    SendBack(i64),
    Staff(i64),
    Restaff(i64),
}

impl HomeAction {
    /// The first Home action of a click, if any (`None` inside: its value is not a task id).
    pub fn of(actions: &BlockActions) -> Option<Option<HomeAction>> {
        actions.actions.iter().find_map(|a| {
            let make: fn(i64) -> HomeAction = match a.action_id.as_deref()? {
                SUBMIT => HomeAction::Submit,
                APPROVE => HomeAction::Approve,
                SEND_BACK => HomeAction::SendBack,
                STAFF => HomeAction::Staff,
                RESTAFF => HomeAction::Restaff,
                _ => return None,
            };
            Some(a.value.as_deref().and_then(|v| v.parse().ok()).map(make))
        })
    }

    fn for_admins(self) -> bool {
        matches!(self, HomeAction::Staff(_) | HomeAction::Restaff(_))
    }
}

/// Where a refusal or a result is shown.
pub(super) struct Clicked<'a> {
    pub envelope: &'a Envelope,
    pub actions: &'a BlockActions,
    pub clicker: &'a str,
}

impl Dispatcher {
    /// `app_home_opened`: remember that the user has a Home and publish it.
    pub(super) async fn home_opened(
        &self,
        envelope: &Envelope,
        now: DateTime<Utc>,
    ) -> Result<Ack, Error> {
        let event = envelope.payload.get("event");
        let kind = event.and_then(|e| e.get("type")).and_then(Value::as_str);
        let tab = event.and_then(|e| e.get("tab")).and_then(Value::as_str);
        let user = event.and_then(|e| e.get("user")).and_then(Value::as_str);
        let (Some("app_home_opened"), Some("home"), Some(user)) = (kind, tab, user) else {
            return Ok(Ack::Bare);
        };
        tracing::info!(user, "App Home opened");
        let tx = db::begin_write(&self.db).await?;
        let done = async {
            db::home::record_opened(&tx, user, now).await?;
            outbox::publish_home(&tx, user, None, now).await?;
            Self::remember(&tx, &envelope.envelope_id, &Ack::Bare, now).await
        }
        .await;
        db::settle(tx, done).await?;
        self.outbox_wake.notify_one();
        Ok(Ack::Bare)
    }

    /// Shows `text` to the clicker alone: an ephemeral reply to a message's button, or a notice
    /// on top of their Home for a button in a view.
    pub(super) async fn tell_clicker<C: ConnectionTrait>(
        &self,
        conn: &C,
        click: &Clicked<'_>,
        text: String,
        now: DateTime<Utc>,
    ) -> Result<(), Error> {
        match &click.actions.response_url {
            Some(url) => {
                let reply = Outgoing::Reply {
                    response_url: url.clone(),
                    message: crate::messages::Message::ClickRefused { reason: text },
                };
                let key = format!("respond:{}", click.envelope.envelope_id);
                outbox::enqueue(conn, &key, reply, now).await?;
            }
            None => outbox::publish_home(conn, click.clicker, Some(text), now).await?,
        }
        Ok(())
    }

    /// A task or admin button: the change and what the clicker is told, in one transaction;
    /// when the change is refused (the task moved on, the clicker may not), only the refusal.
    pub(super) async fn home_action(
        &self,
        click: Clicked<'_>,
        action: Option<HomeAction>,
        now: DateTime<Utc>,
    ) -> Result<(), Error> {
        tracing::info!(user = click.clicker, ?action, "App Home button");
        let tx = db::begin_write(&self.db).await?;
        let acted = async {
            let text = match action {
                None => "Sorry! That button does not name a task.".to_string(),
                Some(action) => self.act(&tx, &click, action, now).await?,
            };
            self.tell_clicker(&tx, &click, text, now).await?;
            Self::remember(&tx, &click.envelope.envelope_id, &Ack::Bare, now).await?;
            Ok::<_, Error>(())
        }
        .await;
        match db::settle(tx, acted).await {
            Err(Error::User(e)) => {
                tracing::info!("App Home button refused: {e}");
                let tx = db::begin_write(&self.db).await?;
                let told = async {
                    self.tell_clicker(&tx, &click, e.to_string(), now).await?;
                    Self::remember(&tx, &click.envelope.envelope_id, &Ack::Bare, now).await?;
                    Ok::<_, Error>(())
                }
                .await;
                db::settle(tx, told).await?;
            }
            other => other?,
        }
        self.outbox_wake.notify_one();
        Ok(())
    }

    /// Runs one action; returns what the clicker is told. A refusal the lifecycle raises is an
    /// `Error::User` (the caller undoes everything and shows it).
    async fn act<C: ConnectionTrait>(
        &self,
        conn: &C,
        click: &Clicked<'_>,
        action: HomeAction,
        now: DateTime<Utc>,
    ) -> Result<String, Error> {
        let Some(worker) = workers::by_slack_id(conn, click.clicker).await? else {
            return Ok(NOT_AUTHORIZED.to_string());
        };
        if action.for_admins() && !worker.is_admin {
            tracing::warn!(
                user = click.clicker,
                ?action,
                "admin button from a non-admin; refused"
            );
            return Ok(NOT_AUTHORIZED.to_string());
        }
        let mut rng = crate::clock::rng_for(self.slash.random_seed);
        let (task, status) = match action {
            HomeAction::Submit(task) => {
                let kind = SubmitKind::RequestedReview;
                let status =
                    lifecycle::submit(conn, task, &worker, kind, &self.notices, now, &mut rng)
                        .await?;
                (task, status)
            }
            HomeAction::Approve(task) | HomeAction::SendBack(task) => {
                let approve = matches!(action, HomeAction::Approve(_));
                let status =
                    lifecycle::review(conn, task, &worker, approve, &self.notices, now, &mut rng)
                        .await?;
                (task, status)
            }
            HomeAction::Staff(task) => {
                return Ok(match slash::staff(conn, &task.to_string(), now).await? {
                    Ok(text) | Err(text) => text,
                });
            }
            HomeAction::Restaff(task) => return self.open_restaff(conn, click, task, now).await,
        };
        outbox::refresh_homes(conn, &[task], now).await?;
        Ok(format!("Task {task} is now {}.", status_text(status)))
    }

    /// Restaff: asks which of the task's workers to replace, in a modal.
    async fn open_restaff<C: ConnectionTrait>(
        &self,
        conn: &C,
        click: &Clicked<'_>,
        task_id: i64,
        now: DateTime<Utc>,
    ) -> Result<String, Error> {
        let Some((version, project, step)) = db::home::task_names(conn, task_id).await? else {
            return Ok(format!("Task {task_id} does not exist"));
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
            return Ok(format!(
                "Nobody is working on task {task_id} now; there is nobody to replace."
            ));
        }
        let Some(trigger_id) = click.actions.trigger_id.clone() else {
            return Ok("Sorry! Slack sent no trigger to open the form with.".to_string());
        };
        let modal = Modal::Restaff {
            task_id,
            task: task_display(&version, &project, &step),
            workers,
        };
        let key = format!("modal:{}", click.envelope.envelope_id);
        let user = click.clicker.to_string();
        let open = Outgoing::OpenModal {
            trigger_id,
            user,
            modal,
        };
        outbox::enqueue(conn, &key, open, now).await?;
        Ok(format!("Choose who to replace on task {task_id}."))
    }

    /// A modal was submitted: the restaff form. Its ack closes the modal, or keeps it open
    /// with the refusal under the worker field.
    pub(super) async fn view_submission(
        &self,
        envelope: &Envelope,
        now: DateTime<Utc>,
    ) -> Result<Ack, Error> {
        let payload = &envelope.payload;
        let view = payload.get("view");
        let callback = view
            .and_then(|v| v.get("callback_id"))
            .and_then(Value::as_str);
        if callback == Some(super::blocks::AVAILABILITY_CALLBACK) {
            return self.availability_submission(envelope, now).await;
        }
        if callback != Some(RESTAFF_CALLBACK) {
            tracing::info!(?callback, "view submission with no handler; acked");
            return Ok(Ack::Bare);
        }
        let user = payload.pointer("/user/id").and_then(Value::as_str);
        let task = view
            .and_then(|v| v.get("private_metadata"))
            .and_then(Value::as_str)
            .unwrap_or_default();
        let chosen = view
            .and_then(|v| {
                v.pointer(&format!(
                    "/state/values/{RESTAFF_INPUT}/{RESTAFF_SELECT}/selected_option/value"
                ))
            })
            .and_then(Value::as_str);
        let refuse = |text: &str| {
            Ack::WithPayload(json!({"response_action": "errors",
                "errors": {RESTAFF_INPUT: text}}))
        };
        let (Some(user), Some(chosen)) = (user, chosen) else {
            return Ok(refuse("Choose the worker to replace."));
        };
        let tx = db::begin_write(&self.db).await?;
        let done = async {
            let admin = workers::by_slack_id(&tx, user).await?;
            let ack = if !admin.is_some_and(|w| w.is_admin) {
                tracing::warn!(user, "restaff form from a non-admin; refused");
                refuse(NOT_AUTHORIZED)
            } else {
                let worker = WorkerRef::Name(chosen.to_string());
                match slash::restaff(&tx, task, &worker, now).await? {
                    Ok(text) => {
                        outbox::publish_home(&tx, user, Some(text), now).await?;
                        Ack::Bare
                    }
                    Err(text) => refuse(&text),
                }
            };
            Self::remember(&tx, &envelope.envelope_id, &ack, now).await?;
            Ok::<_, Error>(ack)
        }
        .await;
        let ack = db::settle(tx, done).await?;
        self.outbox_wake.notify_one();
        Ok(ack)
    }
}
