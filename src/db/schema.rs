//! Which migrations a database has, as this release sees them: its own (applied or pending)
//! and those of a newer release that ran on it (rolling upgrades, issue 30).
//!
//! Migrations are expand-then-contract across releases (README "Development"): a release only
//! adds what the release before it ignores, and drops only what that release stopped using. So
//! a release runs on a database a newer release has migrated, beside it during a rollout or
//! alone after a rollback: its own migrations are all applied, and the newer ones only added
//! to what it reads. sea-orm's migrator refuses such a database ("this migration has been
//! applied but its file is missing"); [`apply`] lets it through with a warning instead, and
//! refuses only what cannot be right (a newer release's migrations with this release's still
//! pending, or an applied migration that sorts among this release's but is not one of them).

use migrations::Migrator;
use migrations::sea_orm_migration::MigratorTrait;
use sea_orm::{ConnectionTrait, DbErr, FromQueryResult};

use super::statement;

/// The migrations of a database as this release sees them.
#[derive(Debug, Clone, Default)]
pub struct MigrationState {
    /// This release's migrations in order, each with whether it is applied.
    pub known: Vec<(String, bool)>,
    /// Applied migrations of a newer release (they sort after all of this release's).
    pub newer: Vec<String>,
    /// Applied migrations this release does not know that sort among its own: a database of
    /// another line of releases. Nothing is applied to it.
    pub foreign: Vec<String>,
}

impl MigrationState {
    /// This release's migrations not applied yet.
    pub fn pending(&self) -> impl Iterator<Item = &str> {
        self.known
            .iter()
            .filter(|(_, applied)| !applied)
            .map(|(name, _)| name.as_str())
    }
}

/// Reads which migrations `conn`'s database has applied (none when it has no migrations
/// table yet).
pub async fn state<C: ConnectionTrait>(conn: &C) -> Result<MigrationState, DbErr> {
    #[derive(FromQueryResult)]
    struct Row {
        version: String,
    }
    let backend = conn.get_database_backend();
    let exists = if super::is_postgres(conn) {
        "SELECT CAST(table_name AS TEXT) AS version FROM information_schema.tables
         WHERE table_schema = current_schema() AND table_name = 'seaql_migrations'"
    } else {
        "SELECT name AS version FROM sqlite_master WHERE type = 'table' AND name = 'seaql_migrations'"
    };
    let applied: Vec<String> = if Row::find_by_statement(statement(backend, exists, vec![]))
        .one(conn)
        .await?
        .is_some()
    {
        Row::find_by_statement(statement(
            backend,
            "SELECT version FROM seaql_migrations ORDER BY version",
            vec![],
        ))
        .all(conn)
        .await?
        .into_iter()
        .map(|r| r.version)
        .collect()
    } else {
        Vec::new()
    };
    let names: Vec<String> = Migrator::migrations()
        .iter()
        .map(|m| m.name().to_string())
        .collect();
    Ok(classify(&names, &applied))
}

/// Pure: this release's migration `names` (in order) against the database's `applied` ones.
pub fn classify(names: &[String], applied: &[String]) -> MigrationState {
    let last = names.iter().max();
    let mut state = MigrationState {
        known: names
            .iter()
            .map(|n| (n.clone(), applied.contains(n)))
            .collect(),
        ..MigrationState::default()
    };
    for a in applied.iter().filter(|a| !names.contains(a)) {
        if last.is_some_and(|l| a > l) {
            state.newer.push(a.clone());
        } else {
            state.foreign.push(a.clone());
        }
    }
    state
}

/// Applies this release's pending migrations, or, on a database a newer release migrated
/// (this release's all applied), applies nothing and says so once. See the module's doc.
pub async fn apply(conn: &sea_orm::DatabaseConnection) -> Result<(), DbErr> {
    let state = state(conn).await?;
    if !state.foreign.is_empty() {
        return Err(DbErr::Custom(format!(
            "the database has migrations this release does not know and that are not a newer release's ({}): it was migrated by another build of staffbot",
            state.foreign.join(", ")
        )));
    }
    if state.newer.is_empty() {
        return Migrator::up(conn, None).await;
    }
    let pending: Vec<&str> = state.pending().collect();
    if !pending.is_empty() {
        return Err(DbErr::Custom(format!(
            "the database has a newer release's migrations ({}) but not this release's {}: upgrade with the newer release",
            state.newer.join(", "),
            pending.join(", ")
        )));
    }
    tracing::warn!(
        newer = %state.newer.join(", "),
        "the database was migrated by a newer release; running beside it (its migrations only add to what this release reads). Stop this release once the newer one serves."
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: &[&str]) -> Vec<String> {
        n.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_newer_release_s_migrations_sort_after_ours_and_anything_else_is_foreign() {
        let ours = names(&["m1_a", "m2_b", "m3_c"]);
        let s = classify(&ours, &names(&["m1_a", "m2_b", "m3_c", "m4_d"]));
        assert_eq!(s.newer, names(&["m4_d"]));
        assert!(s.foreign.is_empty());
        assert_eq!(s.pending().count(), 0);

        let s = classify(&ours, &names(&["m1_a", "m2_x"]));
        assert_eq!(s.foreign, names(&["m2_x"]));
        assert_eq!(s.pending().collect::<Vec<_>>(), vec!["m2_b", "m3_c"]);

        let s = classify(&ours, &[]);
        assert_eq!(s.pending().count(), 3);
        assert!(s.newer.is_empty() && s.foreign.is_empty());
    }
}
