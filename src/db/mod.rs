//! Database access: connecting (SQLite or PostgreSQL), migrations, the sea-orm entities, and the
//! named queries the rest of staffbot uses, one store module per aggregate ([`workflows`],
//! [`workers`], [`projects`], [`tasks`], [`envelopes`], [`sanity`], [`machine`], [`health`],
//! [`retention`]). Enum values reach SQL through [`enums`] only, and values are always bound.

pub mod availability;
pub mod email;
pub mod entities;
pub mod enums;
pub mod envelopes;
pub mod health;
pub mod home;
pub mod leases;
pub mod machine;
pub mod offers;
pub mod outbox;
pub mod projects;
pub mod requests;
pub mod retention;
pub mod sanity;
pub mod schema;
pub mod tasks;
pub mod warnings;
pub mod workers;
pub mod workflows;

use std::time::Duration;

use migrations::Migrator;
use migrations::sea_orm_migration::MigratorTrait;
use sea_orm::{
    ColumnTrait, ConnectOptions, ConnectionTrait, Database, DatabaseBackend, DatabaseConnection,
    DbErr, EntityTrait, PaginatorTrait, QueryFilter,
};

pub use enums::*;

/// How long an SQLite writer waits for a lock held by another connection or process before
/// giving up; with WAL, readers never wait.
pub const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the database could not be used. Never holds the URL or the driver's error as given:
/// both can carry the password (sea-orm quotes a connection string it cannot parse), so the
/// URL is redacted and the driver's message has every URL and `password=…` in it masked.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("the database URL is not valid ({reason}); it is not shown, as it may hold a password")]
    InvalidUrl { reason: String },
    #[error("cannot connect to the database {url}: {detail}")]
    Connect { url: String, detail: String },
    #[error("cannot apply database migrations: {0}")]
    Migrate(String),
}

impl ConnectError {
    fn connect(url: &str, source: &DbErr) -> ConnectError {
        ConnectError::Connect {
            url: crate::config::redact_url(url),
            detail: crate::config::redact_text(&source.to_string()),
        }
    }

    fn migrate(source: &DbErr) -> ConnectError {
        ConnectError::Migrate(crate::config::redact_text(&source.to_string()))
    }
}

/// Checks that `url` parses before any driver sees it (and might quote it in an error).
fn check_url(url: &str) -> Result<(), ConnectError> {
    url::Url::parse(url)
        .map(|_| ())
        .map_err(|e| ConnectError::InvalidUrl {
            reason: e.to_string(),
        })
}

/// Opens a connection pool. SQLite gets WAL, a busy timeout and foreign keys.
pub async fn connect(url: &str) -> Result<DatabaseConnection, ConnectError> {
    check_url(url)?;
    let mut options = ConnectOptions::new(url.to_string());
    options
        .sqlx_logging(false)
        .connect_timeout(Duration::from_secs(10))
        .acquire_timeout(Duration::from_secs(30))
        .map_sqlx_sqlite_opts(|o| {
            o.journal_mode(sea_orm::sqlx::sqlite::SqliteJournalMode::Wal)
                .busy_timeout(SQLITE_BUSY_TIMEOUT)
                .foreign_keys(true)
                .synchronous(sea_orm::sqlx::sqlite::SqliteSynchronous::Normal)
                // No checkpoint inside a commit: `serve` runs them on a connection of its own
                // (see [`run_checkpointer`]); other processes checkpoint when they close.
                .pragma("wal_autocheckpoint", "0")
        });
    Database::connect(options)
        .await
        .map_err(|e| ConnectError::connect(url, &e))
}

/// How often `serve` copies SQLite's write-ahead log back into the database file.
pub const SQLITE_CHECKPOINT_EVERY: Duration = Duration::from_secs(1);

/// SQLite only: checkpoints the write-ahead log every `every`, on a connection of its own,
/// until cancelled, then once more. With automatic checkpoints off on every pooled connection,
/// no commit (and so no envelope's ack) waits for the log to be copied and synced.
pub async fn run_checkpointer(
    url: String,
    every: Duration,
    cancel: tokio_util::sync::CancellationToken,
) {
    let conn = match connect(&url).await {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!("no SQLite checkpointer: {e}");
            return;
        }
    };
    let mut interval = tokio::time::interval(every);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = interval.tick() => {}
        }
        if let Err(e) = conn
            .execute_unprepared("PRAGMA wal_checkpoint(PASSIVE)")
            .await
        {
            tracing::warn!("SQLite checkpoint failed (retried in {every:?}): {e}");
        }
    }
    if let Err(e) = conn
        .execute_unprepared("PRAGMA wal_checkpoint(PASSIVE)")
        .await
    {
        tracing::warn!("last SQLite checkpoint failed: {e}");
    }
    let _ = conn.close().await;
}

/// Connects and applies every pending migration: what `serve` and the CLI do before anything else.
///
/// On PostgreSQL the migrations run under an advisory lock keyed on the schema, so replicas
/// starting together apply them once: the others wait, then find nothing pending.
pub async fn connect_and_migrate(url: &str) -> Result<DatabaseConnection, ConnectError> {
    let db = connect(url).await?;
    if is_postgres(&db) {
        migrate_locked(url).await?;
    } else {
        schema::apply(&db)
            .await
            .map_err(|e| ConnectError::migrate(&e))?;
    }
    Ok(db)
}

/// Empties the database at `url` for `staffbot simulate --database`: every migration rolled
/// back and applied again. Refused for a database that holds workers and was not used by
/// `simulate` before (its `staffing` lease held by `simulate`): never someone's real data.
pub async fn reset_for_simulation(url: &str) -> Result<(), ConnectError> {
    let db = connect_and_migrate(url).await?;
    let workers = entities::worker::Entity::find()
        .count(&db)
        .await
        .map_err(|e| ConnectError::migrate(&e))?;
    let simulated = entities::lease::Entity::find()
        .filter(entities::lease::Column::Holder.eq("simulate"))
        .count(&db)
        .await
        .map_err(|e| ConnectError::migrate(&e))?;
    if workers > 0 && simulated == 0 {
        return Err(ConnectError::migrate(&DbErr::Custom(
            "the database given to simulate --database holds workers of its own; give simulate an empty database".into(),
        )));
    }
    Migrator::down(&db, None)
        .await
        .map_err(|e| ConnectError::migrate(&e))?;
    db.close().await.ok();
    connect_and_migrate(url).await?.close().await.ok();
    Ok(())
}

/// Applies pending migrations on one dedicated PostgreSQL connection holding a session-level
/// advisory lock (a pool could run the lock and the migrations on different connections).
async fn migrate_locked(url: &str) -> Result<(), ConnectError> {
    let mut options = ConnectOptions::new(url.to_string());
    options
        .sqlx_logging(false)
        .max_connections(1)
        .min_connections(1)
        .connect_timeout(Duration::from_secs(10))
        .acquire_timeout(Duration::from_secs(300));
    let conn = Database::connect(options)
        .await
        .map_err(|e| ConnectError::connect(url, &e))?;
    let lock =
        |sql: &str| sea_orm::Statement::from_string(DatabaseBackend::Postgres, sql.to_string());
    let result = async {
        conn.execute_raw(lock(
            "SELECT pg_advisory_lock(hashtext('staffbot-migrations:' || current_schema()))",
        ))
        .await?;
        let migrated = schema::apply(&conn).await;
        conn.execute_raw(lock(
            "SELECT pg_advisory_unlock(hashtext('staffbot-migrations:' || current_schema()))",
        ))
        .await?;
        migrated
    }
    .await;
    let _ = conn.close().await;
    result.map_err(|e| ConnectError::migrate(&e))
}

/// The database's current time, in SQL: leases and claims are compared on one clock, the
/// database's, whatever the hosts' clocks say.
pub fn db_now(backend: DatabaseBackend) -> &'static str {
    match backend {
        DatabaseBackend::Postgres => "clock_timestamp()",
        // Stored timestamps are RFC 3339 text; this compares with them as text.
        _ => "(strftime('%Y-%m-%dT%H:%M:%f', 'now') || '+00:00')",
    }
}

/// The database's current time plus the duration bound as parameter `$n` (see
/// [`duration_param`]).
pub fn db_now_plus(backend: DatabaseBackend, n: usize) -> String {
    match backend {
        DatabaseBackend::Postgres => format!("(clock_timestamp() + make_interval(secs => ${n}))"),
        _ => format!("(strftime('%Y-%m-%dT%H:%M:%f', 'now', ${n}) || '+00:00')"),
    }
}

/// The parameter [`db_now_plus`] expects for `d`.
pub fn duration_param(backend: DatabaseBackend, d: Duration) -> sea_orm::Value {
    match backend {
        DatabaseBackend::Postgres => d.as_secs_f64().into(),
        _ => format!("+{:.3} seconds", d.as_secs_f64()).into(),
    }
}

/// A PostgreSQL array literal of `items` (`{"a","b\"c"}`), bound as one text parameter and
/// cast in SQL (`$1::text[]`): a whole column of a bulk write in one parameter
/// (`INSERT … SELECT … FROM UNNEST(…)`), so the statement's text, and its prepared plan, are
/// the same whatever the number of rows.
pub(crate) fn pg_text_array<'a>(items: impl IntoIterator<Item = &'a str>) -> String {
    let mut out = String::from("{");
    for (i, item) in items.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push('"');
        for c in item.chars() {
            if c == '"' || c == '\\' {
                out.push('\\');
            }
            out.push(c);
        }
        out.push('"');
    }
    out.push('}');
    out
}

/// [`pg_text_array`] for numbers (`$1::bigint[]`).
pub(crate) fn pg_int_array(items: impl IntoIterator<Item = i64>) -> String {
    let mut out = String::from("{");
    for (i, item) in items.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&item.to_string());
    }
    out.push('}');
    out
}

pub fn is_postgres(db: &impl sea_orm::ConnectionTrait) -> bool {
    db.get_database_backend() == DatabaseBackend::Postgres
}

/// True when the error is a violated unique constraint (a lost race, a duplicate).
pub fn is_unique_violation(err: &DbErr) -> bool {
    matches!(
        err.sql_err(),
        Some(sea_orm::SqlErr::UniqueConstraintViolation(_))
    )
}

/// Starts a transaction that will write. On SQLite it takes the write lock at `BEGIN`
/// (`IMMEDIATE`), so a concurrent writer makes it wait (busy timeout) instead of failing
/// half-way when a read transaction cannot be upgraded.
pub async fn begin_write<C: sea_orm::TransactionTrait>(conn: &C) -> Result<C::Transaction, DbErr> {
    conn.begin_with_options(sea_orm::TransactionOptions {
        sqlite_transaction_mode: Some(sea_orm::SqliteTransactionMode::Immediate),
        ..Default::default()
    })
    .await
}

/// A raw statement for this backend: SQL written with PostgreSQL's `$1, $2…` placeholders
/// becomes `?1, ?2…` on SQLite.
pub fn statement(
    backend: DatabaseBackend,
    sql: &str,
    values: Vec<sea_orm::Value>,
) -> sea_orm::Statement {
    let text = match backend {
        DatabaseBackend::Postgres => sql.to_string(),
        _ => {
            let mut out = String::with_capacity(sql.len());
            let mut chars = sql.chars().peekable();
            while let Some(c) = chars.next() {
                if c == '$' && chars.peek().is_some_and(char::is_ascii_digit) {
                    out.push('?');
                } else {
                    out.push(c);
                }
            }
            out
        }
    };
    sea_orm::Statement::from_sql_and_values(backend, text, values)
}

/// Ends a write transaction with the outcome of its work: commits when `result` is `Ok`, rolls
/// back at once when it is an error (and returns it). Dropping a transaction instead rolls it
/// back lazily, when its pooled connection is next used: on PostgreSQL its row locks would stay
/// held until then, and other work would wait for them.
pub async fn settle<Tx: sea_orm::TransactionSession, T, E: From<DbErr>>(
    tx: Tx,
    result: Result<T, E>,
) -> Result<T, E> {
    match result {
        Ok(value) => {
            tx.commit().await?;
            Ok(value)
        }
        Err(e) => {
            if let Err(rollback) = tx.rollback().await {
                tracing::warn!("rollback failed: {rollback}");
            }
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn array_literals_quote_every_element_and_escape_quotes_and_backslashes() {
        assert_eq!(pg_text_array([]), "{}");
        assert_eq!(
            pg_text_array(["a", "", "NULL", "{x, y}", r#"say "hi" \ bye"#]),
            r#"{"a","","NULL","{x, y}","say \"hi\" \\ bye"}"#
        );
        assert_eq!(pg_int_array([1, -2, 30]), "{1,-2,30}");
        assert_eq!(pg_int_array([]), "{}");
    }
}
