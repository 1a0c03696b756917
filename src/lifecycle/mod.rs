//! The task lifecycle (behaviour §4): projects and their tasks, assignment and reassignment,
//! submission with review policies, reviews, completion and abort. Every function runs inside
//! the caller's transaction and queues Slack effects in the outbox; none talks to Slack.

mod assignment;
mod notices;
mod projects;
mod review;

use chrono::{DateTime, Utc};
use sea_orm::ConnectionTrait;

use crate::db::entities::{project, step, task, task_assignment, worker};
use crate::db::{AssignmentStatus, TaskStatus, tasks, workers, workflows};
use crate::error::{Result, StoredDataInvalid, UserError};
use crate::outbox;
use crate::workflow::functions::{ReviewPolicy, StepAssignmentPolicies};

pub use assignment::{
    Assigned, AssignedBy, TaskFacts, Winner, assign_or_reassign, assign_prepared, assign_task,
    assignment_key, is_certified, reassign, won,
};
pub use notices::{NoticeFacts, NoticeWorker, notice_key, status_notices};
pub use projects::{
    PolicyKind, abort_project, apply_policy, create_project, create_project_with_data,
    create_subsequent_tasks, machine_input,
};
pub use review::{complete_machine_task, review, submit};

/// `<version slug> (<short description>) - <step slug>`, Orchestra's task display string.
pub fn task_display(version_slug: &str, project_description: &str, step_slug: &str) -> String {
    format!("{version_slug} ({project_description}) - {step_slug}")
}

/// A step's stored policy JSON, parsed; `what` names the policy in the error.
fn decode<T: serde::de::DeserializeOwned>(
    step: &step::Model,
    what: &str,
    value: &serde_json::Value,
) -> Result<T> {
    serde_json::from_value(value.clone()).map_err(|e| {
        StoredDataInvalid {
            what: format!("{what} of step {} (id {})", step.slug, step.id),
            detail: e.to_string(),
        }
        .into()
    })
}

pub fn assignment_policies(step: &step::Model) -> Result<StepAssignmentPolicies> {
    decode(step, "assignment policy", &step.assignment_policy)
}

pub fn review_policy(step: &step::Model) -> Result<ReviewPolicy> {
    decode(step, "review policy", &step.review_policy)
}

pub(super) async fn find_task<C: ConnectionTrait>(conn: &C, task_id: i64) -> Result<task::Model> {
    Ok(tasks::by_id(conn, task_id)
        .await?
        .ok_or(UserError::TaskNotFound(task_id))?)
}

pub(super) async fn find_project<C: ConnectionTrait>(
    conn: &C,
    project_id: i64,
) -> Result<project::Model> {
    Ok(crate::db::projects::by_id(conn, project_id)
        .await?
        .ok_or(UserError::ProjectNotFound(project_id))?)
}

/// A task's step; a task whose step is missing is stored data that no longer holds together.
pub(super) async fn find_step<C: ConnectionTrait>(conn: &C, step_id: i64) -> Result<step::Model> {
    Ok(workflows::step_by_id(conn, step_id)
        .await?
        .ok_or_else(|| StoredDataInvalid {
            what: format!("step {step_id}"),
            detail: "a task refers to it, but it does not exist".into(),
        })?)
}

pub async fn find_worker<C: ConnectionTrait>(conn: &C, username: &str) -> Result<worker::Model> {
    Ok(workers::by_username(conn, username)
        .await?
        .ok_or_else(|| UserError::WorkerNotFound(username.to_string()))?)
}

pub(super) async fn assignments_of<C: ConnectionTrait>(
    conn: &C,
    task_id: i64,
) -> Result<Vec<task_assignment::Model>> {
    Ok(tasks::assignments_of(conn, task_id).await?)
}

pub(super) async fn set_task_status<C: ConnectionTrait>(
    conn: &C,
    task: &task::Model,
    status: TaskStatus,
    now: DateTime<Utc>,
) -> Result<task::Model> {
    let task = tasks::set_status(conn, task, status, now).await?;
    outbox::refresh_homes(conn, &[task.id], now).await?;
    Ok(task)
}

pub(super) async fn set_assignment_status<C: ConnectionTrait>(
    conn: &C,
    assignment: &task_assignment::Model,
    status: AssignmentStatus,
    now: DateTime<Utc>,
) -> Result<()> {
    Ok(tasks::set_assignment_status(conn, assignment, status, now).await?)
}
