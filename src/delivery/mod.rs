//! Delivering the outbox, whatever the way out: the core ([`Sender`]) claims due rows, holds
//! them, paces them ([`pacer`]), retries them with backoff and records each outcome with what
//! follows from it (an offer delivered or undeliverable, a user's time zone, a modal that could
//! not open). Each row is handed to the [`Transport`] of its [`Route`]: Slack's
//! (`crate::slack::transport`) and email's (`crate::email::transport`) are siblings below this
//! module, wired in by the daemon and `staffbot tick`; this module knows neither.
//!
//! Claims carry an expiry on the database's clock (`loops.lease_ttl`), so rows held by a sender
//! that died are taken over. Right before every call for a row (the delivery itself, and each
//! call a transport makes to look for an earlier attempt) its claim is re-checked and extended
//! past that call's worst case (twice the call timeout): a sender whose claim lapsed meanwhile
//! drops the row instead of calling, so a row another sender took over is never sent twice. A
//! row's completion is conditional on its claim token too.
//!
//! **Deliveries that must happen once** (a Slack post, an email) are marked as handed over
//! (`sent_at`) *before* the call. A pending row with `sent_at` is "handed over, outcome
//! unknown": before delivering it again the transport may look for it ([`InDoubt`]).

mod pacer;
mod sender;

use std::time::Duration;

use serde_json::Value;

pub use crate::db::outbox::{Route, Row};
use crate::messages::{AppHome, FollowUp};
pub use pacer::{Pace, Pacer};
pub use sender::Sender;

/// After this many failed attempts a row is marked failed.
pub const MAX_ATTEMPTS: i32 = 12;
/// Longest wait between two attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// Backoff before attempt `attempts + 1`: 1 s, 2 s, 4 s, … capped at [`MAX_BACKOFF`].
pub fn backoff(attempts: i32) -> Duration {
    let exp = attempts.clamp(1, 20) as u32 - 1;
    Duration::from_secs(1u64 << exp).min(MAX_BACKOFF)
}

/// The outcome of one call, classified for the sender.
#[derive(Debug, Clone, PartialEq)]
pub enum Delivery {
    /// Done; the response body (for `ts`, `channel`).
    Sent(Value),
    /// HTTP 429: wait this long before calling this method again.
    RateLimited(Duration),
    /// Worth retrying later (5xx, network, trouble on the other side, a revoked token).
    Transient(String),
    /// Will never work (unknown channel or user, bad arguments): keep the error, stop.
    Permanent(String),
}

/// What one round did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SendReport {
    pub sent: usize,
    pub retried: usize,
    pub failed: usize,
    pub deferred: usize,
}

/// What a repeat of a call would do, and so what the sender does about an attempt whose outcome
/// is unknown (the process died, the call timed out).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InDoubt {
    /// A repeat changes nothing, or cannot be avoided (updates, invites, Home publishes,
    /// ephemeral replies): not marked.
    Repeat,
    /// Marked before the call; a retry first asks the transport whether the earlier attempt
    /// went through ([`Transport::find_earlier`]).
    LookFirst,
    /// Marked before the call; there is nothing to look in, so it goes again as it is (an
    /// email keeps its `Message-ID`, which mail clients deduplicate).
    SendAgain,
}

/// A claimed row, rendered by its transport into the call that delivers it.
#[derive(Debug, Clone)]
pub struct Call {
    /// The transport's name for the call (`chat.postMessage`, `smtp`): pacing, metrics, logs.
    pub method: &'static str,
    pub body: Value,
    pub follow_up: Option<FollowUp>,
    pub in_doubt: InDoubt,
}

/// What a transport makes of a claimed row.
#[derive(Debug)]
pub enum Prepared {
    Call(Call),
    /// This release cannot read the row (a newer release wrote it, or it is damaged): it goes
    /// back, unclaimed, for a sender that can.
    Unreadable(String),
    /// The row can never be delivered (e.g. email is not configured): failed for good, with
    /// what follows from that.
    Refused {
        error: String,
        follow_up: Option<FollowUp>,
    },
}

/// What a transient failure means on a transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transience {
    /// Retried with backoff up to [`MAX_ATTEMPTS`], then failed.
    Retry,
    /// The other side is down, not the row: retried with backoff for as long as it matters
    /// (an offer's, while the offer is open; any other, until it is delivered).
    WaitOut,
}

/// What looking for an earlier attempt's delivery found.
#[derive(Debug)]
pub enum Lookup {
    /// Delivered already: the answer the call would have given.
    Found(Value),
    NotFound,
    /// The row's claim was lost while looking: leave the row.
    Lost,
    /// The lookup's call `method` failed now (retry the row later), or for good (deliver
    /// again).
    Failed {
        method: &'static str,
        outcome: Delivery,
    },
}

/// What a transport may do while it holds a claimed row: extend the claim before each of its
/// own calls, and pace them.
#[async_trait::async_trait]
pub trait Attempt: Send + Sync {
    /// Checks that the claim holds and extends it past a call's worst case; false when it was
    /// lost (the transport must stop calling for this row).
    async fn hold(&self) -> Result<bool, sea_orm::DbErr>;
    /// Counts a call against the sender's pacing.
    async fn paced(&self, method: &'static str, body: &Value);
}

/// A way out for the outbox's rows.
#[async_trait::async_trait]
pub trait Transport: Send + Sync {
    /// The rows it delivers.
    fn route(&self) -> Route;
    /// Renders a claimed row into its call (`app_home`: the app's Home tab, when known).
    async fn prepare(
        &self,
        row: &Row,
        app_home: Option<&AppHome>,
    ) -> Result<Prepared, sea_orm::DbErr>;
    /// The pacing buckets a call draws from.
    fn pace(&self, method: &str, body: &Value) -> Vec<Pace>;
    /// Looks for the delivery of an earlier attempt of `call` (an [`InDoubt::LookFirst`] call
    /// handed over at `since`).
    async fn find_earlier(
        &self,
        call: &Call,
        dedupe_key: &str,
        since: chrono::DateTime<chrono::Utc>,
        attempt: &dyn Attempt,
    ) -> Result<Lookup, sea_orm::DbErr> {
        let _ = (call, dedupe_key, since, attempt);
        Ok(Lookup::NotFound)
    }
    /// Makes the call.
    async fn send(&self, call: &Call) -> Delivery;
    /// What a transient failure means here.
    fn transience(&self) -> Transience {
        Transience::Retry
    }
    /// After a transient failure on a [`Transience::WaitOut`] transport: the other side may
    /// be down (`waits`: the row waits for it; else it was given up, its offer closed).
    async fn failing(
        &self,
        error: &str,
        waits: bool,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), sea_orm::DbErr> {
        let _ = (error, waits, now);
        Ok(())
    }
    /// After a delivery: an outage the transport reported is over.
    async fn working(&self, now: chrono::DateTime<chrono::Utc>) -> Result<(), sea_orm::DbErr> {
        let _ = now;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        assert_eq!(backoff(1), Duration::from_secs(1));
        assert_eq!(backoff(2), Duration::from_secs(2));
        assert_eq!(backoff(5), Duration::from_secs(16));
        assert_eq!(backoff(12), MAX_BACKOFF);
    }
}
