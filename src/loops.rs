//! Periodic work behind leases: one holder at a time across replicas, taken over when the
//! holder stops renewing it (a dead replica) after `loops.lease_ttl`.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbErr};

use crate::db::statement;

/// Proof that the caller holds a loop's lease: only [`try_lease`] makes one, so work that must
/// not run twice at once can demand it.
#[derive(Debug)]
pub struct LeaseProof {
    pub name: String,
}

/// Takes or renews the lease `name` for `holder` until `now + ttl`. `None` when another holder's
/// lease has not expired.
pub async fn try_lease<C: ConnectionTrait>(
    conn: &C,
    name: &str,
    holder: &str,
    ttl: Duration,
    now: DateTime<Utc>,
) -> Result<Option<LeaseProof>, DbErr> {
    let expires = now + chrono::Duration::from_std(ttl).unwrap_or_default();
    let result = conn
        .execute_raw(statement(
            conn.get_database_backend(),
            "INSERT INTO leases (name, holder, expires_at) VALUES ($1, $2, $3)
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
             WHERE leases.expires_at < $4 OR leases.holder = excluded.holder",
            vec![name.into(), holder.into(), expires.into(), now.into()],
        ))
        .await?;
    Ok((result.rows_affected() == 1).then(|| LeaseProof {
        name: name.to_string(),
    }))
}

/// Gives a lease up (at shutdown), so another replica need not wait for it to expire.
pub async fn release<C: ConnectionTrait>(conn: &C, name: &str, holder: &str) -> Result<(), DbErr> {
    conn.execute_raw(statement(
        conn.get_database_backend(),
        "DELETE FROM leases WHERE name = $1 AND holder = $2",
        vec![name.into(), holder.into()],
    ))
    .await?;
    Ok(())
}
