//! What the App Home shows (issue 12): who has opened it (`home_tabs`), a worker's open offers,
//! tasks and finished work, and for admins what needs staffing and the last days' figures.

use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbErr, FromQueryResult};

use super::enums::{AssignmentStatus, RequestStatus, TaskStatus};
use super::{sql, statement};

/// The format of the Home notices this release writes, and the newest it shows (a newer
/// release's notice is not shown by an older one).
pub const FORMAT: i32 = 1;

/// Remembers that `user` opened the Home tab (so it is kept up to date from now on).
pub async fn record_opened<C: ConnectionTrait>(
    conn: &C,
    user: &str,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    conn.execute_raw(statement(
        conn.get_database_backend(),
        "INSERT INTO home_tabs (slack_user_id, opened_at) VALUES ($1, $2)
         ON CONFLICT (slack_user_id) DO UPDATE SET opened_at = excluded.opened_at",
        vec![user.into(), now.into()],
    ))
    .await?;
    Ok(())
}

/// Keeps `notice` (the outcome of the user's last click on their Home) to show on top of it.
pub async fn set_notice<C: ConnectionTrait>(
    conn: &C,
    user: &str,
    notice: &str,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    conn.execute_raw(statement(
        conn.get_database_backend(),
        &format!(
            "INSERT INTO home_tabs (slack_user_id, opened_at, notice, notice_at, format)
             VALUES ($1, $2, $3, $2, {FORMAT})
             ON CONFLICT (slack_user_id) DO UPDATE SET notice = excluded.notice,
                 notice_at = excluded.notice_at, format = excluded.format"
        ),
        vec![user.into(), now.into(), notice.into()],
    ))
    .await?;
    Ok(())
}

/// The user's last notice, if it was set at `since` or later.
pub async fn notice<C: ConnectionTrait>(
    conn: &C,
    user: &str,
    since: DateTime<Utc>,
) -> Result<Option<String>, DbErr> {
    let row = conn
        .query_one_raw(statement(
            conn.get_database_backend(),
            &format!(
                "SELECT notice FROM home_tabs
                 WHERE slack_user_id = $1 AND notice IS NOT NULL AND notice_at >= $2
                   AND format <= {FORMAT}"
            ),
            vec![user.into(), since.into()],
        ))
        .await?;
    row.map(|r| r.try_get::<String>("", "notice")).transpose()
}

/// Slack ids of users with a Home whose view shows something of `task_ids`: admins (their
/// Home lists all work) and workers with an assignment on, or an offer of, one of the tasks;
/// and those of `users` who have a Home. One statement; cheap when few people have opened
/// the Home.
pub async fn users_seeing<C: ConnectionTrait>(
    conn: &C,
    task_ids: &[i64],
    users: &[String],
) -> Result<Vec<String>, DbErr> {
    if task_ids.is_empty() && users.is_empty() {
        return Ok(Vec::new());
    }
    // Integers only: inlined, so any number of tasks fits one statement.
    let ids = task_ids
        .iter()
        .map(i64::to_string)
        .chain(std::iter::once("-1".to_string()))
        .collect::<Vec<_>>()
        .join(",");
    let text = format!(
        "SELECT h.slack_user_id FROM home_tabs h
         LEFT JOIN workers w ON w.slack_user_id = h.slack_user_id
         WHERE w.is_admin
            OR EXISTS (SELECT 1 FROM task_assignments a
                       WHERE a.worker_id = w.id AND a.task_id IN ({ids}))
            OR EXISTS (SELECT 1 FROM staffing_inquiries i
                       JOIN staffing_requests r ON r.id = i.request_id
                       WHERE i.worker_id = w.id AND r.task_id IN ({ids}))
            OR h.slack_user_id IN (SELECT value FROM {list})
         ORDER BY h.slack_user_id",
        list = if conn.get_database_backend() == sea_orm::DatabaseBackend::Postgres {
            "jsonb_array_elements_text($1::jsonb)"
        } else {
            "json_each($1)"
        }
    );
    let users = serde_json::to_string(users).map_err(|e| DbErr::Json(e.to_string()))?;
    let rows = conn
        .query_all_raw(statement(
            conn.get_database_backend(),
            &text,
            vec![users.into()],
        ))
        .await?;
    rows.iter()
        .map(|row| row.try_get::<String>("", "slack_user_id"))
        .collect()
}

/// An open offer of a worker: its request (for the offer's content) and when it was made.
#[derive(Debug, Clone, FromQueryResult)]
pub struct OpenOfferRow {
    pub inquiry_id: i64,
    pub request_id: i64,
    pub offered_at: DateTime<Utc>,
}

/// The worker's unanswered offers of open requests for unfinished work, most urgent first
/// (project priority, then oldest).
pub async fn open_offers<C: ConnectionTrait>(
    conn: &C,
    worker_id: i64,
) -> Result<Vec<OpenOfferRow>, DbErr> {
    static SQL: LazyLock<String> = LazyLock::new(|| {
        sql(
            "SELECT i.id AS inquiry_id, i.request_id, i.created_at AS offered_at
             FROM staffing_inquiries i
             JOIN staffing_requests r ON r.id = i.request_id
             JOIN tasks t ON t.id = r.task_id
             JOIN projects p ON p.id = t.project_id
             WHERE i.worker_id = $1
               AND r.status <> {RequestStatus::Closed}
               AND t.status NOT IN ({TaskStatus::Complete}, {TaskStatus::Aborted})
               AND p.status NOT IN ({ProjectStatus::Completed}, {ProjectStatus::Aborted})
               AND NOT EXISTS (SELECT 1 FROM staffing_responses x WHERE x.inquiry_id = i.id)
             ORDER BY p.priority DESC, i.created_at, i.id",
        )
    });
    OpenOfferRow::find_by_statement(statement(
        conn.get_database_backend(),
        &SQL,
        vec![worker_id.into()],
    ))
    .all(conn)
    .await
}

/// One task as the Home lists it, with the worker's assignment on it.
#[derive(Debug, Clone, FromQueryResult)]
pub struct TaskRow {
    pub task_id: i64,
    pub task_status: TaskStatus,
    pub status_changed_at: DateTime<Utc>,
    pub assignment_counter: i32,
    pub assignment_status: AssignmentStatus,
    pub assignment_updated_at: DateTime<Utc>,
    pub project_id: i64,
    pub project_description: String,
    pub slack_channel_id: Option<String>,
    pub step_slug: String,
    pub step_description: String,
    pub version_slug: String,
}

const TASK_COLUMNS: &str = "t.id AS task_id, t.status AS task_status, t.status_changed_at,
    a.assignment_counter, a.status AS assignment_status, a.updated_at AS assignment_updated_at,
    p.id AS project_id, p.short_description AS project_description, p.slack_channel_id,
    s.slug AS step_slug, s.description AS step_description, v.slug AS version_slug";

const TASK_JOINS: &str = "JOIN tasks t ON t.id = a.task_id
    JOIN projects p ON p.id = t.project_id
    JOIN steps s ON s.id = t.step_id
    JOIN workflow_versions v ON v.id = p.workflow_version_id";

/// Tasks the worker is working on now (their assignment is `processing`), oldest change first.
pub async fn tasks_in_progress<C: ConnectionTrait>(
    conn: &C,
    worker_id: i64,
) -> Result<Vec<TaskRow>, DbErr> {
    static SQL: LazyLock<String> = LazyLock::new(|| {
        sql(&format!(
            "SELECT {TASK_COLUMNS} FROM task_assignments a {TASK_JOINS}
             WHERE a.worker_id = $1 AND a.status = {{AssignmentStatus::Processing}}
               AND t.status NOT IN ({{TaskStatus::Complete}}, {{TaskStatus::Aborted}})
               AND p.status NOT IN ({{ProjectStatus::Completed}}, {{ProjectStatus::Aborted}})
             ORDER BY t.status_changed_at, t.id"
        ))
    });
    TaskRow::find_by_statement(statement(
        conn.get_database_backend(),
        &SQL,
        vec![worker_id.into()],
    ))
    .all(conn)
    .await
}

/// The last `limit` tasks the worker finished their part of (submitted, or the task ended),
/// newest first.
pub async fn recently_finished<C: ConnectionTrait>(
    conn: &C,
    worker_id: i64,
    limit: u64,
) -> Result<Vec<TaskRow>, DbErr> {
    static SQL: LazyLock<String> = LazyLock::new(|| {
        sql(&format!(
            "SELECT {TASK_COLUMNS} FROM task_assignments a {TASK_JOINS}
             WHERE a.worker_id = $1
               AND (a.status <> {{AssignmentStatus::Processing}}
                    OR t.status IN ({{TaskStatus::Complete}}, {{TaskStatus::Aborted}})
                    OR p.status IN ({{ProjectStatus::Completed}}, {{ProjectStatus::Aborted}}))
             ORDER BY a.updated_at DESC, t.id DESC LIMIT $2"
        ))
    });
    TaskRow::find_by_statement(statement(
        conn.get_database_backend(),
        &SQL,
        vec![worker_id.into(), (limit as i64).into()],
    ))
    .all(conn)
    .await
}

/// An open request as the admins' Home lists it.
#[derive(Debug, Clone, FromQueryResult)]
pub struct OpenRequestRow {
    pub request_id: i64,
    pub task_id: i64,
    pub status: RequestStatus,
    pub required_role_counter: i32,
    pub created_at: DateTime<Utc>,
    pub project_description: String,
    pub step_slug: String,
    pub version_slug: String,
    pub offers: i64,
    pub declined: i64,
    /// Open requests in all (the rows are the first `limit`).
    pub total: i64,
    /// Everyone left is outside their working hours: the first starts then, in that zone.
    pub waiting_until: Option<DateTime<Utc>>,
    pub waiting_tz: Option<String>,
}

/// Open requests of unfinished work, most urgent first (project priority, then oldest), with
/// how many offers were sent and declined.
pub async fn open_requests<C: ConnectionTrait>(
    conn: &C,
    limit: u64,
) -> Result<Vec<OpenRequestRow>, DbErr> {
    static SQL: LazyLock<String> = LazyLock::new(|| {
        sql(
            "SELECT r.id AS request_id, r.task_id, r.status, r.required_role_counter,
                    r.created_at, p.short_description AS project_description,
                    s.slug AS step_slug, v.slug AS version_slug, r.waiting_until, r.waiting_tz,
                    (SELECT COUNT(*) FROM staffing_inquiries i WHERE i.request_id = r.id) AS offers,
                    (SELECT COUNT(*) FROM staffing_responses x
                     WHERE x.request_id = r.id AND NOT x.is_available) AS declined,
                    COUNT(*) OVER () AS total
             FROM staffing_requests r
             JOIN tasks t ON t.id = r.task_id
             JOIN projects p ON p.id = t.project_id
             JOIN steps s ON s.id = t.step_id
             JOIN workflow_versions v ON v.id = p.workflow_version_id
             WHERE r.status <> {RequestStatus::Closed}
               AND t.status NOT IN ({TaskStatus::Complete}, {TaskStatus::Aborted})
               AND p.status NOT IN ({ProjectStatus::Completed}, {ProjectStatus::Aborted})
             ORDER BY p.priority DESC, r.created_at, r.id LIMIT $1",
        )
    });
    OpenRequestRow::find_by_statement(statement(
        conn.get_database_backend(),
        &SQL,
        vec![(limit as i64).into()],
    ))
    .all(conn)
    .await
}

/// A task of the admins' Home: waiting with nobody asked, or in progress.
#[derive(Debug, Clone, FromQueryResult)]
pub struct AdminTaskRow {
    pub task_id: i64,
    pub task_status: TaskStatus,
    pub status_changed_at: DateTime<Utc>,
    pub project_description: String,
    pub step_slug: String,
    pub version_slug: String,
    /// The worker on it now (in progress only).
    pub worker: Option<String>,
    pub total: i64,
}

/// Human tasks of active projects waiting for a worker (`awaiting_processing`, or
/// `pending_review`) with no open request: nobody is being asked. Oldest first.
pub async fn waiting_unrequested<C: ConnectionTrait>(
    conn: &C,
    limit: u64,
) -> Result<Vec<AdminTaskRow>, DbErr> {
    static SQL: LazyLock<String> = LazyLock::new(|| {
        sql(
            "SELECT t.id AS task_id, t.status AS task_status, t.status_changed_at,
                    p.short_description AS project_description, s.slug AS step_slug,
                    v.slug AS version_slug, NULL AS worker, COUNT(*) OVER () AS total
             FROM tasks t
             JOIN projects p ON p.id = t.project_id
             JOIN steps s ON s.id = t.step_id
             JOIN workflow_versions v ON v.id = p.workflow_version_id
             WHERE t.status IN ({TaskStatus::AwaitingProcessing}, {TaskStatus::PendingReview})
               AND s.is_human
               AND p.status = {ProjectStatus::Active}
               AND NOT EXISTS (SELECT 1 FROM staffing_requests r
                               WHERE r.task_id = t.id AND r.status <> {RequestStatus::Closed})
             ORDER BY p.priority DESC, t.status_changed_at, t.id LIMIT $1",
        )
    });
    AdminTaskRow::find_by_statement(statement(
        conn.get_database_backend(),
        &SQL,
        vec![(limit as i64).into()],
    ))
    .all(conn)
    .await
}

/// Tasks of active projects someone is working on now, with that worker, oldest change first.
pub async fn in_progress<C: ConnectionTrait>(
    conn: &C,
    limit: u64,
) -> Result<Vec<AdminTaskRow>, DbErr> {
    static SQL: LazyLock<String> = LazyLock::new(|| {
        sql(
            "SELECT t.id AS task_id, t.status AS task_status, t.status_changed_at,
                    p.short_description AS project_description, s.slug AS step_slug,
                    v.slug AS version_slug, w.username AS worker, COUNT(*) OVER () AS total
             FROM task_assignments a
             JOIN workers w ON w.id = a.worker_id
             JOIN tasks t ON t.id = a.task_id
             JOIN projects p ON p.id = t.project_id
             JOIN steps s ON s.id = t.step_id
             JOIN workflow_versions v ON v.id = p.workflow_version_id
             WHERE a.status = {AssignmentStatus::Processing}
               AND t.status NOT IN ({TaskStatus::Complete}, {TaskStatus::Aborted})
               AND p.status = {ProjectStatus::Active}
             ORDER BY t.status_changed_at, t.id LIMIT $1",
        )
    });
    AdminTaskRow::find_by_statement(statement(
        conn.get_database_backend(),
        &SQL,
        vec![(limit as i64).into()],
    ))
    .all(conn)
    .await
}

/// One request opened since a time, for the staffing figures.
#[derive(Debug, Clone, FromQueryResult)]
pub struct RequestStatsRow {
    pub workflow_slug: String,
    pub created_at: DateTime<Utc>,
    /// When it was won (its winning answer), if it was.
    pub won_at: Option<DateTime<Utc>>,
    pub offers: i64,
    pub accepted: i64,
}

/// Every request opened at `since` or later, with its workflow, when it was won, and how many
/// of its offers were sent and accepted.
pub async fn requests_since<C: ConnectionTrait>(
    conn: &C,
    since: DateTime<Utc>,
) -> Result<Vec<RequestStatsRow>, DbErr> {
    static SQL: LazyLock<String> = LazyLock::new(|| {
        sql("SELECT w.slug AS workflow_slug, r.created_at,
                    (SELECT MIN(x.created_at) FROM staffing_responses x
                     WHERE x.request_id = r.id AND x.is_winner) AS won_at,
                    (SELECT COUNT(*) FROM staffing_inquiries i WHERE i.request_id = r.id) AS offers,
                    (SELECT COUNT(*) FROM staffing_responses x
                     WHERE x.request_id = r.id AND x.is_available) AS accepted
             FROM staffing_requests r
             JOIN tasks t ON t.id = r.task_id
             JOIN projects p ON p.id = t.project_id
             JOIN workflow_versions v ON v.id = p.workflow_version_id
             JOIN workflows w ON w.id = v.workflow_id
             WHERE r.created_at >= $1
             ORDER BY w.slug, r.id")
    });
    RequestStatsRow::find_by_statement(statement(
        conn.get_database_backend(),
        &SQL,
        vec![since.into()],
    ))
    .all(conn)
    .await
}

/// A task's version slug, project description and step slug (how messages name it).
pub async fn task_names<C: ConnectionTrait>(
    conn: &C,
    task_id: i64,
) -> Result<Option<(String, String, String)>, DbErr> {
    let row = conn
        .query_one_raw(statement(
            conn.get_database_backend(),
            "SELECT v.slug AS version_slug, p.short_description, s.slug AS step_slug
             FROM tasks t
             JOIN projects p ON p.id = t.project_id
             JOIN steps s ON s.id = t.step_id
             JOIN workflow_versions v ON v.id = p.workflow_version_id
             WHERE t.id = $1",
            vec![task_id.into()],
        ))
        .await?;
    row.map(|r| {
        Ok((
            r.try_get::<String>("", "version_slug")?,
            r.try_get::<String>("", "short_description")?,
            r.try_get::<String>("", "step_slug")?,
        ))
    })
    .transpose()
}
