//! Slack's way out for the outbox ([`crate::delivery::Transport`]): a row becomes one Web API
//! call, rendered when it is delivered (a Home as it is then), paced within Slack's limits
//! ([`super::pacer`]).
//!
//! **Messages are posted once, across crashes too.** Every `chat.postMessage` carries Slack
//! message metadata naming its outbox row (`event_type` [`METADATA_EVENT_TYPE`],
//! `event_payload.key` = the dedupe key), and the sender marks the row as handed over before the
//! call. Before posting such a row again ([`InDoubt::LookFirst`]) this transport reads the
//! channel's `conversations.history` (with `include_all_metadata`, from a little before the
//! first attempt) and, if the message is there, answers as `chat.postMessage` would have, so
//! it is recorded as sent instead of posted twice. If the history cannot be read for good (a
//! missing `*:history` scope, say), the sender posts again and logs a warning: at least once
//! rather than never. Other writes need no such check: updates, invites and kicks are
//! idempotent, and ephemeral replies cannot be looked up (a crash in that window may repeat one).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::{DatabaseConnection, DbErr};
use serde_json::Value;

use super::pacer;
use super::render;
use super::web::SlackWeb;
use super::write::SlackWrite;
use crate::clock::Clock;
use crate::delivery::{
    Attempt, Call, Delivery, InDoubt, Lookup, Pace, Prepared, Route, Row, Transport,
};
use crate::messages::AppHome;

/// The `event_type` of the metadata on every message the sender posts.
pub const METADATA_EVENT_TYPE: &str = "staffbot_outbox";
/// How far before a row's first attempt its lost message is looked for (clock skew between
/// this host and Slack).
const LOOKBACK: Duration = Duration::from_secs(120);
/// `conversations.history` pages read at most when looking for a lost message.
const HISTORY_PAGES: usize = 10;

/// Slack's transport: the Web API client, and what a Home publish shows.
pub struct SlackTransport {
    db: DatabaseConnection,
    web: Arc<dyn SlackWeb>,
    clock: Arc<dyn Clock>,
    /// `staffbot.policy`: Homes show the adaptive policy's expected minutes.
    policy: crate::staffing::policy::Policy,
    /// Working hours as configured: Homes show each worker's.
    working: crate::availability::WorkingRule,
}

impl SlackTransport {
    pub fn new(
        db: DatabaseConnection,
        web: Arc<dyn SlackWeb>,
        clock: Arc<dyn Clock>,
    ) -> SlackTransport {
        SlackTransport {
            db,
            web,
            clock,
            policy: crate::staffing::policy::Policy::Orchestra,
            working: crate::availability::WorkingRule::default(),
        }
    }

    /// Publishes Homes as `policy` sees the open requests (`staffbot.policy`).
    pub fn with_policy(mut self, policy: crate::staffing::policy::Policy) -> SlackTransport {
        self.policy = policy;
        self
    }

    /// Shows working hours on Homes as `working` sets them (`staffbot.working_hours`, …).
    pub fn with_working_hours(
        mut self,
        working: crate::availability::WorkingRule,
    ) -> SlackTransport {
        self.working = working;
        self
    }

    /// The conversation id of the DM with `user`.
    async fn open_dm(&self, user: &str, attempt: &dyn Attempt) -> Result<String, Delivery> {
        let open = serde_json::json!({"users": user});
        attempt.paced("conversations.open", &open).await;
        match self.web.call("conversations.open", &open).await {
            Delivery::Sent(v) => v["channel"]["id"]
                .as_str()
                .map(str::to_string)
                .ok_or_else(|| Delivery::Transient("conversations.open: no channel id".into())),
            other => Err(other),
        }
    }

    /// One page of `conversations.history` from `oldest`, with message metadata.
    async fn history_page(
        &self,
        channel: &str,
        oldest: &str,
        cursor: Option<&str>,
        attempt: &dyn Attempt,
    ) -> Delivery {
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
        attempt.paced("conversations.history", &Value::Null).await;
        self.web.get("conversations.history", &params).await
    }
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

/// A Slack timestamp (`seconds.micros`) for `at`.
fn slack_ts(at: DateTime<Utc>) -> String {
    format!(
        "{}.{:06}",
        at.timestamp().max(0),
        at.timestamp_subsec_micros().min(999_999)
    )
}

fn to_chrono(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

#[async_trait::async_trait]
impl Transport for SlackTransport {
    fn route(&self) -> Route {
        Route::Slack
    }

    async fn prepare(&self, row: &Row, app_home: Option<&AppHome>) -> Result<Prepared, DbErr> {
        let ctx = render::RenderContext {
            app_home: app_home.cloned(),
        };
        let (write, follow_up) = match render::stored_in(row.payload.clone(), &row.dedupe_key, &ctx)
        {
            Ok((SlackWrite::PublishHome { user_id }, _)) => {
                // A Home shows what is true when it is published.
                let now = self.clock.now();
                let data =
                    crate::home::load(&self.db, &user_id, self.policy, self.working, now).await?;
                (render::home_publish(&user_id, &data), None)
            }
            Ok((SlackWrite::RefreshHomes { .. }, _)) => {
                return Ok(Prepared::Unreadable(
                    "a Home refresh is not a Slack call".into(),
                ));
            }
            Ok(rendered) => rendered,
            Err(error) => return Ok(Prepared::Unreadable(error)),
        };
        let method = write.method();
        let in_doubt = match write {
            SlackWrite::PostMessage { .. } => InDoubt::LookFirst,
            _ => InDoubt::Repeat,
        };
        let body = request_body(write, &row.dedupe_key)
            .map_err(|e| DbErr::Json(format!("outbox row {}: {e}", row.id)))?;
        Ok(Prepared::Call(Call {
            method,
            body,
            follow_up,
            in_doubt,
        }))
    }

    fn pace(&self, method: &str, body: &Value) -> Vec<Pace> {
        pacer::paces(method, body)
    }

    /// Looks for the message of a claimed post in its channel's history, posted since a little
    /// before `since` (its first attempt).
    async fn find_earlier(
        &self,
        call: &Call,
        dedupe_key: &str,
        since: DateTime<Utc>,
        attempt: &dyn Attempt,
    ) -> Result<Lookup, DbErr> {
        let Some(target) = call.body.get("channel").and_then(Value::as_str) else {
            return Ok(Lookup::NotFound);
        };
        // A DM is posted to the user id; its history lives under the DM's conversation id.
        let channel = if target.starts_with('U') || target.starts_with('W') {
            if !attempt.hold().await? {
                return Ok(Lookup::Lost);
            }
            match self.open_dm(target, attempt).await {
                Ok(id) => id,
                Err(outcome) => {
                    return Ok(Lookup::Failed {
                        method: "conversations.history",
                        outcome,
                    });
                }
            }
        } else {
            target.to_string()
        };
        let oldest = slack_ts(since - to_chrono(LOOKBACK));
        let mut cursor: Option<String> = None;
        for _ in 0..HISTORY_PAGES {
            if !attempt.hold().await? {
                return Ok(Lookup::Lost);
            }
            let page = match self
                .history_page(&channel, &oldest, cursor.as_deref(), attempt)
                .await
            {
                Delivery::Sent(page) => page,
                outcome => {
                    return Ok(Lookup::Failed {
                        method: "conversations.history",
                        outcome,
                    });
                }
            };
            if let Some(found) = posted_in(&page, &channel, dedupe_key) {
                return Ok(Lookup::Found(found));
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

    async fn send(&self, call: &Call) -> Delivery {
        if SlackWrite::reads(call.method) {
            // A read method: Slack takes its arguments as a query, not a JSON body.
            let user = call
                .body
                .get("user")
                .and_then(Value::as_str)
                .unwrap_or_default();
            self.web
                .get(call.method, &[("user", user.to_string())])
                .await
        } else {
            self.web.call(call.method, &call.body).await
        }
    }
}

/// The answer `chat.postMessage` would have given, when a history page holds the message
/// posted for the row `dedupe_key`.
fn posted_in(page: &Value, channel: &str, dedupe_key: &str) -> Option<Value> {
    let messages = page["messages"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    let message = messages.iter().find(|m| {
        m["metadata"]["event_type"] == METADATA_EVENT_TYPE
            && m["metadata"]["event_payload"]["key"] == dedupe_key
    })?;
    Some(serde_json::json!({
        "ok": true,
        "channel": channel,
        "ts": message["ts"],
        "message": message,
        "found_in_history": true,
    }))
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
}
