//! Connecting: checking a database URL, opening the pool (SQLite's pragmas and busy timeout),
//! applying the migrations under a lock, SQLite's WAL checkpointer, and the fresh database of a
//! simulation.

use std::time::Duration;

use super::{entities, is_postgres, schema};
use migrations::Migrator;
use migrations::sea_orm_migration::MigratorTrait;
use sea_orm::{
    ColumnTrait, ConnectOptions, ConnectionTrait, Database, DatabaseBackend, DatabaseConnection,
    DbErr, EntityTrait, PaginatorTrait, QueryFilter,
};

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
