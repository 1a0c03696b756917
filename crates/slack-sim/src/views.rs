//! Slack's checks of views (a Home tab published with `views.publish`, a modal opened with
//! `views.open` or by a `view_submission` ack), from Slack's Block Kit reference
//! (<https://docs.slack.dev/reference/block-kit/blocks>, `…/block-elements`,
//! `…/composition-objects`, `…/views`).
//!
//! A refused view is answered as Slack does, `invalid_arguments` with one
//! `response_metadata.messages` entry per problem, each in Slack's form
//! `[ERROR] <what is wrong> [json-pointer:/view/…]`.
//!
//! What is checked:
//!
//! - the view: `type` (`home` or `modal`, as the method requires), `blocks` (at most 100),
//!   `private_metadata` (3,000 characters), `callback_id` and `external_id` (255); a modal's
//!   `title` (plain_text, 24), `submit` and `close` (plain_text, 24; `submit` is required when
//!   the modal has an `input` block);
//! - every block: the block types Slack allows on that surface (`actions`, `context`,
//!   `divider`, `header`, `image`, `input`, `rich_text`, `section`, `video`; not `file`,
//!   `markdown` or `table`, which are for messages), `block_id` (255, unique within the view),
//!   `section` text (3,000) and `fields` (10, 2,000 each), `header` text (plain_text, 150),
//!   `context` (1–10 elements), `actions` (1–25 elements), `image` (`image_url` 3,000,
//!   `alt_text` 2,000), `input` (`label` plain_text 2,000, an `element`, `hint` 2,000);
//! - the elements this fake models in depth: `button` (text plain_text 75, `value` 2,000, `url`
//!   3,000, `style` `primary`/`danger`, `confirm`), `static_select` (1–100 `options`, each text
//!   plain_text 75 and value 150), `users_select`, `plain_text_input` (in `input` blocks only,
//!   `min_length`/`max_length` 0–3,000) and `image`; of every element, `action_id` (255,
//!   unique within its block, Slack's rule: one kind of button, e.g. Accept, may repeat in
//!   several blocks with different values). Slack's other
//!   interactive elements (`overflow`, date pickers, checkboxes, other selects, …) are
//!   accepted where Slack accepts them with only their `action_id` checked; an element type
//!   Slack does not know is refused;
//! - `confirm` objects: `title` (plain_text, 100), `text` (300), `confirm` and `deny`
//!   (plain_text, 30), `style` `primary`/`danger`;
//! - text objects: `type` `plain_text` or `mrkdwn`, `text` between 1 character and the limit.
//!
//! Not checked: unknown fields (Slack refuses them with `invalid additional property`), emoji
//! and `verbatim` flags, `initial_*` values against the options, rich text and video content.

use std::collections::HashMap;
use std::fmt::Display;

use serde_json::Value;

/// Blocks of a Home tab or modal at most.
pub const MAX_VIEW_BLOCKS: usize = 100;
/// Bytes of a view's JSON at most (`view_too_large` above).
pub const MAX_VIEW_BYTES: usize = 250_000;
/// Characters of a `block_id` or `action_id` at most.
pub const MAX_ID_CHARS: usize = 255;
/// Characters of a view's `private_metadata` at most.
pub const MAX_PRIVATE_METADATA_CHARS: usize = 3000;
/// Characters of a modal's `title`, `submit` and `close` at most.
pub const MAX_MODAL_TITLE_CHARS: usize = 24;
/// Characters of a section's (or any mrkdwn block text's) text at most.
pub const MAX_SECTION_CHARS: usize = 3000;
/// Characters of one section field at most.
pub const MAX_FIELD_CHARS: usize = 2000;
/// Fields of a section at most.
pub const MAX_FIELDS: usize = 10;
/// Characters of a `header` block's text at most.
pub const MAX_HEADER_CHARS: usize = 150;
/// Elements of a `context` block at most.
pub const MAX_CONTEXT_ELEMENTS: usize = 10;
/// Elements of an `actions` block at most.
pub const MAX_ACTIONS_ELEMENTS: usize = 25;
/// Characters of a button's text at most.
pub const MAX_BUTTON_CHARS: usize = 75;
/// Characters of a button's `value` at most.
pub const MAX_BUTTON_VALUE_CHARS: usize = 2000;
/// Characters of a URL (button `url`, `image_url`) at most.
pub const MAX_URL_CHARS: usize = 3000;
/// Characters of a `confirm` object's title at most.
pub const MAX_CONFIRM_TITLE_CHARS: usize = 100;
/// Characters of a `confirm` object's text at most.
pub const MAX_CONFIRM_TEXT_CHARS: usize = 300;
/// Characters of a `confirm` object's `confirm` and `deny` button texts at most.
pub const MAX_CONFIRM_BUTTON_CHARS: usize = 30;
/// Characters of an input block's `label` and `hint`, and of an image's `alt_text`, at most.
pub const MAX_LABEL_CHARS: usize = 2000;
/// Characters of a placeholder at most.
pub const MAX_PLACEHOLDER_CHARS: usize = 150;
/// Options of a select menu at most.
pub const MAX_OPTIONS: usize = 100;
/// Characters of an option's text (and description) at most.
pub const MAX_OPTION_TEXT_CHARS: usize = 75;
/// Characters of an option's value at most.
pub const MAX_OPTION_VALUE_CHARS: usize = 150;
/// Characters of a `plain_text_input`'s `min_length`/`max_length` at most.
pub const MAX_INPUT_LENGTH: u64 = 3000;
/// Views a modal stack holds at most (the root and two pushed).
pub const MAX_MODAL_STACK: usize = 3;

/// Where a view is shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Surface {
    /// The App Home tab (`views.publish`, `type: "home"`).
    Home,
    /// A modal (`views.open`, `response_action` `update`/`push`, `type: "modal"`).
    Modal,
}

impl Surface {
    fn view_type(self) -> &'static str {
        match self {
            Surface::Home => "home",
            Surface::Modal => "modal",
        }
    }
}

/// Block types Slack allows in Home tabs and modals.
const VIEW_BLOCKS: &[&str] = &[
    "actions",
    "context",
    "divider",
    "header",
    "image",
    "input",
    "rich_text",
    "section",
    "video",
];

/// Select menus (single and multi).
const SELECTS: &[&str] = &[
    "static_select",
    "users_select",
    "conversations_select",
    "channels_select",
    "external_select",
    "multi_static_select",
    "multi_users_select",
    "multi_conversations_select",
    "multi_channels_select",
    "multi_external_select",
];

/// Elements an `actions` block may hold, besides the select menus.
const ACTIONS_ELEMENTS: &[&str] = &[
    "button",
    "overflow",
    "datepicker",
    "timepicker",
    "datetimepicker",
    "checkboxes",
    "radio_buttons",
    "workflow_button",
    "rich_text_input",
];

/// Elements a section's `accessory` may be, besides the select menus.
const ACCESSORY_ELEMENTS: &[&str] = &[
    "button",
    "overflow",
    "datepicker",
    "timepicker",
    "checkboxes",
    "radio_buttons",
    "image",
    "workflow_button",
];

/// Elements an `input` block may hold, besides the select menus.
const INPUT_ELEMENTS: &[&str] = &[
    "plain_text_input",
    "checkboxes",
    "radio_buttons",
    "datepicker",
    "timepicker",
    "datetimepicker",
    "email_text_input",
    "url_text_input",
    "number_input",
    "rich_text_input",
    "file_input",
];

/// Where an element sits, which decides the element types allowed.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Place {
    Actions,
    Accessory,
    Input,
}

impl Place {
    fn allows(self, kind: &str) -> bool {
        let list = match self {
            Place::Actions => ACTIONS_ELEMENTS,
            Place::Accessory => ACCESSORY_ELEMENTS,
            Place::Input => INPUT_ELEMENTS,
        };
        SELECTS.contains(&kind) || list.contains(&kind)
    }

    fn name(self) -> &'static str {
        match self {
            Place::Actions => "an actions block",
            Place::Accessory => "a section accessory",
            Place::Input => "an input block",
        }
    }
}

/// Which text objects a field takes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Text {
    Plain,
    Any,
}

/// Checks a view as Slack does for `surface`; `Err` holds Slack's `response_metadata.messages`.
pub fn check_view(view: &Value, surface: Surface) -> Result<(), Vec<String>> {
    let mut c = Checker {
        surface,
        errors: Vec::new(),
        block_ids: HashMap::new(),
        action_ids: HashMap::new(),
    };
    c.view(view);
    if c.errors.is_empty() {
        Ok(())
    } else {
        Err(c.errors)
    }
}

/// The `block_id`s of a view's `input` blocks.
pub fn input_block_ids(view: &Value) -> Vec<String> {
    view["blocks"]
        .as_array()
        .map(|blocks| {
            blocks
                .iter()
                .filter(|b| b["type"] == "input")
                .filter_map(|b| b["block_id"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Gives every block without a `block_id`, and every element with an `action_id` field
/// missing, a generated one, as Slack does when it stores a view (clicks always carry both).
pub(crate) fn stamp_ids(view: &mut Value, mut fresh: impl FnMut() -> String) {
    let Some(blocks) = view.get_mut("blocks").and_then(Value::as_array_mut) else {
        return;
    };
    for block in blocks {
        let Some(b) = block.as_object_mut() else {
            continue;
        };
        if !b.get("block_id").is_some_and(Value::is_string) {
            b.insert("block_id".into(), Value::String(fresh()));
        }
        if b.get("type").is_some_and(|t| t == "actions")
            && let Some(list) = b.get_mut("elements").and_then(Value::as_array_mut)
        {
            for element in list {
                stamp_action_id(element, &mut fresh);
            }
        }
        for key in ["accessory", "element"] {
            if let Some(element) = b.get_mut(key) {
                stamp_action_id(element, &mut fresh);
            }
        }
    }
}

fn stamp_action_id(element: &mut Value, fresh: &mut impl FnMut() -> String) {
    let interactive = element["type"].as_str().is_some_and(|t| t != "image");
    if let Some(e) = element.as_object_mut()
        && interactive
        && !e.get("action_id").is_some_and(Value::is_string)
    {
        e.insert("action_id".into(), Value::String(fresh()));
    }
}

fn chars(s: &str) -> usize {
    s.chars().count()
}

struct Checker {
    surface: Surface,
    errors: Vec<String>,
    /// Ids seen so far, with the pointer of their first use.
    block_ids: HashMap<String, String>,
    action_ids: HashMap<String, String>,
}

impl Checker {
    fn err(&mut self, pointer: &str, what: impl Display) {
        self.errors
            .push(format!("[ERROR] {what} [json-pointer:{pointer}]"));
    }

    /// An optional string field of at most `max` characters.
    fn string(&mut self, parent: &Value, key: &str, path: &str, max: usize) {
        match parent.get(key) {
            None | Some(Value::Null) => {}
            Some(Value::String(s)) if chars(s) > max => {
                self.err(
                    &format!("{path}/{key}"),
                    format!("must be less than {} characters", max + 1),
                );
            }
            Some(Value::String(_)) => {}
            Some(_) => self.err(&format!("{path}/{key}"), "must be a string"),
        }
    }

    /// A required field: reports it missing (at the parent) and says whether it is there.
    fn required(&mut self, parent: &Value, key: &str, path: &str) -> bool {
        if parent.get(key).is_none_or(Value::is_null) {
            self.err(path, format!("missing required field: {key}"));
            false
        } else {
            true
        }
    }

    /// A text object at `path`.
    fn text(&mut self, t: &Value, path: &str, kind: Text, max: usize) {
        if !t.is_object() {
            self.err(path, "must be a text object");
            return;
        }
        match t["type"].as_str() {
            Some("plain_text") => {}
            Some("mrkdwn") if kind == Text::Any => {}
            Some("mrkdwn") => self.err(&format!("{path}/type"), "must be plain_text"),
            Some(_) => self.err(
                &format!("{path}/type"),
                "must be a valid enum value (plain_text, mrkdwn)",
            ),
            None => self.err(path, "missing required field: type"),
        }
        match t.get("text") {
            Some(Value::String(s)) if s.is_empty() => {
                self.err(&format!("{path}/text"), "must be more than 0 characters");
            }
            Some(Value::String(s)) if chars(s) > max => self.err(
                &format!("{path}/text"),
                format!("must be less than {} characters", max + 1),
            ),
            Some(Value::String(_)) => {}
            None | Some(Value::Null) => self.err(path, "missing required field: text"),
            Some(_) => self.err(&format!("{path}/text"), "must be a string"),
        }
    }

    /// An optional text object field.
    fn opt_text(&mut self, parent: &Value, key: &str, path: &str, kind: Text, max: usize) {
        if let Some(t) = parent.get(key).filter(|t| !t.is_null()) {
            self.text(t, &format!("{path}/{key}"), kind, max);
        }
    }

    /// A required text object field.
    fn req_text(&mut self, parent: &Value, key: &str, path: &str, kind: Text, max: usize) {
        if self.required(parent, key, path) {
            self.text(&parent[key], &format!("{path}/{key}"), kind, max);
        }
    }

    /// An array field: required or not, between `min` and `max` items. Returns its items.
    fn list<'v>(
        &mut self,
        parent: &'v Value,
        key: &str,
        path: &str,
        min: usize,
        max: usize,
    ) -> &'v [Value] {
        let pointer = format!("{path}/{key}");
        match parent.get(key) {
            None | Some(Value::Null) => {
                if min > 0 {
                    self.err(path, format!("missing required field: {key}"));
                }
                &[]
            }
            Some(Value::Array(items)) => {
                if items.len() > max {
                    self.err(&pointer, format!("no more than {max} items allowed"));
                } else if items.len() < min {
                    self.err(&pointer, format!("must provide at least {min} item(s)"));
                }
                items
            }
            Some(_) => {
                self.err(&pointer, "must be an array");
                &[]
            }
        }
    }

    fn style(&mut self, parent: &Value, path: &str) {
        match parent.get("style") {
            None | Some(Value::Null) => {}
            Some(Value::String(s)) if s == "primary" || s == "danger" => {}
            Some(_) => self.err(
                &format!("{path}/style"),
                "must be a valid enum value (primary, danger)",
            ),
        }
    }

    fn block_id(&mut self, block: &Value, path: &str) {
        self.string(block, "block_id", path, MAX_ID_CHARS);
        if let Some(id) = block["block_id"].as_str() {
            let pointer = format!("{path}/block_id");
            if let Some(first) = self.block_ids.get(id).cloned() {
                self.err(
                    &pointer,
                    format!("duplicate block_id: {id} (first at {first})"),
                );
            } else {
                self.block_ids.insert(id.to_string(), pointer);
            }
        }
    }

    fn action_id(&mut self, element: &Value, path: &str) {
        self.string(element, "action_id", path, MAX_ID_CHARS);
        if let Some(id) = element["action_id"].as_str() {
            let pointer = format!("{path}/action_id");
            // Unique within the block: `/view/blocks/N` is the block's path.
            let block: String = path.split('/').take(4).collect::<Vec<_>>().join("/");
            let key = format!("{block}#{id}");
            if let Some(first) = self.action_ids.get(&key).cloned() {
                self.err(
                    &pointer,
                    format!("duplicate action_id: {id} (first at {first}; action_ids must be unique within a block)"),
                );
            } else {
                self.action_ids.insert(key, pointer);
            }
        }
    }

    fn view(&mut self, view: &Value) {
        let path = "/view";
        if !view.is_object() {
            self.err(path, "must be an object");
            return;
        }
        let wanted = self.surface.view_type();
        match view.get("type") {
            None | Some(Value::Null) => self.err(path, "missing required field: type"),
            Some(Value::String(t)) if t == wanted => {}
            Some(_) => self.err(
                &format!("{path}/type"),
                format!("must be \"{wanted}\" for this method"),
            ),
        }
        self.string(view, "private_metadata", path, MAX_PRIVATE_METADATA_CHARS);
        self.string(view, "callback_id", path, MAX_ID_CHARS);
        self.string(view, "external_id", path, MAX_ID_CHARS);
        let blocks = self.list(view, "blocks", path, 0, MAX_VIEW_BLOCKS);
        if view.get("blocks").is_none_or(Value::is_null) {
            self.err(path, "missing required field: blocks");
        }
        if self.surface == Surface::Modal {
            self.req_text(view, "title", path, Text::Plain, MAX_MODAL_TITLE_CHARS);
            self.opt_text(view, "submit", path, Text::Plain, MAX_MODAL_TITLE_CHARS);
            self.opt_text(view, "close", path, Text::Plain, MAX_MODAL_TITLE_CHARS);
            let has_input = blocks.iter().any(|b| b["type"] == "input");
            if has_input && view.get("submit").is_none_or(Value::is_null) {
                self.err(
                    path,
                    "missing required field: submit (a modal with input blocks needs one)",
                );
            }
        }
        for (i, block) in blocks.iter().enumerate() {
            self.block(block, &format!("{path}/blocks/{i}"));
        }
    }

    fn block(&mut self, block: &Value, path: &str) {
        if !block.is_object() {
            self.err(path, "must be an object");
            return;
        }
        let Some(kind) = block["type"].as_str() else {
            self.err(path, "missing required field: type");
            return;
        };
        if !VIEW_BLOCKS.contains(&kind) {
            self.err(
                &format!("{path}/type"),
                format!(
                    "unsupported block type for a {} view: {kind}",
                    self.surface.view_type()
                ),
            );
            return;
        }
        self.block_id(block, path);
        match kind {
            "section" => self.section(block, path),
            "header" => self.req_text(block, "text", path, Text::Plain, MAX_HEADER_CHARS),
            "context" => {
                let elements = self.list(block, "elements", path, 1, MAX_CONTEXT_ELEMENTS);
                for (i, e) in elements.iter().enumerate() {
                    let p = format!("{path}/elements/{i}");
                    match e["type"].as_str() {
                        Some("image") => self.image(e, &p),
                        _ => self.text(e, &p, Text::Any, MAX_SECTION_CHARS),
                    }
                }
            }
            "actions" => {
                let elements = self.list(block, "elements", path, 1, MAX_ACTIONS_ELEMENTS);
                for (i, e) in elements.iter().enumerate() {
                    self.element(e, &format!("{path}/elements/{i}"), Place::Actions);
                }
            }
            "image" => {
                self.image(block, path);
                self.opt_text(block, "title", path, Text::Plain, MAX_LABEL_CHARS);
            }
            "input" => {
                self.req_text(block, "label", path, Text::Plain, MAX_LABEL_CHARS);
                self.opt_text(block, "hint", path, Text::Plain, MAX_LABEL_CHARS);
                if self.required(block, "element", path) {
                    self.element(&block["element"], &format!("{path}/element"), Place::Input);
                }
                if block.get("optional").is_some_and(|o| !o.is_boolean()) {
                    self.err(&format!("{path}/optional"), "must be a boolean");
                }
            }
            // divider, rich_text, video: only the block_id is checked.
            _ => {}
        }
    }

    fn section(&mut self, block: &Value, path: &str) {
        let has_text = block.get("text").is_some_and(|t| !t.is_null());
        let has_fields = block.get("fields").is_some_and(|f| !f.is_null());
        if !has_text && !has_fields {
            self.err(path, "missing required field: text (or fields)");
        }
        self.opt_text(block, "text", path, Text::Any, MAX_SECTION_CHARS);
        let fields = self.list(block, "fields", path, 0, MAX_FIELDS);
        for (i, f) in fields.iter().enumerate() {
            self.text(f, &format!("{path}/fields/{i}"), Text::Any, MAX_FIELD_CHARS);
        }
        if let Some(accessory) = block.get("accessory").filter(|a| !a.is_null()) {
            self.element(accessory, &format!("{path}/accessory"), Place::Accessory);
        }
    }

    fn image(&mut self, image: &Value, path: &str) {
        if image.get("slack_file").is_none_or(Value::is_null)
            && self.required(image, "image_url", path)
        {
            self.string(image, "image_url", path, MAX_URL_CHARS);
        }
        if self.required(image, "alt_text", path) {
            self.string(image, "alt_text", path, MAX_LABEL_CHARS);
        }
    }

    fn element(&mut self, e: &Value, path: &str, place: Place) {
        if !e.is_object() {
            self.err(path, "must be an object");
            return;
        }
        let Some(kind) = e["type"].as_str() else {
            self.err(path, "missing required field: type");
            return;
        };
        if !place.allows(kind) {
            self.err(
                &format!("{path}/type"),
                format!("{kind} is not allowed in {}", place.name()),
            );
            return;
        }
        if kind == "image" {
            self.image(e, path);
            return;
        }
        self.action_id(e, path);
        if let Some(confirm) = e.get("confirm").filter(|c| !c.is_null()) {
            self.confirm(confirm, &format!("{path}/confirm"));
        }
        match kind {
            "button" => {
                self.req_text(e, "text", path, Text::Plain, MAX_BUTTON_CHARS);
                self.string(e, "value", path, MAX_BUTTON_VALUE_CHARS);
                self.string(e, "url", path, MAX_URL_CHARS);
                self.string(e, "accessibility_label", path, MAX_BUTTON_CHARS);
                self.style(e, path);
            }
            "static_select" | "multi_static_select" => {
                self.opt_text(e, "placeholder", path, Text::Plain, MAX_PLACEHOLDER_CHARS);
                if e.get("option_groups").is_some_and(|g| !g.is_null()) {
                    let groups = self.list(e, "option_groups", path, 1, MAX_OPTIONS);
                    for (g, group) in groups.iter().enumerate() {
                        let gp = format!("{path}/option_groups/{g}");
                        self.req_text(group, "label", &gp, Text::Plain, MAX_OPTION_TEXT_CHARS);
                        let options = self.list(group, "options", &gp, 1, MAX_OPTIONS);
                        for (i, o) in options.iter().enumerate() {
                            self.option(o, &format!("{gp}/options/{i}"));
                        }
                    }
                } else {
                    let options = self.list(e, "options", path, 1, MAX_OPTIONS);
                    for (i, o) in options.iter().enumerate() {
                        self.option(o, &format!("{path}/options/{i}"));
                    }
                }
                if let Some(initial) = e.get("initial_option").filter(|o| !o.is_null()) {
                    self.option(initial, &format!("{path}/initial_option"));
                }
            }
            "users_select" => {
                self.opt_text(e, "placeholder", path, Text::Plain, MAX_PLACEHOLDER_CHARS);
                self.string(e, "initial_user", path, MAX_ID_CHARS);
            }
            "plain_text_input" => {
                self.opt_text(e, "placeholder", path, Text::Plain, MAX_PLACEHOLDER_CHARS);
                self.string(e, "initial_value", path, MAX_INPUT_LENGTH as usize);
                if e.get("multiline").is_some_and(|m| !m.is_boolean()) {
                    self.err(&format!("{path}/multiline"), "must be a boolean");
                }
                for key in ["min_length", "max_length"] {
                    match e.get(key) {
                        None | Some(Value::Null) => {}
                        Some(v) if v.as_u64().is_some_and(|n| n <= MAX_INPUT_LENGTH) => {}
                        Some(_) => self.err(
                            &format!("{path}/{key}"),
                            format!("must be an integer from 0 to {MAX_INPUT_LENGTH}"),
                        ),
                    }
                }
                if let (Some(min), Some(max)) = (e["min_length"].as_u64(), e["max_length"].as_u64())
                    && min > max
                {
                    self.err(
                        &format!("{path}/min_length"),
                        "must not be more than max_length",
                    );
                }
            }
            // Slack's other elements: only action_id and confirm are checked.
            _ => {}
        }
    }

    fn option(&mut self, o: &Value, path: &str) {
        if !o.is_object() {
            self.err(path, "must be an object");
            return;
        }
        self.req_text(o, "text", path, Text::Plain, MAX_OPTION_TEXT_CHARS);
        if self.required(o, "value", path) {
            self.string(o, "value", path, MAX_OPTION_VALUE_CHARS);
        }
        self.opt_text(o, "description", path, Text::Plain, MAX_OPTION_TEXT_CHARS);
    }

    fn confirm(&mut self, c: &Value, path: &str) {
        if !c.is_object() {
            self.err(path, "must be an object");
            return;
        }
        self.req_text(c, "title", path, Text::Plain, MAX_CONFIRM_TITLE_CHARS);
        self.req_text(c, "text", path, Text::Any, MAX_CONFIRM_TEXT_CHARS);
        self.req_text(c, "confirm", path, Text::Plain, MAX_CONFIRM_BUTTON_CHARS);
        self.req_text(c, "deny", path, Text::Plain, MAX_CONFIRM_BUTTON_CHARS);
        self.style(c, path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn plain(text: &str) -> Value {
        json!({"type": "plain_text", "text": text})
    }

    fn button(action_id: &str, value: &str) -> Value {
        json!({"type": "button", "action_id": action_id, "value": value, "text": plain("Go")})
    }

    fn home(blocks: Value) -> Value {
        json!({"type": "home", "blocks": blocks})
    }

    fn confirm() -> Value {
        json!({
            "title": plain("Submit the task?"),
            "text": {"type": "mrkdwn", "text": "*Sure?*"},
            "confirm": plain("Submit"),
            "deny": plain("Cancel"),
            "style": "primary",
        })
    }

    /// The one message of a refused view.
    fn refused(view: &Value, surface: Surface) -> String {
        let errors = check_view(view, surface).expect_err("refused");
        assert_eq!(errors.len(), 1, "{errors:#?}");
        errors[0].clone()
    }

    #[test]
    fn a_typical_home_view_passes() {
        let mut b = button("offer_accept", "42");
        b["style"] = json!("primary");
        b["confirm"] = confirm();
        let view = home(json!([
            {"type": "header", "text": plain("Open offers")},
            {"type": "section", "block_id": "offer-42",
             "text": {"type": "mrkdwn", "text": "*proj* · step"},
             "accessory": button("offer_review", "42")},
            {"type": "actions", "block_id": "offer-42-actions",
             "elements": [b, button("offer_reject", "42")]},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": "2 h ago"}]},
            {"type": "divider"},
            {"type": "image", "image_url": "https://example.com/a.png", "alt_text": "chart"},
        ]));
        assert_eq!(check_view(&view, Surface::Home), Ok(()));
    }

    #[test]
    fn the_view_type_must_match_the_method() {
        let modal = json!({"type": "modal", "title": plain("x"), "blocks": []});
        assert_eq!(
            refused(&modal, Surface::Home),
            "[ERROR] must be \"home\" for this method [json-pointer:/view/type]"
        );
        assert_eq!(
            refused(&json!({"blocks": []}), Surface::Home),
            "[ERROR] missing required field: type [json-pointer:/view]"
        );
    }

    #[test]
    fn at_most_100_blocks() {
        let blocks = |n| Value::Array(vec![json!({"type": "divider"}); n]);
        assert_eq!(check_view(&home(blocks(100)), Surface::Home), Ok(()));
        assert_eq!(
            refused(&home(blocks(101)), Surface::Home),
            "[ERROR] no more than 100 items allowed [json-pointer:/view/blocks]"
        );
    }

    #[test]
    fn message_only_blocks_are_refused() {
        let view = home(json!([{"type": "file", "external_id": "x", "source": "remote"}]));
        assert_eq!(
            refused(&view, Surface::Home),
            "[ERROR] unsupported block type for a home view: file [json-pointer:/view/blocks/0/type]"
        );
    }

    #[test]
    fn a_too_long_confirm_title_is_refused() {
        let mut b = button("submit", "7");
        b["confirm"] = confirm();
        b["confirm"]["title"] = plain(&"t".repeat(MAX_CONFIRM_TITLE_CHARS + 1));
        let view = home(json!([{"type": "actions", "elements": [b.clone()]}]));
        assert_eq!(
            refused(&view, Surface::Home),
            "[ERROR] must be less than 101 characters \
             [json-pointer:/view/blocks/0/elements/0/confirm/title/text]"
        );
        // 100 is fine; so are the other limits at their maximum.
        b["confirm"]["title"] = plain(&"t".repeat(MAX_CONFIRM_TITLE_CHARS));
        b["confirm"]["text"] = plain(&"x".repeat(MAX_CONFIRM_TEXT_CHARS));
        b["confirm"]["confirm"] = plain(&"c".repeat(MAX_CONFIRM_BUTTON_CHARS));
        let view = home(json!([{"type": "actions", "elements": [b.clone()]}]));
        assert_eq!(check_view(&view, Surface::Home), Ok(()));
    }

    #[test]
    fn a_confirm_needs_all_four_texts_and_a_known_style() {
        let mut b = button("submit", "7");
        b["confirm"] = json!({"title": plain("Sure?"), "text": plain("Really?"),
                              "confirm": {"type": "mrkdwn", "text": "*Yes*"}, "style": "green"});
        let view = home(json!([{"type": "actions", "elements": [b]}]));
        let errors = check_view(&view, Surface::Home).expect_err("refused");
        let at = "/view/blocks/0/elements/0/confirm";
        assert_eq!(
            errors,
            vec![
                format!("[ERROR] must be plain_text [json-pointer:{at}/confirm/type]"),
                format!("[ERROR] missing required field: deny [json-pointer:{at}]"),
                format!(
                    "[ERROR] must be a valid enum value (primary, danger) [json-pointer:{at}/style]"
                ),
            ]
        );
    }

    #[test]
    fn duplicate_action_ids_and_block_ids_are_refused() {
        // One kind of button in several blocks is fine; twice in one block is not.
        let view = home(json!([
            {"type": "actions", "block_id": "a", "elements": [button("accept", "1")]},
            {"type": "actions", "block_id": "b", "elements": [button("accept", "2")]},
        ]));
        assert!(check_view(&view, Surface::Home).is_ok());
        let view = home(json!([
            {"type": "actions", "block_id": "a",
             "elements": [button("accept", "1"), button("accept", "2")]},
        ]));
        assert_eq!(
            refused(&view, Surface::Home),
            "[ERROR] duplicate action_id: accept (first at /view/blocks/0/elements/0/action_id; \
             action_ids must be unique within a block) \
             [json-pointer:/view/blocks/0/elements/1/action_id]"
        );
        let view = home(json!([
            {"type": "divider", "block_id": "same"},
            {"type": "divider", "block_id": "same"},
        ]));
        assert_eq!(
            refused(&view, Surface::Home),
            "[ERROR] duplicate block_id: same (first at /view/blocks/0/block_id) \
             [json-pointer:/view/blocks/1/block_id]"
        );
    }

    #[test]
    fn button_limits() {
        let at = "/view/blocks/0/elements/0";
        let check = |field: &str, value: Value| {
            let mut b = button("go", "1");
            b[field] = value;
            refused(
                &home(json!([{"type": "actions", "elements": [b]}])),
                Surface::Home,
            )
        };
        assert_eq!(
            check("text", plain(&"y".repeat(76))),
            format!("[ERROR] must be less than 76 characters [json-pointer:{at}/text/text]")
        );
        assert_eq!(
            check("text", json!({"type": "mrkdwn", "text": "*go*"})),
            format!("[ERROR] must be plain_text [json-pointer:{at}/text/type]")
        );
        assert_eq!(
            check("value", json!("v".repeat(2001))),
            format!("[ERROR] must be less than 2001 characters [json-pointer:{at}/value]")
        );
        assert_eq!(
            check("action_id", json!("a".repeat(256))),
            format!("[ERROR] must be less than 256 characters [json-pointer:{at}/action_id]")
        );
        assert_eq!(
            check("style", json!("secondary")),
            format!(
                "[ERROR] must be a valid enum value (primary, danger) [json-pointer:{at}/style]"
            )
        );
        assert_eq!(
            check("text", plain("")),
            format!("[ERROR] must be more than 0 characters [json-pointer:{at}/text/text]")
        );
    }

    #[test]
    fn block_limits() {
        let one = |block: Value| refused(&home(json!([block])), Surface::Home);
        assert_eq!(
            one(json!({"type": "header", "text": plain(&"h".repeat(151))})),
            "[ERROR] must be less than 151 characters [json-pointer:/view/blocks/0/text/text]"
        );
        assert_eq!(
            one(json!({"type": "section", "text": {"type": "mrkdwn", "text": "s".repeat(3001)}})),
            "[ERROR] must be less than 3001 characters [json-pointer:/view/blocks/0/text/text]"
        );
        assert_eq!(
            one(json!({"type": "divider", "block_id": "b".repeat(256)})),
            "[ERROR] must be less than 256 characters [json-pointer:/view/blocks/0/block_id]"
        );
        let texts = vec![json!({"type": "mrkdwn", "text": "x"}); 11];
        assert_eq!(
            one(json!({"type": "context", "elements": texts})),
            "[ERROR] no more than 10 items allowed [json-pointer:/view/blocks/0/elements]"
        );
        let buttons: Vec<Value> = (0..26).map(|i| button(&format!("b{i}"), "v")).collect();
        assert_eq!(
            one(json!({"type": "actions", "elements": buttons})),
            "[ERROR] no more than 25 items allowed [json-pointer:/view/blocks/0/elements]"
        );
        assert_eq!(
            one(json!({"type": "actions", "elements": [
                {"type": "plain_text_input", "action_id": "t"}]})),
            "[ERROR] plain_text_input is not allowed in an actions block \
             [json-pointer:/view/blocks/0/elements/0/type]"
        );
    }

    fn modal(blocks: Value) -> Value {
        json!({"type": "modal", "title": plain("Restaff"), "submit": plain("Restaff"),
               "close": plain("Cancel"), "callback_id": "restaff", "private_metadata": "17",
               "blocks": blocks})
    }

    fn users_input() -> Value {
        json!({"type": "input", "block_id": "worker", "label": plain("New worker"),
               "element": {"type": "users_select", "action_id": "pick",
                           "placeholder": plain("Pick a worker")}})
    }

    #[test]
    fn a_typical_modal_passes() {
        let options: Vec<Value> = (0..100)
            .map(|i| json!({"text": plain(&format!("w{i}")), "value": format!("{i}")}))
            .collect();
        let view = modal(json!([
            {"type": "section", "text": {"type": "mrkdwn", "text": "Task *7*"}},
            users_input(),
            {"type": "input", "block_id": "list", "label": plain("Or from the list"),
             "optional": true,
             "element": {"type": "static_select", "action_id": "pick_listed", "options": options}},
            {"type": "input", "block_id": "why", "label": plain("Why"),
             "element": {"type": "plain_text_input", "action_id": "why", "multiline": true,
                         "max_length": 500}},
        ]));
        assert_eq!(check_view(&view, Surface::Modal), Ok(()));
    }

    #[test]
    fn modal_limits() {
        let mut view = modal(json!([users_input()]));
        view["title"] = plain(&"t".repeat(25));
        assert_eq!(
            refused(&view, Surface::Modal),
            "[ERROR] must be less than 25 characters [json-pointer:/view/title/text]"
        );
        let mut view = modal(json!([users_input()]));
        view.as_object_mut().map(|v| v.remove("submit"));
        assert_eq!(
            refused(&view, Surface::Modal),
            "[ERROR] missing required field: submit (a modal with input blocks needs one) \
             [json-pointer:/view]"
        );
        let mut view = modal(json!([]));
        view["private_metadata"] = json!("m".repeat(3001));
        assert_eq!(
            refused(&view, Surface::Modal),
            "[ERROR] must be less than 3001 characters [json-pointer:/view/private_metadata]"
        );
        let mut view = modal(json!([]));
        view.as_object_mut().map(|v| v.remove("title"));
        assert_eq!(
            refused(&view, Surface::Modal),
            "[ERROR] missing required field: title [json-pointer:/view]"
        );
        let view = modal(json!([{"type": "input", "label": plain("x"),
            "element": {"type": "static_select", "action_id": "s", "options": [
                {"text": plain(&"o".repeat(76)), "value": "v".repeat(151)}]}}]));
        let at = "/view/blocks/0/element/options/0";
        assert_eq!(
            check_view(&view, Surface::Modal),
            Err(vec![
                format!("[ERROR] must be less than 76 characters [json-pointer:{at}/text/text]"),
                format!("[ERROR] must be less than 151 characters [json-pointer:{at}/value]"),
            ])
        );
        let view = modal(json!([{"type": "input", "label": plain("x")}]));
        assert_eq!(
            refused(&view, Surface::Modal),
            "[ERROR] missing required field: element [json-pointer:/view/blocks/0]"
        );
    }

    #[test]
    fn ids_are_stamped_where_missing() {
        let mut view = home(json!([
            {"type": "section", "text": {"type": "mrkdwn", "text": "x"},
             "accessory": {"type": "button", "text": plain("Go")}},
            {"type": "actions", "block_id": "mine", "elements": [button("keep", "1")]},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": "c"}]},
        ]));
        let mut n = 0;
        stamp_ids(&mut view, || {
            n += 1;
            format!("gen{n}")
        });
        assert_eq!(view["blocks"][0]["block_id"], "gen1");
        assert_eq!(view["blocks"][0]["accessory"]["action_id"], "gen2");
        assert_eq!(view["blocks"][1]["block_id"], "mine");
        assert_eq!(view["blocks"][1]["elements"][0]["action_id"], "keep");
        assert_eq!(view["blocks"][2]["block_id"], "gen3");
        assert!(view["blocks"][2]["elements"][0].get("action_id").is_none());
        assert_eq!(check_view(&view, Surface::Home), Ok(()));
    }
}
