//! The machine loop's queries: machine tasks due to run, and failed runs.

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbErr, FromQueryResult};
use serde_json::Value;

use super::{ProjectStatus, TaskStatus, statement};

/// A machine task due to run.
#[derive(Debug, Clone, FromQueryResult)]
pub struct DueTask {
    pub task_id: i64,
    pub machine_attempts: i32,
    pub step_slug: String,
    pub execution_function: Option<Value>,
}

/// The format of the machine state (`tasks.machine_*`) this release writes, and the newest it
/// reads: a task whose state a newer release wrote is left to that release.
pub const FORMAT: i32 = 1;

/// Machine tasks awaiting processing in active projects whose next attempt is due at `now`,
/// by project priority (highest first), then task id. Tasks whose machine state is in a newer
/// release's format are left to it.
pub async fn due<C: ConnectionTrait>(conn: &C, now: DateTime<Utc>) -> Result<Vec<DueTask>, DbErr> {
    DueTask::find_by_statement(statement(
        conn.get_database_backend(),
        &format!(
            "SELECT t.id AS task_id, t.machine_attempts, s.slug AS step_slug, s.execution_function
         FROM tasks t
         JOIN steps s ON s.id = t.step_id
         JOIN projects p ON p.id = t.project_id
         WHERE s.is_human = FALSE
           AND t.status = $2
           AND p.status = $3
           AND (t.machine_next_attempt_at IS NULL OR t.machine_next_attempt_at <= $1)
           AND t.machine_format <= {FORMAT}
         ORDER BY p.priority DESC, t.id"
        ),
        vec![
            now.into(),
            TaskStatus::AwaitingProcessing.as_str().into(),
            ProjectStatus::Active.as_str().into(),
        ],
    ))
    .all(conn)
    .await
}

/// Records a failed run of a task still awaiting processing: its attempt count, its error, and
/// when to try next.
pub async fn record_failure<C: ConnectionTrait>(
    conn: &C,
    task_id: i64,
    attempts: i32,
    error: &str,
    next_attempt_at: DateTime<Utc>,
) -> Result<(), DbErr> {
    conn.execute_raw(statement(
        conn.get_database_backend(),
        &format!(
            "UPDATE tasks SET machine_attempts = $1, machine_last_error = $2,
                 machine_next_attempt_at = $3, machine_format = {FORMAT}
             WHERE id = $4 AND status = $5"
        ),
        vec![
            attempts.into(),
            error.into(),
            next_attempt_at.into(),
            task_id.into(),
            TaskStatus::AwaitingProcessing.as_str().into(),
        ],
    ))
    .await?;
    Ok(())
}
