//! A fake Slack for staffbot's integration tests: Socket Mode (WebSocket) and the Web API,
//! served by axum on `127.0.0.1:<random port>` from inside the test process.
//!
//! # What it models
//!
//! - **Connecting.** `POST /api/apps.connections.open` with the app-level token (Bearer header)
//!   returns a single-use `ws://127.0.0.1:PORT/link/?ticket=…&app_id=…` URL. `GET /link/` rejects
//!   unknown or reused tickets with HTTP 401 before the upgrade, then sends a `hello` whose
//!   `num_connections` counts this connection. Client pings are answered with pongs (by
//!   tungstenite, while the connection's task keeps reading).
//! - **Envelopes.** [`FakeSlack::send_slash`], [`FakeSlack::send_block_action`] and
//!   [`FakeSlack::send_envelope`] push one envelope to exactly one open connection, round-robin,
//!   waiting up to 10 s for one to exist. Every text frame the client sends back is parsed as an
//!   ack `{"envelope_id":…,"payload":…?}` and recorded with its latency from the send.
//!   [`FakeSlack::send_typed_slash`] (the demo page's message box) sends the text as a person
//!   typed it, escaped as Slack does for `should_escape: true` (`@pat` as `<@U…|pat>`).
//! - **Teardown.** [`FakeSlack::disconnect`] sends a `disconnect` frame and closes the sockets
//!   100 ms later; [`FakeSlack::send_disconnect_frame`] sends the frame only (Slack's `warning`
//!   comes about 10 s before the close); [`FakeSlack::drop_sockets`] ends the TCP streams without
//!   a Close frame; [`FakeSlack::stall_sockets`] leaves them half-open (nothing read or written,
//!   so client pings go unanswered).
//! - **Web API.** `auth.test`, `chat.postMessage`, `chat.update`, `chat.postEphemeral`,
//!   `conversations.open`, `conversations.invite`, `conversations.kick`, `conversations.info`,
//!   `conversations.history`, `users.info`, `bots.info` (the app's bot only), `views.publish`
//!   and `views.open`, over a small in-memory workspace (users, private channels with members,
//!   DMs `D<user id>`, messages, Home views, modals). `chat.postMessage`
//!   stores the message `metadata` (`event_type`, `event_payload`); `conversations.history`
//!   returns it with `include_all_metadata=true`. Bodies are read as JSON or as urlencoded
//!   forms, GET queries too; the bot token comes from `Authorization: Bearer` or a `token`
//!   field. Errors are HTTP 200 `{"ok":false,"error":…}`; every response is
//!   `Content-Type: application/json`. Every call is recorded ([`FakeSlack::calls`]), faulted and
//!   failed ones included.
//! - **Fault injection.** [`FakeSlack::fail_next`] makes the next calls of a method answer with
//!   429 + `Retry-After`, HTTP 500, an API error or `invalid_auth`, without touching the workspace;
//!   [`FakeSlack::fail_until_cleared`] does so for every call until [`FakeSlack::clear_faults`].
//!   [`FakeSlack::hold_responses`] lets calls take effect but holds their answers back until
//!   [`FakeSlack::release`] (a client that dies meanwhile never learns the call worked).
//! - **Slack's limits and reading.** `chat.postMessage` and `chat.update` refuse blocks past
//!   Slack's published limits (50 blocks, a section's text 3,000 characters, a button's text
//!   75) with `invalid_blocks`, and a `text` over 4,000 characters with `msg_too_long`;
//!   [`FakeSlack::render`] shows a text as a person reads it in Slack (mentions by name,
//!   escapes undone, a raw `<x>` as a link `x`).
//! - **App Home and modals.** `views.publish` and `views.open` check the view as Slack does
//!   ([`views`]: block types per surface, 100 blocks, text, id and `confirm` limits, unique
//!   `block_id`s and `action_id`s) and answer `invalid_arguments` with Slack's
//!   `[ERROR] … [json-pointer:/view/…]` messages. The Home view is stored per user
//!   ([`FakeSlack::home_view`], with `block_id`s filled in as Slack does);
//!   [`FakeSlack::send_app_home_opened`] sends the `app_home_opened` event and
//!   [`FakeSlack::click_home`] a click on a button the Home view shows (container `view`, no
//!   `response_url`; [`FakeSlack::send_view_action_with`] for forged ones). Every payload
//!   carries a fresh `trigger_id` that `views.open` accepts once, within 3 s
//!   ([`FakeSlack::set_trigger_lifetime`]), opening a modal for that user
//!   ([`FakeSlack::open_modal`]). [`FakeSlack::submit_modal`] sends a `view_submission`, waits
//!   for its ack and applies its `response_action` (`clear`, `errors`, `update`, `push`, or
//!   none) as Slack does; what Slack would refuse goes to [`FakeSlack::protocol_errors`].
//!   Views are not messages: [`FakeSlack::messages`] never shows them.
//! - **`response_url`s** point at `POST /response/<n>` on the fake; bodies are recorded
//!   ([`FakeSlack::response_posts`]).
//!
//! Every frame and response body starts from Slack's published examples in `fixtures/`
//! (compiled in with `include_str!`), with only the ids, timestamps and URLs filled in. The
//! crate does not depend on slack-morphism, so it checks the client against Slack's shapes
//! rather than against the client's own models.
//!
//! # Limits
//!
//! - One workspace, one app, one bot (user `U0STAFFBOT`, bot `B0STAFFBOT`). No public channels,
//!   no MPIMs (`conversations.open` with several users answers `not_supported`), no threads, no
//!   archived channels, no scopes (any request with the right token may call any method).
//! - DMs are lenient: a `U…`/`W…` user id passed as a channel, and any `D…` id, is accepted as a
//!   DM and created on first use, whether or not the user was added with
//!   [`FakeSlack::add_user`]. `conversations.invite`, `conversations.kick` and `users.info` do
//!   check users.
//! - A token that is absent gives `not_authed`; a wrong one `invalid_auth`. The app token and
//!   the bot token are not interchangeable (the wrong kind gives `invalid_auth`, where Slack
//!   would say `not_allowed_token_type`).
//! - Rate limits are not enforced except through [`FakeSlack::fail_next`].
//! - `conversations.history` knows no threads, and cursors are this fake's own (opaque to
//!   clients all the same); message `metadata` is returned only with `include_all_metadata`.
//! - Envelopes are never redelivered: a missing ack is only visible as a [`FakeSlack::wait_ack`]
//!   timeout. `retry_attempt`/`retry_reason` appear only if a test puts them into an envelope.
//! - `response_url` posts are recorded but do not change stored messages (`replace_original`,
//!   `delete_original` and `response_type` are not applied); they are never limited to 5 uses.
//! - Modals: no `views.update`/`views.push` methods, no `view_closed` events, no
//!   `block_actions` from inside a modal, no `response_action` deadline (the ack's latency is
//!   in [`Ack::latency`]). Home tab: no `tab: "messages"` events. The new payloads (Home
//!   events and clicks, `view_submission`) carry the verification token `verification_token`
//!   (that of Slack's `block_actions` example, as message clicks do) unless overridden.
//! - The server never pings the client. It stops answering pings only on a stalled connection
//!   ([`FakeSlack::stall_sockets`]), which it then neither reads nor closes.
//! - The server task lives as long as the Tokio runtime that called [`FakeSlack::start`].

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::watch;

mod envelopes;
mod faults;
mod fixtures;
mod home;
mod interactions;
mod lifecycle;
mod modal;
mod records;
pub mod render;
mod socket;
mod state;
mod ui;
pub mod views;
mod web;
mod workspace;

use state::State;

/// Tokens and ids of the fake app and workspace.
#[derive(Clone, Debug)]
pub struct FakeSlackConfig {
    /// The bot token (`xoxb-…`) every Web API method except `apps.connections.open` requires.
    pub bot_token: String,
    /// The app-level token (`xapp-…`) `apps.connections.open` requires.
    pub app_token: String,
    /// The app id, sent in `hello.connection_info.app_id` and in payloads' `api_app_id`.
    pub app_id: String,
    /// The workspace id, sent in payloads and responses.
    pub team_id: String,
}

impl Default for FakeSlackConfig {
    fn default() -> Self {
        Self {
            bot_token: "xoxb-test".into(),
            app_token: "xapp-test".into(),
            app_id: "A0STAFFBOT".into(),
            team_id: "T0TEAM".into(),
        }
    }
}

/// A fault that the next calls of a Web API method answer with (see [`FakeSlack::fail_next`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// HTTP 429, `Retry-After: <secs>`, body `{"ok":false,"error":"ratelimited"}`.
    RateLimited {
        /// The `Retry-After` header value, in seconds.
        retry_after_secs: u64,
    },
    /// HTTP 500, body `{"ok":false,"error":"internal_error"}`.
    ServerError,
    /// HTTP 200, body `{"ok":false,"error":<code>}`.
    ApiError(String),
    /// HTTP 200, body `{"ok":false,"error":"invalid_auth"}`.
    InvalidAuth,
}

/// An acknowledgement the client sent over a Socket Mode connection.
#[derive(Clone, Debug)]
pub struct Ack {
    /// The acknowledged envelope.
    pub envelope_id: String,
    /// The ack's `payload`, if it carried a non-null one.
    pub payload: Option<Value>,
    /// Time from writing the envelope to receiving the ack (zero for an unknown envelope id).
    pub latency: Duration,
    /// The frame as received.
    pub raw: String,
}

/// A Web API call the client made.
#[derive(Clone, Debug)]
pub struct ApiCall {
    /// The method name, e.g. `chat.postMessage`.
    pub method: String,
    /// The token from the Bearer header or the `token` field.
    pub token: Option<String>,
    /// The JSON body, or the form/query fields as a JSON object of strings. A JSON body that
    /// does not parse is kept as a JSON string.
    pub body: Value,
    /// The HTTP status of the answer.
    pub status: u16,
    /// The JSON body of the answer.
    pub response: Value,
}

/// A message stored in a channel.
#[derive(Clone, Debug, PartialEq)]
pub struct Message {
    /// The channel id (`D<user id>` for DMs).
    pub channel: String,
    /// The message timestamp (its id within the channel).
    pub ts: String,
    /// The current text.
    pub text: String,
    /// The current blocks, if any.
    pub blocks: Option<Value>,
    /// For an ephemeral message: the user who sees it.
    pub user: Option<String>,
    /// Posted with `chat.postEphemeral`.
    pub ephemeral: bool,
    /// Changed at least once by `chat.update`.
    pub updated: bool,
    /// The message `metadata` (`{"event_type":…,"event_payload":…}`) it was posted with.
    pub metadata: Option<Value>,
}

pub(crate) struct Inner {
    pub config: FakeSlackConfig,
    pub addr: SocketAddr,
    /// Makes ids unique across fakes started in the same process.
    pub nonce: u32,
    state: Mutex<State>,
    /// Bumped after every state change; waits subscribe to it.
    changed: watch::Sender<u64>,
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` on the state and wakes every waiter.
    pub(crate) fn update<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        let r = f(&mut self.lock());
        self.changed.send_modify(|v| *v = v.wrapping_add(1));
        r
    }

    /// A receiver woken after every state change.
    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// Runs `f` on the state without waking anyone.
    pub(crate) fn read<R>(&self, f: impl FnOnce(&State) -> R) -> R {
        f(&self.lock())
    }

    /// Waits (event-driven) until `pred` holds, or `timeout` passes.
    pub(crate) async fn wait_until(
        &self,
        timeout: Duration,
        mut pred: impl FnMut(&State) -> bool,
    ) -> bool {
        let mut rx = self.changed.subscribe();
        let wait = async {
            loop {
                if self.read(&mut pred) {
                    return;
                }
                if rx.changed().await.is_err() {
                    // The sender lives in `self`; this cannot happen while we hold `&self`.
                    std::future::pending::<()>().await;
                }
            }
        };
        tokio::time::timeout(timeout, wait).await.is_ok()
    }

    pub(crate) fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// The fake Slack server. Cheap to clone; all clones share one server.
#[derive(Clone)]
pub struct FakeSlack {
    inner: Arc<Inner>,
}
