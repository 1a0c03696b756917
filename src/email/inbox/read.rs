//! Reading an email: its `Message-ID` (or a fixed hash of it), sender, recipients, subject and
//! plain-text body, and whether it is an automatic message rather than a person's answer.

use crate::email::reply::{self, Origin};

/// One email read from the mailbox, as far as answering an offer goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incoming {
    /// The `Message-ID` (without angle brackets); a hash of the message when it has none
    /// ([`hash_id`]).
    pub message_id: String,
    /// For a message without a `Message-ID`, the id releases before the fixed hash stored for
    /// it ([`legacy_hash_id`]): a message they handled is not handled again.
    pub legacy_id: Option<String>,
    pub from: Option<String>,
    /// Every address it was sent to (`To`, `Cc`, `Delivered-To`, `X-Original-To`).
    pub recipients: Vec<String>,
    pub subject: String,
    /// The plain-text body (the HTML part as text when there is no plain one).
    pub body: String,
    /// Why it is not a person's answer (an auto-reply, a bounce), if it is not.
    pub automatic: Option<&'static str>,
}

fn raw_header<'a>(message: &'a mail_parser::Message<'a>, name: &'a str) -> Option<&'a str> {
    message.header_raw(name).map(str::trim)
}

/// Parses a raw message.
pub fn parse(raw: &[u8]) -> Incoming {
    let Some(message) = mail_parser::MessageParser::default().parse(raw) else {
        return Incoming {
            message_id: hash_id(raw),
            legacy_id: Some(legacy_hash_id(raw)),
            from: None,
            recipients: Vec::new(),
            subject: String::new(),
            body: String::new(),
            automatic: Some("unreadable"),
        };
    };
    let addresses = |a: Option<&mail_parser::Address<'_>>| -> Vec<String> {
        a.map(|a| {
            a.iter()
                .filter_map(|addr| addr.address().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
    };
    let mut recipients = addresses(message.to());
    recipients.extend(addresses(message.cc()));
    for name in ["Delivered-To", "X-Original-To", "Envelope-To"] {
        if let Some(v) = raw_header(&message, name) {
            recipients.push(v.trim_matches(['<', '>']).to_string());
        }
    }
    let from = message
        .from()
        .and_then(|a| a.first())
        .and_then(|a| a.address())
        .map(str::to_string);
    let origin = Origin {
        auto_submitted: raw_header(&message, "Auto-Submitted"),
        precedence: raw_header(&message, "Precedence"),
        autoreply_header: ["X-Autoreply", "X-Autorespond", "X-Auto-Response-Suppress"]
            .iter()
            .any(|h| raw_header(&message, h).is_some()),
        content_type: raw_header(&message, "Content-Type").map(str::to_string),
        from: from.as_deref(),
        return_path: raw_header(&message, "Return-Path"),
    };
    let automatic = reply::automatic(&origin);
    let message_id = message.message_id().map(str::to_string);
    Incoming {
        legacy_id: message_id.is_none().then(|| legacy_hash_id(raw)),
        message_id: message_id.unwrap_or_else(|| hash_id(raw)),
        from,
        recipients,
        subject: message.subject().unwrap_or_default().to_string(),
        body: body_of(&message),
        automatic,
    }
}

/// The plain-text body; for an HTML-only message, its HTML as text without the `<blockquote>`s
/// that quote the email replied to.
fn body_of(message: &mail_parser::Message<'_>) -> String {
    let html_only = message.text_part(0).is_some_and(|part| part.is_text_html());
    if html_only && let Some(html) = message.body_html(0) {
        return mail_parser::decoders::html::html_to_text(&reply::html_without_quotes(&html));
    }
    message
        .body_text(0)
        .map(|b| b.into_owned())
        .unwrap_or_default()
}

/// A stable id for a message without a `Message-ID`.
/// SHA-256, whose definition never changes: the id is stored (`email_replies`), and a message
/// read again by a later release must get the same one.
fn hash_id(raw: &[u8]) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(raw);
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("{hex}.{}@sha256.no-message-id.staffbot", raw.len())
}

/// The id releases before [`hash_id`] gave a message without a `Message-ID`: Rust's
/// `DefaultHasher`, which Rust does not promise to keep across its releases, so this matches
/// what they stored only as long as the toolchain's hasher is unchanged. Read, never written.
fn legacy_hash_id(raw: &[u8]) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    raw.hash(&mut h);
    format!("{:016x}.{}@no-message-id.staffbot", h.finish(), raw.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_without_a_message_id_gets_a_fixed_id_and_its_older_one() {
        let raw = b"From: erin@example.com\r\nSubject: Re: offer\r\n\r\naccept\r\n";
        let incoming = parse(raw);
        // SHA-256 of the raw bytes (as `sha256sum` prints it): the same in every release.
        assert_eq!(
            incoming.message_id,
            "3308fef0e0d320b92c19da97bbc847b1619a28ca793ba005785fd15743d1c0ed.54@sha256.no-message-id.staffbot"
        );
        assert_eq!(incoming.legacy_id, Some(legacy_hash_id(raw)));
        let with_id =
            parse(b"Message-ID: <m1@example.com>\r\nFrom: erin@example.com\r\n\r\nno\r\n");
        assert_eq!(
            (with_id.message_id.as_str(), with_id.legacy_id),
            ("m1@example.com", None)
        );
    }
}
