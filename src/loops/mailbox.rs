//! Reading email replies as periodic work: a round over the mailbox whenever new mail arrives
//! (IMAP IDLE, where the server has it) or every `email.poll_interval`, on a connection kept
//! between rounds while this process holds the `mail` lease. IMAP failures are retried with
//! backoff.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::DatabaseConnection;
use tokio_util::sync::CancellationToken;

use super::{LoopError, LoopOutcome, Work};
use crate::email::inbox::{self, ImapTarget, Inbox, InboxReport, Session};
use crate::lease::LeaseProof;

/// The longest wait before reconnecting after IMAP failures.
const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// The mailbox loop.
pub struct Mailbox {
    inbox: Inbox,
    /// `email.poll_interval`: the wait between rounds without IDLE, and the longest IDLE.
    poll: Duration,
    /// The connection, and whether the server has IDLE.
    session: Option<(Session, bool)>,
    /// After a failure, the wait before the next try (doubling up to [`MAX_BACKOFF`]).
    backoff: Option<Duration>,
}

impl Mailbox {
    /// The mailbox `target`, answered as `email` says (its settings).
    pub fn from_config(
        config: &crate::config::Config,
        db: &DatabaseConnection,
        clock: &Arc<dyn crate::clock::Clock>,
        email: &crate::email::EmailOut,
        target: ImapTarget,
    ) -> Mailbox {
        Mailbox {
            inbox: Inbox {
                db: db.clone(),
                clock: clock.clone(),
                target,
                settings: email.settings.clone(),
                notices: config.notices(),
                timeout: (config.loops.lease_ttl / 2).max(Duration::from_secs(1)),
            },
            poll: config.email.poll_interval,
            session: None,
            backoff: None,
        }
    }

    /// A failure: the connection is dropped and the next try waits longer.
    fn failed(&mut self, error: String) -> LoopError {
        self.session = None;
        let wait = self
            .backoff
            .map_or(Duration::from_secs(1), |b| (b * 2).min(MAX_BACKOFF));
        self.backoff = Some(wait);
        LoopError::Mailbox(error)
    }
}

/// What a round did, in words.
fn summary(r: &InboxReport) -> String {
    let failed = if r.failed > 0 {
        format!(
            ", {} left in the mailbox for the next run (see the log)",
            r.failed
        )
    } else {
        String::new()
    };
    format!(
        "{} read, {} answer(s) applied, {} ignored or handled before{failed}",
        r.read, r.answered, r.ignored
    )
}

#[async_trait::async_trait]
impl Work for Mailbox {
    fn name(&self) -> &'static str {
        inbox::LEASE
    }

    fn period(&self) -> Duration {
        Duration::ZERO
    }

    fn tick(&self) -> Duration {
        self.poll
    }

    async fn run_once(
        &mut self,
        lease: &LeaseProof,
        _now: DateTime<Utc>,
    ) -> Result<LoopOutcome, LoopError> {
        let (mut session, idle) = match self.session.take() {
            Some(open) => open,
            None => match inbox::connect(&self.inbox.target, self.inbox.timeout).await {
                Ok(mut s) => {
                    let idle = s.capabilities().await.is_ok_and(|c| c.has_str("IDLE"));
                    (s, idle)
                }
                Err(e) => return Err(self.failed(e)),
            },
        };
        match self.inbox.run_once(&mut session, lease).await {
            Ok(report) => {
                self.backoff = None;
                self.session = Some((session, idle));
                Ok(LoopOutcome {
                    summary: summary(&report),
                    queued: report.read > 0,
                })
            }
            // The connection is not trusted after a failed round: a new one next time.
            Err(e) => Err(self.failed(e.to_string())),
        }
    }

    /// After a failure, the backoff; with a connection, new mail (IDLE) or the poll interval;
    /// else the next tick.
    async fn wait(
        &mut self,
        interval: &mut tokio::time::Interval,
        cancel: &CancellationToken,
    ) -> tokio::time::Instant {
        if let Some(wait) = self.backoff {
            tokio::select! {
                _ = cancel.cancelled() => {}
                _ = tokio::time::sleep(wait) => {}
            }
        } else if let Some((session, idle)) = self.session.take() {
            let renew = interval.period();
            self.session = inbox::wait_for_mail(session, idle, renew, cancel)
                .await
                .map(|s| (s, idle));
        } else {
            tokio::select! {
                _ = cancel.cancelled() => {}
                _ = interval.tick() => {}
            }
        }
        tokio::time::Instant::now()
    }

    async fn let_go(&mut self) {
        if let Some((mut session, _)) = self.session.take() {
            let _ = session.logout().await;
        }
    }
}
