//! Transactions: writes that take SQLite's lock at `BEGIN`, settling a transaction with the
//! outcome of its work, and telling a lost race (a unique violation) from other errors.

use sea_orm::DbErr;

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
