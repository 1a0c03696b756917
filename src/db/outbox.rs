//! The outbox table: queuing rows, and the sender's claims on them (on the database's clock).

use std::fmt::Write as _;
use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use serde_json::Value;

use super::entities::outbox;
use super::{
    OutboxStatus, db_now, db_now_plus, duration_param, is_postgres, pg_text_array, sql, statement,
};
use crate::messages::Outgoing;

pub use outbox::Model as Row;

/// Which way out a row takes: its transport (`crate::delivery`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Route {
    /// A Web API call (the row's `method` names it).
    Slack,
    /// An email (`method` = `smtp`), which needs no Slack token.
    Email,
}

/// The `method` of every email row.
const EMAIL_METHOD: &str = "smtp";

impl Route {
    /// The route of a row whose `method` column holds `method`.
    pub fn of_method(method: &str) -> Route {
        if method == EMAIL_METHOD {
            Route::Email
        } else {
            Route::Slack
        }
    }
}

/// The route of a stored row.
pub fn route(row: &Row) -> Route {
    Route::of_method(&row.method)
}

/// `AND method = $n` (email) or `AND method <> $n` (Slack), `$n` bound to `smtp`.
fn route_filter(only: Option<Route>, n: usize) -> String {
    match only {
        None => String::new(),
        Some(Route::Email) => format!(" AND method = ${n}"),
        Some(Route::Slack) => format!(" AND method <> ${n}"),
    }
}

/// The ORM condition for rows of `route`.
fn route_condition(route: Route) -> sea_orm::sea_query::SimpleExpr {
    match route {
        Route::Email => outbox::Column::Method.eq(EMAIL_METHOD),
        Route::Slack => outbox::Column::Method.ne(EMAIL_METHOD),
    }
}

/// A message to queue: its dedupe key, its Web API method and its payload, serialised once
/// (straight from the typed message to text; no JSON tree is built).
#[derive(Debug, Clone)]
pub struct NewRow {
    pub dedupe_key: String,
    pub method: &'static str,
    pub payload: String,
}

/// The row for `outgoing` under `dedupe_key`.
/// The outbox format this release writes, and the newest it reads. A release that adds a kind
/// of message, a field or a delivery an older sender cannot read raises it: an older sender
/// then leaves those rows to a newer one (a rolling upgrade), instead of failing them.
///
/// 1: rows written before formats were recorded. 2: availability and working hours (users'
/// time zones asked of Slack, the auto-staffed DM, the availability form).
pub const FORMAT: i32 = 2;

pub fn new_row(dedupe_key: String, outgoing: &Outgoing) -> Result<NewRow, DbErr> {
    let payload = serde_json::to_string(outgoing)
        .map_err(|e| DbErr::Json(format!("cannot store the message {dedupe_key}: {e}")))?;
    Ok(NewRow {
        dedupe_key,
        method: outgoing.method(),
        payload,
    })
}

/// Inserts `rows` as pending and due at `now`, in order, skipping keys already queued; returns
/// how many were new. One statement: on PostgreSQL each column is one array parameter
/// (`UNNEST`), so the statement is prepared once whatever the number of rows; on SQLite a
/// multi-row `VALUES` (3 parameters a row: keep `rows` under about 10,000).
pub async fn insert_new<C: ConnectionTrait>(
    conn: &C,
    rows: &[NewRow],
    now: DateTime<Utc>,
) -> Result<u64, DbErr> {
    if rows.is_empty() {
        return Ok(0);
    }
    const COLUMNS: &str = "INSERT INTO outbox (dedupe_key, method, payload, status, attempts, next_attempt_at, created_at, format)";
    let backend = conn.get_database_backend();
    let stmt = if is_postgres(conn) {
        static SQL: LazyLock<String> = LazyLock::new(|| {
            sql(&format!(
                "{COLUMNS}
                 SELECT u.k, u.m, u.p::jsonb, {{OutboxStatus::Pending}}, 0, $4, $4, {FORMAT}
                 FROM UNNEST($1::text[], $2::text[], $3::text[]) WITH ORDINALITY AS u(k, m, p, n)
                 ORDER BY u.n
                 ON CONFLICT (dedupe_key) DO NOTHING"
            ))
        });
        statement(
            backend,
            &SQL,
            vec![
                pg_text_array(rows.iter().map(|r| r.dedupe_key.as_str())).into(),
                pg_text_array(rows.iter().map(|r| r.method)).into(),
                pg_text_array(rows.iter().map(|r| r.payload.as_str())).into(),
                now.into(),
            ],
        )
    } else {
        let pending = OutboxStatus::Pending.as_str();
        let mut text = String::with_capacity(COLUMNS.len() + 40 * rows.len() + 40);
        text.push_str(COLUMNS);
        text.push_str(" VALUES ");
        let mut values: Vec<sea_orm::Value> = Vec::with_capacity(3 * rows.len() + 1);
        values.push(now.into());
        for (i, row) in rows.iter().enumerate() {
            let n = 3 * i + 2;
            if i > 0 {
                text.push_str(", ");
            }
            let _ = write!(
                text,
                "(${n}, ${}, ${}, '{pending}', 0, $1, $1, {FORMAT})",
                n + 1,
                n + 2
            );
            values.push(row.dedupe_key.clone().into());
            values.push(row.method.into());
            values.push(row.payload.clone().into());
        }
        text.push_str(" ON CONFLICT (dedupe_key) DO NOTHING");
        statement(backend, &text, values)
    };
    Ok(conn.execute_raw(stmt).await?.rows_affected())
}

/// Claims up to `limit` rows due at `now` for `token` until the database's now + `ttl`, with one
/// conditional UPDATE (on PostgreSQL the row lock skips rows another sender is claiming), and
/// returns them, oldest first. Claims expire on the database's clock, whatever the host's says.
/// With `only`, only rows of that route are claimed.
pub async fn claim<C: ConnectionTrait>(
    conn: &C,
    token: &str,
    ttl: std::time::Duration,
    now: DateTime<Utc>,
    limit: u64,
    only: Option<Route>,
) -> Result<Vec<Row>, DbErr> {
    let backend = conn.get_database_backend();
    let db_now = db_now(backend);
    let expires = db_now_plus(backend, 2);
    let lock = if is_postgres(conn) {
        " FOR UPDATE SKIP LOCKED"
    } else {
        ""
    };
    let pending = OutboxStatus::Pending.as_str();
    let method = route_filter(only, 5);
    let due = format!(
        "status = '{pending}' AND next_attempt_at <= $3{method} AND format <= {FORMAT}
         AND (claim_expires_at IS NULL OR claim_expires_at < {db_now})"
    );
    let claimed = conn
        .execute_raw(statement(
            backend,
            &format!(
                "UPDATE outbox SET claimed_by = $1, claim_expires_at = {expires}
                 WHERE id IN (SELECT id FROM outbox WHERE {due} ORDER BY id LIMIT $4{lock})
                   AND {due}"
            ),
            {
                let mut values = vec![
                    token.into(),
                    duration_param(backend, ttl),
                    now.into(),
                    (limit as i64).into(),
                ];
                if only.is_some() {
                    values.push(EMAIL_METHOD.into());
                }
                values
            },
        ))
        .await?;
    if claimed.rows_affected() == 0 {
        return Ok(Vec::new());
    }
    outbox::Entity::find()
        .filter(outbox::Column::ClaimedBy.eq(token))
        .filter(outbox::Column::Status.eq(OutboxStatus::Pending.as_str()))
        .order_by_asc(outbox::Column::Id)
        .all(conn)
        .await
}

/// Gives back claimed row `id`, which this release cannot read, for another sender (a newer
/// release's) to take after `retry_at`: still pending, its attempts unchanged, `error` noted.
pub async fn give_back<C: ConnectionTrait>(
    conn: &C,
    id: i64,
    token: &str,
    error: &str,
    retry_at: DateTime<Utc>,
) -> Result<(), DbErr> {
    conn.execute_raw(statement(
        conn.get_database_backend(),
        "UPDATE outbox SET claimed_by = NULL, claim_expires_at = NULL, next_attempt_at = $1,
                           last_error = $2
         WHERE id = $3 AND claimed_by = $4",
        vec![
            retry_at.into(),
            error.to_string().into(),
            id.into(),
            token.to_string().into(),
        ],
    ))
    .await?;
    Ok(())
}

/// Checks that the claim `token` on row `id` still holds (not expired on the database's clock)
/// and extends it by `hold_for`; with `handed_over`, also marks the row as handed to Slack at
/// that time (`sent_at`). False when the claim was lost.
pub async fn hold<C: ConnectionTrait>(
    conn: &C,
    id: i64,
    token: &str,
    hold_for: std::time::Duration,
    handed_over: Option<DateTime<Utc>>,
) -> Result<bool, DbErr> {
    let backend = conn.get_database_backend();
    let db_now = db_now(backend);
    let expires = db_now_plus(backend, 3);
    let mut values = vec![id.into(), token.into(), duration_param(backend, hold_for)];
    let mark = match handed_over {
        Some(at) => {
            values.push(at.into());
            ", sent_at = $4"
        }
        None => "",
    };
    let pending = OutboxStatus::Pending.as_str();
    Ok(conn
        .execute_raw(statement(
            backend,
            &format!(
                "UPDATE outbox SET claim_expires_at = {expires}{mark}
                 WHERE id = $1 AND claimed_by = $2 AND status = '{pending}'
                   AND claim_expires_at > {db_now}"
            ),
            values,
        ))
        .await?
        .rows_affected()
        == 1)
}

/// How a claimed row ends (or is given back).
#[derive(Debug, Clone)]
pub enum Finish {
    /// Delivered: Slack's answer is kept.
    Sent {
        attempts: i32,
        at: DateTime<Utc>,
        response: Value,
    },
    /// Not yet (paced or rate limited): due again at `until`, no attempt counted. With
    /// `not_handed_over`, Slack did not take the call, so the row is no longer in doubt.
    Defer {
        until: DateTime<Utc>,
        error: Option<&'static str>,
        not_handed_over: bool,
    },
    /// Failed for now: tried again at `at`.
    Retry {
        attempts: i32,
        at: DateTime<Utc>,
        error: String,
    },
    /// Failed for good.
    Failed { attempts: i32, error: String },
}

/// Ends the claim `token` on row `id` as `finish` says, only while the claim holds. False when
/// it no longer did (another sender has the row).
pub async fn finish<C: ConnectionTrait>(
    conn: &C,
    id: i64,
    token: &str,
    finish: Finish,
) -> Result<bool, DbErr> {
    use outbox::Column as C;
    let mut update = outbox::Entity::update_many()
        .col_expr(C::ClaimedBy, Expr::value(Option::<String>::None))
        .col_expr(
            C::ClaimExpiresAt,
            Expr::value(Option::<DateTime<Utc>>::None),
        );
    let changes: Vec<(C, Expr)> = match finish {
        Finish::Sent {
            attempts,
            at,
            response,
        } => vec![
            (C::Status, Expr::value(OutboxStatus::Sent.as_str())),
            (C::Attempts, Expr::value(attempts)),
            (C::SentAt, Expr::value(at)),
            (C::Result, Expr::value(response)),
            (C::LastError, Expr::value(Option::<String>::None)),
        ],
        Finish::Defer {
            until,
            error,
            not_handed_over,
        } => {
            let mut changes = vec![(C::NextAttemptAt, Expr::value(until))];
            if let Some(error) = error {
                changes.push((C::LastError, Expr::value(error)));
            }
            if not_handed_over {
                changes.push((C::SentAt, Expr::value(Option::<DateTime<Utc>>::None)));
            }
            changes
        }
        Finish::Retry {
            attempts,
            at,
            error,
        } => vec![
            (C::Attempts, Expr::value(attempts)),
            (C::NextAttemptAt, Expr::value(at)),
            (C::LastError, Expr::value(error)),
        ],
        Finish::Failed { attempts, error } => vec![
            (C::Status, Expr::value(OutboxStatus::Failed.as_str())),
            (C::Attempts, Expr::value(attempts)),
            (C::LastError, Expr::value(error)),
        ],
    };
    for (col, expr) in changes {
        update = update.col_expr(col, expr);
    }
    let result = update
        .filter(C::Id.eq(id))
        .filter(C::ClaimedBy.eq(token))
        .exec(conn)
        .await?;
    Ok(result.rows_affected == 1)
}

/// When the next pending row not claimed by anyone else is due, compared with `now` (None when
/// nothing is pending).
/// With `only`, among rows of that route.
pub async fn next_due<C: ConnectionTrait>(
    conn: &C,
    now: DateTime<Utc>,
    only: Option<Route>,
) -> Result<Option<DateTime<Utc>>, DbErr> {
    let mut query = outbox::Entity::find();
    if let Some(route) = only {
        query = query.filter(route_condition(route));
    }
    query
        .select_only()
        .column_as(outbox::Column::NextAttemptAt.min(), "next")
        .filter(outbox::Column::Status.eq(OutboxStatus::Pending.as_str()))
        // Rows another sender holds are its business until the claim expires.
        .filter(
            Condition::any()
                .add(outbox::Column::ClaimExpiresAt.is_null())
                .add(outbox::Column::ClaimExpiresAt.lt(now)),
        )
        .into_tuple::<Option<DateTime<Utc>>>()
        .one(conn)
        .await
        .map(Option::flatten)
}

/// How many rows of `route` are pending (e.g. the Slack rows beside the emails).
pub async fn pending_on<C: ConnectionTrait>(conn: &C, route: Route) -> Result<u64, DbErr> {
    use sea_orm::PaginatorTrait;
    outbox::Entity::find()
        .filter(outbox::Column::Status.eq(OutboxStatus::Pending.as_str()))
        .filter(route_condition(route))
        .count(conn)
        .await
}

/// The id of the newest row whose dedupe key starts with `prefix` (None when there is none).
pub async fn newest_with_prefix<C: ConnectionTrait>(
    conn: &C,
    prefix: &str,
) -> Result<Option<i64>, DbErr> {
    outbox::Entity::find()
        .select_only()
        .column_as(outbox::Column::Id.max(), "newest")
        .filter(outbox::Column::DedupeKey.starts_with(prefix))
        .into_tuple::<Option<i64>>()
        .one(conn)
        .await
        .map(Option::flatten)
}

/// Rows queued after row `after_id`: (id, dedupe key), oldest first (`staffbot simulate` reads
/// them as the messages people would see).
pub async fn queued_after<C: ConnectionTrait>(
    conn: &C,
    after_id: i64,
) -> Result<Vec<(i64, String)>, DbErr> {
    outbox::Entity::find()
        .select_only()
        .column(outbox::Column::Id)
        .column(outbox::Column::DedupeKey)
        .filter(outbox::Column::Id.gt(after_id))
        .order_by_asc(outbox::Column::Id)
        .into_tuple::<(i64, String)>()
        .all(conn)
        .await
}

/// Marks every pending row up to row `up_to_id` sent at `now` (`staffbot simulate` delivers
/// them itself).
pub async fn mark_sent_up_to<C: ConnectionTrait>(
    conn: &C,
    up_to_id: i64,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    outbox::Entity::update_many()
        .col_expr(
            outbox::Column::Status,
            Expr::value(OutboxStatus::Sent.as_str()),
        )
        .col_expr(outbox::Column::SentAt, Expr::value(now))
        .filter(outbox::Column::Id.lte(up_to_id))
        .filter(outbox::Column::Status.eq(OutboxStatus::Pending.as_str()))
        .exec(conn)
        .await?;
    Ok(())
}
