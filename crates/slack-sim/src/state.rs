//! The shared, lock-protected state of one fake: workspace model, Socket Mode bookkeeping and
//! the logs the tests read.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::{mpsc, oneshot};
use tokio::task::AbortHandle;

use crate::{Ack, ApiCall, Fault, Message};

/// The bot's own user id, as `auth.test` reports it.
pub(crate) const BOT_USER_ID: &str = "U0STAFFBOT";
/// The bot's bot id, as messages posted by it carry it.
pub(crate) const BOT_ID: &str = "B0STAFFBOT";
/// The bot user's name.
pub(crate) const BOT_USER_NAME: &str = "staffbot";

/// A command for the task that owns one WebSocket.
pub(crate) enum Outgoing {
    /// Write a text frame; `done` receives whether the write succeeded.
    Text {
        text: String,
        envelope_id: Option<String>,
        done: oneshot::Sender<bool>,
    },
    /// Send a Close frame and end the connection.
    Close,
    /// Stop reading and writing (so pings go unanswered) until `Close` or the end.
    Stall,
}

pub(crate) struct Conn {
    pub tx: mpsc::UnboundedSender<Outgoing>,
    pub abort: AbortHandle,
    /// A `disconnect` frame was sent; no more envelopes go here.
    pub closing: bool,
}

pub(crate) struct Channel {
    pub name: String,
    /// Human members (the bot is tracked by `bot_member`).
    pub members: BTreeSet<String>,
    pub bot_member: bool,
    pub is_im: bool,
}

/// How long a `trigger_id` may be exchanged after it was issued, as Slack documents it.
pub(crate) const TRIGGER_LIFETIME: Duration = Duration::from_secs(3);

/// An answer only one user sees (a slash command's reply, a `response_url` post), as the web
/// page shows it in a conversation.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Ephemeral {
    pub user: String,
    pub channel: String,
    pub text: String,
    pub blocks: Option<serde_json::Value>,
    /// How many messages there were when it came (it shows after them).
    pub after: usize,
    /// Order among ephemerals (the fake's id counter).
    pub seq: u64,
}

/// A user's published Home tab.
pub(crate) struct HomeView {
    /// The view as Slack stores it (the `view` of the `views.publish` answer).
    pub view: serde_json::Value,
    /// Successful `views.publish` calls for this user.
    pub publishes: usize,
}

impl HomeView {
    pub fn id(&self) -> &str {
        self.view["id"].as_str().unwrap_or_default()
    }

    pub fn hash(&self) -> &str {
        self.view["hash"].as_str().unwrap_or_default()
    }
}

/// A `trigger_id` the fake sent in a payload.
pub(crate) struct Trigger {
    /// The user whose action issued it (a modal it opens is theirs).
    pub user: String,
    pub issued: Instant,
    /// Exchanged by a successful `views.open`.
    pub exchanged: bool,
}

/// A user's open modal: a stack of views (the root first), and the errors the last
/// submission's ack showed on it.
#[derive(Default)]
pub(crate) struct ModalStack {
    pub views: Vec<serde_json::Value>,
    pub errors: Option<serde_json::Value>,
}

#[derive(Default)]
pub(crate) struct State {
    // --- workspace ---
    pub users: BTreeMap<String, String>,
    /// Users' time zones (`tz`, `tz_offset` in seconds) as `users.info` tells them; a user
    /// without one gets the fixture's.
    pub user_tz: BTreeMap<String, (String, i64)>,
    pub channels: BTreeMap<String, Channel>,
    pub messages: Vec<Message>,
    pub home_views: HashMap<String, HomeView>,
    /// Open modals, by user; a user without an entry (or with an empty stack) has none.
    pub modals: HashMap<String, ModalStack>,
    /// Every `trigger_id` issued, by id.
    pub triggers: HashMap<String, Trigger>,
    /// The `trigger_id` lifetime when a test changed it ([`TRIGGER_LIFETIME`] otherwise).
    pub trigger_lifetime: Option<Duration>,
    /// `confirm` objects of the buttons users clicked (and so confirmed), with the user.
    pub confirmations: Vec<(String, serde_json::Value)>,
    /// Things the client did that Slack would refuse or ignore, outside a Web API answer.
    pub protocol_errors: Vec<String>,

    // --- Socket Mode ---
    pub tickets: HashSet<String>,
    pub connection_opens: usize,
    pub conns: BTreeMap<u64, Conn>,
    pub round_robin: usize,
    pub hellos_sent: usize,
    pub sent_at: HashMap<String, Instant>,
    pub acks: Vec<Ack>,
    /// Every envelope frame sent, by envelope id (for redelivery).
    pub frames: HashMap<String, String>,

    // --- Web API ---
    pub calls: Vec<ApiCall>,
    pub response_posts: Vec<serde_json::Value>,
    /// Who clicked where, by `response_url` id: the web page shows an ephemeral answer posted
    /// there to that user, in that conversation.
    pub response_owners: HashMap<String, (String, String)>,
    /// Ephemeral answers the web page shows: slash command replies and `response_url` posts.
    pub ephemerals: Vec<Ephemeral>,
    pub faults: HashMap<String, VecDeque<Fault>>,
    /// Faults that answer every call of a method (or of every method, key `*`) until cleared.
    pub lasting_faults: HashMap<String, Fault>,
    /// Methods whose responses are held back (after the call took effect) until released:
    /// the value is how many more calls still get their answer at once.
    pub holds: HashMap<String, usize>,
    /// Bumped by every release, per method; held responses wait for it to change.
    pub releases: HashMap<String, u64>,
    /// Responses currently held back, per method.
    pub held: HashMap<String, usize>,

    // --- generators ---
    counter: u64,
    last_ts_micros: u128,
    last_action_micros: u128,
}

impl State {
    /// A fresh number, unique within this fake.
    pub fn next_id(&mut self) -> u64 {
        self.counter += 1;
        self.counter
    }

    /// A fresh message timestamp near the wall clock, as Slack's are (clients look messages up
    /// by time with `conversations.history`): `seconds.micros`, unique and increasing.
    pub fn next_ts(&mut self) -> String {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_micros())
            .unwrap_or(0);
        let micros = now.max(self.last_ts_micros + 1);
        self.last_ts_micros = micros;
        format!("{}.{:06}", micros / 1_000_000, micros % 1_000_000)
    }

    /// A fresh `action_ts` near the wall clock, strictly increasing.
    pub fn next_action_ts(&mut self) -> String {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_micros())
            .unwrap_or(0);
        let micros = now.max(self.last_action_micros + 1);
        self.last_action_micros = micros;
        format!("{}.{:06}", micros / 1_000_000, micros % 1_000_000)
    }

    /// Resolves a `channel` argument: a user id (`U…`/`W…`) means that user's DM, which is created
    /// on first use, as is any `D…` id. Other ids must exist.
    pub fn resolve_channel(&mut self, channel: &str) -> Result<String, &'static str> {
        if channel.starts_with('U') || channel.starts_with('W') {
            return Ok(self.ensure_dm(channel));
        }
        if let Some(user) = channel.strip_prefix('D')
            && !self.channels.contains_key(channel)
        {
            self.channels.insert(
                channel.to_string(),
                Channel {
                    name: "directmessage".into(),
                    members: BTreeSet::from([user.to_string()]),
                    bot_member: true,
                    is_im: true,
                },
            );
        }
        if self.channels.contains_key(channel) {
            Ok(channel.to_string())
        } else {
            Err("channel_not_found")
        }
    }

    /// The DM channel with `user` (`"D" + user`), created on first use.
    pub fn ensure_dm(&mut self, user: &str) -> String {
        let id = dm_id(user);
        self.channels.entry(id.clone()).or_insert_with(|| Channel {
            name: "directmessage".into(),
            members: BTreeSet::from([user.to_string()]),
            bot_member: true,
            is_im: true,
        });
        id
    }

    /// Registers a fresh `trigger_id` issued now for `user`.
    pub fn issue_trigger(&mut self, trigger_id: &str, user: &str) {
        self.triggers.insert(
            trigger_id.to_string(),
            Trigger {
                user: user.to_string(),
                issued: Instant::now(),
                exchanged: false,
            },
        );
    }

    /// The `trigger_id` lifetime in force.
    pub fn trigger_lifetime(&self) -> Duration {
        self.trigger_lifetime.unwrap_or(TRIGGER_LIFETIME)
    }

    /// Ids of connections envelopes may go to (open and not told to disconnect).
    pub fn deliverable(&self) -> Vec<u64> {
        self.conns
            .iter()
            .filter(|(_, c)| !c.closing)
            .map(|(id, _)| *id)
            .collect()
    }
}

/// The stable DM channel id for a user.
pub(crate) fn dm_id(user: &str) -> String {
    format!("D{user}")
}
