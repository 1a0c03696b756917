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
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use tokio::sync::{oneshot, watch};

mod fixtures;
mod modal;
pub mod render;
mod socket;
mod state;
mod ui;
pub mod views;
mod web;

use state::{Outgoing, State};

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

/// How long an envelope waits for an open connection before the send panics.
const DELIVERY_WAIT: Duration = Duration::from_secs(10);
/// How long teardown helpers wait for the sockets to be gone.
const TEARDOWN_WAIT: Duration = Duration::from_secs(5);
/// Delay between the `disconnect` frame and the Close frame.
const DISCONNECT_GRACE: Duration = Duration::from_millis(100);
/// How long [`FakeSlack::submit_modal`] waits for the ack of a `view_submission`.
const SUBMIT_ACK_WAIT: Duration = Duration::from_secs(10);

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

    /// Writes `frame` to one open connection, round-robin, waiting up to 10 s for one.
    async fn deliver(&self, frame: String, envelope_id: Option<String>) {
        let deadline = tokio::time::Instant::now() + DELIVERY_WAIT;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let available = self.wait_until(left, |s| !s.deliverable().is_empty()).await;
            assert!(
                available,
                "slack-sim: no open Socket Mode connection within {DELIVERY_WAIT:?} to deliver {frame}"
            );
            let Some(tx) = self.update(|s| {
                let ids = s.deliverable();
                if ids.is_empty() {
                    return None;
                }
                let id = ids[s.round_robin % ids.len()];
                s.round_robin = s.round_robin.wrapping_add(1);
                s.conns.get(&id).map(|c| c.tx.clone())
            }) else {
                continue;
            };
            let (done, written) = oneshot::channel();
            let sent = tx.send(Outgoing::Text {
                text: frame.clone(),
                envelope_id: envelope_id.clone(),
                done,
            });
            if sent.is_ok() && written.await == Ok(true) {
                return;
            }
            // That connection went away between picking and writing; try another one.
            tokio::task::yield_now().await;
        }
    }

    /// Parses a client frame as an ack and records it.
    pub(crate) fn record_frame(&self, raw: &str) {
        let parsed: Option<Value> = serde_json::from_str(raw).ok();
        let Some(envelope_id) = parsed
            .as_ref()
            .and_then(|v| v.get("envelope_id"))
            .and_then(Value::as_str)
            .map(str::to_string)
        else {
            tracing::warn!(frame = raw, "slack-sim: client frame is not an ack");
            return;
        };
        let payload = parsed
            .as_ref()
            .and_then(|v| v.get("payload"))
            .filter(|p| !p.is_null())
            .cloned();
        let now = Instant::now();
        self.update(|s| {
            let latency = s
                .sent_at
                .get(&envelope_id)
                .map(|t| now.saturating_duration_since(*t))
                .unwrap_or_default();
            tracing::debug!(%envelope_id, ?latency, "slack-sim: ack");
            s.acks.push(Ack {
                envelope_id,
                payload,
                latency,
                raw: raw.to_string(),
            });
        });
    }
}

/// The fake Slack server. Cheap to clone; all clones share one server.
#[derive(Clone)]
pub struct FakeSlack {
    inner: Arc<Inner>,
}

impl FakeSlack {
    /// Binds `127.0.0.1:0` and serves in a spawned task on the current Tokio runtime.
    ///
    /// # Panics
    ///
    /// If no loopback port can be bound.
    pub async fn start(config: FakeSlackConfig) -> FakeSlack {
        let addr = SocketAddr::from(([127, 0, 0, 1], 0));
        FakeSlack::start_on(config, addr)
            .await
            .expect("slack-sim: bind 127.0.0.1:0")
    }

    /// Binds `addr` (port 0: any free port) and serves there in a spawned task: the Web API
    /// under `/api`, Socket Mode under `/link`, and the workspace as a web page at `/`.
    pub async fn start_on(config: FakeSlackConfig, addr: SocketAddr) -> std::io::Result<FakeSlack> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let nonce = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0)
            ^ u32::from(addr.port()).rotate_left(16);
        let inner = Arc::new(Inner {
            config,
            addr,
            nonce,
            state: Mutex::new(State::default()),
            changed: watch::channel(0).0,
        });
        let app = web::router(inner.clone());
        // Like any WebSocket server worth its salt (and Slack's), frames go out at once rather
        // than waiting for Nagle's algorithm to coalesce them.
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
            if let Err(err) = tcp.set_nodelay(true) {
                tracing::warn!(%err, "slack-sim: cannot set TCP_NODELAY");
            }
        });
        tokio::spawn(async move {
            if let Err(err) = axum::serve(listener, app).await {
                tracing::error!(%err, "slack-sim: server stopped");
            }
        });
        tracing::debug!(%addr, "slack-sim: listening");
        Ok(FakeSlack { inner })
    }

    /// The Web API base URL, `http://127.0.0.1:PORT/api` (no trailing slash).
    pub fn api_url(&self) -> String {
        format!("{}/api", self.inner.base_url())
    }

    /// The address the fake listens on.
    pub fn addr(&self) -> SocketAddr {
        self.inner.addr
    }

    // --- workspace model ---

    /// Adds (or renames) a user, known to `users.info` and to the invite/kick checks.
    pub fn add_user(&self, id: &str, name: &str) {
        self.inner.update(|s| {
            s.users.insert(id.to_string(), name.to_string());
        });
    }

    /// Sets user `id`'s time zone as `users.info` tells it: an IANA name (`Europe/Berlin`) and
    /// its offset from UTC in seconds (Slack's `tz_offset`).
    pub fn set_user_tz(&self, id: &str, tz: &str, offset_seconds: i64) {
        self.inner.update(|s| {
            s.user_tz
                .insert(id.to_string(), (tz.to_string(), offset_seconds));
        });
    }

    /// Adds (or replaces) a private channel with these human members. The bot is a member
    /// unless [`FakeSlack::remove_bot_from`] is called.
    pub fn add_channel(&self, id: &str, name: &str, members: &[&str]) {
        self.inner.update(|s| {
            s.channels.insert(
                id.to_string(),
                state::Channel {
                    name: name.to_string(),
                    members: members.iter().map(|m| m.to_string()).collect(),
                    bot_member: true,
                    is_im: false,
                },
            );
        });
    }

    /// Takes the bot out of a channel (no-op for an unknown channel).
    pub fn remove_bot_from(&self, channel: &str) {
        self.inner.update(|s| {
            if let Some(c) = s.channels.get_mut(channel) {
                c.bot_member = false;
            }
        });
    }

    /// The human members of a channel, sorted (the bot is not listed). Empty for an unknown
    /// channel.
    pub fn channel_members(&self, channel: &str) -> Vec<String> {
        self.inner.read(|s| {
            s.channels
                .get(channel)
                .map(|c| c.members.iter().cloned().collect())
                .unwrap_or_default()
        })
    }

    // --- Socket Mode ---

    /// The number of currently open WebSocket connections.
    pub fn connections(&self) -> usize {
        self.inner.read(|s| s.conns.len())
    }

    /// The number of `hello` frames sent since start.
    pub fn hellos_sent(&self) -> usize {
        self.inner.read(|s| s.hellos_sent)
    }

    /// The number of successful `apps.connections.open` calls since start.
    pub fn connection_opens(&self) -> usize {
        self.inner.read(|s| s.connection_opens)
    }

    /// Waits until at least `n` connections are open; `false` on timeout.
    pub async fn wait_for_connections(&self, n: usize, timeout: Duration) -> bool {
        self.inner.wait_until(timeout, |s| s.conns.len() >= n).await
    }

    /// Waits until at least `n` hellos were sent since start; `false` on timeout.
    pub async fn wait_for_hellos(&self, n: usize, timeout: Duration) -> bool {
        self.inner.wait_until(timeout, |s| s.hellos_sent >= n).await
    }

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

    /// Sends any envelope as given to one connection; returns its `envelope_id` (or `""`).
    ///
    /// # Panics
    ///
    /// If no connection opens within 10 s.
    pub async fn send_envelope(&self, envelope: Value) -> String {
        let envelope_id = envelope
            .get("envelope_id")
            .and_then(Value::as_str)
            .map(str::to_string);
        let frame = envelope.to_string();
        if let Some(id) = &envelope_id {
            let (id, f) = (id.clone(), frame.clone());
            self.inner.update(move |s| {
                s.frames.insert(id, f);
            });
        }
        self.inner.deliver(frame, envelope_id.clone()).await;
        envelope_id.unwrap_or_default()
    }

    /// Sends an envelope sent before once more, unchanged, as Slack does when it did not see
    /// the ack in time.
    ///
    /// # Panics
    ///
    /// If no envelope with that id was sent.
    pub async fn redeliver(&self, envelope_id: &str) {
        let frame = self
            .inner
            .update(|s| s.frames.get(envelope_id).cloned())
            .unwrap_or_else(|| panic!("slack-sim: no envelope {envelope_id} to redeliver"));
        self.inner
            .deliver(frame, Some(envelope_id.to_string()))
            .await;
    }

    /// Sends a raw text frame, unparsed, to one connection.
    ///
    /// # Panics
    ///
    /// If no connection opens within 10 s.
    pub async fn send_raw(&self, frame: &str) {
        self.inner.deliver(frame.to_string(), None).await;
    }

    /// Sends `{"type":"disconnect","reason":reason,"debug_info":{"host":…}}` on every open
    /// connection, closes them (Close frame) about 100 ms later, and waits until they are gone.
    pub async fn disconnect(&self, reason: &str) {
        let targets: Vec<_> = self.inner.update(|s| {
            s.conns
                .iter_mut()
                .map(|(id, c)| {
                    c.closing = true;
                    (*id, c.tx.clone())
                })
                .collect()
        });
        if targets.is_empty() {
            return;
        }
        let mut frame = fixtures::load(fixtures::DISCONNECT);
        frame["reason"] = json!(reason);
        let frame = frame.to_string();
        let mut writes = Vec::new();
        for (_, tx) in &targets {
            let (done, written) = oneshot::channel();
            if tx
                .send(Outgoing::Text {
                    text: frame.clone(),
                    envelope_id: None,
                    done,
                })
                .is_ok()
            {
                writes.push(written);
            }
        }
        for written in writes {
            let _ = written.await;
        }
        tokio::time::sleep(DISCONNECT_GRACE).await;
        for (_, tx) in &targets {
            let _ = tx.send(Outgoing::Close);
        }
        let ids: Vec<u64> = targets.iter().map(|(id, _)| *id).collect();
        self.wait_gone(&ids).await;
    }

    /// Sends `{"type":"disconnect","reason":reason,…}` on every open connection and leaves them
    /// open and deliverable, as Slack's `warning` comes about 10 s before the connection is
    /// closed. Waits until the frames are written.
    pub async fn send_disconnect_frame(&self, reason: &str) {
        let targets: Vec<_> = self
            .inner
            .read(|s| s.conns.values().map(|c| c.tx.clone()).collect());
        let mut frame = fixtures::load(fixtures::DISCONNECT);
        frame["reason"] = json!(reason);
        let frame = frame.to_string();
        for tx in targets {
            let (done, written) = oneshot::channel();
            if tx
                .send(Outgoing::Text {
                    text: frame.clone(),
                    envelope_id: None,
                    done,
                })
                .is_ok()
            {
                let _ = written.await;
            }
        }
    }

    /// Makes every open connection half-open: the fake stops reading it (client pings go
    /// unanswered, acks are not read) and sends nothing more on it, and no envelope goes to it;
    /// the TCP connection stays up, as when the peer vanished without a FIN. A stalled
    /// connection still counts in [`FakeSlack::connections`] until the fake closes it (never,
    /// unless [`FakeSlack::disconnect`] or [`FakeSlack::drop_sockets`] is called).
    pub fn stall_sockets(&self) {
        self.inner.update(|s| {
            for c in s.conns.values_mut() {
                c.closing = true;
                let _ = c.tx.send(Outgoing::Stall);
            }
        });
    }

    /// Waits until at most `n` connections are open; `false` on timeout.
    pub async fn wait_for_connections_at_most(&self, n: usize, timeout: Duration) -> bool {
        self.inner.wait_until(timeout, |s| s.conns.len() <= n).await
    }

    /// Drops every open socket abruptly (no Close frame; the TCP stream just ends) and waits
    /// until they are gone.
    pub async fn drop_sockets(&self) {
        let targets: Vec<(u64, tokio::task::AbortHandle)> = self.inner.read(|s| {
            s.conns
                .iter()
                .map(|(id, c)| (*id, c.abort.clone()))
                .collect()
        });
        for (_, abort) in &targets {
            abort.abort();
        }
        let ids: Vec<u64> = targets.iter().map(|(id, _)| *id).collect();
        self.wait_gone(&ids).await;
    }

    async fn wait_gone(&self, ids: &[u64]) {
        let gone = self
            .inner
            .wait_until(TEARDOWN_WAIT, |s| {
                ids.iter().all(|id| !s.conns.contains_key(id))
            })
            .await;
        if !gone {
            tracing::warn!("slack-sim: sockets still open {TEARDOWN_WAIT:?} after teardown");
        }
    }

    /// Waits until an ack for `envelope_id` arrives (or has arrived); `None` on timeout.
    pub async fn wait_ack(&self, envelope_id: &str, timeout: Duration) -> Option<Ack> {
        let mut found = None;
        self.inner
            .wait_until(timeout, |s| {
                found = s
                    .acks
                    .iter()
                    .find(|a| a.envelope_id == envelope_id)
                    .cloned();
                found.is_some()
            })
            .await;
        found
    }

    /// All acks so far, in arrival order.
    pub fn acks(&self) -> Vec<Ack> {
        self.inner.read(|s| s.acks.clone())
    }

    // --- App Home and modals ---

    /// `user`'s Home tab as Slack stores it after the last successful `views.publish` (the
    /// `view` of its answer: `id`, `hash`, `type`, `blocks` with every `block_id` filled in,
    /// `state`, …), or `None` if nothing was published for them.
    pub fn home_view(&self, user: &str) -> Option<Value> {
        self.inner
            .read(|s| s.home_views.get(user).map(|h| h.view.clone()))
    }

    /// The number of successful `views.publish` calls for `user` (refused ones are only in
    /// [`FakeSlack::calls_to`]).
    pub fn home_publishes(&self, user: &str) -> usize {
        self.inner
            .read(|s| s.home_views.get(user).map_or(0, |h| h.publishes))
    }

    /// Waits until `home_publishes(user) >= n`; `false` on timeout.
    pub async fn wait_for_home_publishes(&self, user: &str, n: usize, timeout: Duration) -> bool {
        self.inner
            .wait_until(timeout, |s| {
                s.home_views.get(user).is_some_and(|h| h.publishes >= n)
            })
            .await
    }

    /// Sends the `events_api` envelope Slack sends when `user` opens the app's Home tab: an
    /// `event_callback` with `event: {type: "app_home_opened", user, channel: <their DM>,
    /// tab: "home", event_ts, view?}` (`view` is the current Home view, when there is one),
    /// `accepts_response_payload: false`, `retry_attempt: 0`. Returns the envelope id.
    ///
    /// # Panics
    ///
    /// If no connection opens within 10 s.
    pub async fn send_app_home_opened(&self, user: &str) -> String {
        let cfg = &self.inner.config;
        let (envelope_id, _, _) = self.fresh_envelope_ids();
        let (channel, event_ts, n, view) = self.inner.update(|s| {
            let channel = s.ensure_dm(user);
            let view = s.home_views.get(user).map(|h| h.view.clone());
            (channel, s.next_action_ts(), s.next_id(), view)
        });
        let event_time = event_ts
            .split('.')
            .next()
            .and_then(|secs| secs.parse::<u64>().ok())
            .unwrap_or(0);
        let mut event = json!({
            "type": "app_home_opened",
            "user": user,
            "channel": channel,
            "tab": "home",
            "event_ts": event_ts,
        });
        if let Some(view) = view {
            event["view"] = view;
        }
        let mut envelope = fixtures::load(fixtures::EVENTS_API_ENVELOPE);
        envelope["envelope_id"] = json!(envelope_id);
        envelope["accepts_response_payload"] = json!(false);
        envelope["retry_attempt"] = json!(0);
        envelope["retry_reason"] = json!("");
        let payload = &mut envelope["payload"];
        payload["token"] = payload_token();
        payload["team_id"] = json!(cfg.team_id);
        payload["api_app_id"] = json!(cfg.app_id);
        payload["event"] = event;
        payload["type"] = json!("event_callback");
        payload["event_id"] = json!(format!("Ev{:08X}{n:06}", self.inner.nonce));
        payload["event_time"] = json!(event_time);
        payload["authorizations"] = json!([{
            "enterprise_id": null,
            "team_id": cfg.team_id,
            "user_id": state::BOT_USER_ID,
            "is_bot": true,
            "is_enterprise_install": false,
        }]);
        // The app_mention example's event_context names a channel message; this event has none.
        fixtures::remove(payload, "event_context");
        self.send_envelope(envelope).await
    }

    /// `user` clicks the button with this `action_id` and `value` in their current Home tab:
    /// sends the `block_actions` envelope Slack sends for a view (`container: {type: "view",
    /// view_id}`, the whole `view`, `actions: [the button as rendered, with block_id and
    /// action_ts]`, a fresh `trigger_id` for `views.open`; no `response_url`, `channel` or
    /// `message`). A button with a `confirm` dialog is clicked as confirmed (see
    /// [`FakeSlack::confirmations`]). Returns the envelope id.
    ///
    /// # Panics
    ///
    /// If `user` has no Home view or it has no such button (the message lists the buttons it
    /// has: tests click what was rendered), or no connection opens within 10 s.
    pub async fn click_home(&self, user: &str, action_id: &str, value: &str) -> String {
        let Some(view) = self.home_view(user) else {
            panic!(
                "slack-sim: {user} has no published Home view to click {action_id:?} ({value:?}) in"
            );
        };
        let buttons = modal::buttons(&view);
        let Some((block_id, button)) = buttons
            .iter()
            .find(|(_, b)| b["action_id"] == action_id && modal::button_value(b) == value)
            .cloned()
        else {
            panic!(
                "slack-sim: {user}'s Home view has no button action_id={action_id:?} \
                 value={value:?}; its buttons: {}",
                modal::describe_buttons(&buttons)
            );
        };
        if let Some(confirm) = button.get("confirm") {
            let confirm = confirm.clone();
            self.inner
                .update(|s| s.confirmations.push((user.to_string(), confirm)));
        }
        let envelope =
            self.view_action_envelope(user, Some(view), block_id, button, Default::default());
        self.send_envelope(envelope).await
    }

    /// A Home tab `block_actions` envelope like [`FakeSlack::click_home`]'s, sent without
    /// checking that the button exists (for forged clicks): the button is the rendered one
    /// when the Home view has it, else `{type: "button", action_id, value, text: "Button"}` in
    /// block `forged`; `view` is the current Home view (left out when there is none, with
    /// `container.view_id` `V0NOVIEW`). `overrides`' fields are merged over the payload's top
    /// level (a `null` removes the field). Returns the envelope id.
    ///
    /// # Panics
    ///
    /// If `overrides` is not a JSON object, or no connection opens within 10 s.
    pub async fn send_view_action_with(
        &self,
        user: &str,
        action_id: &str,
        value: &str,
        overrides: Value,
    ) -> String {
        let Value::Object(overrides) = overrides else {
            panic!("slack-sim: send_view_action_with needs a JSON object, got {overrides}");
        };
        let view = self.home_view(user);
        let rendered = view.as_ref().and_then(|v| {
            modal::buttons(v)
                .into_iter()
                .find(|(_, b)| b["action_id"] == action_id && modal::button_value(b) == value)
        });
        let (block_id, button) = rendered.unwrap_or_else(|| {
            (
                "forged".to_string(),
                json!({
                    "type": "button",
                    "action_id": action_id,
                    "text": {"type": "plain_text", "text": "Button", "emoji": true},
                    "value": value,
                }),
            )
        });
        let envelope = self.view_action_envelope(user, view, block_id, button, overrides);
        self.send_envelope(envelope).await
    }

    /// The `interactive` envelope of a click on `button` (in block `block_id`) in a view.
    fn view_action_envelope(
        &self,
        user: &str,
        view: Option<Value>,
        block_id: String,
        button: Value,
        overrides: serde_json::Map<String, Value>,
    ) -> Value {
        let cfg = &self.inner.config;
        let (envelope_id, trigger_id, _) = self.fresh_envelope_ids();
        let (name, action_ts) = self.inner.update(|s| {
            s.issue_trigger(&trigger_id, user);
            let name = s
                .users
                .get(user)
                .cloned()
                .unwrap_or_else(|| user.to_string());
            (name, s.next_action_ts())
        });
        let mut payload = fixtures::load(fixtures::HOME_BLOCK_ACTIONS_PAYLOAD);
        payload["team"]["id"] = json!(cfg.team_id);
        payload["user"] = payload_user(user, &name, &cfg.team_id);
        payload["api_app_id"] = json!(cfg.app_id);
        payload["token"] = payload_token();
        payload["trigger_id"] = json!(trigger_id);
        let view_id = view
            .as_ref()
            .and_then(|v| v["id"].as_str())
            .unwrap_or("V0NOVIEW")
            .to_string();
        payload["container"] = json!({"type": "view", "view_id": view_id});
        match view {
            Some(view) => payload["view"] = view,
            None => fixtures::remove(&mut payload, "view"),
        }
        let mut action = button;
        action["block_id"] = json!(block_id);
        action["action_ts"] = json!(action_ts);
        payload["actions"] = json!([action]);
        merge_overrides(&mut payload, overrides);
        json!({
            "envelope_id": envelope_id,
            "type": "interactive",
            "accepts_response_payload": true,
            "payload": payload,
        })
    }

    /// The `confirm` objects of the buttons `user` clicked with [`FakeSlack::click_home`]
    /// (Slack showed each dialog and the user chose its `confirm` button), oldest first.
    pub fn confirmations(&self, user: &str) -> Vec<Value> {
        self.inner.read(|s| {
            s.confirmations
                .iter()
                .filter(|(u, _)| u == user)
                .map(|(_, c)| c.clone())
                .collect()
        })
    }

    /// How long a `trigger_id` the fake issued stays valid for `views.open` (Slack: 3 s).
    /// `Duration::ZERO` makes every trigger expired at once (`expired_trigger_id`).
    pub fn set_trigger_lifetime(&self, lifetime: Duration) {
        self.inner.update(|s| s.trigger_lifetime = Some(lifetime));
    }

    /// The modal `user` sees, as Slack stores it (`id`, `type: "modal"`, `title`, `blocks`,
    /// `private_metadata`, `callback_id`, `state`, `hash`, …): the top of their modal stack,
    /// or `None` once it is closed (or was never opened).
    pub fn open_modal(&self, user: &str) -> Option<Value> {
        self.inner
            .read(|s| s.modals.get(user).and_then(|m| m.views.last().cloned()))
    }

    /// `user` closes their modal (the × or Cancel): it is gone, as in Slack (staffbot does not
    /// ask for `view_closed` events).
    pub fn close_modal(&self, user: &str) {
        self.inner.update(|s| {
            s.modals.remove(user);
        });
    }

    /// Waits until `user` has a modal open; `false` on timeout.
    pub async fn wait_for_modal(&self, user: &str, timeout: Duration) -> bool {
        self.inner
            .wait_until(timeout, |s| {
                s.modals.get(user).is_some_and(|m| !m.views.is_empty())
            })
            .await
    }

    /// The errors (`{block_id: message}`) the last submission's ack showed on `user`'s open
    /// modal, if it answered with `response_action: errors`.
    pub fn modal_errors(&self, user: &str) -> Option<Value> {
        self.inner
            .read(|s| s.modals.get(user).and_then(|m| m.errors.clone()))
    }

    /// `user` submits their open modal with these input `values` (Slack's `state.values`
    /// shape, `{block_id: {action_id: {"type": "users_select", "selected_user": "U…"}}}`):
    /// sends an `interactive` envelope with a `view_submission` payload
    /// (`accepts_response_payload: true`), waits for its ack and applies it as Slack does: a
    /// bare ack closes the submitted view, `response_action` `clear` the whole modal,
    /// `errors` keeps it open with the errors ([`FakeSlack::modal_errors`]), `update`/`push`
    /// show a new view (checked as a modal). What Slack would refuse (errors not keyed by an
    /// input block's `block_id`, an invalid view, an unknown response) is recorded in
    /// [`FakeSlack::protocol_errors`] and leaves the modal as it was. Returns the envelope id.
    ///
    /// # Panics
    ///
    /// If `user` has no open modal, no connection opens within 10 s, or no ack arrives within
    /// 10 s.
    pub async fn submit_modal(&self, user: &str, values: Value) -> String {
        let cfg = &self.inner.config;
        let (envelope_id, trigger_id, _) = self.fresh_envelope_ids();
        let submitted = self.inner.update(|s| {
            let stack = s.modals.get_mut(user)?;
            stack.errors = None;
            let top = stack.views.last_mut()?;
            top["state"] = json!({"values": values});
            let view = top.clone();
            s.issue_trigger(&trigger_id, user);
            let name = s
                .users
                .get(user)
                .cloned()
                .unwrap_or_else(|| user.to_string());
            Some((view, name))
        });
        let Some((view, name)) = submitted else {
            panic!("slack-sim: {user} has no open modal to submit");
        };
        let view_id = view["id"].as_str().unwrap_or_default().to_string();
        let mut payload = fixtures::load(fixtures::VIEW_SUBMISSION_PAYLOAD);
        payload["team"] = json!({"id": cfg.team_id, "domain": "workspace-domain"});
        payload["user"] = payload_user(user, &name, &cfg.team_id);
        payload["api_app_id"] = json!(cfg.app_id);
        payload["token"] = payload_token();
        payload["trigger_id"] = json!(trigger_id);
        payload["view"] = view;
        payload["response_urls"] = json!([]);
        let envelope = json!({
            "envelope_id": envelope_id,
            "type": "interactive",
            "accepts_response_payload": true,
            "payload": payload,
        });
        let id = self.send_envelope(envelope).await;
        let Some(ack) = self.wait_ack(&id, SUBMIT_ACK_WAIT).await else {
            panic!("slack-sim: no ack of {user}'s view_submission {id} within {SUBMIT_ACK_WAIT:?}");
        };
        let nonce = self.inner.nonce;
        self.inner.update(|s| {
            modal::apply_submission_ack(cfg, nonce, s, user, &view_id, ack.payload.as_ref());
        });
        id
    }

    /// What the client did that Slack would refuse or ignore outside of a Web API answer
    /// (e.g. a `view_submission` ack with errors for a block that is not an input block), in
    /// order. A test that drives modals should expect this to be empty.
    pub fn protocol_errors(&self) -> Vec<String> {
        self.inner.read(|s| s.protocol_errors.clone())
    }

    // --- Web API calls the bot made ---

    /// Every `/api/*` call so far, in order, failed and faulted ones included.
    pub fn calls(&self) -> Vec<ApiCall> {
        self.inner.read(|s| s.calls.clone())
    }

    /// The calls of one method, in order.
    pub fn calls_to(&self, method: &str) -> Vec<ApiCall> {
        self.inner.read(|s| {
            s.calls
                .iter()
                .filter(|c| c.method == method)
                .cloned()
                .collect()
        })
    }

    /// Waits until `calls_to(method).len() >= n`; `false` on timeout.
    pub async fn wait_for_calls(&self, method: &str, n: usize, timeout: Duration) -> bool {
        self.inner
            .wait_until(timeout, |s| {
                s.calls.iter().filter(|c| c.method == method).count() >= n
            })
            .await
    }

    /// `text` as a person sees it in Slack: mentions and channel links by name, links by their
    /// label, escapes undone; a raw `<…>` in it reads as a link (see [`render::render`]).
    pub fn render(&self, text: &str) -> String {
        self.inner.read(|s| {
            let channels = s
                .channels
                .iter()
                .map(|(id, c)| (id.clone(), c.name.clone()))
                .collect();
            render::render(text, &s.users, &channels)
        })
    }

    /// The messages currently stored in a channel (after updates), oldest first. A user id
    /// (`U…`/`W…`) is read as that user's DM.
    pub fn messages(&self, channel: &str) -> Vec<Message> {
        let channel = if channel.starts_with('U') || channel.starts_with('W') {
            state::dm_id(channel)
        } else {
            channel.to_string()
        };
        self.inner.read(|s| {
            s.messages
                .iter()
                .filter(|m| m.channel == channel)
                .cloned()
                .collect()
        })
    }

    /// The bodies POSTed to `response_url`s, in order (non-JSON bodies as JSON strings).
    pub fn response_posts(&self) -> Vec<Value> {
        self.inner.read(|s| s.response_posts.clone())
    }

    // --- fault injection ---

    /// Makes the next `times` calls of `method` answer with `fault` (queued after any faults
    /// already pending for that method).
    pub fn fail_next(&self, method: &str, fault: Fault, times: usize) {
        self.inner.update(|s| {
            let queue = s.faults.entry(method.to_string()).or_default();
            queue.extend(std::iter::repeat_n(fault, times));
        });
    }

    /// Makes every call of `method` (`"*"`: of every Web API method) answer with `fault` until
    /// [`FakeSlack::clear_faults`]. Faults queued by [`FakeSlack::fail_next`] come first.
    pub fn fail_until_cleared(&self, method: &str, fault: Fault) {
        self.inner.update(|s| {
            s.lasting_faults.insert(method.to_string(), fault);
        });
    }

    /// Ends [`FakeSlack::fail_until_cleared`] for `method` (`"*"` as given there), and drops
    /// the faults still queued for it by [`FakeSlack::fail_next`].
    pub fn clear_faults(&self, method: &str) {
        self.inner.update(|s| {
            s.lasting_faults.remove(method);
            s.faults.remove(method);
        });
    }

    /// The number of calls answered with HTTP `status` so far, all methods.
    pub fn calls_with_status(&self, status: u16) -> usize {
        self.inner
            .read(|s| s.calls.iter().filter(|c| c.status == status).count())
    }

    /// From now on, calls of `method` take effect (the message is stored, the call recorded)
    /// but their HTTP answers are held back until [`FakeSlack::release`]: the window in which
    /// Slack did the work and the client does not know it yet.
    pub fn hold_responses(&self, method: &str) {
        self.hold_responses_after(method, 0);
    }

    /// Like [`FakeSlack::hold_responses`], but the next `n` calls still get their answers.
    pub fn hold_responses_after(&self, method: &str, n: usize) {
        self.inner.update(|s| {
            s.holds.insert(method.to_string(), n);
        });
    }

    /// Sends every held answer of `method` and stops holding new ones.
    pub fn release(&self, method: &str) {
        self.inner.update(|s| {
            s.holds.remove(method);
            *s.releases.entry(method.to_string()).or_default() += 1;
        });
    }

    /// Waits until at least `n` answers of `method` are being held; `false` on timeout.
    pub async fn wait_for_held(&self, method: &str, n: usize, timeout: Duration) -> bool {
        self.inner
            .wait_until(timeout, |s| s.held.get(method).copied().unwrap_or(0) >= n)
            .await
    }

    /// A fresh envelope id, trigger id and loopback response URL.
    fn fresh_envelope_ids(&self) -> (String, String, String) {
        let nonce = self.inner.nonce;
        let n = self.inner.update(|s| s.next_id());
        let envelope_id = format!("{nonce:08x}-fa4e-4000-8000-{n:012x}");
        let trigger_id = format!("{}.{}.{nonce:08x}{n:024x}", 10_000 + n, 26_768_298_162u64);
        let response_url = format!("{}/response/{n}", self.inner.base_url());
        (envelope_id, trigger_id, response_url)
    }
}

/// Merges `overrides` over the top level of `payload`; a `null` removes the field.
fn merge_overrides(payload: &mut Value, overrides: serde_json::Map<String, Value>) {
    if let Some(obj) = payload.as_object_mut() {
        for (key, value) in overrides {
            if value.is_null() {
                obj.remove(&key);
            } else {
                obj.insert(key, value);
            }
        }
    }
}

/// The `user` object of an interactive payload.
fn payload_user(user_id: &str, name: &str, team_id: &str) -> Value {
    json!({"id": user_id, "username": name, "name": name, "team_id": team_id})
}

/// The verification token every payload the fake builds carries: the one of Slack's
/// `block_actions` example (`verification_token`), so that all payloads agree.
fn payload_token() -> Value {
    fixtures::load(fixtures::BLOCK_ACTIONS_PAYLOAD)["token"].take()
}
