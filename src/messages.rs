//! What staffbot tells people, as data: an offer, an offer's outcome, a reminder, a welcome, a
//! channel notice, … Staffing, the task lifecycle, SanityBot and the loops decide *what* to say
//! and to whom ([`Outgoing`]); the outbox stores it as it is (JSON), and the Slack side renders
//! it into Block Kit when it delivers it (`slack::render`). Nothing here knows Slack's markup:
//! every string is plain text as users and workflow files wrote it, escaped by the renderer.

use serde::{Deserialize, Serialize};

/// Wording every way out shares (Slack's messages and the emails say the same).
pub mod wording {
    pub const TAKEN: &str = "This task has been taken by another expert.";
    pub const THANKS: &str = "Thanks for responding!";
    pub const GONE: &str = "Sorry, this task is no longer available.";
    pub const NOT_YOURS: &str = "This offer was not sent to you.";
    pub const NO_REJECT_AFTER_WIN: &str = "Cannot reject after accepting the task";
    pub const REMINDER_HEADER: &str =
        "Tasks are still available for you to work on, if you'd like!";
    /// The answer to an email reply staffbot could not read.
    pub const NOT_UNDERSTOOD: &str = "Sorry, I could not read your answer. Please reply ACCEPT or REJECT to the offer's email (the first word of your reply counts).";
    /// The answer to a second answer to one offer (by email).
    pub const ALREADY_ANSWERED: &str = "You have already answered this offer.";
    /// The label of the link to staffbot's Home tab (Orchestra's "View Tasks").
    pub const HOME_LINK_LABEL: &str = "Open your staffbot Home";
    /// An admin's command, button or form from someone who is not an admin (Orchestra's).
    pub const NOT_AUTHORIZED: &str = "You are not authorized to staff projects!";
    /// A Home, or a button on it, of someone who is not a worker.
    pub const NOT_A_WORKER: &str = "You are not a staffbot worker yet. Ask a staffing admin to add you (`staffbot worker add`).";
    /// A button whose form cannot open: Slack sent no `trigger_id` with the click.
    pub const NO_TRIGGER: &str = "Sorry! Slack sent no trigger to open the form with.";
}

/// The ids a link to the app's Home tab needs (`auth.test`'s `team_id`, `bots.info`'s
/// `app_id`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppHome {
    pub team_id: String,
    pub app_id: String,
}

/// What the outbox's sender reads of a stored row before its transport renders it (the
/// `delivery` tag of an [`Outgoing`], without parsing the rest).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peek<'a> {
    /// [`Outgoing::Home`] for this user.
    Home {
        user: &'a str,
    },
    /// [`Outgoing::RefreshHomes`].
    RefreshHomes,
    Other,
}

/// [`Peek`] of a stored row's payload.
pub fn peek(payload: &serde_json::Value) -> Peek<'_> {
    match payload.get("delivery").and_then(serde_json::Value::as_str) {
        Some("home") => match payload.get("user").and_then(serde_json::Value::as_str) {
            Some(user) => Peek::Home { user },
            None => Peek::Other,
        },
        Some("refresh_homes") => Peek::RefreshHomes,
        _ => Peek::Other,
    }
}

/// One delivery: where a message goes and what it says.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "delivery", rename_all = "snake_case")]
pub enum Outgoing {
    /// A new message; `channel` is a channel id, or a user id for a direct message.
    Post { channel: String, message: Message },
    /// A message posted earlier (channel and `ts` from its delivery), changed in place.
    Update {
        channel: String,
        ts: String,
        message: Message,
    },
    /// An answer only the clicking user sees, through the interaction's `response_url`.
    Reply {
        response_url: String,
        message: Message,
    },
    /// Adds a user to a (private) channel.
    Invite { channel: String, user: String },
    /// Removes a user from a channel.
    Kick { channel: String, user: String },
    /// Asks Slack about a user (`users.info`): their time zone is stored when it answers.
    UserInfo { user: String },
    /// The user's App Home, published as it is when delivered (so rows queued by several
    /// changes show the latest state once).
    Home { user: String },
    /// Not a Slack call: "what these tasks show changed". When the sender reaches it, it queues
    /// a [`Outgoing::Home`] for everyone whose Home shows one of `tasks` (and for `users`, who
    /// saw them before the change), if they have opened their Home. One row in the change's
    /// own insert, whoever is looking.
    RefreshHomes { tasks: Vec<i64>, users: Vec<String> },
    /// A modal opened in answer to a click (`trigger_id` is the click's; Slack accepts it for
    /// three seconds).
    /// `user` is who clicked (told on their Home if the modal cannot open).
    OpenModal {
        trigger_id: String,
        #[serde(default)]
        user: String,
        modal: Modal,
    },
    /// An email to `to` (issue 16), rendered from `message` when delivered.
    Email {
        to: String,
        /// The `Message-ID` (without its domain), fixed when queued: every attempt, a retry after
        /// a crash included, sends the same id, which mail clients deduplicate.
        message_id: String,
        /// The offer this email is about: its reply token (the `Reply-To` plus-address and the
        /// subject's `[#token]`).
        #[serde(default)]
        token: Option<String>,
        /// The worker's email this one answers (`In-Reply-To`).
        #[serde(default)]
        in_reply_to: Option<String>,
        /// Set for workers who also use Slack: the email links their App Home.
        #[serde(default)]
        slack_user: Option<String>,
        /// Email is the only way this offer reaches the worker: a refusal for good means the
        /// offer was never made (as for a Slack DM).
        #[serde(default)]
        only_channel: bool,
        message: Message,
    },
}

/// The modals staffbot opens.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "modal", rename_all = "snake_case")]
pub enum Modal {
    /// An admin picks which worker of a task to replace (`/staffbot restaff`): `task` as
    /// displayed, `workers` the usernames of those working on it now (the first is chosen).
    Restaff {
        task_id: i64,
        task: String,
        workers: Vec<String>,
    },
    /// A worker edits their availability (this week and next: hours per weekday, as
    /// `WeekHours`' Monday-first array) and their own working hours and days (empty: the
    /// configured ones).
    Availability {
        weeks: Vec<(chrono::NaiveDate, [f64; 7])>,
        working_hours: String,
        working_days: String,
    },
}

impl Outgoing {
    /// A new message to `channel` (a channel id or a user id).
    pub fn post(channel: &str, message: Message) -> Outgoing {
        Outgoing::Post {
            channel: channel.to_string(),
            message,
        }
    }

    /// The Slack Web API method that delivers it (stored with the row: the sender paces and
    /// counts deliveries by method).
    pub fn method(&self) -> &'static str {
        match self {
            Outgoing::Post { .. } => "chat.postMessage",
            Outgoing::Update { .. } => "chat.update",
            Outgoing::Reply { .. } => "response_url",
            Outgoing::Invite { .. } => "conversations.invite",
            Outgoing::Kick { .. } => "conversations.kick",
            Outgoing::UserInfo { .. } => "users.info",
            Outgoing::Home { .. } => "views.publish",
            Outgoing::OpenModal { .. } => "views.open",
            Outgoing::RefreshHomes { .. } => "homes.refresh",
            Outgoing::Email { .. } => "smtp",
        }
    }

    /// What the delivery of this message must be followed by, if anything.
    pub fn follow_up(&self) -> Option<FollowUp> {
        match self {
            Outgoing::Post {
                message: Message::Offer { inquiry_id, .. },
                ..
            } => Some(FollowUp::Offer {
                inquiry_id: *inquiry_id,
            }),
            Outgoing::Email {
                message: Message::Offer { inquiry_id, .. },
                only_channel: true,
                ..
            } => Some(FollowUp::Offer {
                inquiry_id: *inquiry_id,
            }),
            Outgoing::OpenModal { user, .. } if !user.is_empty() => {
                Some(FollowUp::Modal { user: user.clone() })
            }
            Outgoing::UserInfo { user } => Some(FollowUp::TimeZone { user: user.clone() }),
            _ => None,
        }
    }
}

/// What a delivery (or its failure for good) means for the rest of staffbot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FollowUp {
    /// An offer DM: once delivered, its channel and `ts` are stored (so it can be updated);
    /// when it cannot be delivered, the offer was never made.
    Offer { inquiry_id: i64 },
    /// A modal: when Slack refuses it (its trigger expired, say), `user` is told on their Home.
    Modal { user: String },
    /// `users.info`: the user's time zone is stored.
    TimeZone { user: String },
}

/// What an offer shows (behaviour §10.2).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OfferContent {
    pub workflow_description: String,
    pub project_description: String,
    pub step_description: String,
    /// A review step's offer is marked `[Review]`.
    pub review: bool,
    /// The step's detailed description, rendered (may be empty).
    pub details: Details,
}

/// A step's detailed description as its template or script rendered it: plain text, except
/// the parts a template marked as Slack markup on purpose (its `safe` and `mention` filters,
/// see README "Custom checks and descriptions"). The renderer escapes the text and passes the
/// markup as it is. Stored as a plain string when it has no markup.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Details(Vec<DetailPart>);

/// A part of [`Details`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "text", rename_all = "snake_case")]
pub enum DetailPart {
    /// Text as written (escaped when sent).
    Text(String),
    /// Slack markup a template asked for (sent as it is).
    Markup(String),
}

impl Details {
    pub fn text(text: impl Into<String>) -> Details {
        let mut d = Details::default();
        d.push_text(text);
        d
    }

    pub fn push_text(&mut self, text: impl Into<String>) {
        let text = text.into();
        if text.is_empty() {
            return;
        }
        match self.0.last_mut() {
            Some(DetailPart::Text(t)) => t.push_str(&text),
            _ => self.0.push(DetailPart::Text(text)),
        }
    }

    pub fn push_markup(&mut self, markup: impl Into<String>) {
        let markup = markup.into();
        if !markup.is_empty() {
            self.0.push(DetailPart::Markup(markup));
        }
    }

    pub fn parts(&self) -> &[DetailPart] {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Every part as written, markup included (for a terminal).
    pub fn as_written(&self) -> String {
        self.0
            .iter()
            .map(|p| match p {
                DetailPart::Text(t) | DetailPart::Markup(t) => t.as_str(),
            })
            .collect()
    }
}

impl From<&str> for Details {
    fn from(text: &str) -> Details {
        Details::text(text)
    }
}

impl From<String> for Details {
    fn from(text: String) -> Details {
        Details::text(text)
    }
}

/// How [`Details`] are stored: a string (no markup, as before markup existed) or the parts.
#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum DetailsRepr {
    Plain(String),
    Parts(Vec<DetailPart>),
}

impl Serialize for Details {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0.as_slice() {
            [] => DetailsRepr::Plain(String::new()).serialize(s),
            [DetailPart::Text(t)] => DetailsRepr::Plain(t.clone()).serialize(s),
            parts => DetailsRepr::Parts(parts.to_vec()).serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for Details {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Details, D::Error> {
        Ok(match DetailsRepr::deserialize(d)? {
            DetailsRepr::Plain(t) => Details::text(t),
            DetailsRepr::Parts(parts) => Details(parts),
        })
    }
}

/// How an offer ended, as its DM says once decided.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum OfferOutcome {
    /// This worker got the task (the project channel, when there is one, is linked).
    Won {
        task_id: i64,
        channel: Option<String>,
    },
    /// Somebody else got it.
    Taken,
    /// Declined.
    Thanks,
    /// The request closed without this offer (or a late accept).
    Gone,
}

/// Ephemeral answers to a click that changed nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClickReply {
    NotYours,
    CannotRejectAfterWin,
    /// A second answer to one offer (only answered by email; a second click says nothing).
    AlreadyAnswered,
}

/// One offer in a reminder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReminderItem {
    pub inquiry_id: i64,
    pub task_id: i64,
    pub step_description: String,
    pub project_description: String,
    pub review: bool,
    /// The offer's email reply token, when it was emailed (a reminder by email links it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_token: Option<String>,
}

/// One line of an unstaffed-task warning.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum UnstaffedLine {
    /// A request without a winner; `asked` is false when nobody could be asked at all.
    NoWinner {
        task_id: i64,
        task: String,
        requested_at: chrono::DateTime<chrono::Utc>,
        asked: bool,
    },
    /// A machine task whose automation keeps failing.
    Automation {
        task_id: i64,
        task: String,
        error: String,
    },
}

/// Which change of a task's status a [`Message::StatusNotice`] announces (behaviour §10.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NoticeStatus {
    /// A person took the task (an offer won, `task assign`): `processing`.
    PickedUp,
    /// An assignment policy assigned it: `processing`.
    AutoStaffed,
    /// Submitted for review: `pending_review`.
    AwaitingReview,
    /// A reviewer has it: `reviewing` (also when returned work comes back for re-review).
    UnderReview,
    /// The reviewer sent it back: `post_review_processing`.
    Returned,
    Completed,
    /// Its project was aborted.
    Aborted,
}

/// Every kind of message staffbot sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Message {
    /// An offer DM with Accept and Reject (the buttons carry `inquiry_id`).
    Offer {
        inquiry_id: i64,
        first_name: String,
        offer: OfferContent,
    },
    /// An offer DM once decided: the offer, then its outcome; no buttons.
    OfferDecided {
        first_name: String,
        offer: OfferContent,
        outcome: OfferOutcome,
    },
    /// To a worker auto-staffed by availability: the task is theirs (no offer was made).
    AutoStaffed {
        first_name: String,
        task_id: i64,
        /// The project's channel, which they join.
        channel: Option<String>,
        offer: OfferContent,
    },
    /// The ephemeral answer to a click that changed nothing.
    ClickReply { reply: ClickReply },
    /// The ephemeral answer to an accept that could not be honoured (the task changed), with
    /// the reason.
    ClickRefused { reason: String },
    /// One DM listing a worker's open offers (the first [`MAX_REMINDER_ITEMS`], each with its
    /// buttons), and how many more there are.
    Reminder {
        items: Vec<ReminderItem>,
        more: usize,
    },
    /// `Got it! I will start (re)staffing task N!` in the project channel.
    StaffingStarted { task_id: i64, restaff: bool },
    /// Every certified worker was asked (`task` is the task as displayed).
    PoolExhausted { task: String },
    /// Everyone asked declined; the request is closed.
    NobodyAccepted { task: String },
    /// Slack, or the mail server, refused an offer for good (to the staffing channel).
    OfferUndeliverable {
        task: String,
        worker: String,
        error: String,
        /// The worker will be asked again.
        again: bool,
        /// The offer was an email (the mail server refused it), not a Slack DM.
        #[serde(default)]
        by_email: bool,
    },
    /// The mail server fails (login refused, down, refusing mail): emails wait (to the staffing
    /// channel, once an outage).
    EmailFailing { error: String },
    /// The mail server takes email again after [`Message::EmailFailing`].
    EmailBack,
    /// The answer to an email that names no offer, from a worker: their open offers, each with
    /// its answer links (the first [`MAX_REMINDER_ITEMS`]), and how many more there are.
    OpenOffers {
        items: Vec<ReminderItem>,
        more: usize,
    },
    /// Tasks waiting for a worker (or for their automation), to the staffing channel.
    Unstaffed { lines: Vec<UnstaffedLine> },
    /// `<@U…> has been added to the team. Welcome aboard!` in the project channel.
    Welcome { user: String },
    /// To the previous worker of a task handed to somebody else.
    HandedOver { task_id: i64, task: String },
    /// A SanityBot check fired: `mentions` (Slack user ids, sorted) and the handler's message.
    SanityAlert {
        mentions: Vec<String>,
        message: String,
    },
    /// A task's status changed (Orchestra's status line and task information).
    StatusNotice {
        status: NoticeStatus,
        task_id: i64,
        /// The project's workflow version (slug) and description, the task's step (slug).
        version: String,
        project_description: String,
        step: String,
        /// The task's current worker (username).
        worker: String,
        /// The worker's Slack id, mentioned after the username (the project channel's copy).
        mention: Option<String>,
        /// The project's channel, linked at the end (the notifications channel's copy).
        project_channel: Option<String>,
    },
    /// The answer to an email reply staffbot could not read (neither ACCEPT nor REJECT).
    ReplyNotUnderstood,
}

/// `<version slug> (<short description>) - <step slug>`: how messages name a task (Orchestra's
/// task display string).
pub fn task_display(version_slug: &str, project_description: &str, step_slug: &str) -> String {
    format!("{version_slug} ({project_description}) - {step_slug}")
}

/// Offers a reminder lists at most (Slack allows 50 blocks: two per offer and a header).
pub const MAX_REMINDER_ITEMS: usize = 20;

/// Characters one message's text carries at most (Slack's advice for a message's text).
pub const MAX_MESSAGE_CHARS: usize = 4000;

impl UnstaffedLine {
    /// Characters of the line as sent (escapes included), for splitting long lists.
    pub fn sent_chars(&self) -> usize {
        fn escaped(s: &str) -> usize {
            s.chars()
                .map(|c| match c {
                    '&' => 5,
                    '<' | '>' => 4,
                    _ => 1,
                })
                .sum()
        }
        let digits = |n: i64| n.to_string().len();
        // The renderer's wording around the values (pinned by its tests).
        match self {
            UnstaffedLine::NoWinner {
                task_id,
                task,
                asked,
                ..
            } => {
                76 + digits(*task_id) + escaped(task) + if *asked { 0 } else { NOBODY_ASKED.len() }
            }
            UnstaffedLine::Automation {
                task_id,
                task,
                error,
            } => 34 + digits(*task_id) + escaped(task) + escaped(error),
        }
    }
}

/// Added to a warning line when nobody could be asked.
pub const NOBODY_ASKED: &str =
    " Nobody could be asked: no certified worker with Slack and staffbot enabled.";

/// Splits warning lines into messages of at most [`MAX_MESSAGE_CHARS`] characters (a longer
/// single line is its own message).
pub fn split_unstaffed(lines: Vec<UnstaffedLine>) -> Vec<Vec<UnstaffedLine>> {
    let mut out: Vec<Vec<UnstaffedLine>> = Vec::new();
    let mut current: Vec<UnstaffedLine> = Vec::new();
    let mut chars = 0;
    for line in lines {
        let extra = line.sent_chars() + usize::from(!current.is_empty());
        if !current.is_empty() && chars + extra > MAX_MESSAGE_CHARS {
            out.push(std::mem::take(&mut current));
            chars = 0;
        }
        chars += line.sent_chars() + usize::from(!current.is_empty());
        current.push(line);
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_as_tagged_json() {
        let o = Outgoing::post(
            "U1",
            Message::StaffingStarted {
                task_id: 3,
                restaff: false,
            },
        );
        let v = serde_json::to_value(&o).expect("json");
        assert_eq!(
            v,
            serde_json::json!({"delivery": "post", "channel": "U1",
                "message": {"kind": "staffing_started", "task_id": 3, "restaff": false}})
        );
        assert_eq!(serde_json::from_value::<Outgoing>(v).expect("back"), o);
    }

    #[test]
    fn details_are_stored_as_a_string_unless_they_hold_markup() {
        let plain = Details::text("800 words");
        assert_eq!(serde_json::to_value(&plain).expect("json"), "800 words");
        assert_eq!(
            serde_json::from_value::<Details>(serde_json::json!("800 words")).expect("back"),
            plain
        );
        let mut rich = Details::text("Ask ");
        rich.push_markup("<@U1>");
        let v = serde_json::to_value(&rich).expect("json");
        assert_eq!(
            v,
            serde_json::json!([{"kind": "text", "text": "Ask "}, {"kind": "markup", "text": "<@U1>"}])
        );
        assert_eq!(serde_json::from_value::<Details>(v).expect("back"), rich);
        assert_eq!(rich.as_written(), "Ask <@U1>");
    }

    #[test]
    fn only_a_posted_offer_has_a_follow_up() {
        let offer = Message::Offer {
            inquiry_id: 7,
            first_name: "Rob".into(),
            offer: OfferContent {
                workflow_description: String::new(),
                project_description: String::new(),
                step_description: String::new(),
                review: false,
                details: Details::default(),
            },
        };
        assert_eq!(
            Outgoing::post("U1", offer.clone()).follow_up(),
            Some(FollowUp::Offer { inquiry_id: 7 })
        );
        let update = Outgoing::Update {
            channel: "D1".into(),
            ts: "1.2".into(),
            message: offer,
        };
        assert_eq!(update.follow_up(), None);
    }

    #[test]
    fn long_warnings_split_within_the_limit() {
        let lines: Vec<UnstaffedLine> = (0..100)
            .map(|i| UnstaffedLine::Automation {
                task_id: i,
                task: "x".repeat(100),
                error: "<boom>".into(),
            })
            .collect();
        let parts = split_unstaffed(lines.clone());
        assert!(parts.len() > 1);
        for p in &parts {
            let chars: usize = p.iter().map(|l| l.sent_chars() + 1).sum();
            assert!(chars <= MAX_MESSAGE_CHARS + 1, "{chars}");
        }
        assert_eq!(parts.concat(), lines);
        assert!(split_unstaffed(Vec::new()).is_empty());
    }
}
