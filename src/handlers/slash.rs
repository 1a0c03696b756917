//! `/staffbot` (behaviour §7, design.md §5.3): what a command does for the worker who typed it,
//! once the transport has checked who they are. Runs inside the caller's transaction; messages
//! to channels go to the outbox. Everything a user can cause is an answer, not an error.

use chrono::{DateTime, Utc};
use sea_orm::ConnectionTrait;

use super::command::{self, Command, WorkerRef};
use crate::db::entities::worker;
use crate::db::{RequestCause, workers};
use crate::error::Error;
use crate::home::HomeData;
use crate::requests;

/// What a command answers, as data (the transport renders it).
#[derive(Debug, Clone)]
pub enum SlashAnswer {
    /// An admin's command from a worker who is not one.
    NotAuthorized,
    /// `help` from a worker: what they may use.
    WorkerHelp,
    /// `help` from an admin: every command.
    Help,
    /// `tasks`: the caller's tasks and open offers, as their Home shows them.
    Tasks(Box<HomeData>),
    /// `availability`: the caller's availability and working hours.
    Availability(Box<HomeData>),
    /// A command that could not be read (the text typed).
    NotUnderstood { text: String },
    /// `staff` or `restaff`: the command as typed, and its success or refusal text.
    Outcome {
        header: String,
        result: Result<String, String>,
    },
}

/// Runs `text` for `caller` (a worker the transport identified and authorised).
pub async fn run<C: ConnectionTrait>(
    conn: &C,
    caller: &worker::Model,
    text: &str,
    policy: crate::staffing::policy::Policy,
    working: crate::availability::WorkingRule,
    now: DateTime<Utc>,
) -> Result<SlashAnswer, Error> {
    let parsed = command::parse(text);
    // Any worker may list their own tasks; everything else is for admins.
    if matches!(parsed, Some(Command::Tasks | Command::Availability)) {
        let user = caller.slack_user_id.as_deref().unwrap_or_default();
        let home = Box::new(crate::home::load(conn, user, policy, working, now).await?);
        return Ok(match parsed {
            Some(Command::Tasks) => SlashAnswer::Tasks(home),
            _ => SlashAnswer::Availability(home),
        });
    }
    if !caller.is_admin {
        // A worker's `help` lists what they may use; everything else is for admins.
        return Ok(match parsed {
            Some(Command::Help) => SlashAnswer::WorkerHelp,
            _ => SlashAnswer::NotAuthorized,
        });
    }
    let Some(parsed) = parsed else {
        return Ok(SlashAnswer::NotUnderstood {
            text: text.to_string(),
        });
    };
    Ok(match parsed {
        Command::Help => SlashAnswer::Help,
        Command::Staff { task } => SlashAnswer::Outcome {
            header: format!("staff {task}"),
            result: staff(conn, &task, now).await?,
        },
        Command::Restaff { task, worker } => SlashAnswer::Outcome {
            header: format!("restaff {task} {}", worker.display()),
            result: restaff(conn, &task, &worker, now).await?,
        },
        // Answered above, for every worker.
        Command::Tasks | Command::Availability => SlashAnswer::Help,
    })
}

fn task_id(text: &str) -> Result<i64, String> {
    text.parse::<i64>()
        .map_err(|_| format!("Task {text} does not exist"))
}

/// `staff <task>`: starts staffing; the success or refusal text (the slash command's and the
/// App Home's).
pub async fn staff<C: ConnectionTrait>(
    conn: &C,
    task: &str,
    now: DateTime<Utc>,
) -> Result<Result<String, String>, Error> {
    let id = match task_id(task) {
        Ok(id) => id,
        Err(msg) => return Ok(Err(msg)),
    };
    match requests::staff_task(conn, id, RequestCause::User, now).await {
        Ok(_) => Ok(Ok(format!("Got it! I will start staffing task {task}!"))),
        Err(Error::User(e)) => Ok(Err(requests::staff_error_text(task, &e))),
        Err(e) => Err(e),
    }
}

/// `restaff <task> <worker>`: starts looking for someone to replace the worker; the success or
/// refusal text (the slash command's, the App Home's and the restaff form's).
pub async fn restaff<C: ConnectionTrait>(
    conn: &C,
    task: &str,
    worker: &WorkerRef,
    now: DateTime<Utc>,
) -> Result<Result<String, String>, Error> {
    let shown = worker.display();
    let found = match worker {
        WorkerRef::Name(name) => requests::find_worker_by_name(conn, name).await?,
        WorkerRef::Mention { user_id, .. } => workers::by_slack_id(conn, user_id).await?,
    };
    let Some(w) = found else {
        return Ok(Err(format!("Worker with username {shown} does not exist")));
    };
    let id = match task_id(task) {
        Ok(id) => id,
        Err(msg) => return Ok(Err(msg)),
    };
    match requests::restaff_task(conn, id, &w, shown, now).await {
        Ok(_) => Ok(Ok(format!("Got it! I will start restaffing task {task}!"))),
        Err(Error::User(e)) => Ok(Err(requests::staff_error_text(task, &e))),
        Err(e) => Err(e),
    }
}
