//! Views on the test side: finding a rendered button in a Home view, and applying a
//! `view_submission` ack to the user's modal as Slack does.

use serde_json::{Value, json};

use crate::FakeSlackConfig;
use crate::fixtures;
use crate::state::State;
use crate::views::{self, Surface};
use crate::web::stored_view;

/// The buttons of a view: `(block_id, button)` for each button in an `actions` block or a
/// section's `accessory`, in order.
pub(crate) fn buttons(view: &Value) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for block in view["blocks"].as_array().into_iter().flatten() {
        let block_id = block["block_id"].as_str().unwrap_or_default().to_string();
        let mut candidates: Vec<&Value> = Vec::new();
        if block["type"] == "actions" {
            candidates.extend(block["elements"].as_array().into_iter().flatten());
        }
        if let Some(accessory) = block.get("accessory") {
            candidates.push(accessory);
        }
        for element in candidates {
            if element["type"] == "button" {
                out.push((block_id.clone(), element.clone()));
            }
        }
    }
    out
}

/// A button's `value`, `""` when it has none.
pub(crate) fn button_value(button: &Value) -> &str {
    button["value"].as_str().unwrap_or_default()
}

/// One line per button, for a panic message.
pub(crate) fn describe_buttons(buttons: &[(String, Value)]) -> String {
    if buttons.is_empty() {
        return "(none)".into();
    }
    buttons
        .iter()
        .map(|(block_id, b)| {
            format!(
                "\n  block_id={block_id:?} action_id={:?} value={:?} text={:?}",
                b["action_id"].as_str().unwrap_or_default(),
                button_value(b),
                b["text"]["text"].as_str().unwrap_or_default(),
            )
        })
        .collect()
}

/// Applies the ack of a `view_submission` of `user`'s modal `view_id` to that modal, as
/// Slack does: no payload (or `{}`) or `response_action: clear` closes it (`clear` closes the
/// whole stack, a bare ack the submitted view), `errors` keeps it open and shows the errors,
/// `update` replaces the view and `push` stacks a new one. Anything Slack would refuse is
/// recorded as a protocol error and leaves the modal as it was.
pub(crate) fn apply_submission_ack(
    config: &FakeSlackConfig,
    nonce: u32,
    s: &mut State,
    user: &str,
    view_id: &str,
    payload: Option<&Value>,
) {
    let Some(mut stack) = s.modals.remove(user) else {
        s.protocol_errors.push(format!(
            "view_submission ack for {user}'s view {view_id}, but the modal was closed meanwhile"
        ));
        return;
    };
    let Some(top) = stack.views.last().cloned() else {
        return;
    };
    let mut problem = None;
    let bare = payload.is_none_or(|p| p.as_object().is_some_and(|o| o.is_empty()));
    if bare {
        stack.views.pop();
        stack.errors = None;
    } else if let Some(p) = payload {
        match p["response_action"].as_str() {
            Some("clear") => {
                stack.views.clear();
                stack.errors = None;
            }
            Some("errors") => match p["errors"].as_object() {
                Some(errors) if !errors.is_empty() => {
                    let inputs = views::input_block_ids(&top);
                    let bad: Vec<&String> = errors
                        .iter()
                        .filter(|(k, v)| !inputs.contains(k) || !v.is_string())
                        .map(|(k, _)| k)
                        .collect();
                    if bad.is_empty() {
                        stack.errors = Some(p["errors"].clone());
                    } else {
                        problem = Some(format!(
                            "response_action errors: {bad:?} must be block_ids of the view's \
                             input blocks {inputs:?}, each with a string message"
                        ));
                    }
                }
                _ => {
                    problem =
                        Some("response_action errors needs a non-empty `errors` object".into())
                }
            },
            Some(action @ ("update" | "push")) => {
                let view = p["view"].clone();
                match views::check_view(&view, Surface::Modal) {
                    Err(messages) => {
                        problem = Some(format!(
                            "response_action {action} with a view Slack refuses: {messages:?}"
                        ));
                    }
                    Ok(()) if action == "push" && stack.views.len() >= views::MAX_MODAL_STACK => {
                        problem = Some(format!(
                            "response_action push: a modal stack holds at most {} views",
                            views::MAX_MODAL_STACK
                        ));
                    }
                    Ok(()) => {
                        let root = stack
                            .views
                            .first()
                            .and_then(|v| v["id"].as_str())
                            .unwrap_or(view_id)
                            .to_string();
                        let keep_id = (action == "update").then(|| view_id.to_string());
                        let mut stored =
                            stored_view(config, nonce, s, view, keep_id, fixtures::VIEWS_OPEN);
                        stored["root_view_id"] = json!(root);
                        if action == "update" {
                            stored["previous_view_id"] = top["previous_view_id"].clone();
                            stack.views.pop();
                        } else {
                            stored["previous_view_id"] = json!(view_id);
                        }
                        stack.views.push(stored);
                        stack.errors = None;
                    }
                }
            }
            Some(other) => problem = Some(format!("unknown response_action {other:?}")),
            None => {
                problem = Some(format!(
                    "an ack payload without response_action ({p}); Slack ignores it"
                ));
            }
        }
    }
    if let Some(problem) = problem {
        s.protocol_errors.push(format!(
            "view_submission ack for {user}'s view {view_id}: {problem}"
        ));
    }
    if !stack.views.is_empty() {
        s.modals.insert(user.to_string(), stack);
    }
}
