//! Tasks and their assignments.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait,
    FromQueryResult, PaginatorTrait, QueryFilter, QueryOrder,
};
use serde_json::Value;

use super::entities::{task, task_assignment};
use super::{AssignmentStatus, ProjectStatus, TaskStatus, statement};

// ---- tasks ----

/// What a task's detailed description is rendered from: the task, its project, step, version
/// and workflow.
#[derive(Debug, Clone, FromQueryResult)]
pub struct DescriptionSource {
    pub task_id: i64,
    pub project_id: i64,
    pub short_description: String,
    pub priority: i32,
    pub project_status: ProjectStatus,
    pub project_created_at: DateTime<Utc>,
    pub project_data: Value,
    pub step_slug: String,
    pub step_name: String,
    pub step_description: String,
    pub detailed_description_function: Value,
    pub version_slug: String,
    pub workflow_slug: String,
    pub workflow_name: String,
    pub workflow_description: String,
}

/// The [`DescriptionSource`] of a task.
pub async fn description_source<C: ConnectionTrait>(
    conn: &C,
    task_id: i64,
) -> Result<Option<DescriptionSource>, DbErr> {
    DescriptionSource::find_by_statement(statement(
        conn.get_database_backend(),
        "SELECT t.id AS task_id, t.project_id, p.short_description, p.priority,
                p.status AS project_status, p.created_at AS project_created_at, p.project_data,
                s.slug AS step_slug, s.name AS step_name, s.description AS step_description,
                s.detailed_description_function, v.slug AS version_slug,
                w.slug AS workflow_slug, w.name AS workflow_name,
                w.description AS workflow_description
         FROM tasks t JOIN projects p ON p.id = t.project_id
         JOIN steps s ON s.id = t.step_id
         JOIN workflow_versions v ON v.id = p.workflow_version_id
         JOIN workflows w ON w.id = v.workflow_id
         WHERE t.id = $1",
        vec![task_id.into()],
    ))
    .one(conn)
    .await
}

pub async fn by_id<C: ConnectionTrait>(conn: &C, id: i64) -> Result<Option<task::Model>, DbErr> {
    task::Entity::find_by_id(id).one(conn).await
}

/// A project's tasks, in no particular order.
pub async fn of_project<C: ConnectionTrait>(
    conn: &C,
    project_id: i64,
) -> Result<Vec<task::Model>, DbErr> {
    task::Entity::find()
        .filter(task::Column::ProjectId.eq(project_id))
        .all(conn)
        .await
}

/// Every task, in no particular order.
pub async fn all<C: ConnectionTrait>(conn: &C) -> Result<Vec<task::Model>, DbErr> {
    task::Entity::find().all(conn).await
}

/// Tasks by id, of `project` and with `status` when given (`task list`).
pub async fn list<C: ConnectionTrait>(
    conn: &C,
    project: Option<i64>,
    status: Option<TaskStatus>,
) -> Result<Vec<task::Model>, DbErr> {
    let mut query = task::Entity::find().order_by_asc(task::Column::Id);
    if let Some(p) = project {
        query = query.filter(task::Column::ProjectId.eq(p));
    }
    if let Some(s) = status {
        query = query.filter(task::Column::Status.eq(s.as_str()));
    }
    query.all(conn).await
}

/// The project's task of step `step_id`, if it was created.
pub async fn of_project_at_step<C: ConnectionTrait>(
    conn: &C,
    project_id: i64,
    step_id: i64,
) -> Result<Option<task::Model>, DbErr> {
    task::Entity::find()
        .filter(task::Column::ProjectId.eq(project_id))
        .filter(task::Column::StepId.eq(step_id))
        .one(conn)
        .await
}

/// The project's tasks of the steps `step_ids`.
pub async fn of_project_at_steps<C: ConnectionTrait>(
    conn: &C,
    project_id: i64,
    step_ids: impl IntoIterator<Item = i64>,
) -> Result<Vec<task::Model>, DbErr> {
    task::Entity::find()
        .filter(task::Column::ProjectId.eq(project_id))
        .filter(task::Column::StepId.is_in(step_ids))
        .all(conn)
        .await
}

/// How many of the project's tasks of the steps `step_ids` are complete.
pub async fn count_complete_at_steps<C: ConnectionTrait>(
    conn: &C,
    project_id: i64,
    step_ids: impl IntoIterator<Item = i64>,
) -> Result<u64, DbErr> {
    task::Entity::find()
        .filter(task::Column::ProjectId.eq(project_id))
        .filter(task::Column::StepId.is_in(step_ids))
        .filter(task::Column::Status.eq(TaskStatus::Complete.as_str()))
        .count(conn)
        .await
}

/// Inserts a task of `step_id` waiting for processing.
pub async fn insert_awaiting<C: ConnectionTrait>(
    conn: &C,
    project_id: i64,
    step_id: i64,
    now: DateTime<Utc>,
) -> Result<task::Model, DbErr> {
    task::ActiveModel {
        project_id: Set(project_id),
        step_id: Set(step_id),
        status: Set(TaskStatus::AwaitingProcessing),
        created_at: Set(now),
        status_changed_at: Set(now),
        ..Default::default()
    }
    .insert(conn)
    .await
}

/// The count of a task's status changes, one more (see `task::Model::status_changes`).
fn one_more_change() -> sea_orm::sea_query::SimpleExpr {
    Expr::col(task::Column::StatusChanges).add(1)
}

/// The one row an update of task `task_id` returned.
fn updated_row(task_id: i64, rows: Vec<task::Model>) -> Result<task::Model, DbErr> {
    rows.into_iter()
        .next()
        .ok_or_else(|| DbErr::RecordNotFound(format!("task {task_id}")))
}

/// Writes `task` with a new status (and returns it as stored, its status changes counted).
pub async fn set_status<C: ConnectionTrait>(
    conn: &C,
    task: &task::Model,
    status: TaskStatus,
    now: DateTime<Utc>,
) -> Result<task::Model, DbErr> {
    let rows = task::Entity::update_many()
        .col_expr(task::Column::Status, Expr::value(status.as_str()))
        .col_expr(task::Column::StatusChangedAt, Expr::value(now))
        .col_expr(task::Column::StatusChanges, one_more_change())
        .filter(task::Column::Id.eq(task.id))
        .exec_with_returning(conn)
        .await?;
    updated_row(task.id, rows)
}

/// Sets task `task_id`'s status without reading it first; returns its count of status changes
/// (this one included).
pub async fn set_status_by_id<C: ConnectionTrait>(
    conn: &C,
    task_id: i64,
    status: TaskStatus,
    now: DateTime<Utc>,
) -> Result<i32, DbErr> {
    let row = conn
        .query_one_raw(statement(
            conn.get_database_backend(),
            "UPDATE tasks SET status = $1, status_changed_at = $2,
                 status_changes = status_changes + 1
             WHERE id = $3 RETURNING status_changes",
            vec![status.as_str().into(), now.into(), task_id.into()],
        ))
        .await?
        .ok_or_else(|| DbErr::RecordNotFound(format!("task {task_id}")))?;
    row.try_get::<i32>("", "status_changes")
}

/// Completes `task` with `output`; returns the task as stored.
pub async fn complete<C: ConnectionTrait>(
    conn: &C,
    task: &task::Model,
    output: Value,
    now: DateTime<Utc>,
) -> Result<task::Model, DbErr> {
    let rows = task::Entity::update_many()
        .col_expr(
            task::Column::Status,
            Expr::value(TaskStatus::Complete.as_str()),
        )
        .col_expr(task::Column::StatusChangedAt, Expr::value(now))
        .col_expr(task::Column::StatusChanges, one_more_change())
        .col_expr(task::Column::Output, Expr::value(output))
        .filter(task::Column::Id.eq(task.id))
        .exec_with_returning(conn)
        .await?;
    updated_row(task.id, rows)
}

/// Completes task `task_id` with `output` if it still awaits processing (a machine task
/// waiting for its automation); false when it no longer did.
pub async fn complete_if_awaiting<C: ConnectionTrait>(
    conn: &C,
    task_id: i64,
    output: Value,
    now: DateTime<Utc>,
) -> Result<bool, DbErr> {
    let done = task::Entity::update_many()
        .col_expr(
            task::Column::Status,
            Expr::value(TaskStatus::Complete.as_str()),
        )
        .col_expr(task::Column::StatusChangedAt, Expr::value(now))
        .col_expr(task::Column::StatusChanges, one_more_change())
        .col_expr(task::Column::Output, Expr::value(output))
        .col_expr(
            task::Column::MachineNextAttemptAt,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .filter(task::Column::Id.eq(task_id))
        .filter(task::Column::Status.eq(TaskStatus::AwaitingProcessing.as_str()))
        .exec(conn)
        .await?;
    Ok(done.rows_affected == 1)
}

/// Aborts every task of the project that is not complete (or aborted already); returns them
/// as stored.
pub async fn abort_unfinished<C: ConnectionTrait>(
    conn: &C,
    project_id: i64,
    now: DateTime<Utc>,
) -> Result<Vec<task::Model>, DbErr> {
    task::Entity::update_many()
        .col_expr(
            task::Column::Status,
            Expr::value(TaskStatus::Aborted.as_str()),
        )
        .col_expr(task::Column::StatusChangedAt, Expr::value(now))
        .col_expr(task::Column::StatusChanges, one_more_change())
        .filter(task::Column::ProjectId.eq(project_id))
        .filter(
            task::Column::Status
                .is_not_in([TaskStatus::Complete.as_str(), TaskStatus::Aborted.as_str()]),
        )
        .exec_with_returning(conn)
        .await
}

// ---- assignments ----

/// A task's assignments by counter.
pub async fn assignments_of<C: ConnectionTrait>(
    conn: &C,
    task_id: i64,
) -> Result<Vec<task_assignment::Model>, DbErr> {
    task_assignment::Entity::find()
        .filter(task_assignment::Column::TaskId.eq(task_id))
        .order_by_asc(task_assignment::Column::AssignmentCounter)
        .all(conn)
        .await
}

/// The assignments of the tasks `task_ids`, by counter.
pub async fn assignments_of_tasks<C: ConnectionTrait>(
    conn: &C,
    task_ids: Vec<i64>,
) -> Result<Vec<task_assignment::Model>, DbErr> {
    task_assignment::Entity::find()
        .filter(task_assignment::Column::TaskId.is_in(task_ids))
        .order_by_asc(task_assignment::Column::AssignmentCounter)
        .all(conn)
        .await
}

/// The workers assigned (any level, any status) to the tasks `task_ids`, once per assignment.
pub async fn assigned_worker_ids<C: ConnectionTrait>(
    conn: &C,
    task_ids: Vec<i64>,
) -> Result<Vec<i64>, DbErr> {
    Ok(task_assignment::Entity::find()
        .filter(task_assignment::Column::TaskId.is_in(task_ids))
        .all(conn)
        .await?
        .into_iter()
        .map(|a| a.worker_id)
        .collect())
}

/// A task's entry-level assignment (counter 0), if it has one.
pub async fn entry_level_assignment<C: ConnectionTrait>(
    conn: &C,
    task_id: i64,
) -> Result<Option<task_assignment::Model>, DbErr> {
    task_assignment::Entity::find()
        .filter(task_assignment::Column::TaskId.eq(task_id))
        .filter(task_assignment::Column::AssignmentCounter.eq(0))
        .one(conn)
        .await
}

/// A new assignment, in progress.
#[derive(Debug, Clone)]
pub struct NewAssignment {
    pub task_id: i64,
    pub worker_id: i64,
    pub counter: i32,
    pub in_progress_task_data: Value,
}

pub async fn insert_assignment<C: ConnectionTrait>(
    conn: &C,
    new: NewAssignment,
    now: DateTime<Utc>,
) -> Result<task_assignment::Model, DbErr> {
    task_assignment::ActiveModel {
        task_id: Set(new.task_id),
        worker_id: Set(new.worker_id),
        assignment_counter: Set(new.counter),
        status: Set(AssignmentStatus::Processing),
        in_progress_task_data: Set(new.in_progress_task_data),
        created_at: Set(now),
        updated_at: Set(now),
        handovers: Set(0),
        ..Default::default()
    }
    .insert(conn)
    .await
}

pub async fn set_assignment_status<C: ConnectionTrait>(
    conn: &C,
    assignment: &task_assignment::Model,
    status: AssignmentStatus,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    let mut am: task_assignment::ActiveModel = assignment.clone().into();
    am.status = Set(status);
    am.updated_at = Set(now);
    am.update(conn).await?;
    Ok(())
}

/// Hands `assignment` to `new_worker_id`, conditional on the worker and hand-over count the
/// caller saw (of two concurrent hand-overs one wins). False when it changed in the meantime.
pub async fn hand_over<C: ConnectionTrait>(
    conn: &C,
    assignment: &task_assignment::Model,
    new_worker_id: i64,
    now: DateTime<Utc>,
) -> Result<bool, DbErr> {
    let handed = task_assignment::Entity::update_many()
        .col_expr(
            task_assignment::Column::WorkerId,
            Expr::value(new_worker_id),
        )
        .col_expr(
            task_assignment::Column::Handovers,
            Expr::col(task_assignment::Column::Handovers).add(1),
        )
        .col_expr(task_assignment::Column::UpdatedAt, Expr::value(now))
        .filter(task_assignment::Column::Id.eq(assignment.id))
        .filter(task_assignment::Column::WorkerId.eq(assignment.worker_id))
        .filter(task_assignment::Column::Handovers.eq(assignment.handovers))
        .exec(conn)
        .await?;
    Ok(handed.rows_affected == 1)
}

/// True when `worker_id` has an assignment (not failed) on an unfinished task of some project
/// using Slack channel `channel`.
pub async fn busy_in_channel<C: ConnectionTrait>(
    conn: &C,
    worker_id: i64,
    channel: &str,
) -> Result<bool, DbErr> {
    let row = conn
        .query_one_raw(statement(
            conn.get_database_backend(),
            "SELECT EXISTS (
                 SELECT 1 FROM task_assignments a
                 JOIN tasks t ON t.id = a.task_id
                 JOIN projects p ON p.id = t.project_id
                 WHERE a.worker_id = $1 AND p.slack_channel_id = $2
                   AND a.status <> $3
                   AND t.status NOT IN ($4, $5)
             ) AS busy",
            vec![
                worker_id.into(),
                channel.into(),
                AssignmentStatus::Failed.as_str().into(),
                TaskStatus::Complete.as_str().into(),
                TaskStatus::Aborted.as_str().into(),
            ],
        ))
        .await?;
    Ok(match row {
        Some(row) => row.try_get::<bool>("", "busy")?,
        None => false,
    })
}

/// Tasks each of `worker_ids` holds in progress now (an assignment `processing`); workers
/// holding none are absent.
pub async fn active_counts<C: ConnectionTrait>(
    conn: &C,
    worker_ids: &[i64],
) -> Result<HashMap<i64, u32>, DbErr> {
    let processing = AssignmentStatus::Processing.as_str().into();
    assignments_per_worker(conn, worker_ids, "status = $1", processing).await
}

/// Assignments each of `worker_ids` took on since `since` (tasks won or assigned); workers with
/// none are absent.
pub async fn taken_on_since<C: ConnectionTrait>(
    conn: &C,
    worker_ids: &[i64],
    since: DateTime<Utc>,
) -> Result<HashMap<i64, u32>, DbErr> {
    assignments_per_worker(conn, worker_ids, "created_at >= $1", since.into()).await
}

/// The assignments matching `condition` (one bound value, `$1`) per worker of `worker_ids`
/// (one statement per 2,000 workers).
async fn assignments_per_worker<C: ConnectionTrait>(
    conn: &C,
    worker_ids: &[i64],
    condition: &str,
    value: sea_orm::Value,
) -> Result<HashMap<i64, u32>, DbErr> {
    #[derive(sea_orm::FromQueryResult)]
    struct Row {
        worker_id: i64,
        n: i64,
    }
    let mut out = HashMap::new();
    for chunk in worker_ids.chunks(2000) {
        let ids: Vec<String> = chunk.iter().map(i64::to_string).collect();
        let rows = Row::find_by_statement(statement(
            conn.get_database_backend(),
            &format!(
                "SELECT worker_id, COUNT(*) AS n FROM task_assignments
                 WHERE {condition} AND worker_id IN ({}) GROUP BY worker_id",
                ids.join(", ")
            ),
            vec![value.clone()],
        ))
        .all(conn)
        .await?;
        out.extend(
            rows.into_iter()
                .map(|r| (r.worker_id, u32::try_from(r.n).unwrap_or(u32::MAX))),
        );
    }
    Ok(out)
}
