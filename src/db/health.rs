//! The health probe behind `/metrics` and `/healthz`: one statement that reads the outbox
//! gauges and which leases a process holds, and so also proves the database answers.

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbErr};

use super::{OutboxStatus, statement};

/// What one probe found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probed {
    /// Outbox rows pending.
    pub depth: i64,
    /// When the oldest pending row was queued.
    pub oldest: Option<DateTime<Utc>>,
    /// Per name in `lease_names`, in that order: whether `holder` holds that lease now.
    pub held: Vec<bool>,
}

/// Reads the pending outbox's size and age, and which of `lease_names` `holder` holds, in one
/// statement. `db_now` is the SQL for the database's current time (leases are compared on
/// the database's clock).
pub async fn probe<C: ConnectionTrait>(
    conn: &C,
    holder: &str,
    lease_names: &[&str],
    db_now: &str,
) -> Result<Probed, DbErr> {
    let mut sql = "SELECT COUNT(*) AS depth, MIN(created_at) AS oldest".to_string();
    let mut values: Vec<sea_orm::Value> =
        vec![holder.into(), OutboxStatus::Pending.as_str().into()];
    for (i, name) in lease_names.iter().enumerate() {
        values.push((*name).into());
        sql.push_str(&format!(
            ", (SELECT COUNT(*) FROM leases WHERE holder = $1 AND name = ${} AND expires_at > {db_now}) AS held_{i}",
            values.len()
        ));
    }
    sql.push_str(" FROM outbox WHERE status = $2");
    let row = conn
        .query_one_raw(statement(conn.get_database_backend(), &sql, values))
        .await?
        .ok_or_else(|| DbErr::RecordNotFound("probe".into()))?;
    let mut held = Vec::with_capacity(lease_names.len());
    for i in 0..lease_names.len() {
        held.push(row.try_get::<i64>("", &format!("held_{i}"))? > 0);
    }
    Ok(Probed {
        depth: row.try_get("", "depth")?,
        oldest: row.try_get("", "oldest")?,
        held,
    })
}
