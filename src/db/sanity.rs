//! SanityBot's data: the projects it checks and the checks it fired.

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait,
    FromQueryResult, QueryFilter,
};
use serde_json::Value;

use super::entities::sanity_check;
use super::{AssignmentStatus, ProjectStatus, TaskStatus, statement};

/// Which projects a SanityBot round looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checked {
    /// Every active or paused project whose workflow version has checks (the loop).
    Running,
    /// This project, whatever its status, if its version has checks (`sanity run --project`).
    Project(i64),
}

impl Checked {
    /// The `WHERE` condition on `p` (projects) and `v` (their versions), and its values.
    fn condition(self) -> (&'static str, Vec<sea_orm::Value>) {
        match self {
            Checked::Running => (
                "p.status IN ($1, $2) AND v.sanity_checks IS NOT NULL",
                vec![
                    ProjectStatus::Active.as_str().into(),
                    ProjectStatus::Paused.as_str().into(),
                ],
            ),
            Checked::Project(id) => ("p.id = $1 AND v.sanity_checks IS NOT NULL", vec![id.into()]),
        }
    }
}

/// A project SanityBot looks at.
#[derive(Debug, Clone, FromQueryResult)]
pub struct CheckedProject {
    pub id: i64,
    pub workflow_version_id: i64,
    pub slack_channel_id: Option<String>,
    pub short_description: String,
    pub priority: i32,
    pub status: ProjectStatus,
    /// The project's data, read only for the versions whose check reads it.
    pub project_data: Option<Value>,
    pub created_at: DateTime<Utc>,
    /// Rounds in a row in which the project's check script hit a limit.
    pub sanity_failures: i32,
    /// Not evaluated again before this (after a limit hit).
    pub sanity_retry_at: Option<DateTime<Utc>>,
}

/// The projects of `checked`, by id; with their data only for `data_versions` (the versions
/// whose check function reads project data: the rest is never loaded).
pub async fn projects<C: ConnectionTrait>(
    conn: &C,
    checked: Checked,
    data_versions: &[i64],
) -> Result<Vec<CheckedProject>, DbErr> {
    let (condition, values) = checked.condition();
    // Integers, formatted: no text from outside reaches the statement.
    let mut ids: Vec<String> = data_versions.iter().map(i64::to_string).collect();
    if ids.is_empty() {
        ids.push("-1".into());
    }
    CheckedProject::find_by_statement(statement(
        conn.get_database_backend(),
        &format!(
            "SELECT p.id, p.workflow_version_id, p.slack_channel_id, p.short_description,
                    p.priority, p.status,
                    CASE WHEN p.workflow_version_id IN ({}) THEN p.project_data END
                        AS project_data,
                    p.created_at, p.sanity_failures, p.sanity_retry_at
             FROM projects p JOIN workflow_versions v ON v.id = p.workflow_version_id
             WHERE {condition} ORDER BY p.id",
            ids.join(", ")
        ),
        values,
    ))
    .all(conn)
    .await
}

/// Records that `project_id`'s check script hit a limit for the `failures`th round in a row:
/// it is not evaluated again before `retry_at`.
pub async fn record_limit_hit<C: ConnectionTrait>(
    conn: &C,
    project_id: i64,
    failures: i32,
    retry_at: DateTime<Utc>,
) -> Result<(), DbErr> {
    conn.execute_raw(statement(
        conn.get_database_backend(),
        "UPDATE projects SET sanity_failures = $1, sanity_retry_at = $2 WHERE id = $3",
        vec![failures.into(), retry_at.into(), project_id.into()],
    ))
    .await?;
    Ok(())
}

/// Clears the limit hits of projects whose check ran within its limits again.
pub async fn clear_limit_hits<C: ConnectionTrait>(
    conn: &C,
    project_ids: &[i64],
) -> Result<(), DbErr> {
    for id in project_ids {
        conn.execute_raw(statement(
            conn.get_database_backend(),
            "UPDATE projects SET sanity_failures = 0, sanity_retry_at = NULL WHERE id = $1",
            vec![(*id).into()],
        ))
        .await?;
    }
    Ok(())
}

/// A workflow version with checks, as stored.
#[derive(Debug, Clone, FromQueryResult)]
pub struct CheckedVersion {
    pub id: i64,
    pub slug: String,
    pub workflow_slug: String,
    pub sanity_checks: Value,
}

/// The versions of the projects of `checked`.
pub async fn versions<C: ConnectionTrait>(
    conn: &C,
    checked: Checked,
) -> Result<Vec<CheckedVersion>, DbErr> {
    let (condition, values) = checked.condition();
    CheckedVersion::find_by_statement(statement(
        conn.get_database_backend(),
        &format!(
            "SELECT v.id, v.slug, w.slug AS workflow_slug, v.sanity_checks
             FROM workflow_versions v JOIN workflows w ON w.id = v.workflow_id
             WHERE v.id IN (SELECT p.workflow_version_id FROM projects p
                            JOIN workflow_versions v ON v.id = p.workflow_version_id
                            WHERE {condition})"
        ),
        values,
    ))
    .all(conn)
    .await
}

/// A task of a checked project, with its step.
#[derive(Debug, Clone, FromQueryResult)]
pub struct CheckedTask {
    pub id: i64,
    pub project_id: i64,
    pub step_slug: String,
    pub is_human: bool,
    pub status: TaskStatus,
    pub created_at: DateTime<Utc>,
    pub status_changed_at: DateTime<Utc>,
}

/// Every task of the projects of `checked`, by project and id.
pub async fn tasks<C: ConnectionTrait>(
    conn: &C,
    checked: Checked,
) -> Result<Vec<CheckedTask>, DbErr> {
    let (condition, values) = checked.condition();
    CheckedTask::find_by_statement(statement(
        conn.get_database_backend(),
        &format!(
            "SELECT t.id, t.project_id, s.slug AS step_slug, s.is_human, t.status, t.created_at,
                    t.status_changed_at
             FROM tasks t JOIN steps s ON s.id = t.step_id
             JOIN projects p ON p.id = t.project_id
             JOIN workflow_versions v ON v.id = p.workflow_version_id
             WHERE {condition} ORDER BY t.project_id, t.id"
        ),
        values,
    ))
    .all(conn)
    .await
}

/// An assignment of a task of a checked project, with its worker.
#[derive(Debug, Clone, FromQueryResult)]
pub struct CheckedAssignment {
    pub task_id: i64,
    pub username: String,
    pub slack_user_id: Option<String>,
    pub assignment_counter: i32,
    pub status: AssignmentStatus,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Every assignment of the tasks of the projects of `checked`, by task and counter.
pub async fn assignments<C: ConnectionTrait>(
    conn: &C,
    checked: Checked,
) -> Result<Vec<CheckedAssignment>, DbErr> {
    let (condition, values) = checked.condition();
    CheckedAssignment::find_by_statement(statement(
        conn.get_database_backend(),
        &format!(
            "SELECT a.task_id, wk.username, wk.slack_user_id, a.assignment_counter, a.status,
                    a.created_at, a.updated_at
             FROM task_assignments a JOIN workers wk ON wk.id = a.worker_id
             JOIN tasks t ON t.id = a.task_id
             JOIN projects p ON p.id = t.project_id
             JOIN workflow_versions v ON v.id = p.workflow_version_id
             WHERE {condition} ORDER BY a.task_id, a.assignment_counter"
        ),
        values,
    ))
    .all(conn)
    .await
}

/// When a check last fired for a project.
#[derive(Debug, Clone, FromQueryResult)]
pub struct LatestCheck {
    pub project_id: i64,
    pub check_slug: String,
    pub latest: DateTime<Utc>,
}

/// The latest firing of every check of the projects of `checked`.
pub async fn latest_checks<C: ConnectionTrait>(
    conn: &C,
    checked: Checked,
) -> Result<Vec<LatestCheck>, DbErr> {
    let (condition, values) = checked.condition();
    LatestCheck::find_by_statement(statement(
        conn.get_database_backend(),
        &format!(
            "SELECT c.project_id, c.check_slug, MAX(c.created_at) AS latest
             FROM sanity_checks c JOIN projects p ON p.id = c.project_id
             JOIN workflow_versions v ON v.id = p.workflow_version_id
             WHERE {condition} GROUP BY c.project_id, c.check_slug"
        ),
        values,
    ))
    .all(conn)
    .await
}

/// Every check fired for a project.
pub async fn checks_of<C: ConnectionTrait>(
    conn: &C,
    project_id: i64,
) -> Result<Vec<sanity_check::Model>, DbErr> {
    sanity_check::Entity::find()
        .filter(sanity_check::Column::ProjectId.eq(project_id))
        .all(conn)
        .await
}

/// Records that check `slug` fired (and was handled) for a project at `now`.
pub async fn record_fired<C: ConnectionTrait>(
    conn: &C,
    project_id: i64,
    slug: &str,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    sanity_check::ActiveModel {
        project_id: Set(project_id),
        check_slug: Set(slug.to_string()),
        created_at: Set(now),
        handled_at: Set(Some(now)),
        ..Default::default()
    }
    .insert(conn)
    .await?;
    Ok(())
}
