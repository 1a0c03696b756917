//! Offers (`staffing_inquiries`), their answers (`staffing_responses`) and the offers Slack
//! refused (`offer_failures`).

use std::collections::HashMap;
use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait,
    FromQueryResult, PaginatorTrait, QueryFilter,
};

use super::entities::{staffing_inquiry, staffing_response};
use super::requests::{REQUEST_COLUMNS, REQUEST_JOINS, RequestContext};
use super::{
    AssignmentStatus, InquiryMethod, Notify, ProjectStatus, RequestStatus, TaskStatus, is_postgres,
    pg_int_array, sql, statement,
};

/// Inserts offers of `(request_id, worker_id)`; returns their ids by that pair.
pub async fn insert_many<C: ConnectionTrait>(
    conn: &C,
    offers: &[(i64, i64)],
    now: DateTime<Utc>,
) -> Result<HashMap<(i64, i64), i64>, DbErr> {
    if offers.is_empty() {
        return Ok(HashMap::new());
    }
    if is_postgres(conn) {
        // Each column one array parameter: one statement text, prepared once, for any number
        // of offers.
        static SQL: LazyLock<String> = LazyLock::new(|| {
            sql(
                "INSERT INTO staffing_inquiries (request_id, worker_id, method, created_at)
                 SELECT u.r, u.w, {InquiryMethod::Slack}, $3
                 FROM UNNEST($1::bigint[], $2::bigint[]) WITH ORDINALITY AS u(r, w, n)
                 ORDER BY u.n
                 RETURNING id, request_id, worker_id",
            )
        });
        let rows = conn
            .query_all_raw(statement(
                conn.get_database_backend(),
                &SQL,
                vec![
                    pg_int_array(offers.iter().map(|&(r, _)| r)).into(),
                    pg_int_array(offers.iter().map(|&(_, w)| w)).into(),
                    now.into(),
                ],
            ))
            .await?;
        return rows
            .iter()
            .map(|row| {
                Ok((
                    (
                        row.try_get("", "request_id")?,
                        row.try_get("", "worker_id")?,
                    ),
                    row.try_get("", "id")?,
                ))
            })
            .collect();
    }
    let rows = offers
        .iter()
        .map(|&(request_id, worker_id)| staffing_inquiry::ActiveModel {
            request_id: Set(request_id),
            worker_id: Set(worker_id),
            method: Set(InquiryMethod::Slack),
            created_at: Set(now),
            ..Default::default()
        });
    Ok(staffing_inquiry::Entity::insert_many(rows)
        .exec_with_returning(conn)
        .await?
        .into_iter()
        .map(|i| ((i.request_id, i.worker_id), i.id))
        .collect())
}

/// The inquiry behind an auto-staffing (Orchestra's `PREVIOUSLY_OPTED_IN`): nobody is asked;
/// it carries the winning response, so the task counts among the worker's wins.
pub async fn insert_auto<C: ConnectionTrait>(
    conn: &C,
    request_id: i64,
    worker_id: i64,
    now: DateTime<Utc>,
) -> Result<i64, DbErr> {
    Ok(staffing_inquiry::ActiveModel {
        request_id: Set(request_id),
        worker_id: Set(worker_id),
        method: Set(InquiryMethod::PreviouslyOptedIn),
        created_at: Set(now),
        ..Default::default()
    }
    .insert(conn)
    .await?
    .id)
}

/// One offer.
pub async fn find<C: ConnectionTrait>(
    conn: &C,
    inquiry_id: i64,
) -> Result<Option<staffing_inquiry::Model>, DbErr> {
    staffing_inquiry::Entity::find_by_id(inquiry_id)
        .one(conn)
        .await
}

/// The offer of `request_id` made to `worker_id`, if any.
pub async fn of_worker<C: ConnectionTrait>(
    conn: &C,
    request_id: i64,
    worker_id: i64,
) -> Result<Option<staffing_inquiry::Model>, DbErr> {
    staffing_inquiry::Entity::find()
        .filter(staffing_inquiry::Column::RequestId.eq(request_id))
        .filter(staffing_inquiry::Column::WorkerId.eq(worker_id))
        .one(conn)
        .await
}

/// Which offer: its id, request and worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OfferKey {
    pub id: i64,
    pub request_id: i64,
    pub worker_id: i64,
}

impl From<&staffing_inquiry::Model> for OfferKey {
    fn from(i: &staffing_inquiry::Model) -> OfferKey {
        OfferKey {
            id: i.id,
            request_id: i.request_id,
            worker_id: i.worker_id,
        }
    }
}

/// Records an answer to an offer.
pub async fn insert_response<C: ConnectionTrait>(
    conn: &C,
    inquiry: OfferKey,
    available: bool,
    winner: bool,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    staffing_response::Entity::insert(staffing_response::ActiveModel {
        inquiry_id: Set(inquiry.id),
        request_id: Set(inquiry.request_id),
        worker_id: Set(inquiry.worker_id),
        is_available: Set(available),
        is_winner: Set(winner),
        created_at: Set(now),
        ..Default::default()
    })
    .exec_without_returning(conn)
    .await?;
    Ok(())
}

/// Marks the worker's answer to `inquiry` as the winning one (recording one if they had not
/// answered).
pub async fn record_winner<C: ConnectionTrait>(
    conn: &C,
    inquiry: OfferKey,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    let updated = staffing_response::Entity::update_many()
        .col_expr(staffing_response::Column::IsAvailable, Expr::value(true))
        .col_expr(staffing_response::Column::IsWinner, Expr::value(true))
        .filter(staffing_response::Column::InquiryId.eq(inquiry.id))
        .exec(conn)
        .await?;
    if updated.rows_affected == 0 {
        insert_response(conn, inquiry, true, true, now).await?;
    }
    Ok(())
}

/// How many offers of the request were made, and how many were declined.
pub async fn asked_and_declined<C: ConnectionTrait>(
    conn: &C,
    request_id: i64,
) -> Result<(u64, u64), DbErr> {
    let asked = staffing_inquiry::Entity::find()
        .filter(staffing_inquiry::Column::RequestId.eq(request_id))
        .count(conn)
        .await?;
    let declined = staffing_response::Entity::find()
        .filter(staffing_response::Column::RequestId.eq(request_id))
        .filter(staffing_response::Column::IsAvailable.eq(false))
        .count(conn)
        .await?;
    Ok((asked, declined))
}

/// Everything a click needs, in one query: the offer, its worker, an earlier answer, the
/// request with what the offer shows, the task's and project's state, whether someone won,
/// and how many of the step's certifications the worker holds at the role the task needs.
#[derive(Debug, FromQueryResult)]
pub struct Click {
    #[sea_orm(nested)]
    pub context: RequestContext,
    pub inquiry_id: i64,
    pub worker_id: i64,
    pub dm_channel: Option<String>,
    pub dm_ts: Option<String>,
    pub clicker_slack_id: Option<String>,
    pub clicker_first_name: String,
    pub clicker_username: String,
    pub clicker_email: String,
    pub clicker_notify: Notify,
    pub previous_winner: Option<bool>,
    pub request_status: RequestStatus,
    pub task_status: TaskStatus,
    pub project_status: ProjectStatus,
    pub request_has_winner: bool,
    pub held_count: i64,
    /// The status of the assignment the request would hand over (a restaff), if there is one.
    pub counter_status: Option<AssignmentStatus>,
}

/// Loads [`Click`] for offer `inquiry_id`. On PostgreSQL the offer's row is locked until the
/// caller's transaction ends, and read as it is now (its DM's `ts` may have been stored a moment
/// ago): the delivery of the same offer waits for the answer or the answer for it, so whichever
/// commits second sees the other (see [`store_delivery`]). SQLite's writers are serialised.
pub async fn click<C: ConnectionTrait>(conn: &C, inquiry_id: i64) -> Result<Option<Click>, DbErr> {
    static SQL: LazyLock<String> = LazyLock::new(|| {
        sql(&format!(
            "SELECT {REQUEST_COLUMNS},
                    i.id AS inquiry_id, i.worker_id, i.dm_channel, i.dm_ts,
                    wk.slack_user_id AS clicker_slack_id, wk.first_name AS clicker_first_name,
                    wk.username AS clicker_username, wk.email AS clicker_email,
                    wk.notify AS clicker_notify,
                    sr.is_winner AS previous_winner,
                    r.status AS request_status, t.status AS task_status, p.status AS project_status,
                    EXISTS (SELECT 1 FROM staffing_responses x
                            WHERE x.request_id = r.id AND x.is_winner = TRUE) AS request_has_winner,
                    (SELECT COUNT(*) FROM worker_certifications wc
                     JOIN step_certifications hc ON hc.certification_id = wc.certification_id
                                                AND hc.step_id = t.step_id
                     WHERE wc.worker_id = i.worker_id
                       AND wc.role = CASE WHEN t.status = {{TaskStatus::PendingReview}}
                                          THEN {{Role::Reviewer}} ELSE {{Role::EntryLevel}} END)
                        AS held_count,
                    (SELECT a.status FROM task_assignments a
                     WHERE a.task_id = r.task_id
                       AND a.assignment_counter = r.required_role_counter) AS counter_status
             FROM staffing_inquiries i
             JOIN staffing_requests r ON r.id = i.request_id
             {REQUEST_JOINS}
             JOIN workers wk ON wk.id = i.worker_id
             LEFT JOIN staffing_responses sr ON sr.inquiry_id = i.id
             WHERE i.id = $1"
        ))
    });
    static SQL_LOCKED: LazyLock<String> = LazyLock::new(|| format!("{} FOR UPDATE OF i", *SQL));
    let sql = if is_postgres(conn) { &SQL_LOCKED } else { &SQL };
    Click::find_by_statement(statement(
        conn.get_database_backend(),
        sql,
        vec![inquiry_id.into()],
    ))
    .one(conn)
    .await
}

/// An offer nobody answered yet, with its worker's first name.
#[derive(Debug, Clone, FromQueryResult)]
pub struct OpenOffer {
    pub id: i64,
    pub request_id: i64,
    pub worker_id: i64,
    pub dm_channel: Option<String>,
    pub dm_ts: Option<String>,
    pub first_name: String,
}

/// The request's offers nobody answered yet, oldest first.
pub async fn open<C: ConnectionTrait>(conn: &C, request_id: i64) -> Result<Vec<OpenOffer>, DbErr> {
    OpenOffer::find_by_statement(statement(
        conn.get_database_backend(),
        "SELECT i.id, i.request_id, i.worker_id, i.dm_channel, i.dm_ts, w.first_name
         FROM staffing_inquiries i JOIN workers w ON w.id = i.worker_id
         WHERE i.request_id = $1
           AND NOT EXISTS (SELECT 1 FROM staffing_responses sr WHERE sr.inquiry_id = i.id)
         ORDER BY i.id",
        vec![request_id.into()],
    ))
    .all(conn)
    .await
}

/// What an offer's DM must say once it is delivered, from the facts stored about it.
#[derive(Debug, FromQueryResult)]
pub struct Delivered {
    pub request_id: i64,
    pub worker_id: i64,
    pub first_name: String,
    pub request_status: RequestStatus,
    pub is_available: Option<bool>,
    pub is_winner: Option<bool>,
    pub request_has_winner: bool,
}

/// Stores where an offer's DM is (`channel`, `ts`) and returns the facts about the offer as
/// they are once any answer, win or close in flight has committed: storing locks the offer's
/// row (an answer in flight is waited for), and on PostgreSQL the request's row is then read
/// with a share lock (a win or close in flight is waited for too), before the facts are read in
/// a statement of their own. `None` when the offer is gone.
pub async fn store_delivery<C: ConnectionTrait>(
    conn: &C,
    inquiry_id: i64,
    channel: &str,
    ts: &str,
) -> Result<Option<Delivered>, DbErr> {
    let backend = conn.get_database_backend();
    let stored = staffing_inquiry::Entity::update_many()
        .col_expr(staffing_inquiry::Column::DmChannel, Expr::value(channel))
        .col_expr(staffing_inquiry::Column::DmTs, Expr::value(ts))
        .filter(staffing_inquiry::Column::Id.eq(inquiry_id))
        .exec(conn)
        .await?;
    if stored.rows_affected == 0 {
        return Ok(None);
    }
    if is_postgres(conn) {
        conn.execute_raw(statement(
            backend,
            "SELECT 1 FROM staffing_requests
             WHERE id = (SELECT request_id FROM staffing_inquiries WHERE id = $1) FOR SHARE",
            vec![inquiry_id.into()],
        ))
        .await?;
    }
    Delivered::find_by_statement(statement(
        backend,
        "SELECT i.request_id, i.worker_id, w.first_name, r.status AS request_status,
                sr.is_available, sr.is_winner,
                EXISTS (SELECT 1 FROM staffing_responses x
                        WHERE x.request_id = r.id AND x.is_winner = TRUE) AS request_has_winner
         FROM staffing_inquiries i
         JOIN staffing_requests r ON r.id = i.request_id
         JOIN workers w ON w.id = i.worker_id
         LEFT JOIN staffing_responses sr ON sr.inquiry_id = i.id
         WHERE i.id = $1",
        vec![inquiry_id.into()],
    ))
    .one(conn)
    .await
}

/// Deletes an offer nobody answered (Slack refused it, so it was never seen); false when it
/// was answered after all (a reminder's buttons).
pub async fn delete_unanswered<C: ConnectionTrait>(
    conn: &C,
    inquiry_id: i64,
) -> Result<bool, DbErr> {
    Ok(conn
        .execute_raw(statement(
            conn.get_database_backend(),
            "DELETE FROM staffing_inquiries WHERE id = $1
               AND NOT EXISTS (SELECT 1 FROM staffing_responses x WHERE x.inquiry_id = $1)",
            vec![inquiry_id.into()],
        ))
        .await?
        .rows_affected()
        == 1)
}

/// Whether offer `inquiry_id` is still open: unanswered, and its request not closed.
pub async fn is_open<C: ConnectionTrait>(conn: &C, inquiry_id: i64) -> Result<bool, DbErr> {
    static SQL: LazyLock<String> = LazyLock::new(|| {
        sql("SELECT i.id FROM staffing_inquiries i
             JOIN staffing_requests r ON r.id = i.request_id
             WHERE i.id = $1 AND r.status <> {RequestStatus::Closed}
               AND NOT EXISTS (SELECT 1 FROM staffing_responses x WHERE x.inquiry_id = i.id)")
    });
    Ok(conn
        .query_one_raw(statement(
            conn.get_database_backend(),
            &SQL,
            vec![inquiry_id.into()],
        ))
        .await?
        .is_some())
}

/// Records that an offer of `request_id` to `worker_id` could not be delivered; returns how
/// many of that worker's offers of that request failed so far.
pub async fn record_failure<C: ConnectionTrait>(
    conn: &C,
    request_id: i64,
    worker_id: i64,
    error: &str,
    now: DateTime<Utc>,
) -> Result<i64, DbErr> {
    let backend = conn.get_database_backend();
    conn.execute_raw(statement(
        backend,
        "INSERT INTO offer_failures (request_id, worker_id, error, failed_at) VALUES ($1, $2, $3, $4)",
        vec![request_id.into(), worker_id.into(), error.into(), now.into()],
    ))
    .await?;
    Ok(conn
        .query_one_raw(statement(
            backend,
            "SELECT COUNT(*) AS n FROM offer_failures WHERE request_id = $1 AND worker_id = $2",
            vec![request_id.into(), worker_id.into()],
        ))
        .await?
        .map(|row| row.try_get::<i64>("", "n"))
        .transpose()?
        .unwrap_or(0))
}

/// An open offer of a worker due a reminder.
#[derive(Debug, Clone, FromQueryResult)]
pub struct DueReminder {
    pub worker_id: i64,
    pub slack_user_id: Option<String>,
    pub email: String,
    pub notify: Notify,
    /// The offer's email reply token, when it was emailed.
    pub reply_token: Option<String>,
    pub last_reminded_at: Option<DateTime<Utc>>,
    pub inquiry_id: i64,
    pub task_id: i64,
    pub step_description: String,
    pub project_description: String,
    pub required_role_counter: i32,
    /// The offer's project's priority (urgent projects ignore working hours).
    pub project_priority: i32,
    /// The worker's time zone and own working hours and days, if set.
    pub tz: Option<String>,
    pub working_hours: Option<String>,
    pub working_days: Option<String>,
}

impl From<&DueReminder> for crate::messages::ReminderItem {
    /// The offer as a reminder (or a list of open offers) names it.
    fn from(o: &DueReminder) -> Self {
        crate::messages::ReminderItem {
            inquiry_id: o.inquiry_id,
            task_id: o.task_id,
            step_description: o.step_description.clone(),
            project_description: o.project_description.clone(),
            review: o.required_role_counter > 0,
            reply_token: o.reply_token.clone(),
        }
    }
}

/// Open offers of workers due a reminder (not reminded since `cutoff`, and their oldest open
/// offer is at least that old): one row per (worker, offer), by worker, then project priority.
///
/// Each worker's oldest open offer is a window over the open offers, read once: the earlier
/// `w.id IN (SELECT … GROUP BY … HAVING MIN(…))` was estimated at a few dozen workers, and
/// PostgreSQL joined every open offer by index lookups (see `docs/benchmarks-notes.md`).
///
/// Only workers with ids in `workers` (a caller reads the due offers a range of workers at a
/// time, so memory stays bounded however many are due; see [`offered_worker_ids`]).
pub async fn due_reminders<C: ConnectionTrait>(
    conn: &C,
    cutoff: DateTime<Utc>,
    workers: std::ops::Range<i64>,
) -> Result<Vec<DueReminder>, DbErr> {
    static SQL: LazyLock<String> = LazyLock::new(|| {
        sql("WITH open_offers AS (
                 SELECT i.id, i.worker_id, i.request_id,
                        MIN(i.created_at) OVER (PARTITION BY i.worker_id) AS oldest
                 FROM staffing_inquiries i
                 JOIN staffing_requests r ON r.id = i.request_id
                 WHERE i.worker_id >= $2 AND i.worker_id < $3
                   AND r.status <> {RequestStatus::Closed}
                   AND NOT EXISTS (SELECT 1 FROM staffing_responses x WHERE x.inquiry_id = i.id))
             SELECT w.id AS worker_id, w.slack_user_id, w.email, w.notify, rt.token AS reply_token,
                    w.last_reminded_at, i.id AS inquiry_id,
                    r.task_id, s.description AS step_description,
                    p.short_description AS project_description, r.required_role_counter,
                    p.priority AS project_priority, w.tz, w.working_hours, w.working_days
             FROM open_offers i
             JOIN workers w ON w.id = i.worker_id
             JOIN staffing_requests r ON r.id = i.request_id
             JOIN tasks t ON t.id = r.task_id
             JOIN steps s ON s.id = t.step_id
             JOIN projects p ON p.id = t.project_id
             LEFT JOIN offer_reply_tokens rt ON rt.inquiry_id = i.id
             WHERE i.oldest <= $1
               AND t.status NOT IN ({TaskStatus::Complete}, {TaskStatus::Aborted})
               AND p.status NOT IN ({ProjectStatus::Completed}, {ProjectStatus::Aborted})
               AND (w.slack_user_id IS NOT NULL OR (w.notify <> {Notify::Slack} AND w.email <> ''))
               AND (w.last_reminded_at IS NULL OR w.last_reminded_at <= $1)
             ORDER BY w.id, p.priority DESC, r.created_at, i.id")
    });
    DueReminder::find_by_statement(statement(
        conn.get_database_backend(),
        &SQL,
        vec![cutoff.into(), workers.start.into(), workers.end.into()],
    ))
    .all(conn)
    .await
}

/// The lowest and highest id of a worker who was ever offered something (`None`: nobody was).
pub async fn offered_worker_ids<C: ConnectionTrait>(conn: &C) -> Result<Option<(i64, i64)>, DbErr> {
    let row = conn
        .query_one_raw(statement(
            conn.get_database_backend(),
            "SELECT MIN(worker_id) AS lo, MAX(worker_id) AS hi FROM staffing_inquiries",
            vec![],
        ))
        .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let lo: Option<i64> = row.try_get("", "lo")?;
    let hi: Option<i64> = row.try_get("", "hi")?;
    Ok(lo.zip(hi))
}

/// Whose each of `inquiry_ids` is: (offer id, task id, the worker's username).
pub async fn owners<C: ConnectionTrait>(
    conn: &C,
    inquiry_ids: &[i64],
) -> Result<Vec<(i64, i64, String)>, DbErr> {
    #[derive(FromQueryResult)]
    struct Owner {
        inquiry_id: i64,
        task_id: i64,
        username: String,
    }
    let mut out = Vec::with_capacity(inquiry_ids.len());
    for chunk in inquiry_ids.chunks(500) {
        // Integers, formatted: no text from outside reaches the statement.
        let ids: Vec<String> = chunk.iter().map(i64::to_string).collect();
        let rows = Owner::find_by_statement(statement(
            conn.get_database_backend(),
            &format!(
                "SELECT i.id AS inquiry_id, r.task_id, w.username
                 FROM staffing_inquiries i
                 JOIN staffing_requests r ON r.id = i.request_id
                 JOIN workers w ON w.id = i.worker_id
                 WHERE i.id IN ({}) ORDER BY i.id",
                ids.join(", ")
            ),
            vec![],
        ))
        .all(conn)
        .await?;
        out.extend(
            rows.into_iter()
                .map(|o| (o.inquiry_id, o.task_id, o.username)),
        );
    }
    Ok(out)
}

/// One past offer, as the adaptive policy learns from it.
#[derive(Debug, Clone, FromQueryResult)]
pub struct OfferHistory {
    pub worker_id: i64,
    pub offered_at: DateTime<Utc>,
    /// When the worker answered, if they did.
    pub answered_at: Option<DateTime<Utc>>,
    /// They accepted (`None`: no answer).
    pub accepted: Option<bool>,
    /// When the offer's request closed, if it did.
    pub closed_at: Option<DateTime<Utc>>,
}

/// Every offer made since `since` to one of `worker_ids`, with its answer (one read for a
/// whole candidate pool: integers formatted into the statement, in chunks).
pub async fn history<C: ConnectionTrait>(
    conn: &C,
    worker_ids: &[i64],
    since: DateTime<Utc>,
) -> Result<Vec<OfferHistory>, DbErr> {
    let mut out = Vec::new();
    for chunk in worker_ids.chunks(2000) {
        let ids: Vec<String> = chunk.iter().map(i64::to_string).collect();
        out.extend(
            OfferHistory::find_by_statement(statement(
                conn.get_database_backend(),
                &format!(
                    "SELECT i.worker_id, i.created_at AS offered_at,
                            s.created_at AS answered_at, s.is_available AS accepted,
                            r.closed_at
                     FROM staffing_inquiries i
                     JOIN staffing_requests r ON r.id = i.request_id
                     LEFT JOIN staffing_responses s ON s.inquiry_id = i.id
                     WHERE i.created_at >= $1 AND i.method = 'slack' AND i.worker_id IN ({})",
                    ids.join(", ")
                ),
                vec![since.into()],
            ))
            .all(conn)
            .await?,
        );
    }
    Ok(out)
}

/// The offers of each of `request_ids` still waiting for an answer: (worker id, offered at).
pub async fn in_flight<C: ConnectionTrait>(
    conn: &C,
    request_ids: &[i64],
) -> Result<HashMap<i64, Vec<(i64, DateTime<Utc>)>>, DbErr> {
    #[derive(FromQueryResult)]
    struct Row {
        request_id: i64,
        worker_id: i64,
        created_at: DateTime<Utc>,
    }
    let mut out: HashMap<i64, Vec<(i64, DateTime<Utc>)>> = HashMap::new();
    for chunk in request_ids.chunks(2000) {
        let ids: Vec<String> = chunk.iter().map(i64::to_string).collect();
        let rows = Row::find_by_statement(statement(
            conn.get_database_backend(),
            &format!(
                "SELECT i.request_id, i.worker_id, i.created_at FROM staffing_inquiries i
                 WHERE i.request_id IN ({})
                   AND NOT EXISTS (SELECT 1 FROM staffing_responses s WHERE s.inquiry_id = i.id)",
                ids.join(", ")
            ),
            vec![],
        ))
        .all(conn)
        .await?;
        for r in rows {
            out.entry(r.request_id)
                .or_default()
                .push((r.worker_id, r.created_at));
        }
    }
    Ok(out)
}
