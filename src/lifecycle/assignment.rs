//! Assignment: who may hold a task (certifications), assigning and reassigning a worker, and
//! the channel's welcome and farewell.

use chrono::{DateTime, Utc};
use sea_orm::ConnectionTrait;
use serde_json::json;

use super::notices::{Change, NoticeFacts, NoticeWorker, queue_notices, status_notices};
use super::{assignments_of, find_project, find_step, find_task, task_display};
use crate::config::NoticeSettings;
use crate::db::entities::{project, task, task_assignment, worker};
use crate::db::tasks::NewAssignment;
use crate::db::{AssignmentStatus, Role, TaskStatus, tasks, workers, workflows};
use crate::error::{Result, UserError};
use crate::messages::{Message, NoticeStatus, Outgoing};
use crate::outbox;
use crate::requests;
use crate::workflow::rules::{self};

/// True when `worker` holds every required certification of `step` at `role`
/// (`staffbot_enabled` does not matter for manual assignment).
pub async fn is_certified<C: ConnectionTrait>(
    conn: &C,
    worker_id: i64,
    step_id: i64,
    role: Role,
) -> Result<bool> {
    let required = workflows::required_certification_ids(conn, step_id).await?;
    if required.is_empty() {
        return Ok(true);
    }
    let held = workers::count_held(conn, worker_id, role, &required).await?;
    Ok(held as usize == required.len())
}

/// The outbox key of one Slack effect (`invite`, `welcome`, `kick`, `removed`) of an assignment
/// reaching or leaving `worker_id` at hand-over `handovers` (0: the assignment's first worker).
/// Every hand-over has keys of its own, so a task handed back and forth gets its effects each
/// time; a retried transaction rolls the count back with everything else and queues them once.
pub fn assignment_key(kind: &str, assignment_id: i64, handovers: i32, worker_id: i64) -> String {
    format!("{kind}:assignment:{assignment_id}:handover:{handovers}:worker:{worker_id}")
}

/// The Slack side of `worker` (id `worker_id`) joining a task of project `project_id`: invite
/// to the project channel and `<@U…> has been added to the team. Welcome aboard!`, keyed by
/// the `assignment` once the worker holds it (its hand-over count included).
fn welcome_messages(
    channel: Option<&str>,
    project_id: i64,
    assignment: &task_assignment::Model,
    worker_id: i64,
    worker: &NoticeWorker<'_>,
) -> Vec<(String, Outgoing)> {
    let Some(slack_id) = worker.slack_id else {
        tracing::warn!(worker = %worker.username, "worker has no Slack user id; not inviting");
        return Vec::new();
    };
    let Some(channel) = channel else {
        tracing::warn!(project_id, "project has no Slack channel; not inviting");
        return Vec::new();
    };
    let key = |kind| assignment_key(kind, assignment.id, assignment.handovers, worker_id);
    vec![
        (
            key("invite"),
            Outgoing::Invite {
                channel: channel.to_string(),
                user: slack_id.to_string(),
            },
        ),
        (
            key("welcome"),
            Outgoing::post(
                channel,
                Message::Welcome {
                    user: slack_id.to_string(),
                },
            ),
        ),
    ]
}

/// Queues [`welcome_messages`].
async fn queue_welcome<C: ConnectionTrait>(
    conn: &C,
    project: &project::Model,
    assignment: &task_assignment::Model,
    worker: &worker::Model,
    now: DateTime<Utc>,
) -> Result<()> {
    let channel = project.slack_channel_id.as_deref();
    let messages = welcome_messages(channel, project.id, assignment, worker.id, &worker.into());
    outbox::enqueue_all(conn, messages, now).await?;
    Ok(())
}

/// A first assignment won (an offer accepted, or auto-staffed), as the offer's request read
/// the task and the winner.
#[derive(Debug, Clone, Copy)]
pub struct Winner<'a> {
    pub task: TaskFacts,
    /// The task's assignments, ordered by counter.
    pub existing: &'a [task_assignment::Model],
    pub worker_id: i64,
    pub worker: NoticeWorker<'a>,
    /// Whether the worker holds the step's certifications at the role the task needs.
    pub certified: bool,
    /// The task as its notices name it (its project channel included).
    pub notice: NoticeFacts<'a>,
    pub by: AssignedBy,
}

/// Assigns `winner`: the assignment ([`assign_prepared`]), and the messages it sends (the
/// welcome, the status notices), for the caller to queue with its own.
pub async fn won<C: ConnectionTrait>(
    conn: &C,
    winner: Winner<'_>,
    notices: &NoticeSettings,
    now: DateTime<Utc>,
) -> Result<Vec<(String, Outgoing)>> {
    let Winner {
        task,
        existing,
        worker_id,
        worker,
        certified,
        notice,
        by,
    } = winner;
    let assigned = assign_prepared(conn, task, existing, worker_id, certified, now).await?;
    let assignment = &assigned.assignment;
    let channel = notice.channel;
    let mut messages = welcome_messages(channel, task.project_id, assignment, worker_id, &worker);
    messages.extend(status_notices(
        notices,
        notice,
        worker,
        assigned.notice(by),
        assigned.status_changes,
    ));
    Ok(messages)
}

/// What [`assign_prepared`] needs to know about the task, loaded by the caller.
#[derive(Debug, Clone, Copy)]
pub struct TaskFacts {
    pub id: i64,
    pub status: TaskStatus,
    pub step_id: i64,
    pub project_id: i64,
}

/// A new assignment and the status change it made.
#[derive(Debug, Clone)]
pub struct Assigned {
    pub assignment: task_assignment::Model,
    /// The task's new status: `processing` or `reviewing`.
    pub status: TaskStatus,
    /// The task's count of status changes, this one included (its notices' key).
    pub status_changes: i32,
}

/// Who made an assignment: a person (an offer won, `task assign`) or a step's assignment
/// policy. The status notice says which.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AssignedBy {
    Person,
    Policy,
}

impl Assigned {
    /// What the status notice of this assignment says.
    pub fn notice(&self, by: AssignedBy) -> NoticeStatus {
        match (self.status, by) {
            (TaskStatus::Reviewing, _) => NoticeStatus::UnderReview,
            (_, AssignedBy::Policy) => NoticeStatus::AutoStaffed,
            (_, AssignedBy::Person) => NoticeStatus::PickedUp,
        }
    }
}

/// Assigns `worker_id` to a task from facts the caller already loaded (the task, its
/// assignments ordered by counter, whether the worker holds the step's certifications at the
/// role the task's status needs): the rules of `assign_task` in two statements, the new
/// assignment and the task's status. Slack messages (the welcome, the status notices) and
/// staffing requests are the caller's.
pub async fn assign_prepared<C: ConnectionTrait>(
    conn: &C,
    task: TaskFacts,
    existing: &[task_assignment::Model],
    worker_id: i64,
    certified: bool,
    now: DateTime<Utc>,
) -> Result<Assigned> {
    rules::required_role(task.status)?;
    let counters: Vec<i32> = existing.iter().map(|a| a.assignment_counter).collect();
    let counter = rules::required_role_counter(task.status, &counters)?;
    if !certified {
        return Err(UserError::NotCertifiedForTask.into());
    }
    if existing.iter().any(|a| a.worker_id == worker_id) {
        return Err(UserError::AlreadyAssigned.into());
    }
    // Data comes from the current assignment: the processing one, else the highest counter.
    let data = existing
        .iter()
        .find(|a| a.status == AssignmentStatus::Processing)
        .or_else(|| existing.iter().max_by_key(|a| a.assignment_counter))
        .map(|a| a.in_progress_task_data.clone())
        .unwrap_or_else(|| json!({}));
    let assignment = tasks::insert_assignment(
        conn,
        NewAssignment {
            task_id: task.id,
            worker_id,
            counter,
            in_progress_task_data: data,
        },
        now,
    )
    .await?;
    let next = match task.status {
        TaskStatus::AwaitingProcessing => TaskStatus::Processing,
        _ => TaskStatus::Reviewing,
    };
    let status_changes = tasks::set_status_by_id(conn, task.id, next, now).await?;
    Ok(Assigned {
        assignment,
        status: next,
        status_changes,
    })
}

/// Assigns a worker to a task waiting for one (behaviour §4.5 `assign_task`, with W-9 fixed:
/// the new assignment gets the gap-aware counter).
pub async fn assign_task<C: ConnectionTrait>(
    conn: &C,
    task_id: i64,
    worker: &worker::Model,
    notices: &NoticeSettings,
    now: DateTime<Utc>,
) -> Result<task_assignment::Model> {
    assign_task_by(conn, task_id, worker, AssignedBy::Person, notices, now).await
}

/// [`assign_task`], by a person or an assignment policy.
pub(super) async fn assign_task_by<C: ConnectionTrait>(
    conn: &C,
    task_id: i64,
    worker: &worker::Model,
    by: AssignedBy,
    notices: &NoticeSettings,
    now: DateTime<Utc>,
) -> Result<task_assignment::Model> {
    let task = find_task(conn, task_id).await?;
    requests::refuse_machine_task(conn, &task).await?;
    let role = rules::required_role(task.status)?;
    let existing = assignments_of(conn, task_id).await?;
    let counters: Vec<i32> = existing.iter().map(|a| a.assignment_counter).collect();
    rules::required_role_counter(task.status, &counters)?;
    let certified = is_certified(conn, worker.id, task.step_id, role).await?;
    let facts = TaskFacts {
        id: task.id,
        status: task.status,
        step_id: task.step_id,
        project_id: task.project_id,
    };
    let assigned = assign_prepared(conn, facts, &existing, worker.id, certified, now).await?;
    let assignment = &assigned.assignment;
    outbox::refresh_homes(conn, &[task_id], now).await?;
    let project = find_project(conn, task.project_id).await?;
    queue_welcome(conn, &project, assignment, worker, now).await?;
    let change = Change {
        task: &task,
        project: Some(&project),
        status: assigned.notice(by),
        count: assigned.status_changes,
        worker_id: worker.id,
    };
    queue_notices(conn, notices, change, now).await?;
    requests::record_assignment_win(conn, task_id, assignment.assignment_counter, worker.id, now)
        .await?;
    Ok(assigned.assignment)
}

/// A task's current worker (behaviour §10.4): the worker of its assignment in progress, else
/// of its last one (highest counter); `None` when nobody was ever assigned.
pub(super) fn current_worker(assignments: &[task_assignment::Model]) -> Option<i64> {
    assignments
        .iter()
        .find(|a| a.status == AssignmentStatus::Processing)
        .or_else(|| assignments.iter().max_by_key(|a| a.assignment_counter))
        .map(|a| a.worker_id)
}

/// True when `worker_id` still has work in some project using `channel`: an assignment (not
/// failed) on an unfinished task, in progress or submitted work that a reviewer may send back,
/// in this project (another task, a review) or another one sharing the channel. Such a worker
/// stays in the channel when a task is handed away from them.
async fn still_busy_in_channel<C: ConnectionTrait>(
    conn: &C,
    worker_id: i64,
    channel: &str,
) -> Result<bool> {
    Ok(tasks::busy_in_channel(conn, worker_id, channel).await?)
}

/// Hands an assignment to another worker (behaviour §4.5 `reassign_assignment`; restaff).
/// The previous worker is removed from the project channel and told by DM.
pub async fn reassign<C: ConnectionTrait>(
    conn: &C,
    assignment: &task_assignment::Model,
    new_worker: &worker::Model,
    now: DateTime<Utc>,
) -> Result<task_assignment::Model> {
    let task = find_task(conn, assignment.task_id).await?;
    let role = Role::for_counter(assignment.assignment_counter);
    if !is_certified(conn, new_worker.id, task.step_id, role).await? {
        return Err(UserError::NotCertifiedForAssignment.into());
    }
    let existing = assignments_of(conn, task.id).await?;
    if existing.iter().any(|a| a.worker_id == new_worker.id) {
        return Err(UserError::AlreadyAssigned.into());
    }
    let previous = workers::by_id(conn, assignment.worker_id).await?;
    // Conditional on the hand-over the caller saw: of two concurrent hand-overs one wins.
    if !tasks::hand_over(conn, assignment, new_worker.id, now).await? {
        return Err(UserError::AssignmentChanged { task: task.id }.into());
    }
    // The Homes that show the task, the previous worker's too (it is no longer theirs).
    let was = previous.as_ref().and_then(|p| p.slack_user_id.clone());
    let (key, refresh) = outbox::refresh_row(&[task.id], was.into_iter().collect());
    outbox::enqueue(conn, &key, refresh, now).await?;
    let updated = task_assignment::Model {
        worker_id: new_worker.id,
        handovers: assignment.handovers + 1,
        updated_at: now,
        ..assignment.clone()
    };

    let project = find_project(conn, task.project_id).await?;
    queue_welcome(conn, &project, &updated, new_worker, now).await?;
    if let Some(previous) = previous
        && let Some(slack_id) = &previous.slack_user_id
    {
        let handed = HandedAway {
            task: &task,
            project: &project,
            assignment: &updated,
            previous: &previous,
            slack_id,
        };
        queue_farewell(conn, handed, now).await?;
    }
    requests::record_assignment_win(
        conn,
        task.id,
        assignment.assignment_counter,
        new_worker.id,
        now,
    )
    .await?;
    Ok(updated)
}

/// A task handed away from `previous` (Slack id `slack_id`): what [`queue_farewell`] needs.
struct HandedAway<'a> {
    task: &'a task::Model,
    project: &'a project::Model,
    /// The assignment, already handed over.
    assignment: &'a task_assignment::Model,
    previous: &'a worker::Model,
    slack_id: &'a str,
}

/// The Slack side of a worker losing a task: removed from the project channel (unless they
/// still have work there) and told by DM.
async fn queue_farewell<C: ConnectionTrait>(
    conn: &C,
    handed: HandedAway<'_>,
    now: DateTime<Utc>,
) -> Result<()> {
    let HandedAway {
        task,
        project,
        assignment: updated,
        previous,
        slack_id,
    } = handed;
    if let Some(channel) = &project.slack_channel_id {
        if still_busy_in_channel(conn, previous.id, channel).await? {
            tracing::info!(
                worker = %previous.username,
                task_id = task.id,
                "previous worker keeps other work in the project channel; not removed from it"
            );
        } else {
            outbox::enqueue(
                conn,
                &assignment_key("kick", updated.id, updated.handovers, previous.id),
                Outgoing::Kick {
                    channel: channel.clone(),
                    user: slack_id.to_string(),
                },
                now,
            )
            .await?;
        }
    }
    let version = workflows::version_by_id(conn, project.workflow_version_id).await?;
    let step = find_step(conn, task.step_id).await?;
    let display = task_display(
        version.as_ref().map(|v| v.slug.as_str()).unwrap_or(""),
        &project.short_description,
        &step.slug,
    );
    outbox::enqueue(
        conn,
        &assignment_key("removed", updated.id, updated.handovers, previous.id),
        Outgoing::post(
            slack_id,
            Message::HandedOver {
                task_id: task.id,
                task: display,
            },
        ),
        now,
    )
    .await?;
    Ok(())
}

/// `task assign`: assign a task waiting for a worker, or hand a task in progress to `worker`
/// (its processing assignment is reassigned). Returns the assignment and whether it was a
/// reassignment.
pub async fn assign_or_reassign<C: ConnectionTrait>(
    conn: &C,
    task_id: i64,
    worker: &worker::Model,
    notices: &NoticeSettings,
    now: DateTime<Utc>,
) -> Result<(task_assignment::Model, bool)> {
    let task = find_task(conn, task_id).await?;
    requests::refuse_machine_task(conn, &task).await?;
    match task.status {
        TaskStatus::AwaitingProcessing | TaskStatus::PendingReview => {
            let assignment = assign_task(conn, task_id, worker, notices, now).await?;
            Ok((assignment, false))
        }
        TaskStatus::Complete | TaskStatus::Aborted => Err(UserError::TaskFinished {
            task: task_id,
            status: task.status.to_string(),
        }
        .into()),
        _ => {
            let current = assignments_of(conn, task_id)
                .await?
                .into_iter()
                .find(|a| a.status == AssignmentStatus::Processing)
                .ok_or(UserError::NothingToReassign { task: task_id })?;
            Ok((reassign(conn, &current, worker, now).await?, true))
        }
    }
}
