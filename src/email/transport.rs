//! Email's way out for the outbox ([`crate::delivery::Transport`]): an email row is rendered
//! ([`super::ready`]) and handed to the mail server ([`Mailer`]), paced at `email.per_minute`.
//!
//! A mail server that does not take an email for a reason of its own (login refused, down, a 4xx
//! answer) is an outage, not the email's fault: the email waits ([`Transience::WaitOut`]), and
//! the staffing channel is told once an outage, then told again when email goes out.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use chrono::{DateTime, Utc};
use sea_orm::{DatabaseConnection, DbErr};
use serde_json::Value;

use super::{EmailSettings, Mailer, ReadyEmail};
use crate::db;
use crate::delivery::{Call, Delivery, InDoubt, Pace, Prepared, Route, Row, Transience, Transport};
use crate::messages::{AppHome, Message, Outgoing};

/// The method of every email call (pacing, metrics).
const METHOD: &str = "smtp";

/// Dedupe-key prefixes of the staffing channel's "email is failing" and "email is back" posts.
const EMAIL_DOWN: &str = "email-down:";
const EMAIL_UP: &str = "email-up:";

/// Email's transport: rendered with `settings`, sent by `mailer`.
pub struct EmailTransport {
    mailer: Arc<dyn Mailer>,
    settings: EmailSettings,
    /// `email.per_minute`.
    per_minute: u32,
    db: DatabaseConnection,
    /// Where outages are told (`staffbot.staffing_group_id`).
    staffing_channel: Option<String>,
    /// The mail server may be in an outage the staffing channel was told about (checked, and
    /// cleared, after the next email that goes out).
    alerted: AtomicBool,
}

impl EmailTransport {
    pub fn new(
        mailer: Arc<dyn Mailer>,
        settings: EmailSettings,
        per_minute: u32,
        db: DatabaseConnection,
    ) -> EmailTransport {
        EmailTransport {
            mailer,
            settings,
            per_minute,
            db,
            staffing_channel: None,
            alerted: AtomicBool::new(true),
        }
    }

    /// Tells `channel` (the staffing channel) when email fails and when it is back.
    pub fn with_staffing_channel(mut self, channel: Option<String>) -> EmailTransport {
        self.staffing_channel = channel;
        self
    }
}

#[async_trait::async_trait]
impl Transport for EmailTransport {
    fn route(&self) -> Route {
        Route::Email
    }

    /// A row that cannot be read goes back; one that cannot be rendered fails for good (an
    /// offer then counts as never made).
    async fn prepare(&self, row: &Row, app_home: Option<&AppHome>) -> Result<Prepared, DbErr> {
        let outgoing = match serde_json::from_value::<Outgoing>(row.payload.clone()) {
            Ok(outgoing) => outgoing,
            Err(e) => return Ok(Prepared::Unreadable(format!("unreadable email: {e}"))),
        };
        let follow_up = outgoing.follow_up();
        let body = super::ready(&outgoing, &self.settings, app_home)
            .and_then(|email| serde_json::to_value(&email).map_err(|e| e.to_string()));
        Ok(match body {
            Ok(body) => Prepared::Call(Call {
                method: METHOD,
                body,
                follow_up,
                in_doubt: InDoubt::SendAgain,
            }),
            Err(error) => Prepared::Refused { error, follow_up },
        })
    }

    fn pace(&self, _method: &str, _body: &Value) -> Vec<Pace> {
        let per_minute = f64::from(self.per_minute.max(1));
        vec![Pace::new(METHOD, (per_minute / 10.0).ceil(), per_minute)]
    }

    async fn send(&self, call: &Call) -> Delivery {
        match serde_json::from_value::<ReadyEmail>(call.body.clone()) {
            Ok(email) => self.mailer.send(&email).await,
            Err(e) => Delivery::Permanent(format!("unreadable email: {e}")),
        }
    }

    fn transience(&self) -> Transience {
        Transience::WaitOut
    }

    /// Tells the staffing channel that email is failing, once an outage: the alert's key names
    /// the last "email is back" row (none: 0), so every sender and replica that sees the same
    /// outage queues the same row.
    async fn failing(&self, error: &str, waits: bool, now: DateTime<Utc>) -> Result<(), DbErr> {
        metrics::counter!("staffbot_email_server_failures_total").increment(1);
        if !waits {
            return Ok(());
        }
        self.alerted.store(true, Ordering::Relaxed);
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
            let message = Message::EmailFailing {
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
    async fn working(&self, now: DateTime<Utc>) -> Result<(), DbErr> {
        if !self.alerted.swap(false, Ordering::Relaxed) {
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
                let back = Outgoing::post(channel, Message::EmailBack);
                crate::outbox::enqueue(&tx, &key, back, now).await?;
                tracing::info!("email is going out again");
            }
            Ok::<_, DbErr>(())
        }
        .await;
        db::settle(tx, done).await
    }
}
