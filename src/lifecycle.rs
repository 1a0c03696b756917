//! The task lifecycle (behaviour §4): projects and their tasks, assignment and reassignment,
//! submission with review policies, reviews, completion and abort. Every function runs inside
//! the caller's transaction and queues Slack effects in the outbox; none talks to Slack.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use rand::Rng;
use sea_orm::ConnectionTrait;
use serde_json::json;

use crate::config::NoticeSettings;
use crate::db::entities::{
    project, step, step_dependency, task, task_assignment, worker, workflow_version,
};
use crate::db::tasks::NewAssignment;
use crate::db::{
    AssignmentStatus, DependencyKind, ProjectStatus, RequestCause, Role, TaskStatus, projects,
    tasks, workers, workflows,
};
use crate::error::{Error, Result, StoredDataInvalid, UserError};
use crate::messages::{Message, NoticeStatus, Outgoing};
use crate::outbox;
use crate::requests;
use crate::workflow::functions::{AssignmentPolicy, ReviewPolicy, StepAssignmentPolicies};
use crate::workflow::rules::{self, SubmitKind};

/// Which assignment policy of a step to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyKind {
    EntryLevel,
    Reviewer,
}

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

async fn find_task<C: ConnectionTrait>(conn: &C, task_id: i64) -> Result<task::Model> {
    Ok(tasks::by_id(conn, task_id)
        .await?
        .ok_or(UserError::TaskNotFound(task_id))?)
}

async fn find_project<C: ConnectionTrait>(conn: &C, project_id: i64) -> Result<project::Model> {
    Ok(projects::by_id(conn, project_id)
        .await?
        .ok_or(UserError::ProjectNotFound(project_id))?)
}

/// A task's step; a task whose step is missing is stored data that no longer holds together.
async fn find_step<C: ConnectionTrait>(conn: &C, step_id: i64) -> Result<step::Model> {
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

async fn assignments_of<C: ConnectionTrait>(
    conn: &C,
    task_id: i64,
) -> Result<Vec<task_assignment::Model>> {
    Ok(tasks::assignments_of(conn, task_id).await?)
}

async fn set_task_status<C: ConnectionTrait>(
    conn: &C,
    task: &task::Model,
    status: TaskStatus,
    now: DateTime<Utc>,
) -> Result<task::Model> {
    let task = tasks::set_status(conn, task, status, now).await?;
    outbox::refresh_homes(conn, &[task.id], now).await?;
    Ok(task)
}

async fn set_assignment_status<C: ConnectionTrait>(
    conn: &C,
    assignment: &task_assignment::Model,
    status: AssignmentStatus,
    now: DateTime<Utc>,
) -> Result<()> {
    Ok(tasks::set_assignment_status(conn, assignment, status, now).await?)
}

/// Creates a project of a workflow version and its first tasks. Returns the project id.
pub async fn create_project<C: ConnectionTrait>(
    conn: &C,
    version: &workflow_version::Model,
    short_description: &str,
    priority: i32,
    slack_channel_id: Option<String>,
    notices: &NoticeSettings,
    now: DateTime<Utc>,
) -> Result<i64> {
    let project = projects::NewProject {
        workflow_version_id: version.id,
        short_description,
        priority,
        slack_channel_id,
        project_data: json!({}),
    };
    create_project_with_data(conn, project, notices, now).await
}

/// [`create_project`] with the project's data (Orchestra's `project_data`, a JSON object that
/// descriptions, scripts and machine steps see) and its other fields as `project` gives them.
pub async fn create_project_with_data<C: ConnectionTrait>(
    conn: &C,
    project: projects::NewProject<'_>,
    notices: &NoticeSettings,
    now: DateTime<Utc>,
) -> Result<i64> {
    let project = projects::insert(conn, project, now).await?;
    create_subsequent_tasks(conn, project.id, notices, now).await?;
    Ok(project.id)
}

/// Creates every task whose creation dependencies are complete, runs their entry-level
/// policies, and completes the project when nothing is left to do. Returns the new task ids.
pub async fn create_subsequent_tasks<C: ConnectionTrait>(
    conn: &C,
    project_id: i64,
    notices: &NoticeSettings,
    now: DateTime<Utc>,
) -> Result<Vec<i64>> {
    let project = find_project(conn, project_id).await?;
    let steps = workflows::steps_of_version(conn, project.workflow_version_id).await?;
    let tasks = tasks::of_project(conn, project_id).await?;
    let deps = creation_dependencies(conn, &steps).await?;
    let status_by_step: HashMap<i64, TaskStatus> =
        tasks.iter().map(|t| (t.step_id, t.status)).collect();

    let mut created = Vec::new();
    for s in &steps {
        if status_by_step.contains_key(&s.id) {
            continue;
        }
        let ready = deps
            .iter()
            .filter(|d| d.step_id == s.id)
            .all(|d| status_by_step.get(&d.depends_on_step_id) == Some(&TaskStatus::Complete));
        if !ready {
            continue;
        }
        let t = tasks::insert_awaiting(conn, project_id, s.id, now).await?;
        outbox::refresh_homes(conn, &[t.id], now).await?;
        created.push(t.id);
        if s.is_human {
            apply_policy(conn, &t, s, PolicyKind::EntryLevel, notices, now).await?;
        } else {
            tracing::info!(task_id = t.id, step = %s.slug, "machine task created; waiting for its automation");
        }
    }

    // Completion: a completed step that ends the project, or no unfinished task left.
    let tasks = tasks::of_project(conn, project_id).await?;
    let ends_project: HashSet<i64> = steps
        .iter()
        .filter(|s| s.completion_ends_project)
        .map(|s| s.id)
        .collect();
    let ended = tasks
        .iter()
        .any(|t| t.status == TaskStatus::Complete && ends_project.contains(&t.step_id));
    let all_done = tasks.iter().all(|t| t.status.is_finished());
    if (ended || all_done) && !project.status.is_finished() {
        projects::set_status(conn, project, ProjectStatus::Completed, now).await?;
        for t in &tasks {
            requests::close_open_requests(conn, t.id, now).await?;
        }
    }
    Ok(created)
}

/// `staffbot_autoassign`: staffing starts for the task (a task that cannot be staffed is
/// logged, not an error).
async fn autoassign<C: ConnectionTrait>(
    conn: &C,
    task: &task::Model,
    now: DateTime<Utc>,
) -> Result<()> {
    match requests::staff_task(conn, task.id, RequestCause::TaskPolicy, now).await {
        Ok(request) => {
            tracing::info!(
                task_id = task.id,
                request_id = request.id,
                "autoassign: staffing started"
            );
            Ok(())
        }
        Err(Error::User(e)) => {
            tracing::warn!(
                task_id = task.id,
                "autoassign could not start staffing: {e}"
            );
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// Runs a step's `entry_level` or `reviewer` assignment policy for a task.
pub async fn apply_policy<C: ConnectionTrait>(
    conn: &C,
    task: &task::Model,
    step: &step::Model,
    kind: PolicyKind,
    notices: &NoticeSettings,
    now: DateTime<Utc>,
) -> Result<()> {
    let policies = assignment_policies(step)?;
    let policy = match kind {
        PolicyKind::EntryLevel => policies.entry_level,
        PolicyKind::Reviewer => policies.reviewer,
    };
    let failed = |message: String| UserError::AssignmentPolicyFailed {
        step: step.slug.clone(),
        message,
    };
    match policy {
        AssignmentPolicy::AnyoneCertified => Ok(()),
        AssignmentPolicy::StaffbotAutoassign => autoassign(conn, task, now).await,
        AssignmentPolicy::SpecifiedWorker { username } => {
            let worker = find_worker(conn, &username).await.map_err(|e| match e {
                Error::User(u) => Error::User(failed(u.to_string())),
                other => other,
            })?;
            match assign_task_by(conn, task.id, &worker, AssignedBy::Policy, notices, now).await {
                Ok(_) => Ok(()),
                Err(Error::User(u)) => Err(failed(u.to_string()).into()),
                Err(e) => Err(e),
            }
        }
        AssignmentPolicy::PreviouslyCompletedSteps { related_steps } => {
            let related =
                workflows::steps_by_slugs(conn, step.workflow_version_id, &related_steps).await?;
            for rs in related {
                let Some(related_task) =
                    tasks::of_project_at_step(conn, task.project_id, rs.id).await?
                else {
                    continue;
                };
                let Some(first) = tasks::entry_level_assignment(conn, related_task.id).await?
                else {
                    continue;
                };
                let Some(worker) = workers::by_id(conn, first.worker_id).await? else {
                    continue;
                };
                // Re-read: an earlier candidate may have been assigned already.
                let current = find_task(conn, task.id).await?;
                let by = AssignedBy::Policy;
                match assign_task_by(conn, current.id, &worker, by, notices, now).await {
                    Ok(_) => return Ok(()),
                    Err(Error::User(e)) => {
                        tracing::info!(task_id = task.id, worker = %worker.username, "previously_completed_steps: {e}");
                    }
                    Err(e) => return Err(e),
                }
            }
            Ok(())
        }
    }
}

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

/// The Slack side of a worker joining a task: invite to the project channel and
/// `<@U…> has been added to the team. Welcome aboard!`. `handovers` is the assignment's
/// hand-over count once the worker holds it.
pub fn welcome_messages(
    channel: Option<&str>,
    project_id: i64,
    assignment_id: i64,
    handovers: i32,
    worker_id: i64,
    worker_username: &str,
    slack_id: Option<&str>,
) -> Vec<(String, Outgoing)> {
    let Some(slack_id) = slack_id else {
        tracing::warn!(worker = %worker_username, "worker has no Slack user id; not inviting");
        return Vec::new();
    };
    let Some(channel) = channel else {
        tracing::warn!(project_id, "project has no Slack channel; not inviting");
        return Vec::new();
    };
    vec![
        (
            assignment_key("invite", assignment_id, handovers, worker_id),
            Outgoing::Invite {
                channel: channel.to_string(),
                user: slack_id.to_string(),
            },
        ),
        (
            assignment_key("welcome", assignment_id, handovers, worker_id),
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
    let messages = welcome_messages(
        project.slack_channel_id.as_deref(),
        project.id,
        assignment.id,
        assignment.handovers,
        worker.id,
        &worker.username,
        worker.slack_user_id.as_deref(),
    );
    outbox::enqueue_all(conn, messages, now).await?;
    Ok(())
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
async fn assign_task_by<C: ConnectionTrait>(
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

// ---- status notices (behaviour §10.4) ----

/// What a status notice says about its task, besides the status and the worker.
#[derive(Debug, Clone, Copy)]
pub struct NoticeFacts<'a> {
    pub task_id: i64,
    pub version_slug: &'a str,
    pub project_description: &'a str,
    pub step_slug: &'a str,
    /// The project's channel, if it has one.
    pub channel: Option<&'a str>,
}

/// The outbox key of a task's status notice: one per status change (`count`: the task's
/// `status_changes` once changed) and destination (`channel` or `notifications`). A task
/// returned twice gets a notice each time; a retried transaction (which rolls the count back
/// with everything else) queues it once.
pub fn notice_key(task_id: i64, count: i32, destination: &str) -> String {
    format!("notice:task:{task_id}:change:{count}:{destination}")
}

/// The status notices of one status change of a task whose current worker is `worker`: one to
/// the project's channel (mentioning the worker), when it has one, a copy to the notifications
/// channel (linking the project's channel), when one is set, and an email to the worker when
/// they prefer email (Orchestra's status emails). Nothing when notices are off.
pub fn status_notices(
    settings: &NoticeSettings,
    facts: NoticeFacts<'_>,
    worker: NoticeWorker<'_>,
    status: NoticeStatus,
    count: i32,
) -> Vec<(String, Outgoing)> {
    if !settings.enabled {
        return Vec::new();
    }
    let (username, slack_id) = (worker.username, worker.slack_id);
    let message = |mention: Option<&str>, project_channel: Option<&str>| Message::StatusNotice {
        status,
        task_id: facts.task_id,
        version: facts.version_slug.to_string(),
        project_description: facts.project_description.to_string(),
        step: facts.step_slug.to_string(),
        worker: username.to_string(),
        mention: mention.map(str::to_string),
        project_channel: project_channel.map(str::to_string),
    };
    let mut out = Vec::with_capacity(2);
    if let Some(channel) = facts.channel {
        out.push((
            notice_key(facts.task_id, count, "channel"),
            Outgoing::post(channel, message(slack_id, None)),
        ));
    }
    if let Some(notifications) = &settings.channel {
        out.push((
            notice_key(facts.task_id, count, "notifications"),
            Outgoing::post(notifications, message(None, facts.channel)),
        ));
    }
    let reach = crate::notify::reach(worker.notify, slack_id, worker.email, settings.email);
    if let Some(address) = reach.email {
        let to = crate::notify::EmailTo {
            to: address,
            token: None,
            in_reply_to: None,
            slack_user: slack_id,
            only_channel: false,
        };
        out.push((
            notice_key(facts.task_id, count, "email"),
            to.outgoing(message(None, None)),
        ));
    }
    out
}

/// The worker a status notice is about, and how they are reached.
#[derive(Debug, Clone, Copy)]
pub struct NoticeWorker<'a> {
    pub username: &'a str,
    pub slack_id: Option<&'a str>,
    pub email: &'a str,
    pub notify: crate::db::Notify,
}

impl<'a> From<&'a worker::Model> for NoticeWorker<'a> {
    fn from(w: &'a worker::Model) -> Self {
        NoticeWorker {
            username: &w.username,
            slack_id: w.slack_user_id.as_deref(),
            email: &w.email,
            notify: w.notify,
        }
    }
}

/// One status change of a task, for [`queue_notices`].
struct Change<'a> {
    /// The task (its id, project and step).
    task: &'a task::Model,
    /// Its project, when the caller has it loaded.
    project: Option<&'a project::Model>,
    status: NoticeStatus,
    /// The task's `status_changes` once changed.
    count: i32,
    /// The task's current worker.
    worker_id: i64,
}

/// True when a status change is announced anywhere: notices are on, and the project has a
/// channel or a notifications channel is set.
fn announced(settings: &NoticeSettings, project: &project::Model) -> bool {
    settings.enabled
        && (project.slack_channel_id.is_some() || settings.channel.is_some() || settings.email)
}

/// Queues [`status_notices`] for a status change, loading what they say.
async fn queue_notices<C: ConnectionTrait>(
    conn: &C,
    settings: &NoticeSettings,
    change: Change<'_>,
    now: DateTime<Utc>,
) -> Result<()> {
    if !settings.enabled {
        return Ok(());
    }
    let loaded;
    let project = match change.project {
        Some(p) => p,
        None => {
            loaded = find_project(conn, change.task.project_id).await?;
            &loaded
        }
    };
    if !announced(settings, project) {
        return Ok(());
    }
    let version = workflows::version_by_id(conn, project.workflow_version_id).await?;
    let step = find_step(conn, change.task.step_id).await?;
    let Some(worker) = workers::by_id(conn, change.worker_id).await? else {
        return Ok(());
    };
    let facts = NoticeFacts {
        task_id: change.task.id,
        version_slug: version.as_ref().map(|v| v.slug.as_str()).unwrap_or(""),
        project_description: &project.short_description,
        step_slug: &step.slug,
        channel: project.slack_channel_id.as_deref(),
    };
    let messages = status_notices(
        settings,
        facts,
        (&worker).into(),
        change.status,
        change.count,
    );
    outbox::enqueue_all(conn, messages, now).await?;
    Ok(())
}

/// A task's current worker (behaviour §10.4): the worker of its assignment in progress, else
/// of its last one (highest counter); `None` when nobody was ever assigned.
fn current_worker(assignments: &[task_assignment::Model]) -> Option<i64> {
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

/// The `creation_depends_on` edges among `steps` (one version's steps).
async fn creation_dependencies<C: ConnectionTrait>(
    conn: &C,
    steps: &[step::Model],
) -> Result<Vec<step_dependency::Model>> {
    Ok(
        workflows::dependencies_of_kind(conn, steps.iter().map(|s| s.id), DependencyKind::Creation)
            .await?,
    )
}

/// What a machine task's command reads on stdin: the project (with its data), the task, the
/// step (with its `execution_function`), and the outputs of every step it depends on, directly
/// or not, by slug. `project_data` and `prerequisites` are Orchestra's two arguments of an
/// execution function (`project_data` with `project_id` added, as Orchestra does).
pub async fn machine_input<C: ConnectionTrait>(
    conn: &C,
    task_id: i64,
) -> Result<serde_json::Value> {
    let task = find_task(conn, task_id).await?;
    let step = find_step(conn, task.step_id).await?;
    let project = find_project(conn, task.project_id).await?;
    let steps = workflows::steps_of_version_unordered(conn, step.workflow_version_id).await?;
    let deps = creation_dependencies(conn, &steps).await?;
    // Every step this one depends on, transitively (Orchestra's prerequisites).
    let mut wanted: HashSet<i64> = HashSet::new();
    let mut to_visit = vec![step.id];
    while let Some(current) = to_visit.pop() {
        for d in deps.iter().filter(|d| d.step_id == current) {
            if wanted.insert(d.depends_on_step_id) {
                to_visit.push(d.depends_on_step_id);
            }
        }
    }
    let tasks = tasks::of_project_at_steps(conn, project.id, wanted.iter().copied()).await?;
    let mut prerequisites = serde_json::Map::new();
    for s in steps.iter().filter(|s| wanted.contains(&s.id)) {
        let output = tasks
            .iter()
            .find(|t| t.step_id == s.id)
            .and_then(|t| t.output.clone())
            .unwrap_or_else(|| json!({}));
        prerequisites.insert(s.slug.clone(), output);
    }
    let mut project_data = match &project.project_data {
        serde_json::Value::Object(m) => m.clone(),
        _ => serde_json::Map::new(),
    };
    project_data.insert("project_id".to_string(), json!(project.id));
    let version = workflows::version_by_id(conn, project.workflow_version_id).await?;
    Ok(json!({
        "project": {
            "id": project.id,
            "description": project.short_description,
            "priority": project.priority,
            "workflow_version": version.map(|v| v.slug),
            "data": project.project_data,
        },
        "task": {"id": task.id, "step": step.slug},
        "step": {
            "slug": step.slug,
            "name": step.name,
            "description": step.description,
            "execution_function": step.execution_function,
        },
        "project_data": project_data,
        "prerequisites": prerequisites,
    }))
}

/// Ends a project: it and its unfinished tasks become aborted; open requests close. Every
/// aborted task somebody worked on gets its status notice (naming its current worker).
pub async fn abort_project<C: ConnectionTrait>(
    conn: &C,
    project_id: i64,
    notices: &NoticeSettings,
    now: DateTime<Utc>,
) -> Result<()> {
    let project = find_project(conn, project_id).await?;
    if project.status.is_finished() {
        return Err(UserError::ProjectFinished {
            id: project_id,
            status: project.status.to_string(),
        }
        .into());
    }
    let announce = announced(notices, &project);
    projects::set_status(conn, project.clone(), ProjectStatus::Aborted, now).await?;
    for t in &tasks::of_project(conn, project_id).await? {
        requests::close_open_requests(conn, t.id, now).await?;
    }
    let aborted = tasks::abort_unfinished(conn, project_id, now).await?;
    let ids: Vec<i64> = aborted.iter().map(|t| t.id).collect();
    outbox::refresh_homes(conn, &ids, now).await?;
    if announce && !aborted.is_empty() {
        queue_abort_notices(conn, notices, &project, &aborted, now).await?;
    }
    Ok(())
}

/// The status notices of a project's aborted tasks (those somebody worked on).
async fn queue_abort_notices<C: ConnectionTrait>(
    conn: &C,
    notices: &NoticeSettings,
    project: &project::Model,
    aborted: &[task::Model],
    now: DateTime<Utc>,
) -> Result<()> {
    let assignments =
        tasks::assignments_of_tasks(conn, aborted.iter().map(|t| t.id).collect()).await?;
    let current: HashMap<i64, i64> = aborted
        .iter()
        .filter_map(|t| {
            let of_task: Vec<task_assignment::Model> = assignments
                .iter()
                .filter(|a| a.task_id == t.id)
                .cloned()
                .collect();
            current_worker(&of_task).map(|w| (t.id, w))
        })
        .collect();
    if current.is_empty() {
        return Ok(());
    }
    let workers: HashMap<i64, worker::Model> = workers::by_ids(conn, current.values().copied())
        .await?
        .into_iter()
        .map(|w| (w.id, w))
        .collect();
    let steps: HashMap<i64, step::Model> =
        workflows::steps_by_ids(conn, aborted.iter().map(|t| t.step_id))
            .await?
            .into_iter()
            .map(|s| (s.id, s))
            .collect();
    let version = workflows::version_by_id(conn, project.workflow_version_id).await?;
    let mut messages = Vec::new();
    for t in aborted {
        let Some(worker) = current.get(&t.id).and_then(|id| workers.get(id)) else {
            continue;
        };
        let facts = NoticeFacts {
            task_id: t.id,
            version_slug: version.as_ref().map(|v| v.slug.as_str()).unwrap_or(""),
            project_description: &project.short_description,
            step_slug: steps.get(&t.step_id).map(|s| s.slug.as_str()).unwrap_or(""),
            channel: project.slack_channel_id.as_deref(),
        };
        messages.extend(status_notices(
            notices,
            facts,
            worker.into(),
            NoticeStatus::Aborted,
            t.status_changes,
        ));
    }
    outbox::enqueue_all(conn, messages, now).await?;
    Ok(())
}
