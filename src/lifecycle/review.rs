//! Submission and review: a worker submits (with the step's review policy), a reviewer
//! approves or sends back, and a task completes (a machine step's by its result).

use chrono::{DateTime, Utc};
use rand::Rng;
use sea_orm::ConnectionTrait;
use serde_json::json;

use super::notices::{Change, queue_notices};
use super::projects::{PolicyKind, apply_policy, create_subsequent_tasks};
use super::{
    assignments_of, find_project, find_step, find_task, review_policy, set_assignment_status,
    set_task_status,
};
use crate::config::NoticeSettings;
use crate::db::entities::{task, task_assignment, worker};
use crate::db::{AssignmentStatus, DependencyKind, TaskStatus, tasks, workflows};
use crate::error::{Result, UserError};
use crate::messages::NoticeStatus;
use crate::outbox;
use crate::requests;
use crate::workflow::rules::{self, SubmitKind};

/// Orchestra's first checks of a submission, in its order: 1. the submission dependencies are
/// complete, 2. the task is not, 3. `worker` has one assignment of it, 4. processing. Returns
/// that assignment.
async fn submitters_assignment<'a, C: ConnectionTrait>(
    conn: &C,
    task: &task::Model,
    worker: &worker::Model,
    assignments: &'a [task_assignment::Model],
) -> Result<&'a task_assignment::Model> {
    let deps =
        workflows::dependencies_of_kind(conn, [task.step_id], DependencyKind::Submission).await?;
    if !deps.is_empty() {
        let complete = tasks::count_complete_at_steps(
            conn,
            task.project_id,
            deps.iter().map(|d| d.depends_on_step_id),
        )
        .await?;
        if (complete as usize) < deps.len() {
            return Err(UserError::SubmissionPrerequisitesIncomplete.into());
        }
    }
    if task.status == TaskStatus::Complete {
        return Err(UserError::TaskAlreadyCompleted.into());
    }
    let mine: Vec<&task_assignment::Model> = assignments
        .iter()
        .filter(|a| a.worker_id == worker.id)
        .collect();
    let [mine] = mine.as_slice() else {
        return Err(UserError::AssignmentBroken.into());
    };
    if mine.status != AssignmentStatus::Processing {
        return Err(UserError::NotAllowedToSubmit.into());
    }
    Ok(mine)
}

/// Submits a task (behaviour §4.2), with Orchestra's checks in Orchestra's order. Returns the
/// task's new status.
pub async fn submit<C: ConnectionTrait>(
    conn: &C,
    task_id: i64,
    worker: &worker::Model,
    kind: SubmitKind,
    notices: &NoticeSettings,
    now: DateTime<Utc>,
    rng: &mut impl Rng,
) -> Result<TaskStatus> {
    let task = find_task(conn, task_id).await?;
    let assignments = assignments_of(conn, task_id).await?;
    // 1.–4.
    let mine = submitters_assignment(conn, &task, worker, &assignments).await?;
    // 5. status rules
    rules::check_submit_status(task.status, kind)?;

    let step = find_step(conn, task.step_id).await?;
    let by_counter = |c: i32| assignments.iter().find(|a| a.assignment_counter == c);
    // Who the task's notice names: the submitter, or the worker it goes to next.
    let notice = |changed: &task::Model, status: NoticeStatus, worker_id: i64| Change {
        task: &task,
        project: None,
        status,
        count: changed.status_changes,
        worker_id,
    };
    let next = match (task.status, kind) {
        (TaskStatus::Processing | TaskStatus::Reviewing, SubmitKind::RequestedReview) => {
            let policy = review_policy(&step)?;
            set_assignment_status(conn, mine, AssignmentStatus::Submitted, now).await?;
            if rules::needs_review(&policy, assignments.len(), rng) {
                let changed = set_task_status(conn, &task, TaskStatus::PendingReview, now).await?;
                let change = notice(&changed, NoticeStatus::AwaitingReview, worker.id);
                queue_notices(conn, notices, change, now).await?;
                apply_policy(conn, &changed, &step, PolicyKind::Reviewer, notices, now).await?;
            } else {
                complete_task(conn, &task, worker.id, notices, now).await?;
            }
            find_task(conn, task_id).await?.status
        }
        (TaskStatus::PostReviewProcessing, SubmitKind::RequestedReview) => {
            set_assignment_status(conn, mine, AssignmentStatus::Submitted, now).await?;
            let reviewer = by_counter(mine.assignment_counter + 1);
            if let Some(reviewer) = reviewer {
                set_assignment_status(conn, reviewer, AssignmentStatus::Processing, now).await?;
            }
            let changed = set_task_status(conn, &task, TaskStatus::Reviewing, now).await?;
            if let Some(reviewer) = reviewer {
                let change = notice(&changed, NoticeStatus::UnderReview, reviewer.worker_id);
                queue_notices(conn, notices, change, now).await?;
            }
            TaskStatus::Reviewing
        }
        (TaskStatus::Reviewing, SubmitKind::ProvidedReview) => {
            set_assignment_status(conn, mine, AssignmentStatus::Submitted, now).await?;
            let previous = by_counter(mine.assignment_counter - 1);
            if let Some(previous) = previous {
                set_assignment_status(conn, previous, AssignmentStatus::Processing, now).await?;
            }
            let changed =
                set_task_status(conn, &task, TaskStatus::PostReviewProcessing, now).await?;
            if let Some(previous) = previous {
                let change = notice(&changed, NoticeStatus::Returned, previous.worker_id);
                queue_notices(conn, notices, change, now).await?;
            }
            TaskStatus::PostReviewProcessing
        }
        _ => return Err(UserError::NotSubmittable.into()),
    };
    // The submitted work is no longer in progress: a restaff of it has nothing to hand over.
    requests::close_restaff_of(conn, task_id, mine.assignment_counter, now).await?;
    Ok(next)
}

/// `task review --approve|--reject`: a reviewer's decision on a task under review.
pub async fn review<C: ConnectionTrait>(
    conn: &C,
    task_id: i64,
    worker: &worker::Model,
    approve: bool,
    notices: &NoticeSettings,
    now: DateTime<Utc>,
    rng: &mut impl Rng,
) -> Result<TaskStatus> {
    let task = find_task(conn, task_id).await?;
    if approve && task.status != TaskStatus::Reviewing {
        return Err(UserError::NotUnderReview(task_id).into());
    }
    let kind = if approve {
        SubmitKind::RequestedReview
    } else {
        SubmitKind::ProvidedReview
    };
    submit(conn, task_id, worker, kind, notices, now, rng).await
}

/// Completes a human task submitted by `worker_id` (its last worker), with its notices, and
/// creates what follows it.
async fn complete_task<C: ConnectionTrait>(
    conn: &C,
    task: &task::Model,
    worker_id: i64,
    notices: &NoticeSettings,
    now: DateTime<Utc>,
) -> Result<()> {
    // A human task's output is its last assignment's data (Orchestra's prerequisites).
    let output = assignments_of(conn, task.id)
        .await?
        .into_iter()
        .max_by_key(|a| a.assignment_counter)
        .map(|a| a.in_progress_task_data)
        .unwrap_or_else(|| json!({}));
    let changed = tasks::complete(conn, task, output, now).await?;
    outbox::refresh_homes(conn, &[task.id], now).await?;
    let change = Change {
        task,
        project: None,
        status: NoticeStatus::Completed,
        count: changed.status_changes,
        worker_id,
    };
    queue_notices(conn, notices, change, now).await?;
    requests::close_open_requests(conn, task.id, now).await?;
    create_subsequent_tasks(conn, task.project_id, notices, now).await?;
    Ok(())
}

/// Completes a machine task with `output` (its automation's result): the task becomes
/// `complete`, its dependants are created, the project completes if that was the end. Only a
/// task still waiting (`awaiting_processing`) completes; the update is conditional on that, so
/// of two completions (a command and `task complete`, two replicas) one wins and the other
/// gets [`UserError::MachineTaskNotWaiting`]. A machine task has no worker, so its completion
/// has no status notice (the tasks it lets start may have theirs).
pub async fn complete_machine_task<C: ConnectionTrait>(
    conn: &C,
    task_id: i64,
    output: serde_json::Value,
    notices: &NoticeSettings,
    now: DateTime<Utc>,
) -> Result<()> {
    let task = find_task(conn, task_id).await?;
    let step = find_step(conn, task.step_id).await?;
    if step.is_human {
        return Err(UserError::NotAMachineTask { task: task_id }.into());
    }
    let project = find_project(conn, task.project_id).await?;
    let not_waiting = |status: String| UserError::MachineTaskNotWaiting {
        task: task_id,
        status,
    };
    if project.status.is_finished() {
        return Err(not_waiting(format!("in a {} project", project.status)).into());
    }
    if !tasks::complete_if_awaiting(conn, task_id, output, now).await? {
        return Err(not_waiting(task.status.to_string()).into());
    }
    tracing::info!(task_id, step = %step.slug, "machine task complete");
    outbox::refresh_homes(conn, &[task_id], now).await?;
    create_subsequent_tasks(conn, task.project_id, notices, now).await?;
    Ok(())
}
