//! The outbox: every message staffbot sends is a row first (design.md §2). Domain code calls
//! [`enqueue`] inside its transaction with a typed message ([`Outgoing`]); the sender (Slack
//! side) renders and delivers rows later, exactly once per dedupe key.

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbErr};

use crate::db;
use crate::messages::Outgoing;

/// Queues `outgoing` under `dedupe_key`. Queuing the same key twice is a no-op, so callers may
/// retry freely. Returns true when a new row was written.
pub async fn enqueue<C: ConnectionTrait>(
    conn: &C,
    dedupe_key: &str,
    outgoing: Outgoing,
    now: DateTime<Utc>,
) -> Result<bool, DbErr> {
    Ok(db::outbox::insert_new(
        conn,
        vec![db::outbox::new_row(dedupe_key.to_string(), &outgoing, now)?],
    )
    .await?
        > 0)
}

/// Queues several messages (keys already queued are skipped), in as few statements as the
/// database's bound-parameter limit allows.
pub async fn enqueue_all<C: ConnectionTrait>(
    conn: &C,
    messages: Vec<(String, Outgoing)>,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    if messages.is_empty() {
        return Ok(());
    }
    let rows = messages
        .into_iter()
        .map(|(key, outgoing)| db::outbox::new_row(key, &outgoing, now))
        .collect::<Result<Vec<_>, _>>()?;
    // Seven values a row: chunks stay under SQLite's 32,766 and PostgreSQL's 65,535 bound
    // parameters.
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        db::outbox::insert_new(conn, rows.by_ref().take(ROWS_PER_INSERT).collect()).await?;
    }
    Ok(())
}

/// Rows one multi-row insert carries at most.
const ROWS_PER_INSERT: usize = 4000;
