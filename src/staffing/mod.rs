//! Staffing: [`batch`] sends offers in batches, [`respond`] handles Accept and Reject,
//! [`reminders`] and [`warnings`] are the loops that follow up on open offers and unstaffed
//! tasks. Opening and closing requests is [`crate::requests`]'s.

pub mod autostaff;
pub mod batch;
pub mod policy;
pub mod pool;
pub mod reminders;
pub mod respond;
pub mod warnings;

use chrono::{DateTime, Utc};
use sea_orm::ConnectionTrait;

use crate::db;
use crate::db::requests::Stamp;
use crate::lease::LeaseProof;
use crate::messages::Outgoing;
use crate::outbox;

/// A loop's messages in one transaction fenced by its lease: `messages` are queued, and the
/// rows it reported are stamped with `now` (so they are not reported again too soon).
pub(crate) async fn queue_and_stamp<C: sea_orm::TransactionTrait + ConnectionTrait>(
    conn: &C,
    lease: &LeaseProof,
    messages: Vec<(String, Outgoing)>,
    stamps: &[(Stamp, Vec<i64>)],
    now: DateTime<Utc>,
) -> Result<(), crate::error::Error> {
    let tx = db::begin_write(conn).await?;
    let written = async {
        lease.fence(&tx).await?;
        outbox::enqueue_all(&tx, messages, now).await?;
        for (which, ids) in stamps {
            db::requests::stamp(&tx, *which, ids, now).await?;
        }
        Ok::<(), crate::error::Error>(())
    }
    .await;
    db::settle(tx, written).await
}
