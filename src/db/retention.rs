//! Retention queries: delete finished bookkeeping rows in bounded batches, one short statement
//! (and so one short transaction) each.

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbErr};

use super::{OutboxStatus, statement};

/// Deletes up to `limit` `handled_envelopes` rows handled before `cutoff`; returns how many.
pub async fn delete_handled_envelopes_before<C: ConnectionTrait>(
    conn: &C,
    cutoff: DateTime<Utc>,
    limit: u64,
) -> Result<u64, DbErr> {
    delete_limited(
        conn,
        "DELETE FROM handled_envelopes WHERE envelope_id IN (
             SELECT envelope_id FROM handled_envelopes WHERE handled_at < $1 LIMIT $2)",
        cutoff,
        limit,
        vec![],
    )
    .await
}

/// Deletes up to `limit` `email_replies` rows (emails read from the mailbox) handled before
/// `cutoff`; returns how many.
pub async fn delete_email_replies_before<C: ConnectionTrait>(
    conn: &C,
    cutoff: DateTime<Utc>,
    limit: u64,
) -> Result<u64, DbErr> {
    delete_limited(
        conn,
        "DELETE FROM email_replies WHERE message_id IN (
             SELECT message_id FROM email_replies WHERE handled_at < $1 LIMIT $2)",
        cutoff,
        limit,
        vec![],
    )
    .await
}

/// Deletes up to `limit` `outbox` rows that were sent or failed for good, whose last attempt
/// was due before `cutoff` (the `outbox_due` index); returns how many. Pending rows, handed to
/// Slack or not, are never deleted.
pub async fn delete_finished_outbox_before<C: ConnectionTrait>(
    conn: &C,
    cutoff: DateTime<Utc>,
    limit: u64,
) -> Result<u64, DbErr> {
    delete_limited(
        conn,
        "DELETE FROM outbox WHERE id IN (
             SELECT id FROM outbox
             WHERE status IN ($3, $4) AND next_attempt_at < $1 LIMIT $2)",
        cutoff,
        limit,
        vec![
            OutboxStatus::Sent.as_str().into(),
            OutboxStatus::Failed.as_str().into(),
        ],
    )
    .await
}

/// Runs a `DELETE` taking the cutoff as `$1`, the row limit as `$2`, and `more` from `$3` on.
async fn delete_limited<C: ConnectionTrait>(
    conn: &C,
    sql: &str,
    cutoff: DateTime<Utc>,
    limit: u64,
    more: Vec<sea_orm::Value>,
) -> Result<u64, DbErr> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let mut values = vec![cutoff.into(), limit.into()];
    values.extend(more);
    let result = conn
        .execute_raw(statement(conn.get_database_backend(), sql, values))
        .await?;
    Ok(result.rows_affected())
}
