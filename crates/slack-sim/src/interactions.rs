//! What a person does in a channel, sent to the app over Socket Mode as Slack sends it: slash
//! commands (as given, or as typed in the message box) and button clicks on messages.

use serde_json::{Value, json};

use crate::FakeSlack;
use crate::envelopes::merge_overrides;
use crate::fixtures;
use crate::state::{self, State};

/// A slash command's text as Slack sends it when the command has `should_escape: true`: `&`,
/// `<` and `>` as `&amp;`, `&lt;` and `&gt;`; `@name` of a user of the workspace as
/// `<@U…|name>`, `#name` of a channel as `<#C…|name>`, and `@here`, `@channel`, `@everyone` as
/// `<!here>` …; a name nobody has stays as typed. A mention starts a word (an email address's
/// `@` is not one).
fn escape_typed(s: &State, typed: &str) -> String {
    let is_name_char = |c: char| c.is_alphanumeric() || matches!(c, '.' | '_' | '-');
    let mut out = String::with_capacity(typed.len());
    let mut rest = typed;
    let mut previous: Option<char> = None;
    while let Some(c) = rest.chars().next() {
        let after = &rest[c.len_utf8()..];
        let starts_word = previous.is_none_or(|p| !p.is_alphanumeric());
        if matches!(c, '@' | '#') && starts_word {
            let len: usize = after
                .chars()
                .take_while(|ch| is_name_char(*ch))
                .map(char::len_utf8)
                .sum();
            // The longest known name the word starts with (a trailing `.` ends a sentence).
            let found = (1..=len).rev().find_map(|n| {
                let name = after.get(..n)?;
                let mention = if c == '@' {
                    match name {
                        "here" | "channel" | "everyone" => Some(format!("<!{name}>")),
                        _ => s
                            .users
                            .iter()
                            .find(|(_, u)| u.as_str() == name)
                            .map(|(id, _)| format!("<@{id}|{name}>")),
                    }
                } else {
                    s.channels
                        .iter()
                        .find(|(_, ch)| ch.name == name && !ch.is_im)
                        .map(|(id, _)| format!("<#{id}|{name}>"))
                };
                mention.map(|m| (m, n))
            });
            if let Some((mention, n)) = found {
                out.push_str(&mention);
                previous = after[..n].chars().last();
                rest = &after[n..];
                continue;
            }
        }
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            _ => out.push(c),
        }
        previous = Some(c);
        rest = after;
    }
    out
}

impl FakeSlack {
    /// Sends a `/staffbot` slash command envelope; returns its envelope id.
    pub async fn send_slash(&self, user_id: &str, user_name: &str, text: &str) -> String {
        self.send_slash_with(json!({"user_id": user_id, "user_name": user_name, "text": text}))
            .await
    }

    /// Sends `/staffbot <typed>` as `user_id` typed it in `channel_id` (the demo page's message
    /// box): the text as Slack sends it for a command with `should_escape: true` (see
    /// [`escape_typed`]), with the user's and the channel's names filled in. Returns the envelope
    /// id.
    pub async fn send_typed_slash(&self, user_id: &str, channel_id: &str, typed: &str) -> String {
        let (text, channel_name, user_name) = self.inner.read(|s| {
            (
                escape_typed(s, typed),
                s.channels
                    .get(channel_id)
                    .map(|c| c.name.clone())
                    .unwrap_or_default(),
                s.users.get(user_id).cloned().unwrap_or_default(),
            )
        });
        self.send_slash_with(
            json!({"user_id": user_id, "user_name": user_name, "text": text,
            "channel_id": channel_id, "channel_name": channel_name}),
        )
        .await
    }

    /// Sends a slash command envelope whose payload is the defaults of [`FakeSlack::send_slash`]
    /// with `overrides`' fields merged over them (a `null` removes the field); returns the
    /// envelope id.
    ///
    /// # Panics
    ///
    /// If `overrides` is not a JSON object, or no connection opens within 10 s.
    pub async fn send_slash_with(&self, overrides: Value) -> String {
        let Value::Object(overrides) = overrides else {
            panic!("slack-sim: send_slash_with needs a JSON object, got {overrides}");
        };
        let cfg = &self.inner.config;
        let (envelope_id, trigger_id, response_url) = self.fresh_envelope_ids();
        let mut envelope = fixtures::load(fixtures::SLASH_ENVELOPE);
        envelope["envelope_id"] = json!(envelope_id);
        envelope["accepts_response_payload"] = json!(true);
        let payload = &mut envelope["payload"];
        payload["command"] = json!("/staffbot");
        payload["team_id"] = json!(cfg.team_id);
        payload["api_app_id"] = json!(cfg.app_id);
        payload["trigger_id"] = json!(trigger_id);
        payload["response_url"] = json!(response_url);
        merge_overrides(payload, overrides);
        let user = payload["user_id"].as_str().unwrap_or_default().to_string();
        self.inner.update(|s| s.issue_trigger(&trigger_id, &user));
        self.send_envelope(envelope).await
    }

    /// Sends an `interactive` envelope with a `block_actions` payload for a button click on a
    /// message (`container.type` `message`); returns the envelope id.
    pub async fn send_block_action(
        &self,
        user_id: &str,
        action_id: &str,
        value: &str,
        channel_id: &str,
        message_ts: &str,
    ) -> String {
        self.send_block_action_with(user_id, action_id, value, channel_id, message_ts, json!({}))
            .await
    }

    /// [`FakeSlack::send_block_action`] with `overrides`' fields merged over the payload's top
    /// level (a `null` removes the field), e.g. `{"token": …}`; returns the envelope id.
    ///
    /// # Panics
    ///
    /// If `overrides` is not a JSON object, or no connection opens within 10 s.
    pub async fn send_block_action_with(
        &self,
        user_id: &str,
        action_id: &str,
        value: &str,
        channel_id: &str,
        message_ts: &str,
        overrides: Value,
    ) -> String {
        let Value::Object(overrides) = overrides else {
            panic!("slack-sim: send_block_action_with needs a JSON object, got {overrides}");
        };
        let cfg = &self.inner.config;
        let (envelope_id, trigger_id, response_url) = self.fresh_envelope_ids();
        if let Some(id) = response_url.rsplit('/').next() {
            let owner = (user_id.to_string(), channel_id.to_string());
            self.inner
                .update(|s| s.response_owners.insert(id.to_string(), owner));
        }
        let (user_name, action_ts, source) = self.inner.update(|s| {
            let name = s
                .users
                .get(user_id)
                .cloned()
                .unwrap_or_else(|| user_id.to_string());
            let source = s
                .messages
                .iter()
                .find(|m| m.channel == channel_id && m.ts == message_ts && !m.ephemeral)
                .cloned();
            (name, s.next_action_ts(), source)
        });
        let mut payload = fixtures::load(fixtures::BLOCK_ACTIONS_PAYLOAD);
        fixtures::set(&mut payload, &["user", "id"], json!(user_id));
        fixtures::set(&mut payload, &["user", "username"], json!(user_name));
        fixtures::set(&mut payload, &["user", "name"], json!(user_name));
        fixtures::set(&mut payload, &["user", "team_id"], json!(cfg.team_id));
        fixtures::set(&mut payload, &["team", "id"], json!(cfg.team_id));
        payload["api_app_id"] = json!(cfg.app_id);
        payload["container"] = json!({
            "type": "message",
            "message_ts": message_ts,
            "channel_id": channel_id,
            "is_ephemeral": false,
        });
        payload["channel"] = json!({"id": channel_id, "name": "directmessage"});
        payload["trigger_id"] = json!(trigger_id);
        payload["response_url"] = json!(response_url);
        let action = &mut payload["actions"][0];
        action["action_id"] = json!(action_id);
        action["block_id"] = json!("offer");
        action["value"] = json!(value);
        action["action_ts"] = json!(action_ts);
        // Slack includes the source message when the button sits in a message.
        if let Some(m) = source {
            let mut message = json!({
                "type": "message",
                "user": state::BOT_USER_ID,
                "bot_id": state::BOT_ID,
                "text": m.text,
                "ts": m.ts,
            });
            if let Some(blocks) = m.blocks {
                message["blocks"] = blocks;
            }
            payload["message"] = message;
        }
        merge_overrides(&mut payload, overrides);
        self.inner.update(|s| s.issue_trigger(&trigger_id, user_id));
        let envelope = json!({
            "envelope_id": envelope_id,
            "type": "interactive",
            "accepts_response_payload": true,
            "payload": payload,
        });
        self.send_envelope(envelope).await
    }
}
