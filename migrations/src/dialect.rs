//! Portable SQL for migrations: `{pk}`, `{ts}`, `{json}` and `{id}` are replaced per backend.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DatabaseBackend};

/// Replaces the type placeholders for the manager's backend.
pub fn render(backend: DatabaseBackend, sql: &str) -> String {
    let (pk, ts, json) = match backend {
        DatabaseBackend::Postgres => ("BIGSERIAL PRIMARY KEY", "TIMESTAMPTZ", "JSONB"),
        // SQLite: `INTEGER PRIMARY KEY` is the rowid alias; timestamps are RFC 3339 text in UTC.
        _ => ("INTEGER PRIMARY KEY AUTOINCREMENT", "TEXT", "TEXT"),
    };
    sql.replace("{pk}", pk)
        .replace("{ts}", ts)
        .replace("{json}", json)
        .replace("{id}", "BIGINT")
}

/// Runs each `;`-separated statement of `sql` (placeholders rendered) in order.
pub async fn run(manager: &SchemaManager<'_>, sql: &str) -> Result<(), DbErr> {
    let conn = manager.get_connection();
    let rendered = render(manager.get_database_backend(), sql);
    for statement in rendered.split(';') {
        let statement = statement.trim();
        if statement.is_empty() {
            continue;
        }
        conn.execute_unprepared(statement).await?;
    }
    Ok(())
}
