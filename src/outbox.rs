//! The outbox: every Slack write is a row first (design.md §2). Domain code calls [`enqueue`]
//! inside its transaction; the sender (Slack side) delivers rows later, exactly once per
//! dedupe key.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveValue::Set, ConnectionTrait, DbErr, EntityTrait};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::db::OutboxStatus;
use crate::db::entities::outbox;
use crate::slack::mrkdwn::Mrkdwn;

/// One Slack Web API call, as stored in `outbox.payload`. The tag is the API method name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "method")]
pub enum SlackWrite {
    /// `chat.postMessage`; `channel` may be a channel id or a user id (a DM).
    #[serde(rename = "chat.postMessage")]
    PostMessage {
        channel: String,
        text: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        blocks: Option<Value>,
    },
    /// `chat.update` of a message we posted earlier.
    #[serde(rename = "chat.update")]
    Update {
        channel: String,
        ts: String,
        text: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        blocks: Option<Value>,
    },
    #[serde(rename = "chat.postEphemeral")]
    PostEphemeral {
        channel: String,
        user: String,
        text: String,
    },
    #[serde(rename = "conversations.invite")]
    Invite { channel: String, users: String },
    #[serde(rename = "conversations.kick")]
    Kick { channel: String, user: String },
    /// An ephemeral reply through an interaction's `response_url` (not a Web API method).
    #[serde(rename = "response_url")]
    Respond { response_url: String, text: String },
}

impl SlackWrite {
    pub fn method(&self) -> &'static str {
        match self {
            SlackWrite::PostMessage { .. } => "chat.postMessage",
            SlackWrite::Update { .. } => "chat.update",
            SlackWrite::PostEphemeral { .. } => "chat.postEphemeral",
            SlackWrite::Invite { .. } => "conversations.invite",
            SlackWrite::Kick { .. } => "conversations.kick",
            SlackWrite::Respond { .. } => "response_url",
        }
    }

    /// The stored payload (what `Serialize` writes), moving the message's blocks rather than
    /// copying them.
    pub fn into_payload(self) -> Result<Value, DbErr> {
        match self {
            SlackWrite::PostMessage {
                channel,
                text,
                blocks,
            } => {
                let mut m = serde_json::Map::with_capacity(4);
                m.insert("method".into(), Value::from("chat.postMessage"));
                m.insert("channel".into(), Value::from(channel));
                m.insert("text".into(), Value::from(text));
                if let Some(blocks) = blocks {
                    m.insert("blocks".into(), blocks);
                }
                Ok(Value::Object(m))
            }
            other => serde_json::to_value(&other).map_err(|e| DbErr::Custom(e.to_string())),
        }
    }

    /// A message with only text. Every message's text goes through a [`Mrkdwn`] (escaped, cut
    /// to Slack's limit), never a bare string.
    pub fn post(channel: &str, text: Mrkdwn) -> SlackWrite {
        SlackWrite::PostMessage {
            channel: channel.to_string(),
            text: message_text(text),
            blocks: None,
        }
    }

    /// A message with blocks (built by [`crate::slack::blocks`]) and its text fallback.
    pub fn message(channel: &str, text: Mrkdwn, blocks: Value) -> SlackWrite {
        SlackWrite::PostMessage {
            channel: channel.to_string(),
            text: message_text(text),
            blocks: Some(blocks),
        }
    }

    /// `chat.update` of an earlier message, with blocks.
    pub fn update(channel: &str, ts: &str, text: Mrkdwn, blocks: Value) -> SlackWrite {
        SlackWrite::Update {
            channel: channel.to_string(),
            ts: ts.to_string(),
            text: message_text(text),
            blocks: Some(blocks),
        }
    }

    /// An ephemeral reply through an interaction's `response_url`.
    pub fn respond(response_url: &str, text: Mrkdwn) -> SlackWrite {
        SlackWrite::Respond {
            response_url: response_url.to_string(),
            text: message_text(text),
        }
    }
}

/// A message's top-level text, within Slack's limit.
fn message_text(text: Mrkdwn) -> String {
    text.truncated(crate::slack::blocks::MAX_TEXT_CHARS)
        .into_string()
}

/// A pending row for `write`, due now.
fn new_row(
    dedupe_key: String,
    write: SlackWrite,
    now: DateTime<Utc>,
) -> Result<outbox::ActiveModel, DbErr> {
    Ok(outbox::ActiveModel {
        dedupe_key: Set(dedupe_key),
        method: Set(write.method().to_string()),
        payload: Set(write.into_payload()?),
        status: Set(OutboxStatus::Pending),
        attempts: Set(0),
        next_attempt_at: Set(now),
        created_at: Set(now),
        ..Default::default()
    })
}

/// Queues `write` under `dedupe_key`. Queuing the same key twice is a no-op, so callers may
/// retry freely. Returns true when a new row was written.
pub async fn enqueue<C: ConnectionTrait>(
    conn: &C,
    dedupe_key: &str,
    write: &SlackWrite,
    now: DateTime<Utc>,
) -> Result<bool, DbErr> {
    let row = new_row(dedupe_key.to_string(), write.clone(), now)?;
    Ok(insert_new(conn, vec![row]).await? > 0)
}

/// Inserts rows, skipping keys already queued; returns how many were new.
async fn insert_new<C: ConnectionTrait>(
    conn: &C,
    rows: Vec<outbox::ActiveModel>,
) -> Result<u64, DbErr> {
    outbox::Entity::insert_many(rows)
        .on_conflict(
            OnConflict::column(outbox::Column::DedupeKey)
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(conn)
        .await
}

/// Queues several writes in one statement (keys already queued are skipped).
pub async fn enqueue_many<C: ConnectionTrait>(
    conn: &C,
    writes: &[(String, SlackWrite)],
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    enqueue_owned(conn, writes.to_vec(), now).await
}

/// [`enqueue_many`] taking the writes by value: a message's blocks move into the stored
/// payload instead of being copied (what a batch of thousands of offers needs).
pub async fn enqueue_owned<C: ConnectionTrait>(
    conn: &C,
    writes: Vec<(String, SlackWrite)>,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    if writes.is_empty() {
        return Ok(());
    }
    let rows = writes
        .into_iter()
        .map(|(key, write)| new_row(key, write, now))
        .collect::<Result<Vec<_>, _>>()?;
    // Seven values a row: chunks stay under SQLite's 32,766 and PostgreSQL's 65,535 bound
    // parameters.
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        insert_new(conn, rows.by_ref().take(ROWS_PER_INSERT).collect()).await?;
    }
    Ok(())
}

/// Rows one multi-row insert carries at most.
const ROWS_PER_INSERT: usize = 4000;

#[cfg(test)]
mod payload_tests {
    use super::*;

    #[test]
    fn into_payload_is_what_serialize_writes() {
        let writes = [
            SlackWrite::PostMessage {
                channel: "U1".into(),
                text: "hi".into(),
                blocks: Some(serde_json::json!([{"type": "section"}])),
            },
            SlackWrite::post("C1", Mrkdwn::text("plain")),
            SlackWrite::Invite {
                channel: "C1".into(),
                users: "U1".into(),
            },
        ];
        for w in writes {
            let expected = serde_json::to_value(&w).expect("serialize");
            assert_eq!(w.into_payload().expect("payload"), expected);
        }
    }
}
