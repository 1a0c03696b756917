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

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr};
use serde_json::Value;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::pacer::Pacer;
use super::render;
use super::web::{Delivery, SlackWeb};
use super::write::SlackWrite;
use crate::clock::Clock;
use crate::db;
use crate::db::outbox::{Finish, Row};
use crate::messages::{FollowUp, Outgoing};
use crate::staffing::respond;

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
    /// What messages are rendered with (the link to the app's Home tab).
    render: render::RenderContext,
    /// `staffbot.policy`: Homes show the adaptive policy's expected minutes.
    policy: crate::staffing::policy::Policy,
    /// Working hours as configured: Homes show each worker's.
    working: crate::availability::WorkingRule,
    /// Where emails go, when email is configured.
    mail: Option<Arc<dyn MailOut>>,
    /// The mail server may be in an outage the staffing channel was told about (checked, and
    /// cleared, after the next email that goes out).
    email_alerted: std::sync::atomic::AtomicBool,
    /// Only rows of this kind are delivered (emails, when there is no Slack token); the others
    /// wait.
    only: Option<db::outbox::Method>,
    /// Rows this release could not read and gave back (warned about once each).
    unreadable: std::sync::Mutex<std::collections::HashSet<i64>>,
}

/// How long a row this release cannot read waits before a sender looks at it again (a newer
/// release's sender, during a rolling upgrade, takes it at once).
const GIVE_BACK_FOR: chrono::Duration = chrono::Duration::minutes(10);

/// Where the sender's email rows go: rendered and sent by [`crate::email`] (the daemon wires
/// it in; this module knows Slack, not mail).
#[async_trait::async_trait]
pub trait MailOut: Send + Sync {
    /// The email an outbox row ([`crate::messages::Outgoing::Email`]) stands for, ready to send
    /// (as JSON), or why it cannot be sent (for good).
    fn ready(
        &self,
        outgoing: &crate::messages::Outgoing,
        app_home: Option<&render::AppHome>,
    ) -> Result<Value, String>;
    /// Hands a ready email to the mail server.
    async fn send(&self, ready: &Value) -> Delivery;
}

fn to_chrono(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

/// The body sent to Slack: the call's parameters; a posted message carries metadata naming its
/// row, so it can be found again after a crash.
fn request_body(write: SlackWrite, dedupe_key: &str) -> Result<Value, serde_json::Error> {
    let posting = matches!(write, SlackWrite::PostMessage { .. });
    let mut body = write.into_payload()?;
    if let Some(obj) = body.as_object_mut() {
        obj.remove("method");
        if posting {
            obj.insert(
                "metadata".to_string(),
                serde_json::json!({
                    "event_type": METADATA_EVENT_TYPE,
                    "event_payload": {"key": dedupe_key},
                }),
            );
        }
    }
    Ok(body)
}

/// A claimed row, rendered into its call.
struct Claimed {
    row: Row,
    method: &'static str,
    body: Value,
    follow_up: Option<FollowUp>,
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
            render: render::RenderContext::default(),
            policy: crate::staffing::policy::Policy::Orchestra,
            working: crate::availability::WorkingRule::default(),
            mail: None,
            email_alerted: std::sync::atomic::AtomicBool::new(true),
            only: None,
            unreadable: Default::default(),
        }
    }

    /// Delivers emails only: Slack rows stay queued, untouched (no attempt counted), for a
    /// sender that has a Slack token.
    pub fn emails_only(mut self) -> Sender {
        self.only = Some(db::outbox::Method::Smtp);
        self
    }

    /// Delivers email rows through `mail` (`email.per_minute` at most).
    pub fn with_mail(mut self, mail: Arc<dyn MailOut>, per_minute: u32) -> Sender {
        let per_minute = f64::from(per_minute.max(1));
        self.pacer = tokio::sync::Mutex::new(Pacer::default().with_rate(
            "smtp",
            (per_minute / 10.0).ceil(),
            per_minute,
        ));
        self.mail = Some(mail);
        self
    }

    /// Publishes Homes as `policy` sees the open requests (`staffbot.policy`).
    pub fn with_policy(mut self, policy: crate::staffing::policy::Policy) -> Sender {
        self.policy = policy;
        self
    }

    /// Shows working hours on Homes as `working` sets them (`staffbot.working_hours`, …).
    pub fn with_working_hours(mut self, working: crate::availability::WorkingRule) -> Sender {
        self.working = working;
        self
    }

    /// Renders messages with `ctx` (e.g. reminders link the app's Home tab).
    pub fn with_render_context(mut self, ctx: render::RenderContext) -> Sender {
        self.render = ctx;
        self
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

    /// Delivers everything due now, once. `tick` and tests call this directly.
    pub async fn run_once(&self) -> Result<SendReport, DbErr> {
        let mut report = SendReport::default();
        loop {
            let now = self.clock.now();
            let round = self
                .round
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
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
        let home_user = |row: &Row| -> Option<String> {
            let payload = &row.payload;
            if payload.get("delivery").and_then(Value::as_str) != Some("home") {
                return None;
            }
            payload
                .get("user")
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        let mut newest: std::collections::HashMap<String, i64> = Default::default();
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
    /// past the call's worst case; with `handed_over`, also marks the row as handed to Slack at
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

    /// Renders a claimed row into its call. A row that cannot be read fails for good.
    async fn prepare(
        &self,
        token: &str,
        row: Row,
        report: &mut SendReport,
    ) -> Result<Option<Claimed>, DbErr> {
        if row.method == "smtp" {
            return self.prepare_email(token, row, report).await;
        }
        match render::stored_in(row.payload.clone(), &row.dedupe_key, &self.render) {
            Ok((SlackWrite::PublishHome { user_id }, _)) => {
                // A Home shows what is true when it is published.
                let now = self.clock.now();
                let data =
                    crate::home::load(&self.db, &user_id, self.policy, self.working, now).await?;
                let write = render::home_publish(&user_id, &data);
                let body = request_body(write, &row.dedupe_key)
                    .map_err(|e| DbErr::Json(format!("outbox row {}: {e}", row.id)))?;
                Ok(Some(Claimed {
                    row,
                    method: "views.publish",
                    body,
                    follow_up: None,
                }))
            }
            Ok((SlackWrite::RefreshHomes { tasks, users }, _)) => {
                self.expand_refresh(token, &row, &tasks, &users, report)
                    .await?;
                Ok(None)
            }
            Ok((write, follow_up)) => {
                let method = write.method();
                let body = request_body(write, &row.dedupe_key)
                    .map_err(|e| DbErr::Json(format!("outbox row {}: {e}", row.id)))?;
                Ok(Some(Claimed {
                    row,
                    method,
                    body,
                    follow_up,
                }))
            }
            Err(error) => {
                self.give_back(token, &row, &error).await?;
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

    /// Renders a claimed email row into the email sent. A row that cannot be read, or email that
    /// is not configured, fails for good (an offer then counts as never made).
    async fn prepare_email(
        &self,
        token: &str,
        row: Row,
        report: &mut SendReport,
    ) -> Result<Option<Claimed>, DbErr> {
        let outgoing =
            match serde_json::from_value::<crate::messages::Outgoing>(row.payload.clone()) {
                Ok(outgoing) => Ok(outgoing),
                Err(e) => {
                    self.give_back(token, &row, &format!("unreadable email: {e}"))
                        .await?;
                    return Ok(None);
                }
            };
        let follow_up = outgoing.as_ref().ok().and_then(|o| o.follow_up());
        let body = outgoing.and_then(|outgoing| {
            let Some(mail) = &self.mail else {
                return Err("email is not configured (email.smtp_url and email.from)".into());
            };
            mail.ready(&outgoing, self.render.app_home.as_ref())
        });
        match body {
            Ok(body) => Ok(Some(Claimed {
                row,
                method: "smtp",
                body,
                follow_up,
            })),
            Err(error) => {
                tracing::error!(id = row.id, key = %row.dedupe_key, "email not sent: {error}");
                let attempts = row.attempts + 1;
                let c = Claimed {
                    row,
                    method: "smtp",
                    body: Value::Null,
                    follow_up,
                };
                self.record_failed(token, &c, error, attempts, self.clock.now())
                    .await?;
                report.failed += 1;
                Ok(None)
            }
        }
    }

    /// Hands a ready email (a claimed row's body) to the mail server.
    async fn send_email(&self, body: &Value) -> Delivery {
        match &self.mail {
            Some(mail) => mail.send(body).await,
            None => Delivery::Permanent("email is not configured".into()),
        }
    }

    /// A "these tasks changed" row: queues the Home publishes it stands for and is done, in one
    /// transaction (nothing is queued if the claim was lost meanwhile).
    async fn expand_refresh(
        &self,
        token: &str,
        row: &Row,
        tasks: &[i64],
        users: &[String],
        report: &mut SendReport,
    ) -> Result<(), DbErr> {
        let now = self.clock.now();
        let tx = db::begin_write(&self.db).await?;
        let expanded = async {
            let n = crate::outbox::queue_home_publishes(&tx, tasks, users, now).await?;
            let done = Finish::Sent {
                attempts: row.attempts + 1,
                at: now,
                response: serde_json::json!({ "home_publishes": n }),
            };
            if !db::outbox::finish(&tx, row.id, token, done).await? {
                return Err(DbErr::Custom("claim lost".into()));
            }
            Ok(n)
        }
        .await;
        match expanded {
            Ok(_) => {
                tx.commit().await?;
                report.sent += 1;
            }
            Err(DbErr::Custom(lost)) if lost == "claim lost" => tx.rollback().await?,
            Err(e) => {
                tx.rollback().await?;
                return Err(e);
            }
        }
        Ok(())
    }

    async fn deliver(&self, token: &str, row: Row, report: &mut SendReport) -> Result<(), DbErr> {
        let Some(c) = self.prepare(token, row, report).await? else {
            return Ok(());
        };
        let now = self.clock.now();
        let ready = self.pacer.lock().await.ready_at(c.method, &c.body, now);
        if ready > now {
            // Not yet: give the row back with its time, without counting an attempt.
            let defer = Finish::Defer {
                until: ready,
                error: None,
                not_handed_over: false,
            };
            db::outbox::finish(&self.db, c.row.id, token, defer).await?;
            report.deferred += 1;
            return Ok(());
        }
        let posting = c.method == "chat.postMessage";
        if posting && let Some(since) = c.row.sent_at {
            // An earlier attempt may have reached Slack: look before posting again.
            match self.find_posted(&c, token, since).await? {
                Lookup::NotFound => {}
                Lookup::Failed(Delivery::Permanent(error)) => {
                    tracing::warn!(id = c.row.id, key = %c.row.dedupe_key,
                            "cannot read the channel's history ({error}); posting again, which may repeat the message");
                }
                Lookup::Lost => return Ok(()),
                Lookup::Found(response) => {
                    tracing::info!(id = c.row.id, key = %c.row.dedupe_key,
                            "found in the channel's history after an interrupted attempt; not posted again");
                    return self
                        .record(token, c, Delivery::Sent(response), false, report)
                        .await;
                }
                Lookup::Failed(Delivery::RateLimited(wait)) => {
                    return self
                        .rate_limited(token, &c, "conversations.history", wait, false, report)
                        .await;
                }
                Lookup::Failed(outcome) => {
                    return self.record(token, c, outcome, false, report).await;
                }
            }
        }
        // A first post (or email) is "in doubt" from here until its answer is stored. An email
        // in doubt is sent again with the same Message-ID: there is no history to look in.
        let emailing = c.method == "smtp";
        let marked = (posting || emailing) && c.row.sent_at.is_none();
        if !self.hold(c.row.id, token, marked.then_some(now)).await? {
            return Ok(());
        }
        self.pacer.lock().await.record(c.method, &c.body, now);
        let outcome = if emailing {
            self.send_email(&c.body).await
        } else if c.method == "users.info" {
            // A read method: Slack takes its arguments as a query, not a JSON body.
            let user = c
                .body
                .get("user")
                .and_then(Value::as_str)
                .unwrap_or_default();
            self.web.get(c.method, &[("user", user.to_string())]).await
        } else {
            self.web.call(c.method, &c.body).await
        };
        count_delivery(c.method, &outcome);
        let span = tracing::info_span!("outbox", id = c.row.id, key = %c.row.dedupe_key, method = %c.method);
        self.record(token, c, outcome, marked, report)
            .instrument(span)
            .await
    }

    /// Looks for the message of a claimed post in its channel's history, posted since a little
    /// before `since` (its first attempt).
    async fn find_posted(
        &self,
        c: &Claimed,
        token: &str,
        since: DateTime<Utc>,
    ) -> Result<Lookup, DbErr> {
        let Some(target) = c.body.get("channel").and_then(Value::as_str) else {
            return Ok(Lookup::NotFound);
        };
        // A DM is posted to the user id; its history lives under the DM's conversation id.
        let channel = if target.starts_with('U') || target.starts_with('W') {
            if !self.hold(c.row.id, token, None).await? {
                return Ok(Lookup::Lost);
            }
            match self.open_dm(target).await {
                Ok(id) => id,
                Err(failed) => return Ok(Lookup::Failed(failed)),
            }
        } else {
            target.to_string()
        };
        let oldest = slack_ts(since - to_chrono(LOOKBACK));
        let mut cursor: Option<String> = None;
        for _ in 0..HISTORY_PAGES {
            if !self.hold(c.row.id, token, None).await? {
                return Ok(Lookup::Lost);
            }
            let page = match self
                .history_page(&channel, &oldest, cursor.as_deref())
                .await
            {
                Delivery::Sent(page) => page,
                other => return Ok(Lookup::Failed(other)),
            };
            let messages = page["messages"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or(&[]);
            if let Some(message) = messages.iter().find(|m| {
                m["metadata"]["event_type"] == METADATA_EVENT_TYPE
                    && m["metadata"]["event_payload"]["key"] == c.row.dedupe_key.as_str()
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

    /// The conversation id of the DM with `user`.
    async fn open_dm(&self, user: &str) -> Result<String, Delivery> {
        let open = serde_json::json!({"users": user});
        let now = self.clock.now();
        self.pacer
            .lock()
            .await
            .record("conversations.open", &open, now);
        match self.web.call("conversations.open", &open).await {
            Delivery::Sent(v) => v["channel"]["id"]
                .as_str()
                .map(str::to_string)
                .ok_or_else(|| Delivery::Transient("conversations.open: no channel id".into())),
            other => Err(other),
        }
    }

    /// One page of `conversations.history` from `oldest`, with message metadata.
    async fn history_page(&self, channel: &str, oldest: &str, cursor: Option<&str>) -> Delivery {
        let mut params = vec![
            ("channel", channel.to_string()),
            ("oldest", oldest.to_string()),
            ("inclusive", "true".to_string()),
            ("limit", "100".to_string()),
            ("include_all_metadata", "true".to_string()),
        ];
        if let Some(c) = cursor {
            params.push(("cursor", c.to_string()));
        }
        let now = self.clock.now();
        self.pacer
            .lock()
            .await
            .record("conversations.history", &Value::Null, now);
        self.web.get("conversations.history", &params).await
    }

    /// Stores the outcome of a call for a claimed row. `marked`: this attempt set `sent_at` (so
    /// a refusal that proves nothing was posted clears it).
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
        match outcome {
            Delivery::Sent(response) => {
                self.record_sent(token, &c, response, attempts, now).await?;
                report.sent += 1;
                if c.method == "smtp" {
                    self.email_works(now).await?;
                }
            }
            Delivery::RateLimited(wait) => {
                self.rate_limited(token, &c, c.method, wait, marked, report)
                    .await?;
            }
            Delivery::Transient(error) if c.method == "smtp" => {
                self.email_waits(token, &c, error, attempts, now, report)
                    .await?;
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
                self.record_failed(token, &c, error, attempts, now).await?;
                report.failed += 1;
            }
        }
        Ok(())
    }

    /// An email the mail server did not take, for a reason of its own (login refused, down,
    /// a 4xx answer, refusing all mail): the email waits, retried with backoff for as long as
    /// it matters (an offer's, while the offer is open; any other, until it is delivered), and
    /// the staffing channel is told once an outage. The offer is never given up for it.
    async fn email_waits(
        &self,
        token: &str,
        c: &Claimed,
        error: String,
        attempts: i32,
        now: DateTime<Utc>,
        report: &mut SendReport,
    ) -> Result<(), DbErr> {
        metrics::counter!("staffbot_email_server_failures_total").increment(1);
        if let Some(inquiry_id) = emailed_offer(&c.row)
            && !db::offers::is_open(&self.db, inquiry_id).await?
        {
            tracing::info!(
                "the offer closed while the mail server failed ({error}); its email is not sent"
            );
            let failed = Finish::Failed {
                attempts,
                error: format!("not sent: the offer closed while the mail server failed ({error})"),
            };
            db::outbox::finish(&self.db, c.row.id, token, failed).await?;
            report.failed += 1;
            return Ok(());
        }
        let wait = backoff(attempts);
        tracing::warn!(
            attempts,
            "the mail server did not take an email ({error}); it waits, next try in {wait:?}"
        );
        let retry = Finish::Retry {
            attempts,
            at: now + to_chrono(wait),
            error: error.clone(),
        };
        db::outbox::finish(&self.db, c.row.id, token, retry).await?;
        report.retried += 1;
        self.email_alert(&error, now).await
    }

    /// Tells the staffing channel that email is failing, once an outage: the alert's key names
    /// the last "email is back" row (none: 0), so every sender and replica that sees the same
    /// outage queues the same row.
    async fn email_alert(&self, error: &str, now: DateTime<Utc>) -> Result<(), DbErr> {
        self.email_alerted
            .store(true, std::sync::atomic::Ordering::Relaxed);
        let Some(channel) = &self.staffing_channel else {
            return Ok(());
        };
        let tx = db::begin_write(&self.db).await?;
        let raised = async {
            let down = db::outbox::newest_with_prefix(&tx, EMAIL_DOWN).await?;
            let up = db::outbox::newest_with_prefix(&tx, EMAIL_UP).await?;
            if down.unwrap_or(0) > up.unwrap_or(0) {
                return Ok(false);
            }
            let message = crate::messages::Message::EmailFailing {
                error: error.to_string(),
            };
            let key = format!("{EMAIL_DOWN}{}", up.unwrap_or(0));
            crate::outbox::enqueue(&tx, &key, Outgoing::post(channel, message), now).await
        }
        .await;
        if db::settle(tx, raised).await? {
            tracing::error!("email is failing ({error}); the staffing channel is told");
        }
        Ok(())
    }

    /// After an email went out: an outage the staffing channel was told about is over.
    async fn email_works(&self, now: DateTime<Utc>) -> Result<(), DbErr> {
        if !self
            .email_alerted
            .swap(false, std::sync::atomic::Ordering::Relaxed)
        {
            return Ok(());
        }
        let Some(channel) = &self.staffing_channel else {
            return Ok(());
        };
        let tx = db::begin_write(&self.db).await?;
        let done = async {
            let down = db::outbox::newest_with_prefix(&tx, EMAIL_DOWN).await?;
            let up = db::outbox::newest_with_prefix(&tx, EMAIL_UP).await?;
            if let Some(down) = down.filter(|d| *d > up.unwrap_or(0)) {
                let key = format!("{EMAIL_UP}{down}");
                let back = Outgoing::post(channel, crate::messages::Message::EmailBack);
                crate::outbox::enqueue(&tx, &key, back, now).await?;
                tracing::info!("email is going out again");
            }
            Ok::<_, DbErr>(())
        }
        .await;
        db::settle(tx, done).await
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
                after_delivery(&tx, c.follow_up.clone(), &response, now).await?;
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
        tracing::warn!("rate limited by Slack; waiting {wait:?} before calling {method} again");
        let defer = Finish::Defer {
            until,
            error: Some("ratelimited"),
            // A 429 means Slack did not take the call: nothing to look for next time.
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
        c: &Claimed,
        error: String,
        attempts: i32,
        now: DateTime<Utc>,
    ) -> Result<(), DbErr> {
        tracing::error!(attempts, "delivery failed for good: {error}");
        let tx = db::begin_write(&self.db).await?;
        let recorded = async {
            let failed = Finish::Failed {
                attempts,
                error: error.clone(),
            };
            if db::outbox::finish(&tx, c.row.id, token, failed).await? {
                after_failure(
                    &tx,
                    c.follow_up.clone(),
                    &error,
                    c.method == "smtp",
                    self.staffing_channel.as_deref(),
                    now,
                )
                .await?;
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

/// Dedupe-key prefixes of the staffing channel's "email is failing" and "email is back" posts.
const EMAIL_DOWN: &str = "email-down:";
const EMAIL_UP: &str = "email-up:";

/// The offer an email row carries, if it carries one.
fn emailed_offer(row: &Row) -> Option<i64> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn posts_carry_their_outbox_key_as_metadata() {
        let post = SlackWrite::PostMessage {
            channel: "U1".into(),
            text: "hi".into(),
            blocks: None,
        };
        assert_eq!(
            request_body(post, "offer:7").expect("body"),
            json!({"channel": "U1", "text": "hi", "metadata": {
                "event_type": "staffbot_outbox", "event_payload": {"key": "offer:7"}}})
        );
        let update = SlackWrite::Update {
            channel: "D1".into(),
            ts: "1.2".into(),
            text: "x".into(),
            blocks: None,
        };
        assert_eq!(
            request_body(update, "offer-final:7").expect("body"),
            json!({"channel": "D1", "ts": "1.2", "text": "x"})
        );
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
}
