//! The outbox sender: claims due rows, delivers them through the Web API, and records the result.
//!
//! Claims carry an expiry on the database's clock (`loops.lease_ttl`), so rows held by a sender
//! that died are taken over. Right before every Slack call for a row (the post, an update, an
//! invite, each page of a history lookup) its claim is re-checked and extended past that call's
//! worst case (twice the Web API client's timeout): a sender whose claim lapsed meanwhile (it
//! stalled, its calls were slow) drops the row instead of calling, so a row another sender took
//! over is never sent twice. A row's completion is conditional on its claim token too.
//!
//! **Messages are posted once, across crashes too.** Every `chat.postMessage` carries Slack
//! message metadata naming its outbox row (`event_type` [`METADATA_EVENT_TYPE`],
//! `event_payload.key` = the dedupe key), and the row's `sent_at` is set *before* the call. A
//! pending row with `sent_at` is therefore "handed to Slack at `sent_at`, outcome unknown": the
//! process died before storing the answer, the call timed out, or Slack answered 5xx after
//! perhaps posting. Before posting such a row again the sender reads the channel's
//! `conversations.history` (with `include_all_metadata`, from a little before `sent_at`) and, if
//! the message is there, records it as sent with that `ts` instead of posting it twice. If the
//! history cannot be read for good (a missing `*:history` scope, say), it posts again and logs a
//! warning: at least once rather than never. Other writes need no such check: updates, invites
//! and kicks are idempotent, and ephemeral replies cannot be looked up (a crash in that window
//! may repeat one).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect,
};
use serde_json::Value;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::web::{Delivery, SlackWeb};
use crate::clock::Clock;
use crate::db::OutboxStatus;
use crate::db::entities::outbox;

/// After this many failed attempts a row is marked failed.
pub const MAX_ATTEMPTS: i32 = 12;
/// Longest wait between two attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// Rows one round claims at most.
const BATCH: u64 = 50;

/// The `event_type` of the metadata on every message the sender posts.
pub const METADATA_EVENT_TYPE: &str = "staffbot_outbox";
/// How far before a row's first attempt its lost message is looked for (clock skew between
/// this host and Slack).
const LOOKBACK: Duration = Duration::from_secs(120);
/// `conversations.history` pages read at most when looking for a lost message.
const HISTORY_PAGES: usize = 10;

/// Backoff before attempt `attempts + 1`: 1 s, 2 s, 4 s, … capped at [`MAX_BACKOFF`].
pub fn backoff(attempts: i32) -> Duration {
    let exp = attempts.clamp(1, 20) as u32 - 1;
    Duration::from_secs(1u64 << exp).min(MAX_BACKOFF)
}

/// A token bucket: `capacity` calls at once, refilled at `per_minute`.
#[derive(Debug, Clone)]
struct Bucket {
    capacity: f64,
    per_sec: f64,
    tokens: f64,
    at: DateTime<Utc>,
}

impl Bucket {
    fn new(capacity: f64, per_minute: f64, now: DateTime<Utc>) -> Bucket {
        Bucket {
            capacity,
            per_sec: per_minute / 60.0,
            tokens: capacity,
            at: now,
        }
    }

    fn refill(&mut self, now: DateTime<Utc>) {
        let elapsed = (now - self.at).num_milliseconds().max(0) as f64 / 1000.0;
        self.tokens = (self.tokens + elapsed * self.per_sec).min(self.capacity);
        self.at = now;
    }

    /// When one token will be available (now if it is).
    fn ready_at(&mut self, now: DateTime<Utc>) -> DateTime<Utc> {
        self.refill(now);
        if self.tokens >= 1.0 {
            now
        } else {
            let secs = (1.0 - self.tokens) / self.per_sec;
            now + chrono::Duration::milliseconds((secs * 1000.0).ceil() as i64)
        }
    }

    fn take(&mut self, now: DateTime<Utc>) {
        self.refill(now);
        self.tokens -= 1.0;
    }
}

/// Slack's published limits (slack-protocol §3.3): per method and workspace, and for
/// `chat.postMessage` one message per second per channel. We pace instead of provoking 429s.
///
/// There is a bucket per DM channel, so idle state is dropped (at most every [`SWEEP_EVERY`]):
/// a bucket refilled to capacity is what a new one would be, and a block that has passed
/// blocks nothing. Memory follows the channels written to recently, not all channels ever.
#[derive(Debug, Default)]
pub struct Pacer {
    buckets: HashMap<String, Bucket>,
    blocked_until: HashMap<String, DateTime<Utc>>,
    swept_at: Option<DateTime<Utc>>,
}

/// How often the pacer drops idle buckets and expired blocks.
const SWEEP_EVERY: chrono::TimeDelta = chrono::TimeDelta::seconds(60);

fn method_rate(method: &str) -> (f64, f64) {
    match method {
        // Special tier: a workspace-wide limit Slack does not publish; stay well inside it.
        "chat.postMessage" => (60.0, 600.0),
        "chat.postEphemeral" | "views.publish" | "users.info" => (100.0, 100.0),
        "auth.test" => (100.0, 6000.0),
        // Tier 3: chat.update, conversations.open/invite/kick and anything else.
        _ => (50.0, 50.0),
    }
}

impl Pacer {
    fn keys(method: &str, body: &Value) -> Vec<(String, (f64, f64))> {
        let mut keys = vec![(method.to_string(), method_rate(method))];
        if method == "chat.postMessage"
            && let Some(channel) = body.get("channel").and_then(Value::as_str)
        {
            // One per second per channel, with a small burst.
            keys.push((format!("{method}:{channel}"), (2.0, 60.0)));
        }
        keys
    }

    /// Drops full buckets and past blocks, unless that was done less than [`SWEEP_EVERY`] ago.
    fn sweep(&mut self, now: DateTime<Utc>) {
        if self.swept_at.is_some_and(|at| now - at < SWEEP_EVERY) {
            return;
        }
        self.swept_at = Some(now);
        self.buckets.retain(|_, bucket| {
            bucket.refill(now);
            bucket.tokens < bucket.capacity
        });
        self.blocked_until.retain(|_, until| *until > now);
    }

    /// When a call of `method` with `body` may go out.
    pub fn ready_at(&mut self, method: &str, body: &Value, now: DateTime<Utc>) -> DateTime<Utc> {
        self.sweep(now);
        let mut at = now;
        if let Some(until) = self.blocked_until.get(method) {
            at = at.max(*until);
        }
        for (key, (capacity, per_minute)) in Self::keys(method, body) {
            let bucket = self
                .buckets
                .entry(key)
                .or_insert_with(|| Bucket::new(capacity, per_minute, now));
            at = at.max(bucket.ready_at(now));
        }
        at
    }

    pub fn record(&mut self, method: &str, body: &Value, now: DateTime<Utc>) {
        for (key, (capacity, per_minute)) in Self::keys(method, body) {
            self.buckets
                .entry(key)
                .or_insert_with(|| Bucket::new(capacity, per_minute, now))
                .take(now);
        }
    }

    /// After a 429: nothing of this method goes out before `until`.
    pub fn block(&mut self, method: &str, until: DateTime<Utc>) {
        let entry = self
            .blocked_until
            .entry(method.to_string())
            .or_insert(until);
        *entry = (*entry).max(until);
    }
}

/// What one round did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SendReport {
    pub sent: usize,
    pub retried: usize,
    pub failed: usize,
    pub deferred: usize,
}

pub struct Sender {
    db: DatabaseConnection,
    web: Arc<dyn SlackWeb>,
    clock: Arc<dyn Clock>,
    claim_ttl: Duration,
    name: String,
    pacer: tokio::sync::Mutex<Pacer>,
    round: std::sync::atomic::AtomicU64,
    /// Where undeliverable offers are reported (`staffbot.staffing_group_id`).
    staffing_channel: Option<String>,
    /// The longest one Web API call takes (the client's timeout).
    call_timeout: Duration,
}

fn to_chrono(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

/// The body sent to Slack: the stored payload without its `method` tag; a posted message
/// carries metadata naming its row, so it can be found again after a crash.
fn request_body(row: &outbox::Model) -> Value {
    let mut body = row.payload.clone();
    if let Some(obj) = body.as_object_mut() {
        obj.remove("method");
        if row.method == "chat.postMessage" {
            obj.insert(
                "metadata".to_string(),
                serde_json::json!({
                    "event_type": METADATA_EVENT_TYPE,
                    "event_payload": {"key": row.dedupe_key},
                }),
            );
        }
    }
    body
}

/// A Slack timestamp (`seconds.micros`) for `at`.
fn slack_ts(at: DateTime<Utc>) -> String {
    format!(
        "{}.{:06}",
        at.timestamp().max(0),
        at.timestamp_subsec_micros().min(999_999)
    )
}

/// What looking for an earlier attempt's message found.
enum Lookup {
    /// Posted already: the answer `chat.postMessage` would have given.
    Found(Value),
    /// The row's claim was lost while looking: leave the row.
    Lost,
    NotFound,
    /// The history could not be read now (retry the row later).
    Failed(Delivery),
}

impl Sender {
    pub fn new(
        db: DatabaseConnection,
        web: Arc<dyn SlackWeb>,
        clock: Arc<dyn Clock>,
        claim_ttl: Duration,
        name: String,
    ) -> Sender {
        Sender {
            db,
            web,
            clock,
            claim_ttl,
            name,
            pacer: tokio::sync::Mutex::new(Pacer::default()),
            round: std::sync::atomic::AtomicU64::new(0),
            staffing_channel: None,
            call_timeout: claim_ttl / 2,
        }
    }

    /// Reports offers Slack refused for good to `channel` (the staffing channel).
    pub fn with_staffing_channel(mut self, channel: Option<String>) -> Sender {
        self.staffing_channel = channel;
        self
    }

    /// Each call the sender makes is bounded by the Web API client's timeout (`timeout`): a row's
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

    /// Claims up to [`BATCH`] due rows for this round with one conditional UPDATE (the row lock
    /// on PostgreSQL skips rows another sender is claiming); returns them with the claim token.
    /// Claims expire on the database's clock, whatever this host's clock says.
    async fn claim(&self, now: DateTime<Utc>) -> Result<(String, Vec<outbox::Model>), DbErr> {
        let round = self
            .round
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let token = format!("{}#{round}", self.name);
        let backend = self.db.get_database_backend();
        let db_now = crate::loops::db_now(backend);
        let expires = crate::loops::db_now_plus(backend, 2);
        let lock = if crate::db::is_postgres(&self.db) {
            " FOR UPDATE SKIP LOCKED"
        } else {
            ""
        };
        let due = format!(
            "status = 'pending' AND next_attempt_at <= $3
             AND (claim_expires_at IS NULL OR claim_expires_at < {db_now})"
        );
        let claimed = self
            .db
            .execute_raw(crate::db::statement(
                backend,
                &format!(
                    "UPDATE outbox SET claimed_by = $1, claim_expires_at = {expires}
                     WHERE id IN (SELECT id FROM outbox WHERE {due} ORDER BY id LIMIT {BATCH}{lock})
                       AND {due}"
                ),
                vec![
                    token.clone().into(),
                    crate::loops::duration_param(backend, self.claim_ttl),
                    now.into(),
                ],
            ))
            .await?;
        if claimed.rows_affected() == 0 {
            return Ok((token, Vec::new()));
        }
        let rows = outbox::Entity::find()
            .filter(outbox::Column::ClaimedBy.eq(token.clone()))
            .filter(outbox::Column::Status.eq(OutboxStatus::Pending.as_str()))
            .order_by_asc(outbox::Column::Id)
            .all(&self.db)
            .await?;
        Ok((token, rows))
    }

    /// Right before a call for a claimed row: checks that the claim still holds (ours, not
    /// expired on the database's clock) and extends it past the call's worst case; with
    /// `handed_over`, also marks the row as handed to Slack at that time (`sent_at`). False when
    /// the claim was lost: another sender may have the row, so this one must drop it.
    async fn hold(
        &self,
        id: i64,
        token: &str,
        handed_over: Option<DateTime<Utc>>,
    ) -> Result<bool, DbErr> {
        let backend = self.db.get_database_backend();
        let db_now = crate::loops::db_now(backend);
        let expires = crate::loops::db_now_plus(backend, 3);
        let mut values = vec![
            id.into(),
            token.into(),
            crate::loops::duration_param(backend, self.hold_for()),
        ];
        let mark = match handed_over {
            Some(at) => {
                values.push(at.into());
                ", sent_at = $4"
            }
            None => "",
        };
        let held = self
            .db
            .execute_raw(crate::db::statement(
                backend,
                &format!(
                    "UPDATE outbox SET claim_expires_at = {expires}{mark}
                     WHERE id = $1 AND claimed_by = $2 AND status = 'pending'
                       AND claim_expires_at > {db_now}"
                ),
                values,
            ))
            .await?
            .rows_affected()
            == 1;
        if !held {
            tracing::warn!(
                id,
                "the claim on this outbox row lapsed before its call; left to whoever holds it now"
            );
            metrics::counter!("staffbot_outbox_claims_lost_total").increment(1);
        }
        Ok(held)
    }

    /// Updates a claimed row, only while our claim holds.
    async fn finish<C: ConnectionTrait>(
        conn: &C,
        id: i64,
        token: &str,
        changes: Vec<(outbox::Column, Expr)>,
    ) -> Result<bool, DbErr> {
        let mut update = outbox::Entity::update_many()
            .col_expr(
                outbox::Column::ClaimedBy,
                Expr::value(Option::<String>::None),
            )
            .col_expr(
                outbox::Column::ClaimExpiresAt,
                Expr::value(Option::<DateTime<Utc>>::None),
            );
        for (col, expr) in changes {
            update = update.col_expr(col, expr);
        }
        let result = update
            .filter(outbox::Column::Id.eq(id))
            .filter(outbox::Column::ClaimedBy.eq(token))
            .exec(conn)
            .await?;
        Ok(result.rows_affected == 1)
    }

    /// Delivers everything due now, once. `tick` and tests call this directly.
    pub async fn run_once(&self) -> Result<SendReport, DbErr> {
        let mut report = SendReport::default();
        loop {
            let now = self.clock.now();
            let (token, rows) = self.claim(now).await?;
            if rows.is_empty() {
                return Ok(report);
            }
            for row in rows {
                self.deliver(&token, row, &mut report).await?;
            }
        }
    }

    async fn deliver(
        &self,
        token: &str,
        row: outbox::Model,
        report: &mut SendReport,
    ) -> Result<(), DbErr> {
        let body = request_body(&row);
        let now = self.clock.now();
        let ready = self.pacer.lock().await.ready_at(&row.method, &body, now);
        if ready > now {
            // Not yet: give the row back with its time, without counting an attempt.
            Self::finish(
                &self.db,
                row.id,
                token,
                vec![(outbox::Column::NextAttemptAt, Expr::value(ready))],
            )
            .await?;
            report.deferred += 1;
            return Ok(());
        }
        let posting = row.method == "chat.postMessage";
        let mut marked = false;
        if posting && let Some(since) = row.sent_at {
            // An earlier attempt may have reached Slack: look before posting again.
            match self.find_posted(&row, token, &body, since).await? {
                Lookup::Lost => return Ok(()),
                Lookup::Found(response) => {
                    tracing::info!(id = row.id, key = %row.dedupe_key,
                            "found in the channel's history after an interrupted attempt; not posted again");
                    let attempts = row.attempts + 1;
                    let now = self.clock.now();
                    return self
                        .record(
                            token,
                            row,
                            Delivery::Sent(response),
                            attempts,
                            now,
                            false,
                            report,
                        )
                        .await;
                }
                Lookup::NotFound => {}
                Lookup::Failed(Delivery::RateLimited(wait)) => {
                    let until = self.clock.now() + to_chrono(wait);
                    self.pacer
                        .lock()
                        .await
                        .block("conversations.history", until);
                    Self::finish(
                        &self.db,
                        row.id,
                        token,
                        vec![
                            (outbox::Column::NextAttemptAt, Expr::value(until)),
                            (outbox::Column::LastError, Expr::value("ratelimited")),
                        ],
                    )
                    .await?;
                    report.deferred += 1;
                    return Ok(());
                }
                Lookup::Failed(Delivery::Permanent(error)) => {
                    tracing::warn!(id = row.id, key = %row.dedupe_key,
                            "cannot read the channel's history ({error}); posting again, which may repeat the message");
                }
                Lookup::Failed(outcome) => {
                    let attempts = row.attempts + 1;
                    let now = self.clock.now();
                    return self
                        .record(token, row, outcome, attempts, now, false, report)
                        .await;
                }
            }
        }
        if posting && row.sent_at.is_none() {
            // From here until the answer is stored the row is "in doubt".
            if !self.hold(row.id, token, Some(now)).await? {
                return Ok(());
            }
            marked = true;
        } else if !self.hold(row.id, token, None).await? {
            return Ok(());
        }
        self.pacer.lock().await.record(&row.method, &body, now);
        let outcome = self.web.call(&row.method, &body).await;
        let (label, error) = match &outcome {
            Delivery::Sent(_) => ("sent", None),
            Delivery::RateLimited(_) => ("rate_limited", Some("ratelimited".to_string())),
            Delivery::Transient(e) => ("retry", Some(e.clone())),
            Delivery::Permanent(e) => ("failed", Some(e.clone())),
        };
        metrics::counter!("staffbot_deliveries_total", "method" => row.method.clone(), "outcome" => label)
            .increment(1);
        if let Some(error) = error {
            metrics::counter!("staffbot_slack_api_errors_total", "method" => row.method.clone(), "error" => error)
                .increment(1);
        }
        let now = self.clock.now();
        let attempts = row.attempts + 1;
        let span =
            tracing::info_span!("outbox", id = row.id, key = %row.dedupe_key, method = %row.method);
        self.record(token, row, outcome, attempts, now, marked, report)
            .instrument(span)
            .await
    }

    /// Looks for the message of `row` in its channel's history, posted since a little before
    /// `since` (its first attempt).
    async fn find_posted(
        &self,
        row: &outbox::Model,
        token: &str,
        body: &Value,
        since: DateTime<Utc>,
    ) -> Result<Lookup, DbErr> {
        let Some(target) = body.get("channel").and_then(Value::as_str) else {
            return Ok(Lookup::NotFound);
        };
        // A DM is posted to the user id; its history lives under the DM's conversation id.
        let channel = if target.starts_with('U') || target.starts_with('W') {
            if !self.hold(row.id, token, None).await? {
                return Ok(Lookup::Lost);
            }
            let now = self.clock.now();
            let open = serde_json::json!({"users": target});
            self.pacer
                .lock()
                .await
                .record("conversations.open", &open, now);
            match self.web.call("conversations.open", &open).await {
                Delivery::Sent(v) => match v["channel"]["id"].as_str() {
                    Some(id) => id.to_string(),
                    None => {
                        return Ok(Lookup::Failed(Delivery::Transient(
                            "conversations.open: no channel id".into(),
                        )));
                    }
                },
                other => return Ok(Lookup::Failed(other)),
            }
        } else {
            target.to_string()
        };
        let oldest = slack_ts(since - to_chrono(LOOKBACK));
        let mut cursor: Option<String> = None;
        for _ in 0..HISTORY_PAGES {
            let mut params = vec![
                ("channel", channel.clone()),
                ("oldest", oldest.clone()),
                ("inclusive", "true".to_string()),
                ("limit", "100".to_string()),
                ("include_all_metadata", "true".to_string()),
            ];
            if let Some(c) = &cursor {
                params.push(("cursor", c.clone()));
            }
            if !self.hold(row.id, token, None).await? {
                return Ok(Lookup::Lost);
            }
            let now = self.clock.now();
            self.pacer
                .lock()
                .await
                .record("conversations.history", &Value::Null, now);
            let page = match self.web.get("conversations.history", &params).await {
                Delivery::Sent(page) => page,
                other => return Ok(Lookup::Failed(other)),
            };
            let messages = page["messages"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or(&[]);
            if let Some(message) = messages.iter().find(|m| {
                m["metadata"]["event_type"] == METADATA_EVENT_TYPE
                    && m["metadata"]["event_payload"]["key"] == row.dedupe_key.as_str()
            }) {
                return Ok(Lookup::Found(serde_json::json!({
                    "ok": true,
                    "channel": channel,
                    "ts": message["ts"],
                    "message": message,
                    "found_in_history": true,
                })));
            }
            cursor = page["response_metadata"]["next_cursor"]
                .as_str()
                .filter(|c| !c.is_empty() && page["has_more"] == true)
                .map(str::to_string);
            if cursor.is_none() {
                break;
            }
        }
        Ok(Lookup::NotFound)
    }

    #[allow(clippy::too_many_arguments)]
    async fn record(
        &self,
        token: &str,
        row: outbox::Model,
        outcome: Delivery,
        attempts: i32,
        now: DateTime<Utc>,
        // This attempt set `sent_at` (so a refusal that proves nothing was posted clears it).
        marked: bool,
        report: &mut SendReport,
    ) -> Result<(), DbErr> {
        match outcome {
            Delivery::Sent(response) => {
                let sent = || {
                    vec![
                        (
                            outbox::Column::Status,
                            Expr::value(OutboxStatus::Sent.as_str()),
                        ),
                        (outbox::Column::Attempts, Expr::value(attempts)),
                        (outbox::Column::SentAt, Expr::value(now)),
                        (outbox::Column::Result, Expr::value(response.clone())),
                        (
                            outbox::Column::LastError,
                            Expr::value(Option::<String>::None),
                        ),
                    ]
                };
                let tx = crate::db::begin_write(&self.db).await?;
                let hook = async {
                    if Self::finish(&tx, row.id, token, sent()).await? {
                        after_delivery(&tx, &row, &response, now).await?;
                    }
                    Ok::<_, DbErr>(())
                }
                .await;
                match hook {
                    Ok(()) => tx.commit().await?,
                    Err(e) => {
                        // Never leave a delivered row claimable (it would be sent again): record
                        // the delivery even if what follows from it could not be.
                        tracing::error!("delivered, but could not record its consequences: {e}");
                        let _ = tx.rollback().await;
                        Self::finish(&self.db, row.id, token, sent()).await?;
                    }
                }
                tracing::debug!("delivered");
                report.sent += 1;
            }
            Delivery::RateLimited(wait) => {
                let until = now + to_chrono(wait);
                self.pacer.lock().await.block(&row.method, until);
                tracing::warn!(
                    "rate limited by Slack; waiting {wait:?} before calling {} again",
                    row.method
                );
                let mut changes = vec![
                    (outbox::Column::NextAttemptAt, Expr::value(until)),
                    (outbox::Column::LastError, Expr::value("ratelimited")),
                ];
                if marked {
                    // A 429 means Slack did not take the call: nothing to look for next time.
                    changes.push((
                        outbox::Column::SentAt,
                        Expr::value(Option::<DateTime<Utc>>::None),
                    ));
                }
                Self::finish(&self.db, row.id, token, changes).await?;
                report.deferred += 1;
            }
            Delivery::Transient(error) if attempts < MAX_ATTEMPTS => {
                let wait = backoff(attempts);
                tracing::warn!(attempts, "delivery failed ({error}); retrying in {wait:?}");
                Self::finish(
                    &self.db,
                    row.id,
                    token,
                    vec![
                        (outbox::Column::Attempts, Expr::value(attempts)),
                        (
                            outbox::Column::NextAttemptAt,
                            Expr::value(now + to_chrono(wait)),
                        ),
                        (outbox::Column::LastError, Expr::value(error)),
                    ],
                )
                .await?;
                report.retried += 1;
            }
            Delivery::Transient(error) | Delivery::Permanent(error) => {
                tracing::error!(attempts, "delivery failed for good: {error}");
                let tx = crate::db::begin_write(&self.db).await?;
                let recorded = async {
                    let finished = Self::finish(
                        &tx,
                        row.id,
                        token,
                        vec![
                            (
                                outbox::Column::Status,
                                Expr::value(OutboxStatus::Failed.as_str()),
                            ),
                            (outbox::Column::Attempts, Expr::value(attempts)),
                            (outbox::Column::LastError, Expr::value(error.clone())),
                        ],
                    )
                    .await?;
                    if finished {
                        after_failure(&tx, &row, &error, self.staffing_channel.as_deref(), now)
                            .await?;
                    }
                    Ok::<_, DbErr>(())
                }
                .await;
                crate::db::settle(tx, recorded).await?;
                report.failed += 1;
            }
        }
        Ok(())
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
        outbox::Entity::find()
            .select_only()
            .column_as(outbox::Column::NextAttemptAt.min(), "next")
            .filter(outbox::Column::Status.eq(OutboxStatus::Pending.as_str()))
            // Rows another sender holds are its business until the claim expires.
            .filter(
                Condition::any()
                    .add(outbox::Column::ClaimExpiresAt.is_null())
                    .add(outbox::Column::ClaimExpiresAt.lt(self.clock.now())),
            )
            .into_tuple::<Option<DateTime<Utc>>>()
            .one(&self.db)
            .await
            .map(Option::flatten)
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

/// What a refusal for good means for the rest of staffbot: an offer nobody saw is not an offer
/// made.
async fn after_failure<C: ConnectionTrait>(
    conn: &C,
    row: &outbox::Model,
    error: &str,
    staffing_channel: Option<&str>,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    if row.method == "chat.postMessage"
        && let Some(id) = row
            .dedupe_key
            .strip_prefix("offer:")
            .and_then(|id| id.parse::<i64>().ok())
    {
        crate::staffing::respond::on_offer_undeliverable(conn, id, error, staffing_channel, now)
            .await?;
    }
    Ok(())
}

/// What a delivery means for the rest of staffbot: an offer DM now has a channel and `ts`.
async fn after_delivery<C: ConnectionTrait>(
    conn: &C,
    row: &outbox::Model,
    response: &Value,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    if let Some(id) = row
        .dedupe_key
        .strip_prefix("offer:")
        .and_then(|id| id.parse::<i64>().ok())
        && let (Some(channel), Some(ts)) = (
            response.get("channel").and_then(Value::as_str),
            response.get("ts").and_then(Value::as_str),
        )
    {
        crate::staffing::respond::on_offer_delivered(conn, id, channel, ts, now).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn t(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + secs, 0).expect("valid")
    }

    fn row(method: &str, payload: Value) -> outbox::Model {
        outbox::Model {
            id: 1,
            dedupe_key: "offer:7".into(),
            method: method.into(),
            payload,
            status: OutboxStatus::Pending,
            attempts: 0,
            next_attempt_at: t(0),
            claimed_by: None,
            claim_expires_at: None,
            result: None,
            last_error: None,
            created_at: t(0),
            sent_at: None,
        }
    }

    #[test]
    fn posts_carry_their_outbox_key_as_metadata() {
        let body = request_body(&row(
            "chat.postMessage",
            json!({"method": "chat.postMessage", "channel": "U1", "text": "hi"}),
        ));
        assert_eq!(
            body,
            json!({"channel": "U1", "text": "hi", "metadata": {
                "event_type": "staffbot_outbox", "event_payload": {"key": "offer:7"}}})
        );
        let body = request_body(&row(
            "chat.update",
            json!({"method": "chat.update", "channel": "D1", "ts": "1.2", "text": "x"}),
        ));
        assert_eq!(body, json!({"channel": "D1", "ts": "1.2", "text": "x"}));
    }

    #[test]
    fn slack_timestamps_have_six_decimals() {
        let at = DateTime::from_timestamp(1_700_000_000, 42_000).expect("valid");
        assert_eq!(slack_ts(at), "1700000000.000042");
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        assert_eq!(backoff(1), Duration::from_secs(1));
        assert_eq!(backoff(2), Duration::from_secs(2));
        assert_eq!(backoff(5), Duration::from_secs(16));
        assert_eq!(backoff(12), MAX_BACKOFF);
    }

    #[test]
    fn one_post_per_second_per_channel() {
        let mut p = Pacer::default();
        let dm = json!({"channel": "U1"});
        let other = json!({"channel": "U2"});
        for _ in 0..2 {
            assert_eq!(p.ready_at("chat.postMessage", &dm, t(0)), t(0));
            p.record("chat.postMessage", &dm, t(0));
        }
        // The burst of two is spent: the third waits a second; another channel does not.
        assert_eq!(p.ready_at("chat.postMessage", &dm, t(0)), t(1));
        assert_eq!(p.ready_at("chat.postMessage", &other, t(0)), t(0));
        assert_eq!(p.ready_at("chat.postMessage", &dm, t(1)), t(1));
    }

    #[test]
    fn a_429_blocks_only_its_method() {
        let mut p = Pacer::default();
        p.block("chat.update", t(5));
        assert_eq!(p.ready_at("chat.update", &json!({}), t(0)), t(5));
        assert_eq!(
            p.ready_at("chat.postMessage", &json!({"channel": "C"}), t(0)),
            t(0)
        );
        assert_eq!(p.ready_at("chat.update", &json!({}), t(6)), t(6));
    }

    #[test]
    fn idle_buckets_and_past_blocks_are_dropped() {
        let mut p = Pacer::default();
        for i in 0..1000 {
            p.record(
                "chat.postMessage",
                &json!({"channel": format!("U{i}")}),
                t(0),
            );
        }
        p.block("chat.update", t(30));
        let busy = json!({"channel": "UBUSY"});
        for _ in 0..2 {
            p.record("chat.postMessage", &busy, t(100));
        }
        assert_eq!(p.buckets.len(), 1002);
        // At t(100) the 1000 DM buckets are full again, the block is over; the method bucket
        // (1002 posts, 10 a second back) and UBUSY's (just emptied) still pace.
        assert_eq!(p.ready_at("chat.postMessage", &busy, t(100)), t(101));
        let mut kept: Vec<&str> = p.buckets.keys().map(String::as_str).collect();
        kept.sort_unstable();
        assert_eq!(kept, ["chat.postMessage", "chat.postMessage:UBUSY"]);
        assert!(p.blocked_until.is_empty());
        // Sweeps are at most a minute apart; a dropped bucket comes back full.
        p.record("chat.postMessage", &json!({"channel": "U1"}), t(100));
        assert_eq!(p.ready_at("chat.postMessage", &busy, t(130)), t(130));
        assert_eq!(p.buckets.len(), 3);
        assert_eq!(p.ready_at("chat.postMessage", &busy, t(160)), t(160));
        assert_eq!(
            p.buckets.len(),
            2,
            "U1's went, the two just asked about are new"
        );
        assert!(!p.buckets.contains_key("chat.postMessage:U1"));
    }

    #[test]
    fn tier_buckets_allow_bursts_then_pace() {
        let mut p = Pacer::default();
        for _ in 0..50 {
            assert_eq!(p.ready_at("conversations.invite", &json!({}), t(0)), t(0));
            p.record("conversations.invite", &json!({}), t(0));
        }
        assert_eq!(
            p.ready_at("conversations.invite", &json!({}), t(0)),
            t(0) + chrono::Duration::milliseconds(1200)
        );
    }
}
