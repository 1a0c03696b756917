//! Block Kit rendering of offers and their final states. Pure functions of plain data; every
//! message has a text fallback (mobile notifications use only the text).

use serde_json::{Value, json};

/// Slack's own escaping for text we did not write (W-13: no HTML escaping).
pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
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
pub fn offer_text(o: &OfferContent) -> String {
    offer_text_for(&o.first_name, &offer_body(o))
}

/// Everything of [`offer_text`] after the greeting: the same for every worker offered one
/// request, so a batch renders it once.
pub fn offer_body(o: &OfferContent) -> String {
    let mut text = format!(
        "\n\nA new task is available for you to work on, if you'd like!  Here are the details:\n\nProject: {}\nProject description: {}\nTask: {}{}",
        escape(&o.workflow_description),
        escape(&o.project_description),
        escape(&o.step_description),
        if o.review { " [Review]" } else { "" },
    );
    if !o.details.is_empty() {
        text.push_str(&format!("\nDetails: {}", escape(&o.details)));
    }
    text
}

/// The offer's text for `first_name` from a rendered [`offer_body`].
pub fn offer_text_for(first_name: &str, body: &str) -> String {
    format!("Hello {}!{body}", escape(first_name))
}

/// The offer DM: the text and two buttons whose value is the inquiry id.
pub fn offer_blocks(o: &OfferContent, inquiry_id: i64) -> Value {
    offer_blocks_with_text(offer_text(o), inquiry_id)
}

/// [`offer_blocks`] from the offer's rendered text.
pub fn offer_blocks_with_text(text: String, inquiry_id: i64) -> Value {
    let id = inquiry_id.to_string();
    json!([
        {"type": "section", "text": {"type": "mrkdwn", "text": text}},
        {
            "type": "actions",
            "block_id": format!("offer:{id}"),
            "elements": [
                {"type": "button", "action_id": ACCEPT, "style": "primary",
                 "text": {"type": "plain_text", "text": "Accept"}, "value": id.clone()},
                {"type": "button", "action_id": REJECT,
                 "text": {"type": "plain_text", "text": "Reject"}, "value": id}
            ]
        }
    ])
}

/// An offer after a decision: the original text, then the outcome; no buttons.
pub fn decided_blocks(o: &OfferContent, outcome: &str) -> Value {
    json!([
        {"type": "section", "text": {"type": "mrkdwn", "text": offer_text(o)}},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": outcome}]}
    ])
}

pub const TAKEN: &str = "This task has been taken by another expert.";
pub const THANKS: &str = "Thanks for responding!";
pub const GONE: &str = "Sorry, this task is no longer available.";
pub const NOT_YOURS: &str = "This offer was not sent to you.";
pub const NO_REJECT_AFTER_WIN: &str = "Cannot reject after accepting the task";

/// `You got the task! …` with a link to the project channel when there is one.
pub fn won_text(task_id: i64, channel: Option<&str>) -> String {
    match channel {
        Some(c) => format!("You got the task! Task {task_id} is yours; the team is in <#{c}>."),
        None => format!("You got the task! Task {task_id} is yours."),
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
            offer_text(&offer(false, "")),
            "Hello Rob!\n\nA new task is available for you to work on, if you'd like!  Here are the details:\n\nProject: Plan &amp; write\nProject description: Mayor &lt;race&gt;\nTask: Write the story"
        );
        let t = offer_text(&offer(true, "800 words"));
        assert!(
            t.ends_with("Task: Write the story [Review]\nDetails: 800 words"),
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
        let d = decided_blocks(&offer(false, ""), TAKEN);
        assert_eq!(d.as_array().map(Vec::len), Some(2));
        assert_eq!(d[1]["elements"][0]["text"], TAKEN);
    }
}
