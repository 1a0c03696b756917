//! The Block Kit builders every message's blocks go through (the messages themselves are in
//! [`super::render`]); they keep Slack's published limits (a section's text 3,000 characters,
//! 50 blocks a message, 75 characters of button text).

use serde_json::{Value, json};

use super::mrkdwn::Mrkdwn;
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

/// The action ids of an offer's Accept and Reject buttons (see `render::offer_buttons`).
pub const ACCEPT: &str = "offer_accept";
pub const REJECT: &str = "offer_reject";

/// The action ids of the App Home's buttons (their values are task ids).
pub const SUBMIT: &str = "task_submit";
pub const APPROVE: &str = "task_approve";
pub const SEND_BACK: &str = "task_send_back";
pub const STAFF: &str = "admin_staff";
pub const RESTAFF: &str = "admin_restaff";
/// The restaff modal: its `callback_id`, its input block and the select in it.
pub const RESTAFF_CALLBACK: &str = "restaff_task";
pub const RESTAFF_INPUT: &str = "restaff_worker";
pub const RESTAFF_SELECT: &str = "worker";
/// "Edit" under "Your availability" on the Home, and the availability modal's `callback_id`;
/// its inputs' block ids are `avail:<week's Monday>:<day>`, `avail:hours` and `avail:days`.
pub const AVAILABILITY_EDIT: &str = "availability_edit";
pub const AVAILABILITY_CALLBACK: &str = "availability";
pub const AVAILABILITY_HOURS: &str = "avail:hours";
pub const AVAILABILITY_DAYS: &str = "avail:days";
/// The action id of every input of the availability modal.
pub const AVAILABILITY_VALUE: &str = "value";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn many_blocks_stay_within_slacks_limits() {
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
