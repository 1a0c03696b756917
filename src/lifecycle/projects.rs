//! Projects and their tasks: creating a project (its first tasks), the tasks that follow a
//! finished one, the steps' assignment policies run on new tasks, a machine step's input, and
//! aborting a project.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use sea_orm::ConnectionTrait;
use serde_json::json;

use super::assignment::{AssignedBy, assign_task_by, current_worker};
use super::notices::{NoticeFacts, announced, status_notices};
use super::{assignment_policies, find_project, find_step, find_task, find_worker};
use crate::config::NoticeSettings;
use crate::db::entities::{
    project, step, step_dependency, task, task_assignment, worker, workflow_version,
};
use crate::db::{
    DependencyKind, ProjectStatus, RequestCause, TaskStatus, projects, tasks, workers, workflows,
};
use crate::error::{Error, Result, UserError};
use crate::messages::NoticeStatus;
use crate::outbox;
use crate::requests;
use crate::workflow::functions::AssignmentPolicy;

/// Which assignment policy of a step to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyKind {
    EntryLevel,
    Reviewer,
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
