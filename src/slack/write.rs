//! One Slack Web API call as the sender makes it: what a typed message renders to
//! ([`super::render`]), and what the outbox stored before messages were typed (rows queued by
//! an earlier version are still delivered as they are).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::mrkdwn::Mrkdwn;

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
    /// `users.info` (a read: sent as a GET with `user` as its query).
    #[serde(rename = "users.info")]
    UserInfo { user: String },
    /// An ephemeral reply through an interaction's `response_url` (not a Web API method).
    #[serde(rename = "response_url")]
    Respond { response_url: String, text: String },
    /// `views.publish` of a user's App Home.
    #[serde(rename = "views.publish")]
    PublishView { user_id: String, view: Value },
    /// A user's App Home to publish, as it is when it is delivered: the sender loads what it
    /// shows and turns this into [`SlackWrite::PublishView`].
    #[serde(rename = "home")]
    PublishHome { user_id: String },
    /// Not a Web API call: the sender queues the Home publishes of those who see these tasks
    /// ([`crate::messages::Outgoing::RefreshHomes`]).
    #[serde(rename = "homes.refresh")]
    RefreshHomes { tasks: Vec<i64>, users: Vec<String> },
    /// `views.open` of a modal, in answer to the click that gave `trigger_id`.
    #[serde(rename = "views.open")]
    OpenView { trigger_id: String, view: Value },
}

impl SlackWrite {
    /// Whether `method` reads (Slack takes its arguments as a query string, not a JSON body).
    pub fn reads(method: &str) -> bool {
        method == "users.info"
    }

    pub fn method(&self) -> &'static str {
        match self {
            SlackWrite::PostMessage { .. } => "chat.postMessage",
            SlackWrite::Update { .. } => "chat.update",
            SlackWrite::PostEphemeral { .. } => "chat.postEphemeral",
            SlackWrite::Invite { .. } => "conversations.invite",
            SlackWrite::Kick { .. } => "conversations.kick",
            SlackWrite::UserInfo { .. } => "users.info",
            SlackWrite::Respond { .. } => "response_url",
            SlackWrite::PublishView { .. } | SlackWrite::PublishHome { .. } => "views.publish",
            SlackWrite::OpenView { .. } => "views.open",
            SlackWrite::RefreshHomes { .. } => "homes.refresh",
        }
    }

    /// The stored payload (what `Serialize` writes), moving the message's blocks rather than
    /// copying them.
    pub fn into_payload(self) -> Result<Value, serde_json::Error> {
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
            other => serde_json::to_value(&other),
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

    /// A message with blocks (built by [`super::blocks`]) and its text fallback.
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
    text.truncated(super::blocks::MAX_TEXT_CHARS).into_string()
}

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
