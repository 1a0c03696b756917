//! Leases: one holder at a time across replicas for work that must not run twice at once (the
//! loops), taken over when the holder stops renewing it (a dead replica) after
//! `loops.lease_ttl`, and fenced: every write under a lease checks it still holds.

use std::time::Duration;

use sea_orm::{ConnectionTrait, DbErr};

use crate::db;
use crate::error::{Error, LeaseLost};

/// Proof that the caller held a lease: only [`try_lease`] makes one. Work that must not run
/// twice at once demands it, and every transaction that writes under the lease calls
/// [`LeaseProof::fence`] first, which fails once the lease has passed to another holder (or
/// lapsed), so a holder that stalled past its lease writes nothing.
#[derive(Debug, Clone)]
pub struct LeaseProof {
    pub name: String,
    pub holder: String,
    /// The fencing token: bumped every time the lease changes hands (or is taken again after
    /// it lapsed).
    pub token: i64,
    ttl: Duration,
}

/// True when `err` is a write refused because its lease was lost.
pub fn is_lease_lost(err: &Error) -> bool {
    matches!(err, Error::LeaseLost(_))
}

/// Takes or renews the lease `name` for `holder` until the database's now + `ttl`. `None` when
/// another holder's lease has not expired. Taking a lease that was another's, or that lapsed,
/// bumps its fencing token.
pub async fn try_lease<C: ConnectionTrait>(
    conn: &C,
    name: &str,
    holder: &str,
    ttl: Duration,
) -> Result<Option<LeaseProof>, DbErr> {
    Ok(db::leases::take(conn, name, holder, ttl)
        .await?
        .map(|token| LeaseProof {
            name: name.to_string(),
            holder: holder.to_string(),
            token,
            ttl,
        }))
}

impl LeaseProof {
    /// How long the lease lasts after each renewal.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Inside a transaction that writes under this lease: checks that the lease is still held
    /// with this token and has not lapsed, and extends it by its time to live. The lease's row
    /// stays locked until the transaction ends, so nobody takes the lease over in between.
    /// Fails with [`LeaseLost`] otherwise: the caller's transaction must roll back.
    pub async fn fence<C: ConnectionTrait>(&self, conn: &C) -> Result<(), Error> {
        if db::leases::renew_fenced(conn, &self.name, &self.holder, self.token, self.ttl).await? {
            Ok(())
        } else {
            Err(LeaseLost {
                lease: self.name.clone(),
                token: self.token,
            }
            .into())
        }
    }
}

/// Gives a lease up (at shutdown), so another replica need not wait for it to expire.
pub async fn release<C: ConnectionTrait>(conn: &C, name: &str, holder: &str) -> Result<(), DbErr> {
    db::leases::release(conn, name, holder).await
}
