//! What the warning loop reports: requests without a winner, machine tasks whose automation
//! keeps failing.

use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbErr, FromQueryResult};

use super::{sql, statement};

/// A task's latest request, older than the cutoff, without a winner.
#[derive(Debug, Clone, FromQueryResult)]
pub struct Unstaffed {
    pub request_id: i64,
    pub task_id: i64,
    pub requested_at: DateTime<Utc>,
    pub last_warned_at: Option<DateTime<Utc>>,
    pub step_slug: String,
    pub step_position: i32,
    pub version_slug: String,
    pub short_description: String,
    /// Whether anyone was offered it.
    pub asked: bool,
}

/// Tasks of unfinished projects whose latest request was opened before `cutoff`, has no winner,
/// was not reported since `cutoff`, and did not end by an assignment; by step, version, task.
///
/// "Latest" is "no later request of the task" and "asked" an `EXISTS`: PostgreSQL plans both as
/// hash (anti-)joins; the earlier `r.id = (SELECT MAX(…))` and per-request `COUNT(*)` were
/// estimated so badly that it chose nested loops and JIT compilation (see
/// `docs/benchmarks-notes.md`).
pub async fn unstaffed<C: ConnectionTrait>(
    conn: &C,
    cutoff: DateTime<Utc>,
) -> Result<Vec<Unstaffed>, DbErr> {
    static SQL: LazyLock<String> = LazyLock::new(|| {
        sql(
            "SELECT r.id AS request_id, r.task_id, r.created_at AS requested_at, r.last_warned_at,
                    s.slug AS step_slug, s.position AS step_position, v.slug AS version_slug,
                    p.short_description,
                    EXISTS (SELECT 1 FROM staffing_inquiries i WHERE i.request_id = r.id) AS asked
             FROM staffing_requests r
             JOIN tasks t ON t.id = r.task_id
             JOIN projects p ON p.id = t.project_id
             JOIN steps s ON s.id = t.step_id
             JOIN workflow_versions v ON v.id = p.workflow_version_id
             WHERE NOT EXISTS (SELECT 1 FROM staffing_requests r2
                               WHERE r2.task_id = r.task_id AND r2.id > r.id)
               AND t.status NOT IN ({TaskStatus::Complete}, {TaskStatus::Aborted})
               AND p.status NOT IN ({ProjectStatus::Completed}, {ProjectStatus::Aborted})
               AND r.created_at < $1
               AND (r.last_warned_at IS NULL OR r.last_warned_at < $1)
               AND NOT EXISTS (SELECT 1 FROM staffing_responses x
                               WHERE x.request_id = r.id AND x.is_winner = TRUE)
               AND NOT (r.status = {RequestStatus::Closed} AND EXISTS (
                   SELECT 1 FROM task_assignments a
                   WHERE a.task_id = r.task_id AND a.assignment_counter = r.required_role_counter
                     AND a.updated_at >= r.created_at))
             ORDER BY s.position, v.slug, r.task_id",
        )
    });
    Unstaffed::find_by_statement(statement(
        conn.get_database_backend(),
        &SQL,
        vec![cutoff.into()],
    ))
    .all(conn)
    .await
}

/// A machine task whose automation failed.
#[derive(Debug, Clone, FromQueryResult)]
pub struct MachineWaiting {
    pub task_id: i64,
    pub machine_warned_at: Option<DateTime<Utc>>,
    pub machine_last_error: String,
    pub step_slug: String,
    pub step_position: i32,
    pub version_slug: String,
    pub short_description: String,
}

/// Machine tasks of active projects whose automation failed, created before `cutoff` and not
/// reported since; by step, version, task.
pub async fn machine_waiting<C: ConnectionTrait>(
    conn: &C,
    cutoff: DateTime<Utc>,
) -> Result<Vec<MachineWaiting>, DbErr> {
    static SQL: LazyLock<String> = LazyLock::new(|| {
        sql(
            "SELECT t.id AS task_id, t.machine_warned_at, t.machine_last_error,
                    s.slug AS step_slug, s.position AS step_position, v.slug AS version_slug,
                    p.short_description
             FROM tasks t
             JOIN steps s ON s.id = t.step_id
             JOIN projects p ON p.id = t.project_id
             JOIN workflow_versions v ON v.id = p.workflow_version_id
             WHERE s.is_human = FALSE
               AND t.status = {TaskStatus::AwaitingProcessing}
               AND p.status = {ProjectStatus::Active}
               AND t.machine_last_error IS NOT NULL
               AND t.created_at < $1
               AND (t.machine_warned_at IS NULL OR t.machine_warned_at < $1)
             ORDER BY s.position, v.slug, t.id",
        )
    });
    MachineWaiting::find_by_statement(statement(
        conn.get_database_backend(),
        &SQL,
        vec![cutoff.into()],
    ))
    .all(conn)
    .await
}
