//! Retention: deletes bookkeeping staffbot no longer needs, so tables stop growing. Handled
//! envelope ids and the ids of emails read from the mailbox older than `retention.envelopes`
//! (Slack redelivers within minutes; a handled email leaves the inbox at once) and outbox
//! rows sent or failed longer ago than `retention.outbox`. Pending outbox rows stay until
//! they are delivered.
//!
//! Rows go in batches of [`BATCH_ROWS`], each its own statement in a short transaction fenced by
//! the `retention` lease, at most [`MAX_BATCHES`] per table and run: no long transaction, and an
//! envelope waiting for the database waits for one batch at most. What is left over goes in
//! the next run.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, TransactionTrait};

use crate::config::RetentionConfig;
use crate::db::retention as queries;
use crate::lease::LeaseProof;

/// Rows one statement deletes at most.
pub const BATCH_ROWS: u64 = 1000;
/// Statements per table and run at most.
pub const MAX_BATCHES: u32 = 50;
/// How often the daemon runs retention.
pub const EVERY: Duration = Duration::from_secs(3600);

/// What one run deleted.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RetentionReport {
    pub envelopes: u64,
    pub email_replies: u64,
    pub outbox: u64,
    /// A table still had rows past its retention when the run stopped.
    pub more: bool,
}

/// One run under the `retention` lease.
pub async fn run_once<C: ConnectionTrait + TransactionTrait>(
    conn: &C,
    lease: &LeaseProof,
    settings: &RetentionConfig,
    now: DateTime<Utc>,
) -> Result<RetentionReport, crate::error::Error> {
    let mut report = RetentionReport::default();
    if let Some(cutoff) = cutoff(now, settings.envelopes) {
        let (n, more) = in_batches(|| delete_batch(conn, lease, Table::Envelopes, cutoff)).await?;
        report.envelopes = n;
        report.more |= more;
        let (n, more) =
            in_batches(|| delete_batch(conn, lease, Table::EmailReplies, cutoff)).await?;
        report.email_replies = n;
        report.more |= more;
    }
    if let Some(cutoff) = cutoff(now, settings.outbox) {
        let (n, more) = in_batches(|| delete_batch(conn, lease, Table::Outbox, cutoff)).await?;
        report.outbox = n;
        report.more |= more;
    }
    Ok(report)
}

#[derive(Debug, Clone, Copy)]
enum Table {
    Envelopes,
    EmailReplies,
    Outbox,
}

/// One batch of deletes in a transaction of its own, fenced by the lease.
async fn delete_batch<C: ConnectionTrait + TransactionTrait>(
    conn: &C,
    lease: &LeaseProof,
    table: Table,
    cutoff: DateTime<Utc>,
) -> Result<u64, crate::error::Error> {
    let tx = crate::db::begin_write(conn).await?;
    let deleted = async {
        lease.fence(&tx).await?;
        Ok::<_, crate::error::Error>(match table {
            Table::Envelopes => {
                queries::delete_handled_envelopes_before(&tx, cutoff, BATCH_ROWS).await?
            }
            Table::EmailReplies => {
                queries::delete_email_replies_before(&tx, cutoff, BATCH_ROWS).await?
            }
            Table::Outbox => {
                queries::delete_finished_outbox_before(&tx, cutoff, BATCH_ROWS).await?
            }
        })
    }
    .await;
    crate::db::settle(tx, deleted).await
}

/// `now - keep`, or `None` when that is before any representable time (nothing is that old).
fn cutoff(now: DateTime<Utc>, keep: Duration) -> Option<DateTime<Utc>> {
    chrono::Duration::from_std(keep)
        .ok()
        .and_then(|keep| now.checked_sub_signed(keep))
}

/// Runs `batch` until it deletes less than a full batch or [`MAX_BATCHES`] ran; yields between
/// batches so other work gets the connection. Returns the total and whether rows may be left.
async fn in_batches<F, Fut>(mut batch: F) -> Result<(u64, bool), crate::error::Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<u64, crate::error::Error>>,
{
    let mut total = 0;
    for _ in 0..MAX_BATCHES {
        let n = batch().await?;
        total += n;
        if n < BATCH_ROWS {
            return Ok((total, false));
        }
        tokio::task::yield_now().await;
    }
    Ok((total, true))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn batches_stop_at_a_short_batch_or_the_cap() {
        let mut left = 2 * BATCH_ROWS + 5;
        let mut statements = 0;
        let run = in_batches(|| {
            statements += 1;
            let n = left.min(BATCH_ROWS);
            left -= n;
            async move { Ok(n) }
        })
        .await
        .expect("ran");
        assert_eq!((run, statements), ((2 * BATCH_ROWS + 5, false), 3));

        let mut statements = 0;
        let run = in_batches(|| {
            statements += 1;
            async { Ok(BATCH_ROWS) }
        })
        .await
        .expect("ran");
        assert_eq!(
            (run, statements),
            ((u64::from(MAX_BATCHES) * BATCH_ROWS, true), MAX_BATCHES)
        );
    }

    #[test]
    fn a_retention_longer_than_time_deletes_nothing() {
        let now = Utc::now();
        assert_eq!(cutoff(now, Duration::from_secs(u64::MAX)), None);
        assert_eq!(
            cutoff(now, Duration::from_secs(60)),
            Some(now - chrono::Duration::seconds(60))
        );
    }
}
