//! Block Kit rendering of offers and their final states, and the builders every message's
//! blocks go through, which keep Slack's published limits (a section's text 3,000 characters,
//! 50 blocks a message, 75 characters of button text). Pure functions of plain data; every
//! message has a text fallback (mobile notifications use only the text).

use serde_json::{Value, json};

use super::mrkdwn::{ChannelLink, Mrkdwn};
use crate::mrkdwn;

pub use super::mrkdwn::escape;

/// Characters of a section's text at most.
pub const MAX_SECTION_CHARS: usize = 3000;
/// Blocks in one message at most.
pub const MAX_MESSAGE_BLOCKS: usize = 50;
/// Blocks in one App Home view at most.
pub const MAX_HOME_BLOCKS: usize = 100;
/// Characters of a button's text at most.
pub const MAX_BUTTON_CHARS: usize = 75;
/// Characters of a message's top-level `text` at most (Slack's advice; it truncates at 40,000).
pub const MAX_TEXT_CHARS: usize = 4000;

/// A `section` block with `mrkdwn` text, cut to [`MAX_SECTION_CHARS`].
pub fn section(text: Mrkdwn) -> Value {
    json!({"type": "section", "text": {"type": "mrkdwn",
           "text": text.truncated(MAX_SECTION_CHARS).into_string()}})
}

/// A `context` block with one `mrkdwn` element, cut to [`MAX_SECTION_CHARS`].
pub fn context(text: Mrkdwn) -> Value {
    json!({"type": "context", "elements": [{"type": "mrkdwn",
           "text": text.truncated(MAX_SECTION_CHARS).into_string()}]})
}

/// A button; its label is cut to [`MAX_BUTTON_CHARS`].
pub fn button(action_id: &str, label: Mrkdwn, value: String, primary: bool) -> Value {
    let mut b = json!({"type": "button", "action_id": action_id,
        "text": {"type": "plain_text", "text": label.truncated(MAX_BUTTON_CHARS).into_string()},
        "value": value});
    if primary {
        b["style"] = json!("primary");
    }
    b
}

/// A message's blocks: at most [`MAX_MESSAGE_BLOCKS`]; past that the last block says how many
/// were left out.
pub fn message_blocks(mut blocks: Vec<Value>) -> Value {
    if blocks.len() > MAX_MESSAGE_BLOCKS {
        let left_out = blocks.len() - (MAX_MESSAGE_BLOCKS - 1);
        blocks.truncate(MAX_MESSAGE_BLOCKS - 1);
        blocks.push(context(mrkdwn!(
            "… and {} more block(s) not shown.",
            left_out
        )));
    }
    Value::Array(blocks)
}

/// What an offer shows (behaviour §10.2).
#[derive(Debug, Clone, PartialEq)]
pub struct OfferContent {
    pub first_name: String,
    pub workflow_description: String,
    pub project_description: String,
    pub step_description: String,
    pub review: bool,
    pub details: String,
}

pub const ACCEPT: &str = "offer_accept";
pub const REJECT: &str = "offer_reject";

/// The offer's text (also the notification fallback).
pub fn offer_text(o: &OfferContent) -> Mrkdwn {
    offer_text_for(&o.first_name, &offer_body(o))
}

/// Everything of [`offer_text`] after the greeting: the same for every worker offered one
/// request, so a batch renders it once.
pub fn offer_body(o: &OfferContent) -> Mrkdwn {
    let mut text = mrkdwn!(
        "\n\nA new task is available for you to work on, if you'd like!  Here are the details:\n\nProject: {}\nProject description: {}\nTask: {}{}",
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

/// The offer's text for `first_name` from a rendered [`offer_body`].
pub fn offer_text_for(first_name: &str, body: &Mrkdwn) -> Mrkdwn {
    mrkdwn!("Hello {}!{}", first_name, body)
}

/// The Accept and Reject buttons of offer `inquiry_id` (the DM's and the reminder's).
pub fn offer_buttons(inquiry_id: i64, block_id: String) -> Value {
    json!({
        "type": "actions",
        "block_id": block_id,
        "elements": [
            button(ACCEPT, Mrkdwn::text("Accept"), inquiry_id.to_string(), true),
            button(REJECT, Mrkdwn::text("Reject"), inquiry_id.to_string(), false),
        ]
    })
}

/// The offer DM: the text and two buttons whose value is the inquiry id.
pub fn offer_blocks(o: &OfferContent, inquiry_id: i64) -> Value {
    offer_blocks_with_text(&offer_text(o), inquiry_id)
}

/// [`offer_blocks`] from the offer's rendered text.
pub fn offer_blocks_with_text(text: &Mrkdwn, inquiry_id: i64) -> Value {
    message_blocks(vec![
        section(text.clone()),
        offer_buttons(inquiry_id, format!("offer:{inquiry_id}")),
    ])
}

/// An offer after a decision: the original text, then the outcome; no buttons.
pub fn decided_blocks(o: &OfferContent, outcome: &Mrkdwn) -> Value {
    message_blocks(vec![section(offer_text(o)), context(outcome.clone())])
}

pub const TAKEN: &str = "This task has been taken by another expert.";
pub const THANKS: &str = "Thanks for responding!";
pub const GONE: &str = "Sorry, this task is no longer available.";
pub const NOT_YOURS: &str = "This offer was not sent to you.";
pub const NO_REJECT_AFTER_WIN: &str = "Cannot reject after accepting the task";

/// `You got the task! …` with a link to the project channel when there is one.
pub fn won_text(task_id: i64, channel: Option<&str>) -> Mrkdwn {
    match channel {
        Some(c) => mrkdwn!(
            "You got the task! Task {} is yours; the team is in {}.",
            task_id,
            ChannelLink(c)
        ),
        None => mrkdwn!("You got the task! Task {} is yours.", task_id),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offer(review: bool, details: &str) -> OfferContent {
        OfferContent {
            first_name: "Rob".into(),
            workflow_description: "Plan & write".into(),
            project_description: "Mayor <race>".into(),
            step_description: "Write the story".into(),
            review,
            details: details.into(),
        }
    }

    #[test]
    fn orchestras_text_with_slack_escaping() {
        assert_eq!(
            offer_text(&offer(false, "")).as_str(),
            "Hello Rob!\n\nA new task is available for you to work on, if you'd like!  Here are the details:\n\nProject: Plan &amp; write\nProject description: Mayor &lt;race&gt;\nTask: Write the story"
        );
        let t = offer_text(&offer(true, "800 words"));
        assert!(
            t.as_str()
                .ends_with("Task: Write the story [Review]\nDetails: 800 words"),
            "{t}"
        );
    }

    #[test]
    fn buttons_carry_the_inquiry() {
        let b = offer_blocks(&offer(false, ""), 42);
        assert_eq!(b[1]["elements"][0]["action_id"], ACCEPT);
        assert_eq!(b[1]["elements"][0]["value"], "42");
        assert_eq!(b[1]["elements"][1]["action_id"], REJECT);
        assert_eq!(b[1]["elements"][1]["text"]["text"], "Reject");
        let d = decided_blocks(&offer(false, ""), &Mrkdwn::text(TAKEN));
        assert_eq!(d.as_array().map(Vec::len), Some(2));
        assert_eq!(d[1]["elements"][0]["text"], TAKEN);
    }

    #[test]
    fn long_texts_and_many_blocks_stay_within_slacks_limits() {
        let long = offer(false, &"x".repeat(4500));
        let b = offer_blocks(&long, 1);
        let section = b[0]["text"]["text"].as_str().unwrap_or_default();
        assert_eq!(section.chars().count(), MAX_SECTION_CHARS);
        assert!(section.ends_with('…'));
        let many = message_blocks((0..60).map(section_of).collect());
        assert_eq!(many.as_array().map(Vec::len), Some(MAX_MESSAGE_BLOCKS));
        assert_eq!(
            many[49]["elements"][0]["text"],
            "… and 11 more block(s) not shown."
        );
        let label = Mrkdwn::text(&"y".repeat(100));
        let bt = button("a", label, "1".into(), false);
        assert_eq!(
            bt["text"]["text"].as_str().map(|t| t.chars().count()),
            Some(MAX_BUTTON_CHARS)
        );
    }

    fn section_of(i: usize) -> Value {
        section(mrkdwn!("{}", i))
    }
}
