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
    let row = db::outbox::new_row(dedupe_key.to_string(), &outgoing)?;
    Ok(db::outbox::insert_new(conn, &[row], now).await? > 0)
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
        .map(|(key, outgoing)| db::outbox::new_row(key, &outgoing))
        .collect::<Result<Vec<_>, _>>()?;
    for chunk in rows.chunks(ROWS_PER_INSERT) {
        db::outbox::insert_new(conn, chunk, now).await?;
    }
    Ok(())
}

/// Rows one insert carries at most (SQLite binds three values a row, under its 32,766).
const ROWS_PER_INSERT: usize = 4000;

/// Queues a publish of `user`'s App Home; with `notice` (what became of their click), which
/// their Home shows on top from now on, for [`crate::home::NOTICE_FOR`]. Each call queues its
/// own row (the sender publishes a user's queued rows once, as the Home is when it publishes).
pub async fn publish_home<C: ConnectionTrait>(
    conn: &C,
    user: &str,
    notice: Option<String>,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    if let Some(notice) = notice {
        db::home::set_notice(conn, user, &notice, now).await?;
    }
    let outgoing = Outgoing::Home {
        user: user.to_string(),
    };
    enqueue(conn, &home_key(user), outgoing, now).await?;
    Ok(())
}

/// Says that what `task_ids` show changed: the App Homes of everyone who has opened theirs and
/// whose Home shows one of them (the admins, and workers with an offer of or an assignment on
/// one) are published again. Called in the transaction of every change to those tasks, their
/// requests or their offers; one row, expanded by the sender (see [`refresh_row`]).
pub async fn refresh_homes<C: ConnectionTrait>(
    conn: &C,
    task_ids: &[i64],
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    let (key, outgoing) = refresh_row(task_ids, Vec::new());
    enqueue(conn, &key, outgoing, now).await?;
    Ok(())
}

/// The row [`refresh_homes`] queues, for callers that queue it with their other messages in
/// one insert; `users` (Slack ids) are refreshed too, for people who no longer show up as on
/// the tasks (a worker the task was taken from).
pub fn refresh_row(task_ids: &[i64], users: Vec<String>) -> (String, Outgoing) {
    let key = format!("homes:{:016x}", rand::random::<u64>());
    let outgoing = Outgoing::RefreshHomes {
        tasks: task_ids.to_vec(),
        users,
    };
    (key, outgoing)
}

/// The Home publishes a [`refresh_row`] stands for: one per user who has opened their Home and
/// sees one of `task_ids`, or is one of `users`.
pub async fn queue_home_publishes<C: ConnectionTrait>(
    conn: &C,
    task_ids: &[i64],
    users: &[String],
    now: DateTime<Utc>,
) -> Result<usize, DbErr> {
    let rows: Vec<(String, Outgoing)> = db::home::users_seeing(conn, task_ids, users)
        .await?
        .into_iter()
        .map(|user| {
            let key = home_key(&user);
            (key, Outgoing::Home { user })
        })
        .collect();
    let n = rows.len();
    enqueue_all(conn, rows, now).await?;
    Ok(n)
}

/// A fresh key for a Home publish: a random part, so a change after an earlier publish was
/// delivered always queues a new one.
fn home_key(user: &str) -> String {
    format!("home:{user}:{:016x}", rand::random::<u64>())
}
