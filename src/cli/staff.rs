//! `staffbot staff <task>` and `staffbot restaff <task> <username>`: the slash commands' rules
//! and texts from the command line. Messages are queued; the daemon (or `tick`) delivers them.

use anyhow::anyhow;
use clap::Args;

use super::App;
use crate::db::RequestCause;
use crate::error::{Error, UserError};
use crate::requests;

#[derive(Debug, Args)]
pub struct StaffArgs {
    task: i64,
}

#[derive(Debug, Args)]
pub struct RestaffArgs {
    task: i64,
    /// staffbot username or Slack username of the worker to replace
    username: String,
}

fn user_facing(task: i64, e: Error) -> anyhow::Error {
    match e {
        Error::User(u) => anyhow!(requests::staff_error_text(&task.to_string(), &u)),
        other => other.into(),
    }
}

pub async fn run_staff(app: &App, args: StaffArgs) -> anyhow::Result<()> {
    let tx = crate::db::begin_write(&app.db).await?;
    requests::staff_task(&tx, args.task, RequestCause::User, app.clock.now())
        .await
        .map_err(|e| user_facing(args.task, e))?;
    tx.commit().await?;
    outln!("{}", got_it(args.task, false));
    Ok(())
}

pub async fn run_restaff(app: &App, args: RestaffArgs) -> anyhow::Result<()> {
    let tx = crate::db::begin_write(&app.db).await?;
    let worker = requests::find_worker_by_name(&tx, &args.username)
        .await?
        .ok_or_else(|| anyhow!(UserError::WorkerNotFound(args.username.clone())))?;
    requests::restaff_task(&tx, args.task, &worker, &args.username, app.clock.now())
        .await
        .map_err(|e| user_facing(args.task, e))?;
    tx.commit().await?;
    outln!("{}", got_it(args.task, true));
    Ok(())
}

/// What Slack is told when staffing starts, as the command line prints it.
fn got_it(task_id: i64, restaff: bool) -> String {
    let message = crate::messages::Message::StaffingStarted { task_id, restaff };
    crate::slack::render::message_parts(&message)
        .0
        .into_string()
}
