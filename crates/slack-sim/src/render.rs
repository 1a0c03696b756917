//! What a person sees: Slack's reading of message text, and the limits Slack enforces on what
//! it is sent (<https://api.slack.com/reference/block-kit/blocks>, `chat.postMessage`).

use std::collections::BTreeMap;

use serde_json::Value;

/// Characters of a `section` block's text at most.
pub const MAX_SECTION_CHARS: usize = 3000;
/// Blocks of a message at most.
pub const MAX_MESSAGE_BLOCKS: usize = 50;
/// Blocks of a Home tab view at most.
pub const MAX_HOME_BLOCKS: usize = 100;
/// Characters of a button's text at most.
pub const MAX_BUTTON_CHARS: usize = 75;
/// Characters of a message's top-level text this fake accepts (Slack advises 4,000).
pub const MAX_TEXT_CHARS: usize = 4000;

/// Why a list of blocks is refused (`invalid_blocks`), if it is.
pub fn check_blocks(blocks: &Value, max_blocks: usize) -> Result<(), String> {
    let Some(list) = blocks.as_array() else {
        return Err("blocks must be an array".into());
    };
    if list.len() > max_blocks {
        return Err(format!(
            "{} blocks; at most {max_blocks} allowed",
            list.len()
        ));
    }
    for (i, block) in list.iter().enumerate() {
        let chars = |v: &Value| v.as_str().map(|t| t.chars().count()).unwrap_or(0);
        if block["type"] == "section" && chars(&block["text"]["text"]) > MAX_SECTION_CHARS {
            return Err(format!(
                "block {i}: section text longer than {MAX_SECTION_CHARS}"
            ));
        }
        if block["type"] == "context"
            && let Some(elements) = block["elements"].as_array()
            && elements
                .iter()
                .any(|e| chars(&e["text"]) > MAX_SECTION_CHARS)
        {
            return Err(format!(
                "block {i}: context text longer than {MAX_SECTION_CHARS}"
            ));
        }
        if let Some(elements) = block["elements"].as_array() {
            for e in elements {
                if e["type"] == "button" && chars(&e["text"]["text"]) > MAX_BUTTON_CHARS {
                    return Err(format!(
                        "block {i}: button text longer than {MAX_BUTTON_CHARS}"
                    ));
                }
            }
        }
    }
    Ok(())
}

/// `text` as Slack shows it: `<@U1>` is `@name`, `<#C1>` `#name`, `<!here>` `@here`,
/// `<url|label>` `label`, any other `<x>` the link `x`; then `&lt;`, `&gt;` and `&amp;` are
/// the characters they escape. A raw `<` in a user's words therefore vanishes, as it does in
/// Slack.
pub fn render(
    text: &str,
    users: &BTreeMap<String, String>,
    channels: &BTreeMap<String, String>,
) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find('<') {
        out.push_str(&unescape(&rest[..start]));
        let after = &rest[start + 1..];
        let Some(end) = after.find('>') else {
            out.push_str(&unescape(after));
            return out;
        };
        let inner = &after[..end];
        let (target, label) = match inner.split_once('|') {
            Some((t, l)) => (t, Some(l)),
            None => (inner, None),
        };
        let shown = if let Some(id) = target.strip_prefix('@') {
            format!(
                "@{}",
                label
                    .map(str::to_string)
                    .or_else(|| users.get(id).cloned())
                    .unwrap_or_else(|| id.to_string())
            )
        } else if let Some(id) = target.strip_prefix('#') {
            format!(
                "#{}",
                label
                    .map(str::to_string)
                    .or_else(|| channels.get(id).cloned())
                    .unwrap_or_else(|| id.to_string())
            )
        } else if let Some(special) = target.strip_prefix('!') {
            format!("@{}", label.unwrap_or(special))
        } else {
            unescape(label.unwrap_or(target))
        };
        out.push_str(&shown);
        rest = &after[end + 1..];
    }
    out.push_str(&unescape(rest));
    out
}

fn unescape(text: &str) -> String {
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_like_slack() {
        let users = BTreeMap::from([("U1".to_string(), "ann".to_string())]);
        let channels = BTreeMap::from([("C1".to_string(), "proj".to_string())]);
        assert_eq!(
            render(
                "<@U1> in <#C1>: Q&amp;A &lt;draft&gt; <task-id> <http://x|site>",
                &users,
                &channels
            ),
            "@ann in #proj: Q&A <draft> task-id site"
        );
    }

    #[test]
    fn limits() {
        let long = "x".repeat(MAX_SECTION_CHARS + 1);
        let section =
            serde_json::json!([{"type": "section", "text": {"type": "mrkdwn", "text": long}}]);
        assert!(check_blocks(&section, MAX_MESSAGE_BLOCKS).is_err());
        let many = Value::Array(vec![serde_json::json!({"type": "divider"}); 51]);
        assert!(check_blocks(&many, MAX_MESSAGE_BLOCKS).is_err());
        assert!(check_blocks(&many, MAX_HOME_BLOCKS).is_ok());
        let button = serde_json::json!([{"type": "actions", "elements": [
            {"type": "button", "text": {"type": "plain_text", "text": "y".repeat(76)}}]}]);
        assert!(check_blocks(&button, MAX_MESSAGE_BLOCKS).is_err());
    }
}
