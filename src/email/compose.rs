//! Messages rendered as emails (issue 16): a subject, a plain-text body and an HTML alternative,
//! from the same typed [`Message`] the Slack renderer draws. Values from users and workflow
//! files are plain text here: escaped in the HTML part, never interpreted as markup.

use crate::messages::{AppHome, wording};
use crate::messages::{
    ClickReply, Message, NoticeStatus, OfferContent, OfferOutcome, ReminderItem,
};

use super::reply::{plus_address, subject_tag};

/// Orchestra's subject for offers and reminders (behaviour §10.2).
pub const OFFER_SUBJECT: &str = "A new task is available for you";
/// The instruction every offer email carries.
pub const REPLY_HINT: &str = "Reply ACCEPT or REJECT to this email.";

/// An email ready to send.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Composed {
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// What an email needs besides its message.
#[derive(Debug, Clone, Default)]
pub struct EmailContext<'a> {
    /// The address replies go to (`email.reply_to`), plus-addressed with a token.
    pub reply_to: &'a str,
    /// The offer the email is about (its reply token), if any.
    pub token: Option<&'a str>,
    /// Set when this email answers a reply (its subject is then `Re: …`).
    pub is_reply: bool,
    /// The app's Home tab, linked for workers who also use Slack.
    pub app_home: Option<&'a AppHome>,
    /// The worker also uses Slack (the project channel they were invited to is linked).
    pub uses_slack: bool,
}

/// A paragraph: lines of text and links.
enum Part {
    Text(String),
    Link { label: String, url: String },
}

fn text(s: impl Into<String>) -> Part {
    Part::Text(s.into())
}

fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Renders paragraphs as text (blank lines between them) and as HTML.
fn render(subject: String, paragraphs: Vec<Vec<Part>>) -> Composed {
    let mut text_out = String::new();
    let mut html = String::from("<!DOCTYPE html>\n<html><body>\n");
    for para in &paragraphs {
        let mut lines = Vec::new();
        let mut html_lines = Vec::new();
        for part in para {
            match part {
                Part::Text(t) => {
                    lines.push(t.clone());
                    html_lines.push(html_escape(t).replace('\n', "<br>\n"));
                }
                Part::Link { label, url } => {
                    lines.push(format!("{label}: {url}"));
                    html_lines.push(format!(
                        "<a href=\"{}\">{}</a>",
                        html_escape(url),
                        html_escape(label)
                    ));
                }
            }
        }
        text_out.push_str(&lines.join("\n"));
        text_out.push_str("\n\n");
        html.push_str("<p>");
        html.push_str(&html_lines.join("<br>\n"));
        html.push_str("</p>\n");
    }
    html.push_str("</body></html>\n");
    Composed {
        subject,
        text: text_out.trim_end().to_string() + "\n",
        html,
    }
}

/// `mailto:` answering offer `token` with `word` (the subject carries the answer).
fn mailto(reply_to: &str, token: &str, word: &str) -> String {
    format!(
        "mailto:{}?subject={word}%20{}",
        plus_address(reply_to, token),
        subject_tag(token)
            .replace('[', "%5B")
            .replace(']', "%5D")
            .replace('#', "%23")
    )
}

fn offer_lines(first_name: &str, o: &OfferContent) -> Vec<Vec<Part>> {
    let mut details = vec![
        text(format!("Project: {}", o.workflow_description)),
        text(format!("Project description: {}", o.project_description)),
        text(format!(
            "Task: {}{}",
            o.step_description,
            if o.review { " [Review]" } else { "" }
        )),
    ];
    if !o.details.is_empty() {
        details.push(text(format!("Details: {}", o.details.as_written())));
    }
    vec![
        vec![text(format!("Hello {first_name}!"))],
        vec![text(
            "A new task is available for you to work on, if you'd like!  Here are the details:",
        )],
        details,
    ]
}

fn home_paragraph(ctx: &EmailContext<'_>) -> Option<Vec<Part>> {
    let home = ctx.app_home?;
    Some(vec![Part::Link {
        label: "Your offers and tasks in Slack".to_string(),
        url: format!(
            "slack://app?team={}&id={}&tab=home",
            home.team_id, home.app_id
        ),
    }])
}

fn subject_for(ctx: &EmailContext<'_>, base: &str) -> String {
    let tagged = match ctx.token {
        Some(t) => format!("{base} {}", subject_tag(t)),
        None => base.to_string(),
    };
    if ctx.is_reply {
        format!("Re: {tagged}")
    } else {
        tagged
    }
}

/// What an answered offer's reply says; the project channel is linked for a worker who uses
/// Slack (they were invited to it).
fn outcome_lines(outcome: &OfferOutcome, uses_slack: bool) -> Vec<Part> {
    match outcome {
        OfferOutcome::Won {
            task_id,
            channel: Some(c),
        } if uses_slack => vec![
            text(format!(
                "You got the task! Task {task_id} is yours; the team is in its Slack channel."
            )),
            Part::Link {
                label: "Open the channel".into(),
                url: format!("https://slack.com/app_redirect?channel={c}"),
            },
        ],
        OfferOutcome::Won { task_id, .. } => {
            vec![text(format!("You got the task! Task {task_id} is yours."))]
        }
        OfferOutcome::Taken => vec![text(wording::TAKEN)],
        OfferOutcome::Thanks => vec![text(wording::THANKS)],
        OfferOutcome::Gone => vec![text(wording::GONE)],
    }
}

/// Orchestra's email subject and first line of a status notice (behaviour §10.4).
fn notice_words(status: NoticeStatus, worker: &str) -> (&'static str, String) {
    match status {
        NoticeStatus::PickedUp | NoticeStatus::AutoStaffed => (
            "You've been assigned to a new task!",
            "You've been assigned to a new task. We can't wait to see the great things you'll do!"
                .into(),
        ),
        NoticeStatus::AwaitingReview => (
            "Your task is under review!",
            format!("Thanks for all your hard work, {worker}! The following task was randomly selected for review by another expert; you should hear back soon!"),
        ),
        NoticeStatus::UnderReview => (
            "A task is ready for re-review!",
            "A task has been updated and is ready for re-review!".into(),
        ),
        NoticeStatus::Returned => (
            "Your task has been returned",
            "Your reviewer sent back your task for a bit more polish. Check out the feedback as soon as you can!".into(),
        ),
        NoticeStatus::Completed => (
            "Task complete!",
            "Congratulations! The task you worked on is complete.".into(),
        ),
        NoticeStatus::Aborted => (
            "A task you were working on has been ended",
            "Unfortunately, the task you were working on has been ended. Please reach out to us if you think this has been done in error.".into(),
        ),
    }
}

/// A reminder's paragraphs: each open offer with its answer links.
fn reminder_lines(items: &[ReminderItem], more: usize, reply_to: &str) -> Vec<Vec<Part>> {
    offer_list(wording::REMINDER_HEADER, items, more, reply_to)
}

/// What an email that names no offer gets: the worker's open offers, each with its links.
fn open_offer_lines(items: &[ReminderItem], more: usize, reply_to: &str) -> Vec<Vec<Part>> {
    if items.is_empty() && more == 0 {
        return vec![vec![text(NO_OPEN_OFFERS)]];
    }
    offer_list(OPEN_OFFERS_HEADER, items, more, reply_to)
}

/// The first line of the answer to an email that names no offer.
pub const OPEN_OFFERS_HEADER: &str =
    "Your email does not say which offer it answers. These offers are open to you:";
/// The answer to an email that names no offer, from a worker with none open.
pub const NO_OPEN_OFFERS: &str =
    "Your email does not say which offer it answers, and no offer is open to you right now.";

/// `header`, then each offer with its answer links, then how to answer.
fn offer_list(header: &str, items: &[ReminderItem], more: usize, reply_to: &str) -> Vec<Vec<Part>> {
    let mut paragraphs = vec![vec![text(header)]];
    for item in items {
        let mut para = vec![text(format!(
            "Task {}: {}{} ({})",
            item.task_id,
            item.step_description,
            if item.review { " [Review]" } else { "" },
            item.project_description
        ))];
        if let Some(token) = &item.reply_token {
            para.push(Part::Link {
                label: "Accept".into(),
                url: mailto(reply_to, token, "ACCEPT"),
            });
            para.push(Part::Link {
                label: "Ignore".into(),
                url: mailto(reply_to, token, "REJECT"),
            });
        }
        paragraphs.push(para);
    }
    if more > 0 {
        paragraphs.push(vec![text(format!("…and {more} more."))]);
    }
    paragraphs.push(vec![text(
        "To answer one, reply ACCEPT or REJECT to its offer's email, or use its links.",
    )]);
    paragraphs
}

/// A status notice's subject and paragraphs (Orchestra's status emails).
fn notice_lines(message: &Message) -> (String, Vec<Vec<Part>>) {
    let Message::StatusNotice {
        status,
        task_id,
        version,
        project_description,
        step,
        worker,
        ..
    } = message
    else {
        return (String::new(), Vec::new());
    };
    let (subject, first) = notice_words(*status, worker);
    let paragraphs = vec![
        vec![text(first)],
        vec![
            text(format!("Project: {version} | {project_description}")),
            text(format!("Task: {step} {task_id}")),
        ],
    ];
    (subject.to_string(), paragraphs)
}

/// An offer's reply hint and its Accept / Ignore links (none without a reply token).
fn reply_links(ctx: &EmailContext<'_>) -> Vec<Vec<Part>> {
    let Some(token) = ctx.token else {
        return Vec::new();
    };
    vec![
        vec![text(REPLY_HINT)],
        vec![
            Part::Link {
                label: "Accept the Task".into(),
                url: mailto(ctx.reply_to, token, "ACCEPT"),
            },
            Part::Link {
                label: "Ignore the Task".into(),
                url: mailto(ctx.reply_to, token, "REJECT"),
            },
        ],
    ]
}

/// Renders `message` as an email. Messages that are never emailed are an error.
pub fn compose(message: &Message, ctx: &EmailContext<'_>) -> Result<Composed, String> {
    let mut paragraphs: Vec<Vec<Part>>;
    let subject;
    match message {
        Message::Offer {
            first_name, offer, ..
        } => {
            subject = subject_for(ctx, OFFER_SUBJECT);
            paragraphs = offer_lines(first_name, offer);
            paragraphs.extend(reply_links(ctx));
        }
        Message::OfferDecided { outcome, .. } => {
            subject = subject_for(ctx, OFFER_SUBJECT);
            paragraphs = vec![outcome_lines(outcome, ctx.uses_slack)];
        }
        Message::AutoStaffed {
            first_name,
            task_id,
            channel,
            offer,
        } => {
            subject = subject_for(ctx, "You've been assigned to a new task!");
            paragraphs = offer_lines(first_name, offer);
            paragraphs[1] = vec![text(
                "You've been assigned to a new task, from the availability you set. Here are the details:",
            )];
            let won = OfferOutcome::Won {
                task_id: *task_id,
                channel: channel.clone(),
            };
            paragraphs.push(outcome_lines(&won, ctx.uses_slack));
        }
        Message::ClickReply { reply } => {
            subject = subject_for(ctx, OFFER_SUBJECT);
            let line = match reply {
                ClickReply::NotYours => wording::NOT_YOURS,
                ClickReply::CannotRejectAfterWin => wording::NO_REJECT_AFTER_WIN,
                ClickReply::AlreadyAnswered => wording::ALREADY_ANSWERED,
            };
            paragraphs = vec![vec![text(line)]];
        }
        Message::ClickRefused { reason } => {
            subject = subject_for(ctx, OFFER_SUBJECT);
            paragraphs = vec![vec![text(reason.clone())]];
        }
        Message::ReplyNotUnderstood => {
            subject = subject_for(ctx, OFFER_SUBJECT);
            paragraphs = vec![vec![text(wording::NOT_UNDERSTOOD)]];
        }
        Message::Reminder { items, more } => {
            subject = subject_for(ctx, OFFER_SUBJECT);
            paragraphs = reminder_lines(items, *more, ctx.reply_to);
        }
        Message::OpenOffers { items, more } => {
            subject = subject_for(ctx, OFFER_SUBJECT);
            paragraphs = open_offer_lines(items, *more, ctx.reply_to);
        }
        Message::StatusNotice { .. } => (subject, paragraphs) = notice_lines(message),
        other => {
            return Err(format!(
                "a {} message is not sent by email",
                serde_json::to_value(other)
                    .ok()
                    .and_then(|v| v.get("kind").and_then(|k| k.as_str()).map(str::to_string))
                    .unwrap_or_default()
            ));
        }
    }
    if let Some(home) = home_paragraph(ctx) {
        paragraphs.push(home);
    }
    Ok(render(subject, paragraphs))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::{Details, OfferContent, ReminderItem};

    fn offer() -> Message {
        Message::Offer {
            inquiry_id: 7,
            first_name: "Erin <3".into(),
            offer: OfferContent {
                workflow_description: "Newsroom & Co".into(),
                project_description: "Mayor <race>".into(),
                step_description: "Write the story".into(),
                review: true,
                details: Details::text("About 800 words"),
            },
        }
    }

    fn ctx<'a>(home: Option<&'a AppHome>) -> EmailContext<'a> {
        EmailContext {
            reply_to: "staffbot@example.com",
            token: Some("abcdefghij0123456789"),
            is_reply: false,
            app_home: home,
            uses_slack: home.is_some(),
        }
    }

    #[test]
    fn an_offer_email_says_how_to_answer_and_escapes_its_html() {
        let home = AppHome {
            team_id: "T1".into(),
            app_id: "A1".into(),
        };
        let email = compose(&offer(), &ctx(Some(&home))).expect("an email");
        insta::assert_snapshot!("offer_email_subject", email.subject);
        insta::assert_snapshot!("offer_email_text", email.text);
        insta::assert_snapshot!("offer_email_html", email.html);
        assert!(!email.html.contains("<race>"), "escaped");
    }

    #[test]
    fn answers_are_replies_and_other_messages_are_not_emailed() {
        let reply_ctx = EmailContext {
            is_reply: true,
            ..ctx(None)
        };
        let taken = Message::OfferDecided {
            first_name: "Erin".into(),
            offer: match offer() {
                Message::Offer { offer, .. } => offer,
                _ => unreachable!("an offer"),
            },
            outcome: OfferOutcome::Taken,
        };
        let email = compose(&taken, &reply_ctx).expect("an email");
        assert_eq!(
            email.subject,
            "Re: A new task is available for you [#abcdefghij0123456789]"
        );
        assert_eq!(email.text, "This task has been taken by another expert.\n");
        let unclear = compose(&Message::ReplyNotUnderstood, &reply_ctx).expect("an email");
        assert!(
            unclear
                .text
                .starts_with("Sorry, I could not read your answer.")
        );
        let won = |uses_slack| {
            let ctx = EmailContext {
                uses_slack,
                ..reply_ctx.clone()
            };
            let outcome = OfferOutcome::Won {
                task_id: 4,
                channel: Some("C1".into()),
            };
            let message = match &taken {
                Message::OfferDecided {
                    first_name, offer, ..
                } => Message::OfferDecided {
                    first_name: first_name.clone(),
                    offer: offer.clone(),
                    outcome,
                },
                _ => unreachable!("decided"),
            };
            compose(&message, &ctx).expect("an email").text
        };
        assert_eq!(
            won(true),
            "You got the task! Task 4 is yours; the team is in its Slack channel.\nOpen the channel: https://slack.com/app_redirect?channel=C1\n"
        );
        assert_eq!(won(false), "You got the task! Task 4 is yours.\n");
        let welcome = Message::Welcome { user: "U1".into() };
        assert!(compose(&welcome, &reply_ctx).is_err());
    }

    #[test]
    fn a_reminder_lists_the_offers_with_their_links() {
        let reminder = Message::Reminder {
            items: vec![ReminderItem {
                inquiry_id: 7,
                task_id: 3,
                step_description: "Write the story".into(),
                project_description: "Mayor race".into(),
                review: false,
                reply_token: Some("abcdefghij0123456789".into()),
            }],
            more: 2,
        };
        let email = compose(
            &reminder,
            &EmailContext {
                token: None,
                ..ctx(None)
            },
        )
        .expect("an email");
        insta::assert_snapshot!("reminder_email_text", email.text);
    }
}
