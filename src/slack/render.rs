//! Every message staffbot sends, rendered for Slack: typed messages ([`crate::messages`]) become
//! Web API calls ([`SlackWrite`]) with their text fallback and Block Kit, in this one module.
//! Pure functions of the message; every value from users and workflow files is escaped (through
//! [`Mrkdwn`]) and Slack's limits are kept by the builders in [`super::blocks`].

use serde_json::Value;

use super::blocks::{ACCEPT, MAX_MESSAGE_BLOCKS, REJECT, button, context, message_blocks, section};
use super::mrkdwn::{AppHomeLink, ChannelLink, Mention, Mrkdwn, QuoteRest};
use super::write::SlackWrite;
use crate::messages::{
    ClickReply, FollowUp, MAX_REMINDER_ITEMS, Message, NOBODY_ASKED, NoticeStatus, OfferContent,
    OfferOutcome, Outgoing, ReminderItem, UnstaffedLine,
};
use crate::mrkdwn;

pub mod home;

pub use crate::messages::AppHome;
pub use crate::messages::wording::{
    ALREADY_ANSWERED, GONE, HOME_LINK_LABEL, NO_REJECT_AFTER_WIN, NOT_UNDERSTOOD, NOT_YOURS,
    REMINDER_HEADER, TAKEN, THANKS,
};

/// What rendering may know besides the message: who staffbot is in this Slack workspace (for
/// links to its Home tab). It belongs to the delivering process, not to the outbox row: a row
/// renders the same everywhere, with the link wherever the identity is known.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RenderContext {
    /// The app's Home tab, when the workspace and app ids are known.
    pub app_home: Option<AppHome>,
}

/// `<slack://app?team=…&id=…&tab=home|Open your staffbot Home>`.
pub fn home_link(home: &AppHome) -> Mrkdwn {
    crate::mrkdwn!(
        "{}",
        AppHomeLink {
            team_id: &home.team_id,
            app_id: &home.app_id,
            label: HOME_LINK_LABEL,
        }
    )
}

/// The Web API call that delivers `outgoing` (rendered without a [`RenderContext`]).
#[cfg(test)]
pub fn render(outgoing: Outgoing) -> SlackWrite {
    render_in(outgoing, &RenderContext::default()).expect("a Slack write")
}

/// The Web API call that delivers `outgoing`, rendered in `ctx`.
/// An email ([`Outgoing::Email`]) is not a Slack call: an error.
pub fn render_in(outgoing: Outgoing, ctx: &RenderContext) -> Result<SlackWrite, String> {
    Ok(match outgoing {
        Outgoing::Post { channel, message } => {
            let (text, blocks) = message_parts_in(&message, ctx);
            match blocks {
                Some(blocks) => SlackWrite::message(&channel, text, blocks),
                None => SlackWrite::post(&channel, text),
            }
        }
        Outgoing::Update {
            channel,
            ts,
            message,
        } => {
            let (text, blocks) = message_parts_in(&message, ctx);
            let blocks = blocks.unwrap_or_else(|| message_blocks(vec![section(text.clone())]));
            SlackWrite::update(&channel, &ts, text, blocks)
        }
        Outgoing::Reply {
            response_url,
            message,
        } => SlackWrite::respond(&response_url, message_parts_in(&message, ctx).0),
        Outgoing::Invite { channel, user } => SlackWrite::Invite {
            channel,
            users: user,
        },
        Outgoing::Kick { channel, user } => SlackWrite::Kick { channel, user },
        Outgoing::UserInfo { user } => SlackWrite::UserInfo { user },
        Outgoing::Home { user } => SlackWrite::PublishHome { user_id: user },
        Outgoing::RefreshHomes { tasks, users } => SlackWrite::RefreshHomes { tasks, users },
        Outgoing::OpenModal {
            trigger_id, modal, ..
        } => SlackWrite::OpenView {
            trigger_id,
            view: home::modal_view(&modal),
        },
        Outgoing::Email { .. } => return Err("an email is not a Slack call".into()),
    })
}

pub use home::{availability_message, tasks_message};

/// The `views.publish` of `user`'s Home showing `data`.
pub fn home_publish(user: &str, data: &crate::home::HomeData) -> SlackWrite {
    SlackWrite::PublishView {
        user_id: user.to_string(),
        view: home::home_view(data),
    }
}

/// What an outbox row holds, ready to send: the call, and what its delivery is followed by.
/// Rows queued before messages were typed hold the call itself (and an offer's follow-up is
/// known from its dedupe key, `offer:<inquiry id>`, as those versions wrote it).
pub fn stored(payload: Value, dedupe_key: &str) -> Result<(SlackWrite, Option<FollowUp>), String> {
    stored_in(payload, dedupe_key, &RenderContext::default())
}

/// [`stored`], rendered in `ctx`.
pub fn stored_in(
    payload: Value,
    dedupe_key: &str,
    ctx: &RenderContext,
) -> Result<(SlackWrite, Option<FollowUp>), String> {
    if payload.get("delivery").is_some() {
        let outgoing: Outgoing =
            serde_json::from_value(payload).map_err(|e| format!("unreadable message: {e}"))?;
        let follow_up = outgoing.follow_up();
        return Ok((render_in(outgoing, ctx)?, follow_up));
    }
    let write: SlackWrite =
        serde_json::from_value(payload).map_err(|e| format!("unreadable Slack call: {e}"))?;
    let follow_up = match &write {
        SlackWrite::PostMessage { .. } => dedupe_key
            .strip_prefix("offer:")
            .and_then(|id| id.parse::<i64>().ok())
            .map(|inquiry_id| FollowUp::Offer { inquiry_id }),
        _ => None,
    };
    Ok((write, follow_up))
}

/// A message's text (also the notification fallback) and its blocks, if it has any (rendered
/// without a [`RenderContext`]).
pub fn message_parts(message: &Message) -> (Mrkdwn, Option<Value>) {
    message_parts_in(message, &RenderContext::default())
}

/// [`message_parts`], rendered in `ctx`.
pub fn message_parts_in(message: &Message, ctx: &RenderContext) -> (Mrkdwn, Option<Value>) {
    match message {
        Message::Offer {
            inquiry_id,
            first_name,
            offer,
        } => {
            let text = offer_text(first_name, offer);
            let blocks = message_blocks(vec![
                section(text.clone()),
                offer_buttons(*inquiry_id, format!("offer:{inquiry_id}")),
            ]);
            (text, Some(blocks))
        }
        Message::OfferDecided {
            first_name,
            offer,
            outcome,
        } => {
            let offer_text = offer_text(first_name, offer);
            let outcome = outcome_text(outcome);
            let mut text = offer_text.clone();
            text.push_line(&outcome);
            let blocks = message_blocks(vec![section(offer_text), context(outcome)]);
            (text, Some(blocks))
        }
        Message::AutoStaffed {
            first_name,
            task_id,
            channel,
            offer,
        } => {
            let text = auto_staffed_text(first_name, offer);
            let outcome = match channel {
                Some(c) => mrkdwn!(
                    "Task {} is yours; the team is in {}.",
                    task_id,
                    ChannelLink(c)
                ),
                None => mrkdwn!("Task {} is yours.", task_id),
            };
            let mut all = text.clone();
            all.push_line(&outcome);
            let blocks = message_blocks(vec![section(text), context(outcome)]);
            (all, Some(blocks))
        }
        Message::ClickReply { reply } => (Mrkdwn::text(click_reply_text(*reply)), None),
        Message::ClickRefused { reason } => (Mrkdwn::text(reason), None),
        Message::Reminder { items, more } => {
            let (text, blocks) = reminder(items, *more, ctx.app_home.as_ref());
            (text, Some(blocks))
        }
        notice => (notice_text(notice), None),
    }
}

/// A short answer's text as plain text (not markup), for a notice on top of the App Home.
pub fn plain_text(message: &Message) -> String {
    match message {
        Message::ClickReply { reply } => click_reply_text(*reply).to_string(),
        Message::ClickRefused { reason } => reason.clone(),
        other => message_parts(other).0.into_string(),
    }
}

/// The text of a message that is only text (a notice in a channel or a DM).
fn notice_text(message: &Message) -> Mrkdwn {
    match message {
        Message::StaffingStarted { task_id, restaff } => {
            if *restaff {
                mrkdwn!("Got it! I will start restaffing task {}!", task_id)
            } else {
                mrkdwn!("Got it! I will start staffing task {}!", task_id)
            }
        }
        Message::PoolExhausted { task } => {
            mrkdwn!("All staffing requests for task {} have been sent!", task)
        }
        Message::NobodyAccepted { task } => {
            mrkdwn!("No worker has accepted to work on task {}", task)
        }
        Message::OfferUndeliverable {
            task,
            worker,
            error,
            again,
            by_email,
        } => undeliverable_text(task, worker, error, *again, *by_email),
        Message::EmailFailing { error } => {
            mrkdwn!(
                "Email is not going out: the mail server answered `{}`. Offers, reminders and notices by email wait and go out once it takes them (check `email.smtp_url` and `STAFFBOT_SMTP_PASSWORD`); no offer is given up meanwhile.",
                error
            )
        }
        Message::EmailBack => Mrkdwn::text("Email is going out again."),
        Message::OpenOffers { items, more } => reminder(items, *more, None).0,
        Message::Unstaffed { lines } => Mrkdwn::lines(lines.iter().map(unstaffed_line)),
        Message::Welcome { user } => {
            mrkdwn!(
                "{} has been added to the team. Welcome aboard!",
                Mention(user)
            )
        }
        Message::HandedOver { task_id, task } => {
            mrkdwn!(
                "Task {} ({}) has been handed to another expert, so you are no longer assigned to it. Thank you for your work on it!",
                task_id,
                task
            )
        }
        Message::SanityAlert { mentions, message } => sanity_text(mentions, message),
        Message::StatusNotice { .. } => status_notice_text(message),
        // Not notices: their text is [`message_parts`]'s.
        other @ (Message::Offer { .. }
        | Message::OfferDecided { .. }
        | Message::AutoStaffed { .. }
        | Message::ClickReply { .. }
        | Message::ClickRefused { .. }
        | Message::Reminder { .. }) => message_parts(other).0,
        Message::ReplyNotUnderstood => Mrkdwn::text(NOT_UNDERSTOOD),
    }
}

/// A task's status notice (Orchestra's, behaviour §10.4).
fn status_notice_text(message: &Message) -> Mrkdwn {
    let Message::StatusNotice {
        status,
        task_id,
        version,
        project_description,
        step,
        worker,
        mention,
        project_channel,
    } = message
    else {
        return message_parts(message).0;
    };
    let mut text = mrkdwn!(
        "*{}*\n{}Current worker: {}",
        status_line(*status),
        QuoteRest,
        worker
    );
    if let Some(id) = mention {
        text.push(&mrkdwn!(" ({})", Mention(id)));
    }
    text.push(&mrkdwn!(
        "\n\nProject: {} | {}\nTask: {} {}",
        version,
        project_description,
        step,
        task_id
    ));
    if let Some(channel) = project_channel {
        text.push(&mrkdwn!("\n\nView Slack channel: {}", ChannelLink(channel)));
    }
    text
}

/// An offer that could not be delivered, for the staffing team.
fn undeliverable_text(
    task: &str,
    worker: &str,
    error: &str,
    again: bool,
    by_email: bool,
) -> Mrkdwn {
    mrkdwn!(
        "Could not deliver the offer of task {} to {}: {} answered `{}`. {}",
        task,
        worker,
        if by_email {
            "the mail server (email)"
        } else {
            "Slack"
        },
        error,
        if again {
            "They will be asked again."
        } else {
            "They will not be asked again for this task."
        }
    )
}

/// Orchestra's status line of a status notice (behaviour §10.4).
pub fn status_line(status: NoticeStatus) -> &'static str {
    match status {
        NoticeStatus::PickedUp => "Task has been picked up by a worker.",
        NoticeStatus::AutoStaffed => "Task has been auto-staffed to a worker.",
        NoticeStatus::AwaitingReview => "Task is awaiting review.",
        NoticeStatus::UnderReview => "Task is under review.",
        NoticeStatus::Returned => "Task was returned by reviewer.",
        NoticeStatus::Completed => "Task has been completed.",
        NoticeStatus::Aborted => "Task has been aborted.",
    }
}

/// The offer's text: the greeting and the details (behaviour §10.2).
pub fn offer_text(first_name: &str, o: &OfferContent) -> Mrkdwn {
    task_text(
        first_name,
        "A new task is available for you to work on, if you'd like!  Here are the details:",
        o,
    )
}

/// An auto-staffed worker's DM: Orchestra's "You've been assigned to a new task", with the
/// task's details as an offer shows them.
pub fn auto_staffed_text(first_name: &str, o: &OfferContent) -> Mrkdwn {
    task_text(
        first_name,
        "You've been assigned to a new task, from the availability you set. Here are the details:",
        o,
    )
}

/// `Hello <first name>!`, `lead` (staffbot's own words), then the task's details.
fn task_text(first_name: &str, lead: &'static str, o: &OfferContent) -> Mrkdwn {
    let mut text = mrkdwn!(
        "Hello {}!\n\n{}\n\nProject: {}\nProject description: {}\nTask: {}{}",
        first_name,
        lead,
        o.workflow_description,
        o.project_description,
        o.step_description,
        if o.review { " [Review]" } else { "" },
    );
    if !o.details.is_empty() {
        text.push(&mrkdwn!("\nDetails: {}", o.details));
    }
    text
}

/// What a decided offer says under it.
pub fn outcome_text(outcome: &OfferOutcome) -> Mrkdwn {
    match outcome {
        OfferOutcome::Won {
            task_id,
            channel: Some(c),
        } => mrkdwn!(
            "You got the task! Task {} is yours; the team is in {}.",
            task_id,
            ChannelLink(c)
        ),
        OfferOutcome::Won {
            task_id,
            channel: None,
        } => mrkdwn!("You got the task! Task {} is yours.", task_id),
        OfferOutcome::Taken => Mrkdwn::text(TAKEN),
        OfferOutcome::Thanks => Mrkdwn::text(THANKS),
        OfferOutcome::Gone => Mrkdwn::text(GONE),
    }
}

/// The text of an ephemeral answer to a click that changed nothing.
pub fn click_reply_text(reply: ClickReply) -> &'static str {
    match reply {
        ClickReply::NotYours => NOT_YOURS,
        ClickReply::CannotRejectAfterWin => NO_REJECT_AFTER_WIN,
        ClickReply::AlreadyAnswered => ALREADY_ANSWERED,
    }
}

/// The Accept and Reject buttons of offer `inquiry_id`: the one definition of the offer
/// actions, used by the offer DM and the reminder.
pub fn offer_buttons(inquiry_id: i64, block_id: String) -> Value {
    serde_json::json!({
        "type": "actions",
        "block_id": block_id,
        "elements": [
            button(ACCEPT, Mrkdwn::text("Accept"), inquiry_id.to_string(), true),
            button(REJECT, Mrkdwn::text("Reject"), inquiry_id.to_string(), false),
        ]
    })
}

/// The reminder DM: a header, a line per offer with its buttons, how many more there are, and
/// the link to the app's Home tab when it is known.
fn reminder(items: &[ReminderItem], more: usize, home: Option<&AppHome>) -> (Mrkdwn, Value) {
    let header = Mrkdwn::text(REMINDER_HEADER);
    let mut text = header.clone();
    let mut blocks = vec![section(header)];
    for o in items.iter().take(MAX_REMINDER_ITEMS) {
        let line = mrkdwn!(
            "• {}{} ({}), task {}",
            o.step_description,
            if o.review { " [Review]" } else { "" },
            o.project_description,
            o.task_id
        );
        blocks.push(section(line.clone()));
        blocks.push(offer_buttons(
            o.inquiry_id,
            format!("offer:{}:reminder", o.inquiry_id),
        ));
        text.push_line(&line);
    }
    let more = more + items.len().saturating_sub(MAX_REMINDER_ITEMS);
    if more > 0 {
        let note = mrkdwn!("… and {} more: see the offers above.", more);
        blocks.push(context(note.clone()));
        text.push_line(&note);
    }
    if let Some(home) = home {
        let link = home_link(home);
        blocks.push(section(link.clone()));
        text.push_line(&link);
    }
    debug_assert!(blocks.len() <= MAX_MESSAGE_BLOCKS);
    (text, message_blocks(blocks))
}

/// One line of the unstaffed-task warning, in Orchestra's format.
fn unstaffed_line(line: &UnstaffedLine) -> Mrkdwn {
    match line {
        UnstaffedLine::NoWinner {
            task_id,
            task,
            requested_at,
            asked,
        } => {
            let mut text = mrkdwn!(
                "No winner request for task {} - {}! Created at {}.",
                task_id,
                task,
                requested_at.format("%Y-%m-%d %H:%M:%S%.6f%:z").to_string()
            );
            if !asked {
                text.push(&NOBODY_ASKED);
            }
            text
        }
        UnstaffedLine::Automation {
            task_id,
            task,
            error,
        } => mrkdwn!(
            "Task {} - {}: waiting for automation: {}",
            task_id,
            task,
            error
        ),
    }
}

/// `<@U1> <@U2>: message` (mentions as given, once each), or just the message.
fn sanity_text(mentions: &[String], message: &str) -> Mrkdwn {
    if mentions.is_empty() {
        return Mrkdwn::text(message);
    }
    let mut text = Mrkdwn::default();
    for (i, m) in mentions.iter().enumerate() {
        if i > 0 {
            text.push(&" ");
        }
        text.push(&Mention(m));
    }
    text.push(&mrkdwn!(": {}", message));
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::slack::blocks::{MAX_BUTTON_CHARS, MAX_SECTION_CHARS, MAX_TEXT_CHARS};

    fn offer(review: bool, details: &str) -> OfferContent {
        OfferContent {
            workflow_description: "Plan & write".into(),
            project_description: "Mayor <race>".into(),
            step_description: "Write the story".into(),
            review,
            details: details.into(),
        }
    }

    fn post(message: Message) -> SlackWrite {
        render(Outgoing::post("U1", message))
    }

    fn blocks_of(w: &SlackWrite) -> Value {
        match w {
            SlackWrite::PostMessage { blocks, .. } | SlackWrite::Update { blocks, .. } => {
                blocks.clone().unwrap_or(Value::Null)
            }
            other => panic!("not a message: {other:?}"),
        }
    }

    fn text_of(w: &SlackWrite) -> String {
        match w {
            SlackWrite::PostMessage { text, .. }
            | SlackWrite::Update { text, .. }
            | SlackWrite::Respond { text, .. } => text.clone(),
            other => panic!("no text: {other:?}"),
        }
    }

    #[test]
    fn orchestras_offer_text_with_slack_escaping() {
        assert_eq!(
            offer_text("Rob", &offer(false, "")).as_str(),
            "Hello Rob!\n\nA new task is available for you to work on, if you'd like!  Here are the details:\n\nProject: Plan &amp; write\nProject description: Mayor &lt;race&gt;\nTask: Write the story"
        );
        let t = offer_text("Rob", &offer(true, "800 words"));
        assert!(
            t.as_str()
                .ends_with("Task: Write the story [Review]\nDetails: 800 words"),
            "{t}"
        );
    }

    #[test]
    fn offer_buttons_carry_the_inquiry_and_decided_offers_have_none() {
        let w = post(Message::Offer {
            inquiry_id: 42,
            first_name: "Rob".into(),
            offer: offer(false, ""),
        });
        let b = blocks_of(&w);
        assert_eq!(b[1]["elements"][0]["action_id"], ACCEPT);
        assert_eq!(b[1]["elements"][0]["value"], "42");
        assert_eq!(b[1]["elements"][1]["action_id"], REJECT);
        assert_eq!(b[1]["elements"][1]["text"]["text"], "Reject");
        let d = render(Outgoing::Update {
            channel: "D1".into(),
            ts: "1.2".into(),
            message: Message::OfferDecided {
                first_name: "Rob".into(),
                offer: offer(false, ""),
                outcome: OfferOutcome::Taken,
            },
        });
        let b = blocks_of(&d);
        assert_eq!(b.as_array().map(Vec::len), Some(2));
        assert_eq!(b[1]["elements"][0]["text"], TAKEN);
        assert!(text_of(&d).ends_with(&format!("\n{TAKEN}")));
    }

    #[test]
    fn long_offers_and_reminders_stay_within_slacks_limits() {
        let w = post(Message::Offer {
            inquiry_id: 1,
            first_name: "Rob".into(),
            offer: offer(false, &"x".repeat(4500)),
        });
        let section = blocks_of(&w)[0]["text"]["text"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert_eq!(section.chars().count(), MAX_SECTION_CHARS);
        assert!(section.ends_with('…'));

        let items: Vec<ReminderItem> = (0..25)
            .map(|i| ReminderItem {
                reply_token: None,
                inquiry_id: i,
                task_id: i,
                step_description: "Write <it> & check it".into(),
                project_description: "p".repeat(4500),
                review: false,
            })
            .collect();
        let w = post(Message::Reminder { items, more: 0 });
        let blocks = blocks_of(&w);
        let list = blocks.as_array().cloned().unwrap_or_default();
        assert!(list.len() <= MAX_MESSAGE_BLOCKS, "{}", list.len());
        for b in &list {
            let t = b["text"]["text"].as_str().unwrap_or("");
            assert!(t.chars().count() <= MAX_SECTION_CHARS);
        }
        assert!(
            list[1]["text"]["text"]
                .as_str()
                .is_some_and(|t| t.starts_with("• Write &lt;it&gt; &amp; check it (ppp"))
        );
        assert_eq!(
            list.last().map(|b| b["elements"][0]["text"].clone()),
            Some(Value::from("… and 5 more: see the offers above."))
        );
        assert_eq!(text_of(&w).chars().count(), MAX_TEXT_CHARS);
        let label = Mrkdwn::text(&"y".repeat(100));
        let bt = button("a", label, "1".into(), false);
        assert_eq!(
            bt["text"]["text"].as_str().map(|t| t.chars().count()),
            Some(MAX_BUTTON_CHARS)
        );
    }

    #[test]
    fn warning_lines_are_as_long_as_their_messages_say() {
        let at = chrono::DateTime::from_timestamp(1_700_000_000, 123_000).unwrap_or_default();
        for line in [
            UnstaffedLine::NoWinner {
                task_id: 123,
                task: "v1 - Mayor <race> & co - write".into(),
                requested_at: at,
                asked: false,
            },
            UnstaffedLine::NoWinner {
                task_id: 7,
                task: "x".into(),
                requested_at: at,
                asked: true,
            },
            UnstaffedLine::Automation {
                task_id: 45,
                task: "v & w".into(),
                error: "exit <1>".into(),
            },
        ] {
            assert_eq!(unstaffed_line(&line).chars(), line.sent_chars(), "{line:?}");
        }
    }

    #[test]
    fn rows_from_before_typed_messages_still_deliver() {
        let legacy = serde_json::json!({"method": "chat.postMessage", "channel": "U1",
            "text": "hi", "blocks": [{"type": "section"}]});
        let (write, follow_up) = stored(legacy, "offer:9").expect("legacy row");
        assert_eq!(text_of(&write), "hi");
        assert_eq!(follow_up, Some(FollowUp::Offer { inquiry_id: 9 }));
        let typed = serde_json::to_value(Outgoing::Invite {
            channel: "C1".into(),
            user: "U1".into(),
        })
        .expect("json");
        let (write, follow_up) = stored(typed, "invite:1").expect("typed row");
        assert_eq!(
            write,
            SlackWrite::Invite {
                channel: "C1".into(),
                users: "U1".into()
            }
        );
        assert_eq!(follow_up, None);
        assert!(stored(serde_json::json!({"delivery": "nope"}), "k").is_err());
    }

    fn notice(mention: Option<&str>, project_channel: Option<&str>) -> Message {
        Message::StatusNotice {
            status: NoticeStatus::Returned,
            task_id: 7,
            version: "v1".into(),
            project_description: "Mayor <race> & co".into(),
            step: "write".into(),
            worker: "rob*".into(),
            mention: mention.map(str::to_string),
            project_channel: project_channel.map(str::to_string),
        }
    }

    #[test]
    fn status_notices_are_orchestras_with_escaping() {
        assert_eq!(
            text_of(&post(notice(Some("U0ROB"), None))),
            "*Task was returned by reviewer.*\n>>>Current worker: rob* (<@U0ROB>)\n\nProject: v1 | Mayor &lt;race&gt; &amp; co\nTask: write 7"
        );
        assert_eq!(
            text_of(&post(notice(None, Some("C0MAYOR")))),
            "*Task was returned by reviewer.*\n>>>Current worker: rob*\n\nProject: v1 | Mayor &lt;race&gt; &amp; co\nTask: write 7\n\nView Slack channel: <#C0MAYOR>"
        );
        // A stored id that is not one is shown as text, never as markup.
        let t = text_of(&post(notice(Some("<!channel>"), None)));
        assert!(t.contains("(&lt;!channel&gt;)"), "{t}");
        assert!(blocks_of(&post(notice(None, None))).is_null());
    }

    #[test]
    fn reminders_link_the_home_tab_when_known() {
        let items = vec![ReminderItem {
            reply_token: None,
            inquiry_id: 1,
            task_id: 2,
            step_description: "Write".into(),
            project_description: "p".into(),
            review: false,
        }];
        let message = Message::Reminder { items, more: 0 };
        let ctx = RenderContext {
            app_home: Some(AppHome {
                team_id: "T0TEAM".into(),
                app_id: "A0APP".into(),
            }),
        };
        let link = "<slack://app?team=T0TEAM&id=A0APP&tab=home|Open your staffbot Home>";
        let w = render_in(Outgoing::post("U1", message.clone()), &ctx).expect("a Slack write");
        assert!(
            text_of(&w).ends_with(&format!("\n{link}")),
            "{}",
            text_of(&w)
        );
        let blocks = blocks_of(&w);
        let last = blocks.as_array().and_then(|b| b.last()).cloned();
        assert_eq!(last.map(|b| b["text"]["text"].clone()), Some(link.into()));
        let plain = post(message);
        assert!(!text_of(&plain).contains("slack://"));
        assert_eq!(blocks_of(&plain).as_array().map(Vec::len), Some(3));
    }

    #[test]
    fn sanity_alerts_mention_each_handler() {
        let w = post(Message::SanityAlert {
            mentions: vec!["U1".into(), "U2".into()],
            message: "Too <slow>".into(),
        });
        assert_eq!(text_of(&w), "<@U1> <@U2>: Too &lt;slow&gt;");
        let w = post(Message::SanityAlert {
            mentions: vec![],
            message: "a & b".into(),
        });
        assert_eq!(text_of(&w), "a &amp; b");
    }
}
