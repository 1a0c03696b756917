//! Slack's published example payloads, compiled in with `include_str!`.
//!
//! Every frame and response the fake sends starts from one of these and only overwrites the
//! fields that must carry real values (ids, timestamps, URLs). See `fixtures/README.md` for
//! where each file comes from.

use serde_json::Value;

pub(crate) const HELLO: &str = include_str!("../fixtures/socket-mode/hello.python-slack-sdk.json");
pub(crate) const DISCONNECT: &str =
    include_str!("../fixtures/socket-mode/disconnect.warning.docs.json");
pub(crate) const SLASH_ENVELOPE: &str =
    include_str!("../fixtures/socket-mode/envelope.slash_commands.docs.json");
pub(crate) const BLOCK_ACTIONS_PAYLOAD: &str =
    include_str!("../fixtures/payloads/block_actions.message_container.bolt-python.json");

pub(crate) const APPS_CONNECTIONS_OPEN: &str =
    include_str!("../fixtures/web-api/apps.connections.open.success.json");
pub(crate) const AUTH_TEST: &str =
    include_str!("../fixtures/web-api/auth.test.success_with_bot_token.json");
pub(crate) const INVALID_AUTH: &str = include_str!("../fixtures/web-api/auth.test.error.json");
pub(crate) const NOT_AUTHED: &str =
    include_str!("../fixtures/web-api/auth.test.error_with_no_token.json");
pub(crate) const CHAT_POST_MESSAGE: &str =
    include_str!("../fixtures/web-api/chat.postMessage.success.json");
pub(crate) const CHAT_UPDATE: &str = include_str!("../fixtures/web-api/chat.update.success.json");
pub(crate) const CHAT_POST_EPHEMERAL: &str =
    include_str!("../fixtures/web-api/chat.postEphemeral.success.json");
pub(crate) const CONVERSATIONS_OPEN: &str =
    include_str!("../fixtures/web-api/conversations.open.success.json");
pub(crate) const CONVERSATIONS_OPEN_RETURN_IM: &str =
    include_str!("../fixtures/web-api/conversations.open.success_with_return_im.json");
pub(crate) const CONVERSATIONS_INVITE: &str =
    include_str!("../fixtures/web-api/conversations.invite.success.json");
pub(crate) const CONVERSATIONS_INVITE_ERROR: &str =
    include_str!("../fixtures/web-api/conversations.invite.error.json");
pub(crate) const CONVERSATIONS_KICK: &str =
    include_str!("../fixtures/web-api/conversations.kick.success.json");
pub(crate) const CONVERSATIONS_HISTORY: &str =
    include_str!("../fixtures/web-api/conversations.history.success.json");
pub(crate) const BOTS_INFO: &str = include_str!("../fixtures/web-api/bots.info.success.json");
pub(crate) const BOTS_INFO_ERROR: &str = include_str!("../fixtures/web-api/bots.info.error.json");
pub(crate) const USERS_INFO: &str = include_str!("../fixtures/web-api/users.info.success.json");
pub(crate) const VIEWS_PUBLISH: &str =
    include_str!("../fixtures/web-api/views.publish.success.json");
pub(crate) const VIEWS_PUBLISH_ERROR: &str =
    include_str!("../fixtures/web-api/views.publish.error.json");
pub(crate) const VIEWS_OPEN: &str = include_str!("../fixtures/web-api/views.open.success.json");
pub(crate) const VIEWS_OPEN_ERROR: &str = include_str!("../fixtures/web-api/views.open.error.json");
pub(crate) const VIEW_SUBMISSION_PAYLOAD: &str =
    include_str!("../fixtures/payloads/view_submission.bolt-python.json");
pub(crate) const HOME_BLOCK_ACTIONS_PAYLOAD: &str =
    include_str!("../fixtures/payloads/block_actions.home_tab.docs.json");
pub(crate) const EVENTS_API_ENVELOPE: &str =
    include_str!("../fixtures/socket-mode/envelope.events_api.app_mention.python-slack-sdk.json");
pub(crate) const RATELIMITED: &str =
    include_str!("../fixtures/web-api/ratelimited.http429.python-slack-sdk.json");

/// Parses a compiled-in fixture. The fixtures are checked by the crate's own tests, so a
/// failure here is a broken checkout, not a runtime condition.
pub(crate) fn load(text: &str) -> Value {
    serde_json::from_str(text).expect("compiled-in Slack fixture is valid JSON")
}

/// `fixture["a"]["b"] = value`, creating intermediate objects when needed.
pub(crate) fn set(target: &mut Value, path: &[&str], value: Value) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut cur = target;
    for key in parents {
        if !cur.get(*key).is_some_and(Value::is_object) {
            cur[*key] = Value::Object(Default::default());
        }
        cur = &mut cur[*key];
    }
    cur[*last] = value;
}

/// Removes a key from an object (no-op for other values).
pub(crate) fn remove(target: &mut Value, key: &str) {
    if let Some(obj) = target.as_object_mut() {
        obj.remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_fixture_parses() {
        for text in [
            HELLO,
            DISCONNECT,
            SLASH_ENVELOPE,
            BLOCK_ACTIONS_PAYLOAD,
            APPS_CONNECTIONS_OPEN,
            AUTH_TEST,
            INVALID_AUTH,
            NOT_AUTHED,
            CHAT_POST_MESSAGE,
            CHAT_UPDATE,
            CHAT_POST_EPHEMERAL,
            CONVERSATIONS_OPEN,
            CONVERSATIONS_OPEN_RETURN_IM,
            CONVERSATIONS_INVITE,
            CONVERSATIONS_INVITE_ERROR,
            CONVERSATIONS_KICK,
            CONVERSATIONS_HISTORY,
            USERS_INFO,
            BOTS_INFO,
            BOTS_INFO_ERROR,
            VIEWS_PUBLISH,
            VIEWS_PUBLISH_ERROR,
            VIEWS_OPEN,
            VIEWS_OPEN_ERROR,
            VIEW_SUBMISSION_PAYLOAD,
            HOME_BLOCK_ACTIONS_PAYLOAD,
            EVENTS_API_ENVELOPE,
            RATELIMITED,
        ] {
            assert!(load(text).is_object());
        }
    }
}
