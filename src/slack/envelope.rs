//! Socket Mode frames as Slack sends them (slack-protocol §1.3–1.5, §2), parsed leniently with
//! our own types: the fields staffbot uses, nothing else required.

use serde::Deserialize;
use serde_json::Value;

/// One text frame from the Socket Mode WebSocket.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    Hello,
    Disconnect { reason: String },
    Envelope(Envelope),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    pub envelope_id: String,
    pub kind: String,
    pub accepts_response_payload: bool,
    pub payload: Value,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum FrameError {
    #[error("frame is not JSON: {0}")]
    NotJson(String),
    #[error("frame has no type")]
    NoType,
    #[error("envelope of type {0} has no envelope_id")]
    NoEnvelopeId(String),
}

/// Parses a frame. Unknown frame types with an envelope id are returned as envelopes (so they
/// can be acked); frames without one are errors.
pub fn parse_frame(text: &str) -> Result<Frame, FrameError> {
    let value: Value =
        serde_json::from_str(text).map_err(|e| FrameError::NotJson(e.to_string()))?;
    let kind = value
        .get("type")
        .and_then(Value::as_str)
        .ok_or(FrameError::NoType)?
        .to_string();
    match kind.as_str() {
        "hello" => Ok(Frame::Hello),
        "disconnect" => Ok(Frame::Disconnect {
            reason: value
                .get("reason")
                .and_then(Value::as_str)
                .unwrap_or("unknown")
                .to_string(),
        }),
        _ => {
            let envelope_id = value
                .get("envelope_id")
                .and_then(Value::as_str)
                .filter(|id| !id.is_empty())
                .ok_or_else(|| FrameError::NoEnvelopeId(kind.clone()))?
                .to_string();
            Ok(Frame::Envelope(Envelope {
                envelope_id,
                accepts_response_payload: value
                    .get("accepts_response_payload")
                    .and_then(Value::as_bool)
                    .unwrap_or(false),
                payload: value.get("payload").cloned().unwrap_or(Value::Null),
                kind,
            }))
        }
    }
}

/// The fields of a slash-command payload staffbot reads (slack-protocol §2.1).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct SlashCommand {
    pub token: Option<String>,
    pub team_id: Option<String>,
    pub team_domain: Option<String>,
    pub channel_id: Option<String>,
    pub channel_name: Option<String>,
    pub user_id: Option<String>,
    pub user_name: Option<String>,
    pub command: Option<String>,
    pub text: Option<String>,
    pub response_url: Option<String>,
    pub trigger_id: Option<String>,
}

impl SlashCommand {
    pub fn parse(payload: &Value) -> Result<SlashCommand, String> {
        if !payload.is_object() {
            return Err("slash command payload is not an object".to_string());
        }
        serde_json::from_value(payload.clone()).map_err(|e| e.to_string())
    }

    /// A whitelist field by its Orchestra name.
    pub fn field(&self, name: &str) -> Option<&str> {
        match name {
            "team_id" => self.team_id.as_deref(),
            "team_domain" => self.team_domain.as_deref(),
            "channel_id" => self.channel_id.as_deref(),
            "channel_name" => self.channel_name.as_deref(),
            "user_id" => self.user_id.as_deref(),
            "user_name" => self.user_name.as_deref(),
            "command" => self.command.as_deref(),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct IdOnly {
    pub id: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Container {
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub message_ts: Option<String>,
    pub channel_id: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Action {
    pub action_id: Option<String>,
    pub block_id: Option<String>,
    pub value: Option<String>,
    pub action_ts: Option<String>,
}

/// The fields of a `block_actions` payload staffbot reads (slack-protocol §2.2).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct BlockActions {
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub token: Option<String>,
    pub user: IdOnly,
    pub team: Option<IdOnly>,
    pub channel: Option<IdOnly>,
    pub container: Container,
    pub trigger_id: Option<String>,
    pub response_url: Option<String>,
    pub actions: Vec<Action>,
}

impl BlockActions {
    pub fn parse(payload: &Value) -> Result<BlockActions, String> {
        if !payload.is_object() {
            return Err("interactive payload is not an object".to_string());
        }
        serde_json::from_value(payload.clone()).map_err(|e| e.to_string())
    }
}

/// Replaces the verification token inside a payload before it is logged.
pub fn redacted(payload: &Value) -> Value {
    let mut copy = payload.clone();
    if let Some(obj) = copy.as_object_mut()
        && obj.contains_key("token")
    {
        obj.insert("token".into(), Value::String("[redacted]".into()));
    }
    copy
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/crates/slack-sim/fixtures");

    fn fixture(path: &str) -> String {
        std::fs::read_to_string(format!("{FIXTURES}/{path}")).expect("fixture exists")
    }

    #[test]
    fn published_frames_parse() {
        assert_eq!(
            parse_frame(&fixture("socket-mode/hello.python-slack-sdk.json")),
            Ok(Frame::Hello)
        );
        assert_eq!(
            parse_frame(&fixture(
                "socket-mode/disconnect.refresh_requested.docs.json"
            )),
            Ok(Frame::Disconnect {
                reason: "refresh_requested".into()
            })
        );
        let Ok(Frame::Envelope(e)) =
            parse_frame(&fixture("socket-mode/envelope.slash_commands.docs.json"))
        else {
            panic!("envelope expected");
        };
        assert_eq!(e.envelope_id, "dbdd0ef3-1543-4f94-bfb4-133d0e6c1545");
        assert_eq!(e.kind, "slash_commands");
        assert!(e.accepts_response_payload);
        let cmd = SlashCommand::parse(&e.payload).expect("payload");
        assert_eq!(cmd.user_id.as_deref(), Some("U123ABC456"));
        assert_eq!(cmd.text.as_deref(), Some(""));
        assert_eq!(cmd.field("channel_name"), Some("general"));
    }

    #[test]
    fn published_block_actions_parse() {
        for file in [
            "payloads/block_actions.message_container.bolt-python.json",
            "payloads/block_actions.message_attachment.docs.json",
            "payloads/block_actions.home_tab.docs.json",
        ] {
            let value: Value = serde_json::from_str(&fixture(file)).expect("json");
            let b = BlockActions::parse(&value).expect(file);
            assert_eq!(b.kind.as_deref(), Some("block_actions"), "{file}");
            assert!(b.user.id.is_some(), "{file}");
            assert!(!b.actions.is_empty(), "{file}");
        }
    }

    #[test]
    fn bad_frames() {
        assert!(matches!(parse_frame("{oops"), Err(FrameError::NotJson(_))));
        assert_eq!(parse_frame("{}"), Err(FrameError::NoType));
        assert_eq!(
            parse_frame(r#"{"type":"slash_commands","payload":{}}"#),
            Err(FrameError::NoEnvelopeId("slash_commands".into()))
        );
        // Wrong field types inside a payload are a payload error, not a panic.
        assert!(SlashCommand::parse(&serde_json::json!({"user_id": 5})).is_err());
        assert!(SlashCommand::parse(&serde_json::json!("text")).is_err());
        assert!(BlockActions::parse(&serde_json::json!({"actions": "x"})).is_err());
    }

    #[test]
    fn tokens_are_redacted() {
        let v = serde_json::json!({"token": "secret", "text": "help"});
        assert_eq!(
            redacted(&v),
            serde_json::json!({"token": "[redacted]", "text": "help"})
        );
    }
}
