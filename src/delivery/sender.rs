//! The sender: claims due rows, hands each to its transport, and records the result.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr};
use serde_json::Value;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::{
    Attempt, Call, Delivery, InDoubt, Lookup, MAX_ATTEMPTS, Pacer, Prepared, Route, Row,
    SendReport, Transience, Transport, backoff,
};
use crate::clock::Clock;
use crate::db;
use crate::db::outbox::Finish;
use crate::messages::{AppHome, FollowUp, Outgoing, Peek};
use crate::staffing::respond;

/// Rows one round claims at most.
const BATCH: u64 = 50;

/// How long a row this release cannot read waits before a sender looks at it again (a newer
/// release's sender, during a rolling upgrade, takes it at once).
const GIVE_BACK_FOR: chrono::Duration = chrono::Duration::minutes(10);

pub struct Sender {
    db: DatabaseConnection,
    clock: Arc<dyn Clock>,
    claim_ttl: Duration,
    name: String,
    pacer: tokio::sync::Mutex<Pacer>,
    round: AtomicU64,
    /// Where undeliverable offers are reported (`staffbot.staffing_group_id`).
    staffing_channel: Option<String>,
    /// The longest one call takes (the client's timeout).
    call_timeout: Duration,
    /// The app's Home tab, when known (messages link it).
    app_home: Option<AppHome>,
    transports: HashMap<Route, Arc<dyn Transport>>,
    /// Only rows of this route are delivered (emails, when there is no Slack token); the
    /// others wait.
    only: Option<Route>,
    /// Rows this release could not read and gave back (warned about once each).
    unreadable: std::sync::Mutex<HashSet<i64>>,
}

/// A row that failed for good: what recording it needs.
struct Failed<'a> {
    row: &'a Row,
    route: Route,
    follow_up: Option<FollowUp>,
    /// Its attempts, this one included.
    attempts: i32,
}

/// A claimed row, rendered into its call.
struct Claimed {
    row: Row,
    route: Route,
    call: Call,
}

fn to_chrono(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

/// Why a route's rows cannot go out when it has no transport.
fn unconfigured(route: Route) -> &'static str {
    match route {
        Route::Email => "email is not configured (email.smtp_url and email.from)",
        Route::Slack => "Slack is not configured (SLACK_BOT_TOKEN)",
    }
}

impl Sender {
    pub fn new(
        db: DatabaseConnection,
        clock: Arc<dyn Clock>,
        claim_ttl: Duration,
        name: String,
    ) -> Sender {
        Sender {
            db,
            clock,
            claim_ttl,
            name,
            pacer: tokio::sync::Mutex::new(Pacer::default()),
            round: AtomicU64::new(0),
            staffing_channel: None,
            call_timeout: claim_ttl / 2,
            app_home: None,
            transports: HashMap::new(),
            only: None,
            unreadable: Default::default(),
        }
    }

    /// Delivers the rows of `transport`'s route through it.
    pub fn with_transport(mut self, transport: Arc<dyn Transport>) -> Sender {
        self.transports.insert(transport.route(), transport);
        self
    }

    /// Delivers rows of `route` only: the others stay queued, untouched (no attempt counted),
    /// for a sender that can deliver them.
    pub fn only(mut self, route: Route) -> Sender {
        self.only = Some(route);
        self
    }

    /// Messages link the app's Home tab (`home`: its ids).
    pub fn with_app_home(mut self, home: Option<AppHome>) -> Sender {
        self.app_home = home;
        self
    }

    /// Reports offers refused for good to `channel` (the staffing channel).
    pub fn with_staffing_channel(mut self, channel: Option<String>) -> Sender {
        self.staffing_channel = channel;
        self
    }

    /// Each call the sender makes is bounded by its transport's timeout (`timeout`): a row's
    /// claim is extended right before each of its calls for longer than that call can take.
    pub fn with_call_timeout(mut self, timeout: Duration) -> Sender {
        self.call_timeout = timeout;
        self
    }

    /// How long a row's claim is extended before one of its calls: the call's worst case, twice
    /// over, and never less than the claim's time to live.
    fn hold_for(&self) -> Duration {
        self.claim_ttl.max(self.call_timeout * 2)
    }

    /// Delivers everything due now, once. `tick` and tests call this directly.
    pub async fn run_once(&self) -> Result<SendReport, DbErr> {
        let mut report = SendReport::default();
        loop {
            let now = self.clock.now();
            let round = self.round.fetch_add(1, Ordering::Relaxed);
            let token = format!("{}#{round}", self.name);
            let rows =
                db::outbox::claim(&self.db, &token, self.claim_ttl, now, BATCH, self.only).await?;
            if rows.is_empty() {
                return Ok(report);
            }
            let rows = self.coalesce_homes(&token, rows, &mut report).await?;
            for row in rows {
                self.deliver(&token, row, &mut report).await?;
            }
        }
    }

    /// Several claimed Home publishes for one user are one publish (it shows the Home as it is
    /// then): the newest row is delivered, the others are recorded as sent with it.
    async fn coalesce_homes(
        &self,
        token: &str,
        rows: Vec<Row>,
        report: &mut SendReport,
    ) -> Result<Vec<Row>, DbErr> {
        let home_user = |row: &Row| match crate::messages::peek(&row.payload) {
            Peek::Home { user } => Some(user.to_string()),
            _ => None,
        };
        let mut newest: HashMap<String, i64> = Default::default();
        for row in &rows {
            if let Some(user) = home_user(row) {
                let id = newest.entry(user).or_insert(row.id);
                *id = (*id).max(row.id);
            }
        }
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            match home_user(&row).and_then(|user| newest.get(&user).copied()) {
                Some(kept) if kept != row.id => {
                    let done = Finish::Sent {
                        attempts: row.attempts,
                        at: self.clock.now(),
                        response: serde_json::json!({ "coalesced_into": kept }),
                    };
                    db::outbox::finish(&self.db, row.id, token, done).await?;
                    report.sent += 1;
                }
                _ => out.push(row),
            }
        }
        Ok(out)
    }

    /// Right before a call for a claimed row: checks that the claim still holds and extends it
    /// past the call's worst case; with `handed_over`, also marks the row as handed over at
    /// that time. False when the claim was lost: another sender may have the row, so this one
    /// must drop it.
    async fn hold(
        &self,
        id: i64,
        token: &str,
        handed_over: Option<DateTime<Utc>>,
    ) -> Result<bool, DbErr> {
        let held = db::outbox::hold(&self.db, id, token, self.hold_for(), handed_over).await?;
        if !held {
            tracing::warn!(
                id,
                "the claim on this outbox row lapsed before its call; left to whoever holds it now"
            );
            metrics::counter!("staffbot_outbox_claims_lost_total").increment(1);
        }
        Ok(held)
    }

    /// Renders a claimed row into its call, through its route's transport. A row this release
    /// cannot read goes back; one that can never be delivered fails for good.
    async fn prepare(
        &self,
        token: &str,
        row: Row,
        report: &mut SendReport,
    ) -> Result<Option<Claimed>, DbErr> {
        if crate::messages::peek(&row.payload) == Peek::RefreshHomes {
            self.expand_refresh(token, &row, report).await?;
            return Ok(None);
        }
        let route = db::outbox::route(&row);
        let prepared = match self.transports.get(&route) {
            Some(transport) => transport.prepare(&row, self.app_home.as_ref()).await?,
            None => match serde_json::from_value::<Outgoing>(row.payload.clone()) {
                Ok(outgoing) => Prepared::Refused {
                    error: unconfigured(route).to_string(),
                    follow_up: outgoing.follow_up(),
                },
                Err(e) => Prepared::Unreadable(format!("unreadable message: {e}")),
            },
        };
        match prepared {
            Prepared::Call(call) => Ok(Some(Claimed { row, route, call })),
            Prepared::Unreadable(error) => {
                self.give_back(token, &row, &error).await?;
                Ok(None)
            }
            Prepared::Refused { error, follow_up } => {
                tracing::error!(id = row.id, key = %row.dedupe_key, "not delivered: {error}");
                let failed = Failed {
                    row: &row,
                    route,
                    follow_up,
                    attempts: row.attempts + 1,
                };
                self.record_failed(token, failed, error, self.clock.now())
                    .await?;
                report.failed += 1;
                Ok(None)
            }
        }
    }

    /// A row this release cannot read (another release wrote it, or it is damaged) is never
    /// failed: it goes back, unclaimed, for a sender that can (warned about once).
    async fn give_back(&self, token: &str, row: &Row, error: &str) -> Result<(), DbErr> {
        let first = self
            .unreadable
            .lock()
            .map(|mut seen| seen.insert(row.id))
            .unwrap_or(true);
        if first {
            tracing::warn!(
                id = row.id,
                key = %row.dedupe_key,
                format = row.format,
                "this release cannot read an outbox row (written in format {}, this release's is {}): {error}; left for a sender that can",
                row.format,
                db::outbox::FORMAT
            );
        }
        metrics::counter!("staffbot_outbox_unreadable_total").increment(1);
        let retry_at = self.clock.now() + GIVE_BACK_FOR;
        db::outbox::give_back(&self.db, row.id, token, error, retry_at).await
    }

    /// A "these tasks changed" row: queues the Home publishes it stands for and is done, in one
    /// transaction (nothing is queued if the claim was lost meanwhile).
    async fn expand_refresh(
        &self,
        token: &str,
        row: &Row,
        report: &mut SendReport,
    ) -> Result<(), DbErr> {
        let (tasks, users) = match serde_json::from_value::<Outgoing>(row.payload.clone()) {
            Ok(Outgoing::RefreshHomes { tasks, users }) => (tasks, users),
            Ok(_) => return Ok(()),
            Err(e) => {
                return self
                    .give_back(token, row, &format!("unreadable message: {e}"))
                    .await;
            }
        };
        let now = self.clock.now();
        let tx = db::begin_write(&self.db).await?;
        let expanded = async {
            let n = crate::outbox::queue_home_publishes(&tx, &tasks, &users, now).await?;
            let done = Finish::Sent {
                attempts: row.attempts + 1,
                at: now,
                response: serde_json::json!({ "home_publishes": n }),
            };
            db::outbox::finish(&tx, row.id, token, done).await
        }
        .await;
        match expanded {
            Ok(true) => {
                tx.commit().await?;
                report.sent += 1;
            }
            // The claim was lost: whoever holds the row now expands it.
            Ok(false) => tx.rollback().await?,
            Err(e) => {
                tx.rollback().await?;
                return Err(e);
            }
        }
        Ok(())
    }

    /// Paces a claimed call: false when it is not due yet (given back with its time, no
    /// attempt counted).
    async fn paced(
        &self,
        token: &str,
        c: &Claimed,
        transport: &dyn Transport,
        report: &mut SendReport,
    ) -> Result<bool, DbErr> {
        let now = self.clock.now();
        let paces = transport.pace(c.call.method, &c.call.body);
        let ready = self.pacer.lock().await.ready_at(c.call.method, &paces, now);
        if ready <= now {
            return Ok(true);
        }
        let defer = Finish::Defer {
            until: ready,
            error: None,
            not_handed_over: false,
        };
        db::outbox::finish(&self.db, c.row.id, token, defer).await?;
        report.deferred += 1;
        Ok(false)
    }

    async fn deliver(&self, token: &str, row: Row, report: &mut SendReport) -> Result<(), DbErr> {
        let Some(c) = self.prepare(token, row, report).await? else {
            return Ok(());
        };
        let Some(transport) = self.transports.get(&c.route).cloned() else {
            return Ok(());
        };
        if !self.paced(token, &c, transport.as_ref(), report).await? {
            return Ok(());
        }
        if c.call.in_doubt == InDoubt::LookFirst
            && let Some(since) = c.row.sent_at
        {
            // An earlier attempt may have gone through: look before delivering again.
            let attempt = Holding {
                sender: self,
                transport: transport.as_ref(),
                id: c.row.id,
                token,
            };
            let found = transport
                .find_earlier(&c.call, &c.row.dedupe_key, since, &attempt)
                .await?;
            match found {
                Lookup::NotFound => {}
                Lookup::Failed {
                    outcome: Delivery::Permanent(error),
                    ..
                } => {
                    tracing::warn!(id = c.row.id, key = %c.row.dedupe_key,
                            "cannot look for the earlier attempt ({error}); delivering again, which may repeat the message");
                }
                Lookup::Lost => return Ok(()),
                Lookup::Found(response) => {
                    tracing::info!(id = c.row.id, key = %c.row.dedupe_key,
                            "found delivered after an interrupted attempt; not delivered again");
                    return self
                        .record(token, c, Delivery::Sent(response), false, report)
                        .await;
                }
                Lookup::Failed {
                    method,
                    outcome: Delivery::RateLimited(wait),
                } => {
                    return self
                        .rate_limited(token, &c, method, wait, false, report)
                        .await;
                }
                Lookup::Failed { outcome, .. } => {
                    return self.record(token, c, outcome, false, report).await;
                }
            }
        }
        self.call(token, c, transport.as_ref(), report).await
    }

    /// Makes a claimed, paced call and records its outcome. A delivery that must happen once
    /// is "in doubt" from here until its answer is stored.
    async fn call(
        &self,
        token: &str,
        c: Claimed,
        transport: &dyn Transport,
        report: &mut SendReport,
    ) -> Result<(), DbErr> {
        let now = self.clock.now();
        let marked = c.call.in_doubt != InDoubt::Repeat && c.row.sent_at.is_none();
        if !self.hold(c.row.id, token, marked.then_some(now)).await? {
            return Ok(());
        }
        let paces = transport.pace(c.call.method, &c.call.body);
        self.pacer.lock().await.record(&paces, now);
        let outcome = transport.send(&c.call).await;
        count_delivery(c.call.method, &outcome);
        let span = tracing::info_span!("outbox", id = c.row.id, key = %c.row.dedupe_key, method = %c.call.method);
        self.record(token, c, outcome, marked, report)
            .instrument(span)
            .await
    }

    /// Stores the outcome of a call for a claimed row. `marked`: this attempt set `sent_at` (so
    /// a refusal that proves nothing was delivered clears it).
    async fn record(
        &self,
        token: &str,
        c: Claimed,
        outcome: Delivery,
        marked: bool,
        report: &mut SendReport,
    ) -> Result<(), DbErr> {
        let attempts = c.row.attempts + 1;
        let now = self.clock.now();
        let transport = self.transports.get(&c.route).cloned();
        let transience = transport
            .as_ref()
            .map_or(Transience::Retry, |t| t.transience());
        match outcome {
            Delivery::Sent(response) => {
                self.record_sent(token, &c, response, attempts, now).await?;
                report.sent += 1;
                if let Some(t) = &transport {
                    t.working(now).await?;
                }
            }
            Delivery::RateLimited(wait) => {
                self.rate_limited(token, &c, c.call.method, wait, marked, report)
                    .await?;
            }
            Delivery::Transient(error) if transience == Transience::WaitOut => {
                let waits = self
                    .wait_out(token, &c, &error, attempts, now, report)
                    .await?;
                if let Some(t) = &transport {
                    t.failing(&error, waits, now).await?;
                }
            }
            Delivery::Transient(error) if attempts < MAX_ATTEMPTS => {
                let wait = backoff(attempts);
                tracing::warn!(attempts, "delivery failed ({error}); retrying in {wait:?}");
                let retry = Finish::Retry {
                    attempts,
                    at: now + to_chrono(wait),
                    error,
                };
                db::outbox::finish(&self.db, c.row.id, token, retry).await?;
                report.retried += 1;
            }
            Delivery::Transient(error) | Delivery::Permanent(error) => {
                let failed = Failed {
                    row: &c.row,
                    route: c.route,
                    follow_up: c.call.follow_up.clone(),
                    attempts,
                };
                self.record_failed(token, failed, error, now).await?;
                report.failed += 1;
            }
        }
        Ok(())
    }

    /// A call the other side did not take for a reason of its own (a mail server that refused
    /// the login, was down, answered 4xx): the row waits, retried with backoff for as long as
    /// it matters (an offer's, while the offer is open; any other, until it is delivered). The
    /// offer is never given up for it. False when the row was given up (its offer closed).
    async fn wait_out(
        &self,
        token: &str,
        c: &Claimed,
        error: &str,
        attempts: i32,
        now: DateTime<Utc>,
        report: &mut SendReport,
    ) -> Result<bool, DbErr> {
        if let Some(inquiry_id) = offer_of(&c.row)
            && !db::offers::is_open(&self.db, inquiry_id).await?
        {
            tracing::info!(
                "the offer closed while the other side failed ({error}); its message is not sent"
            );
            let failed = Finish::Failed {
                attempts,
                error: format!("not sent: the offer closed while the mail server failed ({error})"),
            };
            db::outbox::finish(&self.db, c.row.id, token, failed).await?;
            report.failed += 1;
            return Ok(false);
        }
        let wait = backoff(attempts);
        tracing::warn!(
            attempts,
            "the other side did not take the message ({error}); it waits, next try in {wait:?}"
        );
        let retry = Finish::Retry {
            attempts,
            at: now + to_chrono(wait),
            error: error.to_string(),
        };
        db::outbox::finish(&self.db, c.row.id, token, retry).await?;
        report.retried += 1;
        Ok(true)
    }

    /// A delivered row, and what follows from its delivery, in one transaction.
    async fn record_sent(
        &self,
        token: &str,
        c: &Claimed,
        response: Value,
        attempts: i32,
        now: DateTime<Utc>,
    ) -> Result<(), DbErr> {
        let sent = || Finish::Sent {
            attempts,
            at: now,
            response: response.clone(),
        };
        let tx = db::begin_write(&self.db).await?;
        let followed = async {
            if db::outbox::finish(&tx, c.row.id, token, sent()).await? {
                after_delivery(&tx, c.call.follow_up.clone(), &response, now).await?;
            }
            Ok::<_, DbErr>(())
        }
        .await;
        match followed {
            Ok(()) => tx.commit().await?,
            Err(e) => {
                // Never leave a delivered row claimable (it would be sent again): record the
                // delivery even if what follows from it could not be.
                tracing::error!("delivered, but could not record its consequences: {e}");
                let _ = tx.rollback().await;
                db::outbox::finish(&self.db, c.row.id, token, sent()).await?;
            }
        }
        tracing::debug!("delivered");
        Ok(())
    }

    /// After a 429 for `method`: nothing of it goes out before the wait is over; the row is due
    /// again then (no attempt counted).
    async fn rate_limited(
        &self,
        token: &str,
        c: &Claimed,
        method: &str,
        wait: Duration,
        marked: bool,
        report: &mut SendReport,
    ) -> Result<(), DbErr> {
        let until = self.clock.now() + to_chrono(wait);
        self.pacer.lock().await.block(method, until);
        tracing::warn!("rate limited; waiting {wait:?} before calling {method} again");
        let defer = Finish::Defer {
            until,
            error: Some("ratelimited"),
            // A 429 means the call was not taken: nothing to look for next time.
            not_handed_over: marked,
        };
        db::outbox::finish(&self.db, c.row.id, token, defer).await?;
        report.deferred += 1;
        Ok(())
    }

    /// A row that failed for good, and what follows from that, in one transaction.
    async fn record_failed(
        &self,
        token: &str,
        failed: Failed<'_>,
        error: String,
        now: DateTime<Utc>,
    ) -> Result<(), DbErr> {
        let Failed {
            row,
            route,
            follow_up,
            attempts,
        } = failed;
        tracing::error!(attempts, "delivery failed for good: {error}");
        let tx = db::begin_write(&self.db).await?;
        let recorded = async {
            let finish = Finish::Failed {
                attempts,
                error: error.clone(),
            };
            if db::outbox::finish(&tx, row.id, token, finish).await? {
                let by_email = route == Route::Email;
                let channel = self.staffing_channel.as_deref();
                after_failure(&tx, follow_up, &error, by_email, channel, now).await?;
            }
            Ok::<_, DbErr>(())
        }
        .await;
        db::settle(tx, recorded).await
    }

    /// Rounds until nothing is due within `patience` (rows the pacer deferred a little are
    /// waited for); for `staffbot tick`.
    pub async fn drain(&self, patience: Duration) -> Result<SendReport, DbErr> {
        let mut total = SendReport::default();
        loop {
            let r = self.run_once().await?;
            total.sent += r.sent;
            total.retried += r.retried;
            total.failed += r.failed;
            match self.next_due().await? {
                Some(at) if at <= self.clock.now() + to_chrono(patience) => {
                    let wait = (at - self.clock.now()).to_std().unwrap_or(Duration::ZERO);
                    tokio::time::sleep(wait + Duration::from_millis(5)).await;
                }
                _ => {
                    total.deferred = r.deferred;
                    return Ok(total);
                }
            }
        }
    }

    /// When the next pending row is due (None when nothing is pending).
    pub async fn next_due(&self) -> Result<Option<DateTime<Utc>>, DbErr> {
        db::outbox::next_due(&self.db, self.clock.now(), self.only).await
    }

    /// Runs until `cancel`: a round whenever `wake` is notified, a row falls due, or every
    /// `idle` (rows queued by other processes: the CLI, another replica).
    pub async fn run(&self, cancel: CancellationToken, wake: Arc<Notify>, idle: Duration) {
        loop {
            if let Err(e) = self.run_once().await {
                tracing::error!("outbox sender: database error: {e}");
            }
            let wait = match self.next_due().await {
                Ok(Some(at)) => (at - self.clock.now())
                    .to_std()
                    .unwrap_or(Duration::ZERO)
                    .min(idle),
                Ok(None) => idle,
                Err(_) => idle,
            };
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = wake.notified() => {}
                _ = tokio::time::sleep(wait.max(Duration::from_millis(5))) => {}
            }
        }
    }
}

/// A claimed row as its transport sees it while looking for an earlier attempt.
struct Holding<'a> {
    sender: &'a Sender,
    transport: &'a dyn Transport,
    id: i64,
    token: &'a str,
}

#[async_trait::async_trait]
impl Attempt for Holding<'_> {
    async fn hold(&self) -> Result<bool, DbErr> {
        self.sender.hold(self.id, self.token, None).await
    }

    async fn paced(&self, method: &'static str, body: &Value) {
        let paces = self.transport.pace(method, body);
        let now = self.sender.clock.now();
        self.sender.pacer.lock().await.record(&paces, now);
    }
}

/// The offer a row's message is, if it is one.
fn offer_of(row: &Row) -> Option<i64> {
    let message = row.payload.get("message")?;
    (message.get("kind")?.as_str()? == "offer")
        .then(|| message.get("inquiry_id")?.as_i64())
        .flatten()
}

/// Counts a call's outcome in the delivery metrics.
fn count_delivery(method: &'static str, outcome: &Delivery) {
    let (label, error) = match outcome {
        Delivery::Sent(_) => ("sent", None),
        Delivery::RateLimited(_) => ("rate_limited", Some("ratelimited".to_string())),
        Delivery::Transient(e) => ("retry", Some(e.clone())),
        Delivery::Permanent(e) => ("failed", Some(e.clone())),
    };
    metrics::counter!("staffbot_deliveries_total", "method" => method, "outcome" => label)
        .increment(1);
    if let Some(error) = error {
        metrics::counter!("staffbot_slack_api_errors_total", "method" => method, "error" => error)
            .increment(1);
    }
}

/// What a refusal for good means for the rest of staffbot: an offer nobody saw is not an offer
/// made.
async fn after_failure<C: ConnectionTrait>(
    conn: &C,
    follow_up: Option<FollowUp>,
    error: &str,
    by_email: bool,
    staffing_channel: Option<&str>,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    match follow_up {
        Some(FollowUp::Offer { inquiry_id }) => {
            respond::on_offer_undeliverable(
                conn,
                inquiry_id,
                error,
                by_email,
                staffing_channel,
                now,
            )
            .await
        }
        Some(FollowUp::TimeZone { user }) => {
            tracing::info!(%user, "Slack did not tell this user's time zone ({error}): their working hours are taken in UTC");
            Ok(())
        }
        Some(FollowUp::Modal { user }) => {
            let notice = format!(
                "The form could not be opened (Slack answered `{error}`). Please click the button again."
            );
            crate::outbox::publish_home(conn, &user, Some(notice), now).await
        }
        None => Ok(()),
    }
}

/// What a delivery means for the rest of staffbot: an offer DM now has a channel and `ts`.
async fn after_delivery<C: ConnectionTrait>(
    conn: &C,
    follow_up: Option<FollowUp>,
    response: &Value,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    if let Some(FollowUp::TimeZone { user }) = &follow_up {
        // Slack's `tz` is an IANA name; one staffbot cannot read is not stored.
        let tz = response
            .get("user")
            .and_then(|u| u.get("tz"))
            .and_then(Value::as_str)
            .filter(|tz| crate::availability::parse_tz(tz).is_ok());
        return match tz {
            Some(tz) => crate::db::availability::store_slack_time_zone(conn, user, tz, now).await,
            None => Ok(()),
        };
    }
    let (Some(channel), Some(ts)) = (
        response.get("channel").and_then(Value::as_str),
        response.get("ts").and_then(Value::as_str),
    ) else {
        return Ok(());
    };
    match follow_up {
        Some(FollowUp::Offer { inquiry_id }) => {
            respond::on_offer_delivered(conn, inquiry_id, channel, ts, now).await
        }
        Some(FollowUp::Modal { .. } | FollowUp::TimeZone { .. }) | None => Ok(()),
    }
}
