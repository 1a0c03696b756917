//! Staffing requests: what an offer shows about one (its context), the requests due a batch,
//! the candidate pools, opening and closing requests, and what the loops stamp on them.

use std::collections::{HashMap, HashSet};
use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait,
    FromQueryResult, QueryFilter,
};
use serde_json::Value;

use super::entities::{staffing_request, task, worker};
use super::{
    Notify, ProjectStatus, RequestCause, RequestStatus, Role, is_postgres, pg_int_array, sql,
    statement,
};

/// What offers and channel messages show about a request: the request, its task, project,
/// step, workflow version and workflow.
#[derive(Debug, Clone, FromQueryResult)]
pub struct RequestContext {
    pub request_id: i64,
    pub task_id: i64,
    pub required_role_counter: i32,
    pub step_id: i64,
    pub project_id: i64,
    pub short_description: String,
    pub priority: i32,
    pub slack_channel_id: Option<String>,
    pub step_slug: String,
    pub step_name: String,
    pub step_description: String,
    pub detailed_description_function: Value,
    pub project_status: ProjectStatus,
    pub project_created_at: DateTime<Utc>,
    pub project_data: Value,
    pub version_slug: String,
    pub workflow_slug: String,
    pub workflow_name: String,
    pub workflow_description: String,
    /// How many certifications the step requires.
    pub required_count: i64,
    /// The detailed description as the staffing tick rendered and stored it for this request
    /// ([`crate::messages::Details`] as JSON); `None` until its first batch.
    pub stored_details: Option<Value>,
    /// The step has an `assignable_hours_function` ([`hours_functions`] reads it, once per step).
    pub has_hours_function: bool,
    /// The task's hours as the staffing tick computed them for this request: null until then,
    /// negative when the function gave none ([`RequestContext::task_hours`]).
    pub stored_task_hours: Option<f64>,
    /// Since its last round the request waits for working hours (until then).
    pub stored_waiting_until: Option<DateTime<Utc>>,
}

/// The format of the descriptions stored on requests (`staffing_requests.details`, a
/// [`crate::messages::Details`]) this release writes, and the newest it reads. A newer
/// release's is neither read nor overwritten: this release renders its own where it needs one
/// (the `1` in [`REQUEST_COLUMNS`] is this value).
pub const DETAILS_FORMAT: i32 = 1;

/// [`RequestContext`]'s columns, given `r` (the request) and [`REQUEST_JOINS`].
pub(crate) const REQUEST_COLUMNS: &str = "
r.id AS request_id, r.task_id, r.required_role_counter, t.step_id, t.project_id,
p.short_description, p.priority, p.slack_channel_id, s.slug AS step_slug, s.name AS step_name,
s.description AS step_description, s.detailed_description_function,
p.status AS project_status, p.created_at AS project_created_at, p.project_data,
v.slug AS version_slug, w.slug AS workflow_slug, w.name AS workflow_name,
w.description AS workflow_description,
CASE WHEN r.details_format <= 1 THEN r.details END AS stored_details,
(s.assignable_hours_function IS NOT NULL) AS has_hours_function,
r.task_hours AS stored_task_hours,
r.waiting_until AS stored_waiting_until,
(SELECT COUNT(*) FROM step_certifications sc WHERE sc.step_id = t.step_id) AS required_count";

/// From a request `r` to its task `t`, project `p`, step `s`, version `v` and workflow `w`.
pub(crate) const REQUEST_JOINS: &str = "
JOIN tasks t ON t.id = r.task_id
JOIN projects p ON p.id = t.project_id
JOIN steps s ON s.id = t.step_id
JOIN workflow_versions v ON v.id = p.workflow_version_id
JOIN workflows w ON w.id = v.workflow_id";

/// The context of one request.
pub async fn context<C: ConnectionTrait>(
    conn: &C,
    request_id: i64,
) -> Result<Option<RequestContext>, DbErr> {
    static SQL: LazyLock<String> = LazyLock::new(|| {
        format!("SELECT {REQUEST_COLUMNS} FROM staffing_requests r {REQUEST_JOINS} WHERE r.id = $1")
    });
    RequestContext::find_by_statement(statement(
        conn.get_database_backend(),
        &SQL,
        vec![request_id.into()],
    ))
    .one(conn)
    .await
}

/// Open requests due a batch (never batched, or last batched at `cutoff` or before) of
/// unfinished tasks in unfinished projects, highest project priority first, then oldest.
pub async fn due_a_batch<C: ConnectionTrait>(
    conn: &C,
    cutoff: DateTime<Utc>,
) -> Result<Vec<RequestContext>, DbErr> {
    static SQL: LazyLock<String> = LazyLock::new(|| {
        sql(&format!(
            "SELECT {REQUEST_COLUMNS} FROM staffing_requests r {REQUEST_JOINS}
             WHERE r.status = {{RequestStatus::Sending}}
               AND t.status NOT IN ({{TaskStatus::Complete}}, {{TaskStatus::Aborted}})
               AND p.status NOT IN ({{ProjectStatus::Completed}}, {{ProjectStatus::Aborted}})
               AND (r.last_batch_at IS NULL OR r.last_batch_at <= $1)
             ORDER BY p.priority DESC, r.created_at ASC, r.id ASC"
        ))
    });
    RequestContext::find_by_statement(statement(
        conn.get_database_backend(),
        &SQL,
        vec![cutoff.into()],
    ))
    .all(conn)
    .await
}

/// The `assignable_hours_function` of each of `step_ids` that has one (read once per step,
/// not once per request).
pub async fn hours_functions<C: ConnectionTrait>(
    conn: &C,
    step_ids: &[i64],
) -> Result<HashMap<i64, Value>, DbErr> {
    if step_ids.is_empty() {
        return Ok(HashMap::new());
    }
    let rows = super::entities::step::Entity::find()
        .filter(super::entities::step::Column::Id.is_in(step_ids.iter().copied()))
        .filter(super::entities::step::Column::AssignableHoursFunction.is_not_null())
        .all(conn)
        .await?;
    Ok(rows
        .into_iter()
        .filter_map(|s| Some((s.id, s.assignable_hours_function?)))
        .collect())
}

/// Stores each request's rendered detailed description (one statement per request: a request's
/// description is rendered once, before its first batch).
pub async fn set_details<C: ConnectionTrait>(
    conn: &C,
    details: &[(i64, Value)],
) -> Result<(), DbErr> {
    for (request_id, value) in details {
        conn.execute_raw(statement(
            conn.get_database_backend(),
            &format!(
                "UPDATE staffing_requests SET details = $1, details_format = {DETAILS_FORMAT}
                 WHERE id = $2 AND details_format <= {DETAILS_FORMAT}"
            ),
            vec![value.clone().into(), (*request_id).into()],
        ))
        .await?;
    }
    Ok(())
}

/// Stores each request's task hours (negative: none known), computed once per request: one
/// statement per distinct value (the requests of one step share theirs), chunked.
pub async fn set_task_hours<C: ConnectionTrait>(
    conn: &C,
    hours: &[(i64, f64)],
) -> Result<(), DbErr> {
    let mut by_value: HashMap<u64, Vec<String>> = HashMap::new();
    for (request_id, h) in hours {
        by_value
            .entry(h.to_bits())
            .or_default()
            .push(request_id.to_string());
    }
    for (bits, ids) in by_value {
        for chunk in ids.chunks(1000) {
            conn.execute_raw(statement(
                conn.get_database_backend(),
                &format!(
                    "UPDATE staffing_requests SET task_hours = $1 WHERE id IN ({})",
                    chunk.join(", ")
                ),
                vec![f64::from_bits(bits).into()],
            ))
            .await?;
        }
    }
    Ok(())
}

/// Requests `waiting` for working hours: (request, until, in which time zone); those of
/// `were_waiting` not among them wait no more.
pub async fn set_waiting<C: ConnectionTrait>(
    conn: &C,
    were_waiting: &[i64],
    waiting: &[(i64, DateTime<Utc>, String)],
) -> Result<(), DbErr> {
    let backend = conn.get_database_backend();
    let waiting_ids: HashSet<i64> = waiting.iter().map(|w| w.0).collect();
    let cleared: Vec<String> = were_waiting
        .iter()
        .filter(|id| !waiting_ids.contains(id))
        .map(i64::to_string)
        .collect();
    for chunk in cleared.chunks(1000) {
        conn.execute_raw(statement(
            backend,
            &format!(
                "UPDATE staffing_requests SET waiting_until = NULL, waiting_tz = NULL
                 WHERE waiting_until IS NOT NULL AND id IN ({})",
                chunk.join(", ")
            ),
            vec![],
        ))
        .await?;
    }
    for (request_id, until, tz) in waiting {
        conn.execute_raw(statement(
            backend,
            "UPDATE staffing_requests SET waiting_until = $1, waiting_tz = $2 WHERE id = $3",
            vec![(*until).into(), tz.clone().into(), (*request_id).into()],
        ))
        .await?;
    }
    Ok(())
}

/// Worker ids per read of the candidate pool on SQLite.
const CANDIDATE_RANGE: i64 = 25_000;

/// A worker who may be offered a step.
#[derive(Debug, Clone, FromQueryResult)]
pub struct Candidate {
    pub worker_id: i64,
    pub slack_user_id: Option<String>,
    pub email: String,
    pub notify: Notify,
    pub first_name: String,
    pub priority: i32,
    /// Auto-staffing: the most hours a day (0: never auto-staffed).
    pub max_autostaff_hours_per_day: f64,
    /// Working hours: their time zone and their own hours and days, if set; when Slack was
    /// last asked for the time zone.
    pub tz: Option<String>,
    pub tz_checked_at: Option<DateTime<Utc>>,
    pub working_hours: Option<String>,
    pub working_days: Option<String>,
}

/// The candidate pool of a step at a role: every one of the step's `required_count`
/// certifications held at that role, staffbot enabled, a Slack id or (preferring email) an email
/// address, no returned work waiting.
pub async fn candidates<C: ConnectionTrait>(
    conn: &C,
    step_id: i64,
    role: Role,
    required_count: i64,
) -> Result<Vec<Candidate>, DbErr> {
    const SELECT: &str =
        "SELECT w.id AS worker_id, w.slack_user_id, w.email, w.notify, w.first_name,
                    MAX(wc.staffing_priority) AS priority, w.max_autostaff_hours_per_day,
                    w.tz, w.tz_checked_at, w.working_hours, w.working_days
             FROM workers w
             JOIN worker_certifications wc
               ON wc.worker_id = w.id AND wc.role = $1 AND wc.staffbot_enabled = TRUE
             JOIN step_certifications sc
               ON sc.certification_id = wc.certification_id AND sc.step_id = $2
             WHERE (w.slack_user_id IS NOT NULL OR (w.notify <> {Notify::Slack} AND w.email <> ''))
               AND NOT EXISTS (SELECT 1 FROM task_assignments ra JOIN tasks rt ON rt.id = ra.task_id
                               WHERE ra.worker_id = w.id
                                 AND ra.status = {AssignmentStatus::Processing}
                                 AND rt.status = {TaskStatus::PostReviewProcessing})";
    const GROUP: &str = "GROUP BY w.id, w.slack_user_id, w.email, w.notify, w.first_name,
                      w.max_autostaff_hours_per_day, w.tz, w.tz_checked_at, w.working_hours,
                      w.working_days
             HAVING COUNT(DISTINCT sc.certification_id) = $3";
    let backend = conn.get_database_backend();
    let params = || vec![role.as_str().into(), step_id.into(), required_count.into()];
    if is_postgres(conn) {
        static SQL: LazyLock<String> = LazyLock::new(|| sql(&format!("{SELECT} {GROUP}")));
        return Candidate::find_by_statement(statement(backend, &SQL, params()))
            .all(conn)
            .await;
    }
    // SQLite's driver keeps every value of a fetched row as an allocation of its own (a copied
    // `sqlite3_value`), so a pool of 100,000 workers read at once held about 70 MiB until it
    // was converted: read it in ranges of worker ids instead (each range read once).
    static RANGE: LazyLock<String> =
        LazyLock::new(|| sql(&format!("{SELECT} AND w.id >= $4 AND w.id < $5 {GROUP}")));
    let mut pool = Vec::new();
    for (from, to) in super::workers::id_ranges(conn, CANDIDATE_RANGE).await? {
        let mut values = params();
        values.extend([from.into(), to.into()]);
        pool.extend(
            Candidate::find_by_statement(statement(backend, &RANGE, values))
                .all(conn)
                .await?,
        );
    }
    Ok(pool)
}

#[derive(Debug, FromQueryResult)]
struct Exclusion {
    request_id: i64,
    worker_id: i64,
}

/// Who may not be asked, per request: workers asked already, workers on the task already,
/// workers whose offers of it Slack refused `max_failures` times.
pub async fn exclusions<C: ConnectionTrait>(
    conn: &C,
    request_ids: &[i64],
    max_failures: i64,
) -> Result<HashMap<i64, HashSet<i64>>, DbErr> {
    let mut map: HashMap<i64, HashSet<i64>> = HashMap::new();
    if request_ids.is_empty() {
        return Ok(map);
    }
    let rows = if is_postgres(conn) {
        // One array parameter: one statement text, prepared once, for any number of requests.
        static SQL: &str = "SELECT i.request_id, i.worker_id FROM staffing_inquiries i
             WHERE i.request_id = ANY($1::bigint[])
             UNION ALL
             SELECT r.id AS request_id, a.worker_id FROM staffing_requests r
             JOIN task_assignments a ON a.task_id = r.task_id WHERE r.id = ANY($1::bigint[])
             UNION ALL
             SELECT f.request_id, f.worker_id FROM offer_failures f
             WHERE f.request_id = ANY($1::bigint[])
             GROUP BY f.request_id, f.worker_id HAVING COUNT(*) >= $2";
        let values = vec![
            pg_int_array(request_ids.iter().copied()).into(),
            max_failures.into(),
        ];
        Exclusion::find_by_statement(statement(conn.get_database_backend(), SQL, values))
            .all(conn)
            .await?
    } else {
        exclusions_sqlite(conn, request_ids, max_failures).await?
    };
    for row in rows {
        map.entry(row.request_id).or_default().insert(row.worker_id);
    }
    Ok(map)
}

/// [`exclusions`] on SQLite: the ids as a list of parameters.
async fn exclusions_sqlite<C: ConnectionTrait>(
    conn: &C,
    request_ids: &[i64],
    max_failures: i64,
) -> Result<Vec<Exclusion>, DbErr> {
    let n = request_ids.len();
    let list = (1..=n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!(
        "SELECT i.request_id, i.worker_id FROM staffing_inquiries i WHERE i.request_id IN ({list})
         UNION ALL
         SELECT r.id AS request_id, a.worker_id FROM staffing_requests r
         JOIN task_assignments a ON a.task_id = r.task_id WHERE r.id IN ({list})
         UNION ALL
         SELECT f.request_id, f.worker_id FROM offer_failures f WHERE f.request_id IN ({list})
         GROUP BY f.request_id, f.worker_id HAVING COUNT(*) >= ${}",
        n + 1
    );
    let mut values: Vec<sea_orm::Value> = request_ids.iter().map(|&id| id.into()).collect();
    values.push(max_failures.into());
    Exclusion::find_by_statement(statement(conn.get_database_backend(), &sql, values))
        .all(conn)
        .await
}

/// Marks requests as batched at `now`, with their new status (`sending` while there is more
/// of the pool, `done_sending` once it is exhausted); only requests still `sending` change.
pub async fn set_batched<C: ConnectionTrait>(
    conn: &C,
    ids: &[i64],
    status: RequestStatus,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    if ids.is_empty() {
        return Ok(());
    }
    if is_postgres(conn) {
        static SQL: LazyLock<String> = LazyLock::new(|| {
            sql(
                "UPDATE staffing_requests SET last_batch_at = $1, status = $2
                 WHERE status = {RequestStatus::Sending} AND id = ANY($3::bigint[])",
            )
        });
        let values = vec![
            now.into(),
            status.as_str().into(),
            pg_int_array(ids.iter().copied()).into(),
        ];
        conn.execute_raw(statement(conn.get_database_backend(), &SQL, values))
            .await?;
        return Ok(());
    }
    staffing_request::Entity::update_many()
        .col_expr(staffing_request::Column::LastBatchAt, Expr::value(now))
        .col_expr(
            staffing_request::Column::Status,
            Expr::value(status.as_str()),
        )
        .filter(staffing_request::Column::Status.eq(RequestStatus::Sending.as_str()))
        .filter(staffing_request::Column::Id.is_in(ids.iter().copied()))
        .exec(conn)
        .await?;
    Ok(())
}

/// Compare-and-set for a winner: closes the request unless it is closed already. Of all
/// concurrent accepts, exactly one gets true.
pub async fn close_for_winner<C: ConnectionTrait>(
    conn: &C,
    request_id: i64,
    now: DateTime<Utc>,
) -> Result<bool, DbErr> {
    change_status(conn, request_id, None, RequestStatus::Closed, now).await
}

/// Closes the request if its pool was exhausted (`done_sending`); true when it did.
pub async fn close_if_done_sending<C: ConnectionTrait>(
    conn: &C,
    request_id: i64,
    now: DateTime<Utc>,
) -> Result<bool, DbErr> {
    let from = Some(RequestStatus::DoneSending);
    change_status(conn, request_id, from, RequestStatus::Closed, now).await
}

/// A request whose pool seemed exhausted sends again.
pub async fn send_again<C: ConnectionTrait>(
    conn: &C,
    request_id: i64,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    let from = Some(RequestStatus::DoneSending);
    change_status(conn, request_id, from, RequestStatus::Sending, now).await?;
    Ok(())
}

/// Moves request `request_id` to status `to` (stamping `closed_at` when it closes) if its
/// status is `from` (`None`: any status but `to`); true when it changed.
async fn change_status<C: ConnectionTrait>(
    conn: &C,
    request_id: i64,
    from: Option<RequestStatus>,
    to: RequestStatus,
    now: DateTime<Utc>,
) -> Result<bool, DbErr> {
    use staffing_request::Column;
    let mut update = staffing_request::Entity::update_many()
        .col_expr(Column::Status, Expr::value(to.as_str()))
        .filter(Column::Id.eq(request_id));
    if to == RequestStatus::Closed {
        update = update.col_expr(Column::ClosedAt, Expr::value(now));
    }
    update = match from {
        Some(from) => update.filter(Column::Status.eq(from.as_str())),
        None => update.filter(Column::Status.ne(to.as_str())),
    };
    Ok(update.exec(conn).await?.rows_affected == 1)
}

/// Closes the task's open requests (only the one for role counter `counter`, if given);
/// returns the ids of those it closed.
pub async fn close_open_of_task<C: ConnectionTrait>(
    conn: &C,
    task_id: i64,
    counter: Option<i32>,
    now: DateTime<Utc>,
) -> Result<Vec<i64>, DbErr> {
    static SQL: LazyLock<[String; 2]> = LazyLock::new(|| {
        let base = sql(
            "UPDATE staffing_requests SET status = {RequestStatus::Closed}, closed_at = $1
                        WHERE task_id = $2 AND status <> {RequestStatus::Closed}",
        );
        [
            format!("{base} RETURNING id"),
            format!("{base} AND required_role_counter = $3 RETURNING id"),
        ]
    });
    let mut values: Vec<sea_orm::Value> = vec![now.into(), task_id.into()];
    let sql = match counter {
        Some(counter) => {
            values.push(counter.into());
            &SQL[1]
        }
        None => &SQL[0],
    };
    let rows = conn
        .query_all_raw(statement(conn.get_database_backend(), sql, values))
        .await?;
    rows.iter().map(|row| row.try_get("", "id")).collect()
}

/// Opens a request (the caller closed the task's others first).
pub async fn insert<C: ConnectionTrait>(
    conn: &C,
    task_id: i64,
    counter: i32,
    cause: RequestCause,
    now: DateTime<Utc>,
) -> Result<staffing_request::Model, DbErr> {
    staffing_request::ActiveModel {
        task_id: Set(task_id),
        required_role_counter: Set(counter),
        cause: Set(cause),
        status: Set(RequestStatus::Sending),
        created_at: Set(now),
        ..Default::default()
    }
    .insert(conn)
    .await
}

/// The task's open request for role counter `counter`, if any.
pub async fn open_for_counter<C: ConnectionTrait>(
    conn: &C,
    task_id: i64,
    counter: i32,
) -> Result<Option<staffing_request::Model>, DbErr> {
    staffing_request::Entity::find()
        .filter(staffing_request::Column::TaskId.eq(task_id))
        .filter(staffing_request::Column::RequiredRoleCounter.eq(counter))
        .filter(staffing_request::Column::Status.ne(RequestStatus::Closed.as_str()))
        .one(conn)
        .await
}

/// What a loop reported, stamped on the rows it reported so they are not reported again too
/// soon.
#[derive(Debug, Clone, Copy)]
pub enum Stamp {
    /// `workers.last_reminded_at`.
    WorkersReminded,
    /// `staffing_requests.last_warned_at`.
    RequestsWarned,
    /// `tasks.machine_warned_at`.
    MachineTasksWarned,
}

/// Ids one stamping statement binds at most (far under every backend's parameter limit).
const IDS_PER_STAMP: usize = 30_000;

/// Sets the [`Stamp`]'s column of rows `ids` to `now`.
pub async fn stamp<C: ConnectionTrait>(
    conn: &C,
    which: Stamp,
    ids: &[i64],
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    for chunk in ids.chunks(IDS_PER_STAMP) {
        let ids = chunk.iter().copied();
        match which {
            Stamp::WorkersReminded => {
                worker::Entity::update_many()
                    .col_expr(worker::Column::LastRemindedAt, Expr::value(now))
                    .filter(worker::Column::Id.is_in(ids))
                    .exec(conn)
                    .await?;
            }
            Stamp::RequestsWarned => {
                staffing_request::Entity::update_many()
                    .col_expr(staffing_request::Column::LastWarnedAt, Expr::value(now))
                    .filter(staffing_request::Column::Id.is_in(ids))
                    .exec(conn)
                    .await?;
            }
            Stamp::MachineTasksWarned => {
                task::Entity::update_many()
                    .col_expr(task::Column::MachineWarnedAt, Expr::value(now))
                    .filter(task::Column::Id.is_in(ids))
                    .exec(conn)
                    .await?;
            }
        }
    }
    Ok(())
}

/// When the earliest open request (still sending) is due its next batch, given the batch
/// frequency: now for one that never had a batch (`staffbot simulate` schedules its rounds by
/// this).
pub async fn next_batch_due<C: ConnectionTrait>(
    conn: &C,
    frequency: chrono::Duration,
) -> Result<Option<DateTime<Utc>>, DbErr> {
    let sending = staffing_request::Entity::find()
        .filter(staffing_request::Column::Status.eq(RequestStatus::Sending.as_str()))
        .all(conn)
        .await?;
    Ok(sending
        .iter()
        .map(|r| r.last_batch_at.map_or(r.created_at, |at| at + frequency))
        .min())
}

#[cfg(test)]
mod format_tests {
    #[test]
    fn request_columns_read_the_details_of_this_release_s_format_only() {
        let expected = format!(
            "r.details_format <= {} THEN r.details",
            super::DETAILS_FORMAT
        );
        assert!(super::REQUEST_COLUMNS.contains(&expected));
    }
}
